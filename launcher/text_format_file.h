// Reading protobuf text-format files (training configs, study specs) with errors users can act
// on: "source:line:column: message", the offending line quoted with a caret under the column, and
// protobuf's own wording rewritten into the file's terms by the caller's `explain`.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace aoetron {

// Parses `text` into `message`. On failure, InvalidArgument with every error as above
// ("<source_name>: cannot parse <what>" when protobuf reports none).
absl::Status ParseTextFormat(const std::string& text, const std::string& source_name,
                             const std::string& what,
                             const std::function<std::string(const std::string&)>& explain,
                             google::protobuf::Message* message);

// The whole file; an unreadable one is InvalidArgument "cannot read <what> "<path>": <reason>".
absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what);

// "a, b, c": the field names of `message`, for "valid fields of ..." messages.
std::string FieldNames(const google::protobuf::Descriptor& message);

}  // namespace aoetron
