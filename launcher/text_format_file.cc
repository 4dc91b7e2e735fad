#include "launcher/text_format_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace aoetron {
namespace {

class QuotingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  QuotingErrorCollector(const std::string& source_name, const std::string& text,
                        const std::function<std::string(const std::string&)>& explain)
      : source_name_(source_name), lines_(absl::StrSplit(text, '\n')), explain_(explain) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    // Protobuf counts lines and columns from 0; editors count from 1.
    absl::StrAppendFormat(&errors_, "%s%s:%d:%d: %s", errors_.empty() ? "" : "\n", source_name_,
                          line + 1, column + 1, explain_(message));
    if (line >= 0 && line < static_cast<int>(lines_.size())) {
      absl::StrAppend(&errors_, "\n    ", lines_[line], "\n    ", std::string(column, ' '), "^");
    }
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& errors() const { return errors_; }

 private:
  std::string source_name_;
  std::vector<std::string> lines_;
  const std::function<std::string(const std::string&)>& explain_;
  std::string errors_;
};

}  // namespace

absl::Status ParseTextFormat(const std::string& text, const std::string& source_name,
                             const std::string& what,
                             const std::function<std::string(const std::string&)>& explain,
                             google::protobuf::Message* message) {
  QuotingErrorCollector errors(source_name, text, explain);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (parser.ParseFromString(text, message)) return absl::OkStatus();
  return absl::InvalidArgumentError(errors.errors().empty()
                                        ? absl::StrCat(source_name, ": cannot parse ", what)
                                        : errors.errors());
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot read %s \"%s\": %s", what, path, std::strerror(errno)));
  }
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string FieldNames(const google::protobuf::Descriptor& message) {
  std::vector<std::string> names;
  for (int i = 0; i < message.field_count(); ++i) names.push_back(message.field(i)->name());
  return absl::StrJoin(names, ", ");
}

}  // namespace aoetron
