// Python str operations for the chat-template engine (strip, split, case mapping, title, replace),
// jinja2's HTML escaping, and strftime for the fixed render date.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace luzao::jinja {

struct RenderDate;

// str.strip/lstrip/rstrip; `chars` null means whitespace.
std::string str_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split / str.rsplit; `sep` null splits on whitespace runs. maxsplit < 0: no limit.
std::vector<std::string> str_split(std::string_view s, const std::string* sep, int64_t maxsplit,
                                   bool from_right);
std::vector<std::string> str_splitlines(std::string_view s);
// Case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (and ß -> SS).
std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);
std::string str_title(std::string_view s);       // str.title()
std::string str_capitalize(std::string_view s);  // str.capitalize()
std::string jinja_title(std::string_view s);     // the |title filter
std::string str_replace(std::string_view s, std::string_view old, std::string_view with,
                        int64_t count);
bool str_predicate(std::string_view s, std::string_view name);  // isdigit, isalpha, ...
// markupsafe.escape: & < > ' " as &amp; &lt; &gt; &#39; &#34;
std::string html_escape(std::string_view s);
// datetime.strftime for the fixed render date (C locale).
std::string format_date(const RenderDate& date, std::string_view format);

}  // namespace luzao::jinja
