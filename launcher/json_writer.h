// JsonObjectWriter: builds one JSON object on one line, for metrics and bench output, or with
// one key per line (Layout::kKeyPerLine) for files people read, such as an export's config.json.
//
// Always valid JSON: strings are escaped, and a non-finite number (NaN, ±inf), which JSON cannot
// represent, is written as null. Keys appear in the order they are added; adding a key twice
// writes it twice (callers do not). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aoetron {

class JsonObjectWriter {
 public:
  enum class Layout {
    kOneLine,     // {"a":1,"b":2}
    kKeyPerLine,  // {\n  "a": 1,\n  "b": 2\n}  (nested values stay as given)
  };
  JsonObjectWriter() = default;
  explicit JsonObjectWriter(Layout layout) : layout_(layout) {}

  JsonObjectWriter& Number(const std::string& key, double value);
  JsonObjectWriter& Integer(const std::string& key, int64_t value);
  JsonObjectWriter& Unsigned(const std::string& key, uint64_t value);
  JsonObjectWriter& Bool(const std::string& key, bool value);
  JsonObjectWriter& String(const std::string& key, const std::string& value);
  JsonObjectWriter& NumberArray(const std::string& key, const std::vector<double>& values);
  JsonObjectWriter& Null(const std::string& key);
  // `json` must already be one valid JSON value (an object from another writer, say).
  JsonObjectWriter& Raw(const std::string& key, const std::string& json);

  // The object, "{...}", without a trailing newline.
  std::string Finish() const;

 private:
  void Key(const std::string& key);
  Layout layout_ = Layout::kOneLine;
  std::string body_;
};

// `value` as a JSON number, or null when it is not finite. Up to 9 significant digits (every
// f32 round-trips; doubles beyond that are noise for metrics).
std::string JsonNumber(double value);
// `value` as a JSON string literal, quotes included.
std::string JsonString(const std::string& value);

}  // namespace aoetron
