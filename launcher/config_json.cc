#include "launcher/config_json.h"

#include <google/protobuf/descriptor.h>

namespace aoetron {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string MessageJson(const Message& message) {
  JsonObjectWriter json;
  AddMessageFields(message, json);
  return json.Finish();
}

}  // namespace

// Unset fields read as their defaults through reflection, so every field is written. The
// schema has no repeated fields.
void AddMessageFields(const Message& message, JsonObjectWriter& json) {
  const Descriptor& type = *message.GetDescriptor();
  const Reflection& reflection = *message.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* field = type.field(i);
    if (field->is_repeated()) continue;
    const std::string& name = field->name();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        json.Raw(name, MessageJson(reflection.GetMessage(message, field)));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        json.Integer(name, reflection.GetInt32(message, field));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        json.Integer(name, reflection.GetInt64(message, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        json.Unsigned(name, reflection.GetUInt32(message, field));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        json.Unsigned(name, reflection.GetUInt64(message, field));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        json.Number(name, reflection.GetFloat(message, field));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        json.Number(name, reflection.GetDouble(message, field));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        json.Bool(name, reflection.GetBool(message, field));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        json.String(name, reflection.GetEnum(message, field)->name());
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        json.String(name, reflection.GetString(message, field));
        break;
    }
  }
}

std::string TrainConfigJson(const config::TrainConfig& config) { return MessageJson(config); }

}  // namespace aoetron
