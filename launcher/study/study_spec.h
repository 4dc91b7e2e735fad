// Reading a scaling-study spec (launcher/study/study.proto) from protobuf text format.
//
// Errors are absl::InvalidArgumentError naming the file, line and column, and for an unknown
// field its path in the spec and the fields valid there ("unknown field "axes.n_expert"; valid
// fields of axes: ffn, n_experts, ..."). Values are checked later, when the plan is made
// (launcher/study/study_plan.h), where each error can name the point as well as the field.
//
// Thread safety: pure functions of their arguments (and the file system).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "launcher/study/study.pb.h"

namespace aoetron::study {

// Parses spec text; `source_name` prefixes every error ("study.textproto:3:5: ...").
absl::StatusOr<StudySpec> ParseStudySpecText(const std::string& text,
                                             const std::string& source_name);

// Reads and parses a spec file; a missing file is an error naming it.
absl::StatusOr<StudySpec> ReadStudySpecFile(const std::string& path);

}  // namespace aoetron::study
