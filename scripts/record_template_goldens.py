#!/usr/bin/env python3
"""Records reference renderings of every chat template in ../shared/templates with Python jinja2.

The environment mirrors Hugging Face transformers' apply_chat_template: ImmutableSandboxedEnvironment
with trim_blocks/lstrip_blocks, the loopcontrols extension, a {% generation %} tag, its tojson filter
(json.dumps with ensure_ascii=False), raise_exception, strftime_now (here at a fixed date), dict and
namespace. Writes tests/golden/templates/conversations.json (the render contexts) and one
<template>.json per template (the output, or the exception when jinja2 raised).

Usage: /root/.cache/luzao/ref-venv/bin/python scripts/record_template_goldens.py [templates_dir]
"""
import datetime
import json
import pathlib
import sys

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "golden" / "templates"
NOW = datetime.datetime(2026, 1, 15, 9, 30, 5)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City name, e.g. 'Paris'"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    }
]

BASE = {"bos_token": "<s>", "eos_token": "</s>", "tools": None, "documents": None}


def conv(name, messages, add_generation_prompt, needs=None, **extra):
    context = dict(BASE)
    context.update(extra)
    context["messages"] = messages
    context["add_generation_prompt"] = add_generation_prompt
    return {"name": name, "needs": needs, "context": context}


SYSTEM_USER = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello! What is 2+2?"},
]
MULTI_TURN = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "Tell me a joke about 'cats' & \"dogs\",\n  then say 你好。 "},
]
TOOL_CALL_DICT = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "a1b2c3d4e",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "get_weather", "content": "{\"temperature\": 18.5}"},
]
TOOL_CALL_STRING = [
    {"role": "user", "content": "Weather in Zürich?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "Z9y8x7w6v",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\": \"Zürich\"}"},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "Z9y8x7w6v", "name": "get_weather", "content": "sunny, 21 C"},
    {"role": "assistant", "content": "It is sunny in Zürich."},
    {"role": "user", "content": "Thanks!"},
]
REASONING = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2+2 = 4.", "reasoning_content": "Simple sum: 2 plus 2 is 4."},
    {"role": "user", "content": "And 3+3?"},
]
REASONING_LAST = [
    {"role": "system", "content": "Think first."},
    {"role": "user", "content": "Is 7 prime?"},
    {"role": "assistant", "content": "Yes, 7 is prime.", "reasoning_content": "7 has no divisors but 1 and 7.\n"},
]

CONVERSATIONS = [
    conv("system_user_gen", SYSTEM_USER, True),
    conv("system_user", SYSTEM_USER, False),
    conv("multi_turn_gen", MULTI_TURN, True),
    conv("multi_turn", MULTI_TURN, False),
    conv("tool_call_dict", TOOL_CALL_DICT, True, needs="tools", tools=TOOLS),
    conv("tool_call_string", TOOL_CALL_STRING, False, needs="tools", tools=TOOLS),
    conv("reasoning_gen", REASONING, True, needs="reasoning_content"),
    conv("reasoning_last", REASONING_LAST, False, needs="reasoning_content"),
]


class GenerationTag(jinja2.ext.Extension):
    """HF's {% generation %}...{% endgeneration %}: renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"cannot store underscore-prefixed attribute {name!r}")


class TemplateDict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env


# Small templates that pin down jinja2 semantics one at a time: (template, extra context).
SNIPPETS = [
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw, trailing newline
    ("a\n  {% if true %}\n    b\n  {% endif %}\nc\n", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("  {{ 'x' }}  \n{# c #}\n  {#- c -#}  y\n", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %}|{%+ if true %}k{% endif +%}\nz", {}),
    ("line1\r\nline2\r\n\n", {}),
    ("a\u00a0{%- if true -%}\u3000\u00a0b{% endif %}|x\n\u3000 {% if true %}y{% endif %}|{{\u00a0'z'\u00a0}}", {}),
    ("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n", {}),
    ("{{- '  a  ' -}}\n  \n{%- set x = 1 %}  {{ x }}", {}),
    # scoping
    ("{% set c = 0 %}{% for i in [1,2,3] %}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}", {}),
    ("{% set y = 'outer' %}{% for i in [1,2] %}{{ y }}{% set y = i %}{% endfor %}{{ y }}", {}),
    ("{% set y = 'o' %}{% macro m() %}{{ y }}{% set y = 3 %}{{ y }}{% endmacro %}{{ m() }}{{ y }}", {}),
    ("{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", {}),
    ("{% macro m() %}{{ z }}{% endmacro %}{% for z in [5] %}{{ m() }}{% endfor %}", {}),
    ("{% if true %}{% set k = 'set in if' %}{% endif %}{{ k }}", {}),
    ("{% set ns = namespace(a=1, b=[]) %}{% for i in [1,2] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{% set c, d = t %}{{ c + d }}", {}),
    ("{% set blk %}inner {{ 1 + 1 }}{% endset %}[{{ blk }}]{% set up | upper %}shout{% endset %}{{ up }}", {}),
    ("{% filter upper %}abc {{ 'x' }}{% set inner = 1 %}{% endfilter %}|{% filter trim | replace('a', 'b') %}  aa  {% endfilter %}|{{ inner is defined }}", {}),
    ("{% with a = 5 %}{{ a }}{% endwith %}{{ a is defined }}", {}),
    # loops
    ("{% for x in [1,2,3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.last }}{% else %}E{% endfor %}", {}),
    ("{% for x in [] %}{% else %}empty{% endfor %}", {}),
    ("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", {}),
    ("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}{% for ch in 'hé' %}[{{ ch }}]{% endfor %}", {}),
    ("{% for i in [1,2,3] %}{{ loop.index0 }}{{ loop.first }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a','b') }}|{% endfor %}", {}),
    ("{% for i in [1,2,3,4] %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% if i == 3 %}{% break %}{% endif %}{% endfor %}", {}),
    ("{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}{% endfor %}", {}),
    # macros and call blocks
    ("{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}|{{ m(1, 3, 4, c=5) }}|{{ m(b=7, a=0) }}", {}),
    ("{% macro m(a) %}[{{ a }}:{{ caller() }}]{% endmacro %}{% call m(1) %}body{% endcall %}", {}),
    ("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", {}),
    ("{% macro m(x) %}{{ x }}{% endmacro %}{{ m() }}|{{ m(1) ~ m(2) }}", {}),
    # printing Python values
    ("{{ [1, 'a', None, True, 1.5, {'k': 'v'}] }}|{{ ('a',) }}|{{ (1, 2) }}|{{ {} }}|{{ none }}|{{ false }}", {}),
    ("{{ \"it's\" }}{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'é中'] }}", {}),
    ("{{ 1.0 }} {{ 100.0 }} {{ 1e100 }} {{ 12345678901234567.0 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 2.5e-10 }}", {}),
    ("{{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 3 * 'ab' }} {{ [0] * 3 }} {{ -(3) }} {{ +2 }}", {}),
    ("{{ 1 ~ 2 ~ none ~ true ~ [1] ~ undefined_name }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 1 + 2.5 }}|{{ true + 1 }}", {}),
    ("{{ 'x' if true }}|{{ 'x' if false }}|{{ 'y' if false else 'z' }}|{{ 1 if 0 else 2 if 0 else 3 }}", {}),
    ("{{ 3 in [1,2,3] }}{{ 'b' in 'abc' }}{{ 'a' in {'a':1} }}{{ 1 == 1.0 }}{{ true == 1 }}{{ 4 not in [1] }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ none == none }}{{ x == y }}", {}),
    ("{{ 0 or 'd' }}|{{ 'a' and 'b' }}|{{ '' and 'b' }}|{{ not 0 }}|{{ not [] }}|{{ [] or none }}", {}),
    # subscripts and slices
    ("{{ 'abc'[1:] }}{{ 'abc'[-1] }}{{ [1,2,3][::-1] }}{{ 'héllo'[1:3] }}{{ [1,2,3,4][1:-1] }}{{ 'abcdef'[::2] }}{{ [1,2][5:] }}{{ 'abc'[-10:2] }}", {}),
    ("{{ d.a }}{{ d['a'] }}{{ d.missing }}|{{ d['missing'] }}|{{ l[0] }}{{ l[-1] }}{{ l[9] }}|{{ l.0 }}{{ d.items is defined }}{{ none_v.x }}|", {"d": {"a": 1}, "l": [7, 8], "none_v": None}),
    ("{% set d = {0: 'zero', 512: 'x', 'k': 'v'} %}{{ d[512] }}{{ d[0] }}{{ d }}{{ d|tojson }}{{ 0 in d }}", {}),
    # filters
    ("{{ x|tojson }}|{{ x|tojson(indent=2) }}|{{ x|tojson(ensure_ascii=True) }}|{{ x|tojson(sort_keys=true) }}|{{ x|tojson(separators=(',', ':')) }}|{{ x|tojson(indent='\t') }}",
     {"x": {"b": [1, 2.5, None, True], "a": "é\"\\\n\u0001\u007f中😀</", "e": {}, "f": []}}),
    ("{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ [1,2]|length }}{{ 'héllo'|length }}{{ {'a':1}|count }}{{ u|length }}|{{ 5|string }}{{ none|string }}", {}),
    ("{{ u|default('d') }}|{{ none|default('d') }}|{{ ''|default('d', true) }}|{{ 0|d('z', boolean=true) }}|{{ u|d }}|", {}),
    ("{{ [1,'a']|join }}|{{ ['a','b']|join(', ') }}|{{ [{'n':'x'},{'n':'y'}]|join('-', attribute='n') }}|{{ 'abc'|join('.') }}", {}),
    ("{{ {'a':1, 'b':2}|items|list }}|{{ u|items|list }}|{{ {'b':1,'A':2,'a':3}|dictsort }}|{{ {'b':1,'a':2}|dictsort(by='value', reverse=true) }}", {}),
    ("{{ 'Hello WORLD'|lower }}|{{ 'straße é'|upper }}|{{ 'hello world-wide (x)'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ \"they're bill's\".title() }}", {}),
    ("{{ 'abc'|list }}|{{ [3,1,2]|sort }}|{{ ['b','A','a','C']|sort }}|{{ ['b','A','a']|sort(case_sensitive=true) }}|{{ [{'k':2},{'k':1}]|sort(attribute='k') }}|{{ [1,3,2]|sort(reverse=true) }}", {}),
    ("{{ [1,2,2,1]|unique|list }}|{{ ['a','A','b']|unique|list }}|{{ ['a','b']|map('upper')|list }}|{{ [{'a':1},{'b':2}]|map(attribute='a')|list }}|{{ [{'a':{'b':3}}]|map(attribute='a.b')|list }}|{{ [{'x':1}]|map(attribute='a', default=0)|list }}", {}),
    ("{{ [{'a':1},{'b':2}]|selectattr('a')|list }}|{{ [1,2,3]|select('odd')|list }}|{{ [1,2,3]|reject('equalto', 2)|list }}|{{ [{'t':'x'},{'t':'y'}]|rejectattr('t', 'eq', 'x')|list }}|{{ [{'t':'x'}]|selectattr('t', 'in', ['x','z'])|list }}|{{ none|selectattr('a')|list }}", {}),
    ("{{ [1,2]|map('upper') is iterable }}{{ ([]|select) is sequence }}{{ [] | select | list | length }}{% if []|select %}generator-is-truthy{% endif %}", {}),
    ("{{ 'a\nb'|indent(2) }}|{{ 'a\nb\n'|indent(2, true) }}|{{ 'a\n\nb'|indent(2) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb'|indent('> ', first=true) }}", {}),
    ("{{ 'abc'|first }}{{ [1,2]|last }}{{ []|first is undefined }}{{ 'abc'|last }}|{{ [3,1]|min }}{{ [3,1]|max }}{{ ['b','A']|min }}{{ [1,2]|sum }}{{ [{'v':2},{'v':3}]|sum(attribute='v') }}{{ [1,2]|reverse|list }}{{ 'abc'|reverse }}", {}),
    ("{{ -3|abs }}{{ 2.567|round(2) }}{{ 2.5|round }}{{ 3.5|round }}{{ 2.1|round(method='ceil') }}{{ '3'|int + 1 }}{{ 'x'|int }}{{ '1.9'|int }}{{ 3.9|int }}{{ '1.5'|float }}{{ 'x'|float }}{{ 5|float }}", {}),
    ("{{ 'aaa'|replace('a','b',2) }}|{{ 'abc'|replace('b','X') }}|{{ 'x'|center(5) }}|{{ 'a b  c'|wordcount }}|{{ '<a href=\"x\">'|e }}|{{ ('<b>'|safe) + '<i>' }}|{{ '<i>' + ('<b>'|safe) }}|{{ ('<b>'|safe) ~ '<i>' }}", {}),
    # tests
    ("{{ x is defined }}{{ none is none }}{{ 1 is number }}{{ 'a' is string }}{{ [1] is sequence }}{{ 'a' is iterable }}{{ {} is mapping }}{{ 3 is odd }}{{ 4 is even }}{{ 1 is eq 1 }}{{ true is true }}{{ 1 is true }}{{ 1 is boolean }}{{ 1.0 is integer }}{{ 1.0 is float }}{{ 6 is divisibleby 3 }}{{ x is undefined }}{{ 'a' is lower }}{{ 2 is gt 1 }}{{ 1 is in [1] }}{{ x is sequence }}{{ none is sameas none }}{{ {} is iterable }}", {}),
    ("{{ 'ab' is string and 'ab' is not mapping }}{{ 1 is not none }}{{ not x is defined }}{{ (x or 'd') is string }}{{ 'upper' is filter }}{{ 'odd' is test }}", {}),
    # methods
    ("{{ '  a b  '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a b c'.split(' ', 1) }}{{ 'a-b-c'.rsplit('-', 1) }}{{ ' x y '.rsplit() }}{{ 'abc'.strip('ac') }}{{ '\n x \t'.strip() }}|{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}|{{ 'xxa'.lstrip('x') }}", {}),
    ("{{ 'Abc'.lower() }}{{ 'a b'.title() }}{{ 'abc'.startswith(('x','a')) }}{{ 'abc'.endswith('c') }}{{ 'aXbX'.replace('X', '-') }}{{ 'aXbX'.replace('X', '-', 1) }}{{ 'abc'.find('c') }}{{ 'abc'.find('z') }}{{ 'a.b'.count('.') }}{{ 'l1\nl2\r\nl3'.splitlines() }}{{ ', '.join(['a', 'b']) }}{{ '12'.isdigit() }}", {}),
    ("{{ {'a': 1}.get('b') }}{{ {'a': 1}.get('b', 2) }}{{ {'a': 1}.get('a') }}{{ {'a':1}.items()|list }}{{ {'a':1}.keys()|list }}{{ {'a':1}.values()|list }}{{ [1,2,1].count(1) }}{{ [1,2].index(2) }}", {}),
    ("{{ '{} and {}'.format(1, 'b') }}|{{ '{0}{name}{0}'.format(1, name='z') }}|{{ '{{literal}} {}'.format(2) }}", {}),
    # globals
    ("{{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ namespace(a=1).a }}{{ dict(a=1, b=2) }}{{ dict({'c': 3}, d=4) }}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%A %a %j %I%p %y %-d %-m') }}", {}),
    ("{{ messages[0].content }}{% for m in messages %}{{ m.role }}{% endfor %}{{ add_generation_prompt }}{{ tools }}", {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True, "tools": None}),
    # errors
    ("{{ raise_exception('custom failure') }}", {}),
    ("{{ u.attr }}", {}),
    ("{{ u['k'] }}", {}),
    ("{{ u + 1 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ none|tojson }}{{ u|tojson }}", {}),
    ("{{ ([1]|map('string'))|tojson }}", {}),
    ("{% for x in none %}{% endfor %}", {}),
    ("{{ [1].append(2) }}", {}),
    ("{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("{{ 5|items|list }}", {}),
    ("{{ x|no_such_filter }}", {}),
    ("{% if false %}{{ x|no_such_filter }}{% endif %}ok", {}),
    ("{% if true %}{{ x|no_such_filter }}{% endif %}", {}),
    ("{{ 1 < 'a' }}", {}),
    ("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("{% for %}", {}),
    ("{{ 'unclosed }}", {}),
    ("{% if true %}never closed", {}),
    ("{{ (1|length) }}", {}),
    ("{{ [1]|map('upper')|length }}", {}),
]


def error_entry(name, exc):
    return {"conversation": name, "error": str(exc), "error_type": type(exc).__name__}


def main():
    templates_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "templates"
    env = make_env()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"now": NOW.isoformat(), "jinja2": jinja2.__version__, "conversations": CONVERSATIONS}
    (OUT / "conversations.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    snippets = []
    for source, context in SNIPPETS:
        entry = {"template": source, "context": context}
        try:
            entry["output"] = env.from_string(source).render(**context)
        except Exception as exc:
            entry.update(error_entry(None, exc))
            del entry["conversation"]
        snippets.append(entry)
    (OUT / "snippets.json").write_text(json.dumps(snippets, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = errors = 0
    for path in sorted(templates_dir.glob("*.jinja")):
        source = path.read_text(encoding="utf-8")
        results = []
        try:
            template = env.from_string(source)
        except Exception as exc:  # a template jinja2 cannot compile fails every conversation
            template, compile_error = None, exc
        for c in CONVERSATIONS:
            if c["needs"] and c["needs"] not in source:
                continue
            total += 1
            if template is None:
                results.append(error_entry(c["name"], compile_error))
                errors += 1
                continue
            try:
                results.append({"conversation": c["name"], "output": template.render(**c["context"])})
            except Exception as exc:
                results.append(error_entry(c["name"], exc))
                errors += 1
        doc = {"template": path.name, "results": results}
        (OUT / (path.stem + ".json")).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"recorded {total} renderings ({errors} raised) of {len(list(templates_dir.glob('*.jinja')))} templates")


if __name__ == "__main__":
    main()
