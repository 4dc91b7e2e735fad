#include "launcher/config_loader.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

#include <map>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "launcher/config_validation.h"
#include "launcher/text_format_file.h"

namespace aoetron {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string EnumValueNames(const EnumDescriptor& values) {
  std::vector<std::string> names;
  for (int i = 0; i < values.value_count(); ++i) names.push_back(values.value(i)->name());
  return absl::StrJoin(names, ", ");
}

// "" for TrainConfig itself, "model" for ModelSection, and so on: the path users write.
std::map<std::string, std::string> ConfigPathsByMessageType() {
  std::map<std::string, std::string> paths;
  const Descriptor* root = config::TrainConfig::descriptor();
  paths[root->full_name()] = "";
  for (int i = 0; i < root->field_count(); ++i) {
    const FieldDescriptor* field = root->field(i);
    if (field->message_type() != nullptr) paths[field->message_type()->full_name()] = field->name();
  }
  return paths;
}

std::string JoinPath(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : absl::StrCat(prefix, ".", name);
}

// Rewrites protobuf's wording of the two errors users make most into the config's own terms.
std::string ExplainParseError(const std::string& message) {
  static const std::regex kUnknownField(
      R"re(Message type "([\w.]+)" has no field named "(\w+)")re");
  static const std::regex kUnknownEnumValue(
      R"re(Unknown enumeration value of "(\w+)" for field "(\w+)")re");
  std::smatch match;
  if (std::regex_search(message, match, kUnknownField)) {
    const std::map<std::string, std::string> paths = ConfigPathsByMessageType();
    const auto path = paths.find(match[1].str());
    const Descriptor* type =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(match[1].str());
    if (path != paths.end() && type != nullptr) {
      return absl::StrFormat("unknown field \"%s\"; valid fields of %s: %s",
                             JoinPath(path->second, match[2].str()),
                             path->second.empty() ? "the config" : path->second, FieldNames(*type));
    }
  }
  if (std::regex_search(message, match, kUnknownEnumValue)) {
    // Enum fields have distinct names across sections, so the name finds the section.
    const Descriptor* root = config::TrainConfig::descriptor();
    for (int i = 0; i < root->field_count(); ++i) {
      const Descriptor* section = root->field(i)->message_type();
      const FieldDescriptor* field = section->FindFieldByName(match[2].str());
      if (field == nullptr || field->enum_type() == nullptr) continue;
      return absl::StrFormat("%s: unknown value \"%s\"; valid values: %s",
                             JoinPath(root->field(i)->name(), field->name()), match[1].str(),
                             EnumValueNames(*field->enum_type()));
    }
  }
  return message;
}

std::string ExpectedTypeName(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("one of ", EnumValueNames(*field.enum_type()));
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a section";
  }
  return "?";
}

// Sets `field` of `message` from the text `value`; errors name `path`.
absl::Status SetScalarField(const std::string& path, const std::string& value,
                            const FieldDescriptor& field, Message* message) {
  const Reflection& reflection = *message->GetReflection();
  auto wrong_type = [&]() {
    return absl::InvalidArgumentError(absl::StrFormat("--set %s=%s: %s expects %s, got \"%s\"",
                                                      path, value, path, ExpectedTypeName(field),
                                                      value));
  };
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) return wrong_type();
      reflection.SetInt32(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) return wrong_type();
      reflection.SetInt64(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t parsed;
      if (!absl::SimpleAtoi(value, &parsed)) return wrong_type();
      reflection.SetUInt32(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t parsed;
      // SimpleAtoi into an unsigned type still accepts "-1" on some versions; refuse signs.
      if (!value.empty() && value[0] == '-') return wrong_type();
      if (!absl::SimpleAtoi(value, &parsed)) return wrong_type();
      reflection.SetUInt64(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float parsed;
      if (!absl::SimpleAtof(value, &parsed)) return wrong_type();
      reflection.SetFloat(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double parsed;
      if (!absl::SimpleAtod(value, &parsed)) return wrong_type();
      reflection.SetDouble(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool parsed;
      if (!absl::SimpleAtob(value, &parsed)) return wrong_type();
      reflection.SetBool(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* enum_value =
          field.enum_type()->FindValueByName(value);
      if (enum_value == nullptr) return wrong_type();
      reflection.SetEnum(message, &field, enum_value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string text = value;
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
        text = text.substr(1, text.size() - 2);
      }
      reflection.SetString(message, &field, text);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("--set %s=%s: %s is a section, not a field; set one of its fields: %s", path,
                      value, path, FieldNames(*field.message_type())));
}

void MaterialiseDefaults(Message* message) {
  const Descriptor& type = *message->GetDescriptor();
  const Reflection& reflection = *message->GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* field = type.field(i);
    if (field->is_repeated()) continue;
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        MaterialiseDefaults(reflection.MutableMessage(message, field));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        reflection.SetInt32(message, field, reflection.GetInt32(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection.SetInt64(message, field, reflection.GetInt64(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        reflection.SetUInt32(message, field, reflection.GetUInt32(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        reflection.SetUInt64(message, field, reflection.GetUInt64(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        reflection.SetFloat(message, field, reflection.GetFloat(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        reflection.SetDouble(message, field, reflection.GetDouble(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection.SetBool(message, field, reflection.GetBool(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        reflection.SetEnum(message, field, reflection.GetEnum(*message, field));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        reflection.SetString(message, field, reflection.GetString(*message, field));
        break;
    }
  }
}

// `full` (defaults materialised) field by field at `indent`, marking what `given` (the same
// message as written, or null when absent) has set. The schema has no repeated fields.
void AppendAnnotated(const Message& full, const Message* given, const std::string& indent,
                     std::string* out) {
  const Descriptor& type = *full.GetDescriptor();
  const Reflection& reflection = *full.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* field = type.field(i);
    if (field->is_repeated()) continue;
    const bool set = given != nullptr && given->GetReflection()->HasField(*given, field);
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      absl::StrAppend(out, indent, field->name(), " {\n");
      AppendAnnotated(reflection.GetMessage(full, field),
                      set ? &given->GetReflection()->GetMessage(*given, field) : nullptr,
                      indent + "  ", out);
      absl::StrAppend(out, indent, "}\n");
      continue;
    }
    std::string value;
    google::protobuf::TextFormat::PrintFieldValueToString(full, field, -1, &value);
    absl::StrAppend(out, indent, field->name(), ": ", value, set ? "  # set" : "", "\n");
  }
}

}  // namespace

absl::StatusOr<config::TrainConfig> ParseTrainConfigText(const std::string& text,
                                                         const std::string& source_name) {
  config::TrainConfig parsed;
  if (absl::Status status =
          ParseTextFormat(text, source_name, "the config", ExplainParseError, &parsed);
      !status.ok()) {
    return status;
  }
  return parsed;
}

absl::StatusOr<config::TrainConfig> ReadTrainConfigFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path, "config file");
  if (!text.ok()) return text.status();
  return ParseTrainConfigText(*text, path);
}

absl::Status ApplyConfigOverride(const std::string& assignment, config::TrainConfig* config) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--set \"%s\": expected section.field=value, e.g. --set model.n_layers=8", assignment));
  }
  const std::string path = assignment.substr(0, equals);
  const std::string value = assignment.substr(equals + 1);
  Message* message = config;
  std::string walked;  // the path resolved so far, for messages
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const Descriptor& type = *message->GetDescriptor();
    const FieldDescriptor* field = type.FindFieldByName(parts[i]);
    const std::string here = JoinPath(walked, parts[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--set %s: unknown field \"%s\"; valid fields of %s: %s", assignment,
                          here, walked.empty() ? "the config" : walked, FieldNames(type)));
    }
    const bool last = i + 1 == parts.size();
    if (last) return SetScalarField(path, value, *field, message);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--set %s: %s is a field of type %s, it has no field \"%s\"", assignment,
                          here, field->type_name(), parts[i + 1]));
    }
    message = message->GetReflection()->MutableMessage(message, field);
    walked = here;
  }
  return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": empty path"));
}

absl::StatusOr<config::TrainConfig> LoadTrainConfig(const std::string& path,
                                                    const std::vector<std::string>& overrides,
                                                    int world_size) {
  config::TrainConfig loaded;
  if (!path.empty()) {
    absl::StatusOr<config::TrainConfig> from_file = ReadTrainConfigFile(path);
    if (!from_file.ok()) return from_file.status();
    loaded = *std::move(from_file);
  }
  for (const std::string& assignment : overrides) {
    if (absl::Status applied = ApplyConfigOverride(assignment, &loaded); !applied.ok()) {
      return applied;
    }
  }
  if (absl::Status valid = ValidateTrainConfig(loaded, world_size); !valid.ok()) return valid;
  return loaded;
}

config::TrainConfig WithDefaultsMaterialised(const config::TrainConfig& config) {
  config::TrainConfig full = config;
  MaterialiseDefaults(&full);
  // train.grad_accum_steps is derived from train.global_batch_size and the data-parallel size
  // when the global batch is set; writing its default out would pin the config to one layout
  // (a 2-rank run's text would be refused on 1 rank).
  if (!config.train().has_grad_accum_steps() && config.train().global_batch_size() > 0) {
    full.mutable_train()->clear_grad_accum_steps();
  }
  return full;
}

std::string AnnotatedResolvedConfigText(const config::TrainConfig& config) {
  std::string text;
  AppendAnnotated(WithDefaultsMaterialised(config), &config, "", &text);
  return text;
}

std::string ResolvedConfigText(const config::TrainConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(WithDefaultsMaterialised(config), &text);
  return text;
}

}  // namespace aoetron
