// Python str operations, HTML escaping and strftime for the chat-template engine.
#include "tokenizer/jinja_strings.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_value.h"
#include "tokenizer/unicode.h"

namespace luzao::jinja {

namespace {

uint32_t lower_cp(uint32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
    if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

uint32_t upper_cp(uint32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F)
      return c == 0x131 ? 'I' : c;
    if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

bool is_cased(uint32_t c) {
  return lower_cp(c) != c || upper_cp(c) != c || c == 0xDF;
}

void append_upper(uint32_t c, std::string& out) {
  if (c == 0xDF) {
    out += "SS";
    return;
  }
  unicode::append_utf8(upper_cp(c), out);
}

}  // namespace

std::string str_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> cps = utf8_to_cps(s);
  std::vector<uint32_t> set;
  if (chars) set = utf8_to_cps(*chars);
  auto strip_it = [&](uint32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  if (b == 0 && e == cps.size()) return std::string(s);
  return cps_to_utf8(cps.data() + b, e - b);
}

std::vector<std::string> str_split(std::string_view s, const std::string* sep, int64_t maxsplit,
                                   bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        size_t at = s.find(*sep, pos);
        if (at == std::string_view::npos) break;
        out.emplace_back(s.substr(pos, at - pos));
        pos = at + sep->size();
      }
      out.emplace_back(s.substr(pos));
      return out;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t at = s.rfind(*sep, end - sep->size());
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  // Whitespace split on code points.
  std::vector<uint32_t> cps = utf8_to_cps(s);
  std::vector<std::pair<size_t, size_t>> words;
  size_t n = cps.size();
  if (!from_right) {
    size_t i = 0;
    while (i < n) {
      while (i < n && is_py_space(cps[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t e = n;
        while (e > i && is_py_space(cps[e - 1])) --e;
        words.emplace_back(i, e);
        break;
      }
      size_t b = i;
      while (i < n && !is_py_space(cps[i])) ++i;
      words.emplace_back(b, i);
    }
  } else {
    size_t i = n;
    while (i > 0) {
      while (i > 0 && is_py_space(cps[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
        size_t b = 0;
        while (b < i && is_py_space(cps[b])) ++b;
        words.emplace_back(b, i);
        break;
      }
      size_t e = i;
      while (i > 0 && !is_py_space(cps[i - 1])) --i;
      words.emplace_back(i, e);
    }
    std::reverse(words.begin(), words.end());
  }
  for (auto [b, e] : words) out.push_back(cps_to_utf8(cps.data() + b, e - b));
  return out;
}

std::vector<std::string> str_splitlines(std::string_view s) {
  std::vector<uint32_t> cps = utf8_to_cps(s);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t c = cps[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    out.push_back(cps_to_utf8(cps.data() + start, i - start));
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < cps.size()) out.push_back(cps_to_utf8(cps.data() + start, cps.size() - start));
  return out;
}

std::string str_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t c : utf8_to_cps(s)) append_upper(c, out);
  return out;
}

std::string str_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (uint32_t c : utf8_to_cps(s)) unicode::append_utf8(lower_cp(c), out);
  return out;
}

std::string str_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : utf8_to_cps(s)) {
    if (prev_cased) {
      unicode::append_utf8(lower_cp(c), out);
    } else {
      append_upper(c, out);
    }
    prev_cased = is_cased(c);
  }
  return out;
}

std::string str_capitalize(std::string_view s) {
  std::vector<uint32_t> cps = utf8_to_cps(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      append_upper(cps[i], out);
    } else {
      unicode::append_utf8(lower_cp(cps[i]), out);
    }
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  // Split before/after runs of [-\s({[<]; each piece: first character upper, the rest lower.
  std::vector<uint32_t> cps = utf8_to_cps(s);
  auto is_sep = [](uint32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t b = i;
    bool sep = is_sep(cps[i]);
    while (i < cps.size() && is_sep(cps[i]) == sep) ++i;
    for (size_t k = b; k < i; ++k) {
      if (k == b) {
        append_upper(cps[k], out);
      } else {
        unicode::append_utf8(lower_cp(cps[k]), out);
      }
    }
  }
  return out;
}

std::string str_replace(std::string_view s, std::string_view old, std::string_view with,
                        int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts `with` between every character (and at both ends).
    std::vector<uint32_t> cps = utf8_to_cps(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      if (i < cps.size()) unicode::append_utf8(cps[i], out);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += with;
    pos = at + old.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

bool str_predicate(std::string_view s, std::string_view name) {
  std::vector<uint32_t> cps = utf8_to_cps(s);
  if (cps.empty()) return false;
  auto cls = [](uint32_t c) { return unicode::class_of(c); };
  if (name == "islower" || name == "isupper") {
    bool any = false;
    for (uint32_t c : cps) {
      if (!is_cased(c)) continue;
      any = true;
      bool lower = lower_cp(c) == c;
      if ((name == "islower") != lower) return false;
    }
    return any;
  }
  for (uint32_t c : cps) {
    bool ok = false;
    if (name == "isspace") ok = is_py_space(c);
    if (name == "isalpha") ok = cls(c) == unicode::kLetter;
    if (name == "isalnum") ok = cls(c) == unicode::kLetter || cls(c) == unicode::kNumber;
    if (name == "isdigit" || name == "isdecimal") ok = c >= '0' && c <= '9';
    if (name == "isnumeric") ok = cls(c) == unicode::kNumber;
    if (!ok) return false;
  }
  return true;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '"':
        out += "&#34;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_date(const RenderDate& d, std::string_view format) {
  static constexpr const char* kMonths[] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};
  static constexpr const char* kDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};
  // Days from civil (Howard Hinnant) for the weekday and day of the year.
  auto days_from_civil = [](int y, int m, int day) {
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
  };
  int days = days_from_civil(d.year, d.month, d.day);
  int weekday = ((days % 7) + 7 + 3) % 7;  // 1970-01-01 was a Thursday (3 when Monday is 0)
  int yday = days - days_from_civil(d.year, 1, 1) + 1;
  std::string out;
  char buf[32];
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out += format[i];
      continue;
    }
    char c = format[++i];
    bool no_pad = false;
    if (c == '-' && i + 1 < format.size()) {
      no_pad = true;
      c = format[++i];
    }
    auto num = [&](int v, int width) {
      if (no_pad) {
        std::snprintf(buf, sizeof(buf), "%d", v);
      } else {
        std::snprintf(buf, sizeof(buf), "%0*d", width, v);
      }
      out += buf;
    };
    int hour12 = d.hour % 12 == 0 ? 12 : d.hour % 12;
    switch (c) {
      case 'Y':
        num(d.year, 4);
        break;
      case 'y':
        num(d.year % 100, 2);
        break;
      case 'm':
        num(d.month, 2);
        break;
      case 'd':
        num(d.day, 2);
        break;
      case 'e':
        std::snprintf(buf, sizeof(buf), "%2d", d.day);
        out += buf;
        break;
      case 'H':
        num(d.hour, 2);
        break;
      case 'I':
        num(hour12, 2);
        break;
      case 'M':
        num(d.minute, 2);
        break;
      case 'S':
        num(d.second, 2);
        break;
      case 'j':
        num(yday, 3);
        break;
      case 'p':
        out += d.hour < 12 ? "AM" : "PM";
        break;
      case 'B':
        out += kMonths[d.month - 1];
        break;
      case 'b':
      case 'h':
        out += std::string(kMonths[d.month - 1]).substr(0, 3);
        break;
      case 'A':
        out += kDays[weekday];
        break;
      case 'a':
        out += std::string(kDays[weekday]).substr(0, 3);
        break;
      case 'u':
        num(weekday + 1, 1);
        break;
      case 'w':
        num((weekday + 1) % 7, 1);
        break;
      case 'F':
        out += format_date(d, "%Y-%m-%d");
        break;
      case 'D':
        out += format_date(d, "%m/%d/%y");
        break;
      case 'T':
        out += format_date(d, "%H:%M:%S");
        break;
      case 'Z':
      case 'z':
        break;  // a naive datetime has no zone
      case '%':
        out += '%';
        break;
      default:
        fail(ErrorKind::kUnsupported, "strftime_now format '%{}' is not supported", c);
    }
  }
  return out;
}

}  // namespace luzao::jinja
