#include "data/json_string.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/byte_unicode.h"
#include "data/string_view_compat.h"
#include "data/unicode_classes.h"

namespace aoetron::data {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 4 hex digits at text[pos]; -1 when they are not there.
int32_t ReadHex4(std::string_view text, size_t pos) {
  if (pos + 4 > text.size()) return -1;
  int32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    int h = HexValue(text[pos + i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

void SkipSpace(std::string_view text, size_t* pos) {
  while (*pos < text.size() &&
         (text[*pos] == ' ' || text[*pos] == '\t' || text[*pos] == '\n' || text[*pos] == '\r')) {
    ++*pos;
  }
}

absl::Status Invalid(size_t pos, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("byte offset %d: %s", pos, what));
}

// Skips one JSON value of any type starting at *pos.
absl::Status SkipJsonValue(std::string_view text, size_t* pos, int depth) {
  if (depth > 64) return Invalid(*pos, "JSON nested too deeply");
  SkipSpace(text, pos);
  if (*pos >= text.size()) return Invalid(*pos, "expected a JSON value");
  const char c = text[*pos];
  if (c == '"') {
    std::string ignored;
    return ParseJsonString(text, pos, &ignored);
  }
  if (c == '{' || c == '[') {
    const char close = c == '{' ? '}' : ']';
    ++*pos;
    SkipSpace(text, pos);
    if (*pos < text.size() && text[*pos] == close) {
      ++*pos;
      return absl::OkStatus();
    }
    while (true) {
      if (c == '{') {
        SkipSpace(text, pos);
        std::string ignored;
        if (*pos >= text.size() || text[*pos] != '"') return Invalid(*pos, "expected a field name");
        if (absl::Status s = ParseJsonString(text, pos, &ignored); !s.ok()) return s;
        SkipSpace(text, pos);
        if (*pos >= text.size() || text[*pos] != ':') return Invalid(*pos, "expected ':'");
        ++*pos;
      }
      if (absl::Status s = SkipJsonValue(text, pos, depth + 1); !s.ok()) return s;
      SkipSpace(text, pos);
      if (*pos < text.size() && text[*pos] == ',') {
        ++*pos;
        continue;
      }
      if (*pos < text.size() && text[*pos] == close) {
        ++*pos;
        return absl::OkStatus();
      }
      return Invalid(*pos, absl::StrCat("expected ',' or '", std::string(1, close), "'"));
    }
  }
  // Numbers and literals: a run of their characters.
  size_t start = *pos;
  while (*pos < text.size() && (std::isalnum(static_cast<unsigned char>(text[*pos])) ||
                                text[*pos] == '-' || text[*pos] == '+' || text[*pos] == '.')) {
    ++*pos;
  }
  std::string_view token = text.substr(start, *pos - start);
  if (token.empty()) return Invalid(start, "expected a JSON value");
  if (token == "true" || token == "false" || token == "null") return absl::OkStatus();
  if (token[0] == '-' || (token[0] >= '0' && token[0] <= '9')) return absl::OkStatus();
  return Invalid(start, "expected a JSON value");
}

}  // namespace

absl::Status ParseJsonString(std::string_view text, size_t* pos, std::string* out) {
  out->clear();
  if (*pos >= text.size() || text[*pos] != '"') return Invalid(*pos, "expected '\"'");
  size_t p = *pos + 1;
  while (true) {
    // Copy the plain run up to the next quote, backslash or control character.
    size_t run = p;
    while (run < text.size() && text[run] != '"' && text[run] != '\\' &&
           static_cast<unsigned char>(text[run]) >= 0x20) {
      ++run;
    }
    out->append(text.data() + p, run - p);
    p = run;
    if (p >= text.size()) {
      *pos = p;
      return Invalid(p, "unterminated string");
    }
    const char c = text[p];
    if (c == '"') {
      *pos = p + 1;
      return absl::OkStatus();
    }
    if (c != '\\') {
      *pos = p;
      return Invalid(p, "raw control character in string");
    }
    if (p + 1 >= text.size()) {
      *pos = p;
      return Invalid(p, "unterminated escape");
    }
    const char e = text[p + 1];
    p += 2;
    switch (e) {
      case '"':
        out->push_back('"');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case '/':
        out->push_back('/');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        int32_t u = ReadHex4(text, p);
        if (u < 0) {
          *pos = p - 2;
          return Invalid(p - 2, "bad \\u escape");
        }
        p += 4;
        char32_t cp = static_cast<char32_t>(u);
        if (u >= 0xD800 && u <= 0xDBFF) {
          int32_t low = (p + 1 < text.size() && text[p] == '\\' && text[p + 1] == 'u')
                            ? ReadHex4(text, p + 2)
                            : -1;
          if (low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((static_cast<char32_t>(u) - 0xD800) << 10) + (low - 0xDC00);
            p += 6;
          } else {
            cp = 0xFFFD;
          }
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          cp = 0xFFFD;
        }
        AppendUtf8(cp, out);
        break;
      }
      default:
        *pos = p - 2;
        return Invalid(p - 2, "unknown escape");
    }
  }
}

void AppendJsonString(std::string_view value, bool ascii_only, std::string* out) {
  out->push_back('"');
  const char* p = value.data();
  const char* end = p + value.size();
  while (p < end) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x80) {
      switch (c) {
        case '"':
          *out += "\\\"";
          break;
        case '\\':
          *out += "\\\\";
          break;
        case '\n':
          *out += "\\n";
          break;
        case '\r':
          *out += "\\r";
          break;
        case '\t':
          *out += "\\t";
          break;
        case '\b':
          *out += "\\b";
          break;
        case '\f':
          *out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            absl::StrAppendFormat(out, "\\u%04x", c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++p;
      continue;
    }
    DecodedChar d = DecodeUtf8Char(p, end);
    if (!ascii_only) {
      out->append(p, d.length);
    } else if (d.code_point < 0x10000) {
      absl::StrAppendFormat(out, "\\u%04x", static_cast<uint32_t>(d.code_point));
    } else {
      const char32_t v = d.code_point - 0x10000;
      absl::StrAppendFormat(out, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    }
    p += d.length;
  }
  out->push_back('"');
}

absl::Status ExtractJsonStringField(std::string_view line, std::string_view key, std::string* out) {
  size_t pos = 0;
  SkipSpace(line, &pos);
  if (pos >= line.size() || line[pos] != '{') return Invalid(pos, "expected a JSON object");
  ++pos;
  SkipSpace(line, &pos);
  bool found = false;
  if (pos < line.size() && line[pos] == '}') {
    ++pos;
  } else {
    std::string name;
    while (true) {
      SkipSpace(line, &pos);
      if (pos >= line.size() || line[pos] != '"') return Invalid(pos, "expected a field name");
      if (absl::Status s = ParseJsonString(line, &pos, &name); !s.ok()) return s;
      SkipSpace(line, &pos);
      if (pos >= line.size() || line[pos] != ':') return Invalid(pos, "expected ':'");
      ++pos;
      SkipSpace(line, &pos);
      if (name == key && !found) {
        if (pos >= line.size() || line[pos] != '"') {
          return Invalid(pos, absl::StrCat("field \"", ToAbsl(key), "\" is not a string"));
        }
        if (absl::Status s = ParseJsonString(line, &pos, out); !s.ok()) return s;
        found = true;
      } else if (absl::Status s = SkipJsonValue(line, &pos, 1); !s.ok()) {
        return s;
      }
      SkipSpace(line, &pos);
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < line.size() && line[pos] == '}') {
        ++pos;
        break;
      }
      return Invalid(pos, "expected ',' or '}'");
    }
  }
  SkipSpace(line, &pos);
  if (pos != line.size()) return Invalid(pos, "unexpected text after the JSON object");
  if (!found) return absl::NotFoundError(absl::StrCat("no string field \"", ToAbsl(key), "\""));
  return absl::OkStatus();
}

}  // namespace aoetron::data
