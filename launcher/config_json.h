// The resolved TrainConfig as one JSON object, every field written (defaults included), enum
// values by name, numbers as JSON numbers: {"model":{"vocab_size":8192,...},...}. For bench
// results and run records, so a number can always be traced to the exact settings behind it.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "launcher/config.pb.h"
#include "launcher/json_writer.h"

namespace aoetron {

std::string TrainConfigJson(const config::TrainConfig& config);

// Adds every field of `message` (one section, say) to `json` as above: nested messages as
// objects, enums by name, unset fields as their defaults.
void AddMessageFields(const google::protobuf::Message& message, JsonObjectWriter& json);

}  // namespace aoetron
