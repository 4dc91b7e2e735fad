#include "launcher/study/study_spec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

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

std::string FieldNames(const Descriptor& message) {
  std::vector<std::string> names;
  for (int i = 0; i < message.field_count(); ++i) names.push_back(message.field(i)->name());
  return absl::StrJoin(names, ", ");
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

class SpecErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  SpecErrorCollector(const std::string& source_name, const std::string& text)
      : source_name_(source_name), lines_(absl::StrSplit(text, '\n')) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    absl::StrAppendFormat(&errors_, "%s%s:%d:%d: %s", errors_.empty() ? "" : "\n", source_name_,
                          line + 1, column + 1, ExplainParseError(message));
    if (line >= 0 && line < static_cast<int>(lines_.size())) {
      absl::StrAppend(&errors_, "\n    ", lines_[line], "\n    ", std::string(column, ' '), "^");
    }
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& errors() const { return errors_; }

 private:
  std::string source_name_;
  std::vector<std::string> lines_;
  std::string errors_;
};

}  // namespace

absl::StatusOr<StudySpec> ParseStudySpecText(const std::string& text,
                                             const std::string& source_name) {
  StudySpec spec;
  SpecErrorCollector errors(source_name, text);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &spec)) {
    return absl::InvalidArgumentError(errors.errors().empty()
                                          ? absl::StrCat(source_name, ": cannot parse the spec")
                                          : errors.errors());
  }
  return spec;
}

absl::StatusOr<StudySpec> ReadStudySpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read study spec \"%s\": %s", path, std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseStudySpecText(text.str(), path);
}

}  // namespace aoetron::study
