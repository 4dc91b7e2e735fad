#include "launcher/study/study_spec.h"

#include <google/protobuf/descriptor.h>

#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "launcher/text_format_file.h"

namespace aoetron::study {
namespace {

using google::protobuf::Descriptor;

// Where a message type sits in a spec, as users write it ("" for the spec itself).
std::string SpecPath(const std::string& type_name) {
  if (type_name == StudySpec::descriptor()->full_name()) return "";
  if (type_name == Axes::descriptor()->full_name()) return "axes";
  if (type_name == Point::descriptor()->full_name()) return "point";
  if (type_name == Balancing::descriptor()->full_name()) return "balancing";
  if (type_name == Matching::descriptor()->full_name()) return "matching";
  if (type_name == Execution::descriptor()->full_name()) return "execution";
  return type_name;
}

// Protobuf's "Message type "aoetron.study.Axes" has no field named "n_expert"" in spec terms.
std::string ExplainParseError(const std::string& message) {
  static const std::regex kUnknownField(
      R"re(Message type "([\w.]+)" has no field named "(\w+)")re");
  std::smatch match;
  if (!std::regex_search(message, match, kUnknownField)) return message;
  const Descriptor* type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(match[1].str());
  if (type == nullptr) return message;
  const std::string section = SpecPath(match[1].str());
  return absl::StrFormat(
      "unknown field \"%s\"; valid fields of %s: %s",
      section.empty() ? match[2].str() : absl::StrCat(section, ".", match[2].str()),
      section.empty() ? "the spec" : section, FieldNames(*type));
}

}  // namespace

absl::StatusOr<StudySpec> ParseStudySpecText(const std::string& text,
                                             const std::string& source_name) {
  StudySpec spec;
  if (absl::Status status =
          ParseTextFormat(text, source_name, "the spec", ExplainParseError, &spec);
      !status.ok()) {
    return status;
  }
  return spec;
}

absl::StatusOr<StudySpec> ReadStudySpecFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path, "study spec");
  if (!text.ok()) return text.status();
  return ParseStudySpecText(*text, path);
}

}  // namespace aoetron::study
