// Test helpers: parse one JSON object with a real JSON parser (protobuf's, into a Struct), so
// tests check that what we write is JSON, not just that it looks like it.
#pragma once

#include <google/protobuf/struct.pb.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace aoetron::testing {

absl::StatusOr<google::protobuf::Struct> ParseJsonObject(const std::string& json);

// The lines of a file or a string, without empty ones.
std::vector<std::string> NonEmptyLines(const std::string& text);
std::string ReadFileToString(const std::string& path);

// A fresh empty directory under the temporary directory, removed when the process exits.
std::string MakeTempDir(const std::string& name);

}  // namespace aoetron::testing
