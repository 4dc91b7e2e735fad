// Reading a TrainConfig: a text-format file, then `--set path=value` overrides, then validation.
//
// Every error is an absl::InvalidArgumentError that a user can act on without reading code:
//   parse errors name the file, line and column and quote the offending line;
//   an unknown field names its full path ("model.n_layer") and lists the valid fields there;
//   a value of the wrong type names the path and the expected type;
//   an inconsistent value is reported by ValidateTrainConfig (launcher/config_validation.h).
// Fields are addressed as the config file spells them: section.field ("model.n_layers").
//
// Thread safety: pure functions of their arguments (and the file system).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "launcher/config.pb.h"

namespace aoetron {

// Parses protobuf text format. `source_name` (usually the file path) prefixes every error
// message: "configs/x.textproto:3:5: ...".
absl::StatusOr<config::TrainConfig> ParseTrainConfigText(const std::string& text,
                                                         const std::string& source_name);

// Reads and parses a text-format file; a missing or unreadable file is an error naming it.
absl::StatusOr<config::TrainConfig> ReadTrainConfigFile(const std::string& path);

// Applies one "path=value" override through protobuf reflection. `path` is section.field;
// `value` is parsed for the field's type (integers, floating point, true/false, enum value
// names, strings taken verbatim; surrounding double quotes are stripped from strings).
absl::Status ApplyConfigOverride(const std::string& assignment, config::TrainConfig* config);

// Reads `path` (empty: start from the defaults), applies `overrides` in order (a later one
// wins over an earlier one for the same field), then validates the result for a run of
// `world_size` processes. The returned config is what the run will use.
absl::StatusOr<config::TrainConfig> LoadTrainConfig(const std::string& path,
                                                    const std::vector<std::string>& overrides,
                                                    int world_size = 1);

// The config with every field written out, defaults included, as protobuf text format. For
// printing what a run resolved to.
std::string ResolvedConfigText(const config::TrainConfig& config);

// ResolvedConfigText with "  # set" after each field that `config` sets explicitly; the other
// fields show their defaults. Still valid text format (the marks are comments). For
// `aoetron-ckpt inspect --config`.
std::string AnnotatedResolvedConfigText(const config::TrainConfig& config);

// A copy of the config with every unset field explicitly set to its default, so that
// serialisation shows all values.
config::TrainConfig WithDefaultsMaterialised(const config::TrainConfig& config);

}  // namespace aoetron
