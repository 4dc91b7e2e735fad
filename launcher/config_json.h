// The resolved TrainConfig as one JSON object, every field written (defaults included), enum
// values by name, numbers as JSON numbers: {"model":{"vocab_size":8192,...},...}. For bench
// results and run records, so a number can always be traced to the exact settings behind it.
#pragma once

#include <string>

#include "launcher/config.pb.h"

namespace aoetron {

std::string TrainConfigJson(const config::TrainConfig& config);

}  // namespace aoetron
