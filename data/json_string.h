// JSON string literals: parsing (for encoder.json and JSONL corpora) and writing.
//
// ParseJsonString reads the string literal that starts at text[*pos] (the opening quote) and
// leaves *pos after the closing quote. It decodes every JSON escape, including \uXXXX and
// surrogate pairs, into UTF-8. A lone surrogate escape decodes to U+FFFD, as JavaScript's
// TextEncoder would write it. Raw control characters inside the string are an error, as JSON
// says. On error *pos is left at the offending byte and the message says what is wrong (the
// caller adds the file name).
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace aoetron::data {

absl::Status ParseJsonString(std::string_view text, size_t* pos, std::string* out);

// Appends `value` as a JSON string literal. With ascii_only, every non-ASCII character is written
// as \uXXXX (Python's json.dumps default); `value` must then be valid UTF-8.
void AppendJsonString(std::string_view value, bool ascii_only, std::string* out);

// Finds the value of the top-level string field `key` in the JSON object `line` (one JSONL
// line). Skips other fields of any type. NotFound when the field is absent; InvalidArgument
// with "byte offset N" when the line is not a JSON object or the field is not a string.
absl::Status ExtractJsonStringField(std::string_view line, std::string_view key, std::string* out);

}  // namespace aoetron::data
