// Debian's abseil is built with its own absl::string_view (not an alias of std::string_view), so
// std::string_view must be converted explicitly when passed to absl (StrCat, hash-map lookups).
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace aoetron::data {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace aoetron::data
