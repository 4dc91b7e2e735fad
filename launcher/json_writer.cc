#include "launcher/json_writer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace aoetron {

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.9g", value);
}

std::string JsonString(const std::string& value) {
  std::string out = "\"";
  for (const char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;  // UTF-8 passes through unchanged
        }
    }
  }
  out += "\"";
  return out;
}

void JsonObjectWriter::Key(const std::string& key) {
  if (layout_ == Layout::kOneLine) {
    if (!body_.empty()) body_ += ",";
    absl::StrAppend(&body_, JsonString(key), ":");
    return;
  }
  absl::StrAppend(&body_, body_.empty() ? "\n  " : ",\n  ", JsonString(key), ": ");
}

std::string JsonObjectWriter::Finish() const {
  if (layout_ == Layout::kOneLine || body_.empty()) return "{" + body_ + "}";
  return "{" + body_ + "\n}";
}

JsonObjectWriter& JsonObjectWriter::Number(const std::string& key, double value) {
  Key(key);
  body_ += JsonNumber(value);
  return *this;
}

JsonObjectWriter& JsonObjectWriter::Integer(const std::string& key, int64_t value) {
  Key(key);
  absl::StrAppend(&body_, value);
  return *this;
}

JsonObjectWriter& JsonObjectWriter::Unsigned(const std::string& key, uint64_t value) {
  Key(key);
  absl::StrAppend(&body_, value);
  return *this;
}

JsonObjectWriter& JsonObjectWriter::Bool(const std::string& key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObjectWriter& JsonObjectWriter::String(const std::string& key, const std::string& value) {
  Key(key);
  body_ += JsonString(value);
  return *this;
}

JsonObjectWriter& JsonObjectWriter::NumberArray(const std::string& key,
                                                const std::vector<double>& values) {
  Key(key);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) body_ += ",";
    body_ += JsonNumber(values[i]);
  }
  body_ += "]";
  return *this;
}

JsonObjectWriter& JsonObjectWriter::Null(const std::string& key) {
  Key(key);
  body_ += "null";
  return *this;
}

JsonObjectWriter& JsonObjectWriter::Raw(const std::string& key, const std::string& json) {
  Key(key);
  body_ += json;
  return *this;
}

}  // namespace aoetron
