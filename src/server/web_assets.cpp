// The web chat page (HTML, CSS, JavaScript), embedded as string literals so the binary serves it
// with no files on disk and no CDN. The script streams /v1/chat/completions over SSE.
#include "server/web_assets.h"

namespace luzao::server {
namespace {

constexpr std::string_view kIndexHtml = R"luzao(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>luzao chat</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
  <h1>luzao</h1>
  <span id="model">…</span>
  <details>
    <summary>Settings</summary>
    <label>System <textarea id="system" rows="2" placeholder="You are a helpful assistant."></textarea></label>
    <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
    <label>Max tokens <input id="max-tokens" type="number" min="1" step="1" value="256"></label>
    <label>API key <input id="api-key" type="password" autocomplete="off" placeholder="only if the server asks"></label>
  </details>
</header>
<main id="log" aria-live="polite"></main>
<form id="composer">
  <textarea id="input" rows="2" placeholder="Ask something… (Enter to send, Shift+Enter for a new line)" required></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
  <button id="clear" type="button">Clear</button>
</form>
<footer id="status"></footer>
<script src="/app.js"></script>
</body>
</html>
)luzao";

constexpr std::string_view kStyleCss =
    R"luzao(:root { color-scheme: light dark; --accent: #c2410c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; display: flex; flex-direction: column; height: 100vh; }
header { display: flex; gap: 1em; align-items: baseline; padding: .5em 1em; border-bottom: 1px solid #8884; flex-wrap: wrap; }
header h1 { margin: 0; font-size: 1.2em; color: var(--accent); }
#model { opacity: .7; font-size: .9em; }
details { margin-left: auto; }
details label { display: block; margin: .3em 0; }
details textarea, details input { width: 100%; }
main { flex: 1; overflow-y: auto; padding: 1em; }
.msg { max-width: 48em; margin: 0 auto .8em; padding: .6em .9em; border-radius: .6em; white-space: pre-wrap; word-wrap: break-word; }
.user { background: #8882; }
.assistant { border: 1px solid #8884; }
.error { border: 1px solid #d33; color: #d33; }
.role { font-size: .75em; opacity: .6; display: block; }
form { display: flex; gap: .5em; padding: .6em 1em; border-top: 1px solid #8884; }
form textarea { flex: 1; font: inherit; resize: vertical; }
button { font: inherit; padding: 0 1em; }
#send { background: var(--accent); color: white; border: 0; border-radius: .3em; }
footer { font-size: .8em; opacity: .7; padding: 0 1em .4em; min-height: 1.5em; }
)luzao";

constexpr std::string_view kAppJs =
    R"luzao(// luzao chat page: keeps the conversation, streams replies from /v1/chat/completions.
'use strict';
const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;

for (const id of ['system', 'temperature', 'max-tokens', 'api-key']) {
  const saved = localStorage.getItem('luzao.' + id);
  if (saved !== null) $(id).value = saved;
  $(id).addEventListener('change', () => localStorage.setItem('luzao.' + id, $(id).value));
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) h['Authorization'] = 'Bearer ' + key;
  return h;
}

function bubble(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  const label = document.createElement('span');
  label.className = 'role';
  label.textContent = role;
  const body = document.createElement('span');
  body.className = 'content';
  body.textContent = text;
  div.append(label, body);
  $('log').append(div);
  $('log').scrollTop = $('log').scrollHeight;
  return body;
}

async function loadModel() {
  try {
    const r = await fetch('/v1/models', { headers: headers() });
    const j = await r.json();
    $('model').textContent = r.ok ? j.data[0].id : (j.error && j.error.message) || r.statusText;
  } catch (e) {
    $('model').textContent = 'server unreachable';
  }
}

function busy(on) {
  $('send').disabled = on;
  $('stop').disabled = !on;
}

async function send(text) {
  history.push({ role: 'user', content: text });
  bubble('user', text);
  const out = bubble('assistant', '');
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...history);
  const body = {
    messages, stream: true, stream_options: { include_usage: true },
    temperature: Number($('temperature').value), max_tokens: Number($('max-tokens').value),
  };
  controller = new AbortController();
  busy(true);
  const started = performance.now();
  let reply = '', usage = null, first = null;
  try {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || r.status + ' ' + r.statusText);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          const delta = j.choices && j.choices[0] && j.choices[0].delta;
          if (delta && delta.content) {
            if (first === null) first = performance.now();
            reply += delta.content;
            out.textContent = reply;
            $('log').scrollTop = $('log').scrollHeight;
          }
        }
      }
    }
    const secs = (performance.now() - started) / 1000;
    let status = `${secs.toFixed(2)} s`;
    if (first !== null) status += `, first token after ${((first - started) / 1000).toFixed(2)} s`;
    if (usage) status += `, ${usage.completion_tokens} tokens (${(usage.completion_tokens / secs).toFixed(1)} tok/s)`;
    $('status').textContent = status;
  } catch (e) {
    if (e.name === 'AbortError') {
      $('status').textContent = 'stopped';
    } else {
      out.parentElement.classList.add('error');
      out.textContent = reply + (reply ? '\n' : '') + 'Error: ' + e.message;
    }
  } finally {
    history.push({ role: 'assistant', content: reply });
    controller = null;
    busy(false);
  }
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('input').value.trim();
  if (!text || controller) return;
  $('input').value = '';
  send(text);
});
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => controller && controller.abort());
$('clear').addEventListener('click', () => {
  history.length = 0;
  $('log').textContent = '';
  $('status').textContent = '';
});
loadModel();
)luzao";

constexpr WebAsset kAssets[] = {
    {"/index.html", "text/html; charset=utf-8", kIndexHtml},
    {"/style.css", "text/css; charset=utf-8", kStyleCss},
    {"/app.js", "text/javascript; charset=utf-8", kAppJs},
};

}  // namespace

std::span<const WebAsset> web_assets() {
  return kAssets;
}

}  // namespace luzao::server
