#include "launcher/study/metrics_reader.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace aoetron::study {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

double NumberOr(const Struct& json, const char* key, double fallback) {
  const auto it = json.fields().find(key);
  if (it == json.fields().end() || it->second.kind_case() != Value::kNumberValue) return fallback;
  return it->second.number_value();
}

std::vector<double> NumberArray(const Struct& json, const char* key) {
  std::vector<double> values;
  const auto it = json.fields().find(key);
  if (it == json.fields().end() || it->second.kind_case() != Value::kListValue) return values;
  for (const Value& v : it->second.list_value().values()) {
    values.push_back(v.kind_case() == Value::kNumberValue ? v.number_value() : 0.0);
  }
  return values;
}

}  // namespace

absl::StatusOr<MetricsRecord> ParseMetricsLine(const std::string& line) {
  Struct json;
  if (const auto parsed = google::protobuf::util::JsonStringToMessage(line, &json); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a JSON object: ", parsed.ToString()));
  }
  if (!json.fields().contains("step") || !json.fields().contains("loss")) {
    return absl::InvalidArgumentError("a metrics line needs \"step\" and \"loss\"");
  }
  MetricsRecord record;
  record.step = static_cast<int64_t>(NumberOr(json, "step", 0));
  record.loss = NumberOr(json, "loss", std::numeric_limits<double>::quiet_NaN());
  const auto val = json.fields().find("val_loss");
  if (val != json.fields().end()) {
    record.val_loss = val->second.kind_case() == Value::kNumberValue
                          ? val->second.number_value()
                          : std::numeric_limits<double>::quiet_NaN();
  }
  record.tokens = static_cast<int64_t>(NumberOr(json, "tokens", 0));
  record.tokens_per_s = NumberOr(json, "tokens_per_s", 0);
  record.model_tflops = NumberOr(json, "model_tflops", 0);
  record.step_ms = NumberOr(json, "step_ms", 0);
  record.load_max = NumberArray(json, "load_max");
  record.ent_load = NumberArray(json, "ent_load");
  record.peak_rss_bytes = NumberOr(json, "peak_rss_bytes", 0);
  return record;
}

absl::StatusOr<std::vector<MetricsRecord>> ReadMetricsFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("%s: no metrics file", path));
  std::map<int64_t, MetricsRecord> by_step;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (in.eof()) break;  // no newline after it: still being written
    absl::StatusOr<MetricsRecord> record = ParseMetricsLine(line);
    if (!record.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: %s", path, line_number, record.status().message()));
    }
    by_step[record->step] = *std::move(record);
  }
  std::vector<MetricsRecord> records;
  for (auto& [step, record] : by_step) records.push_back(std::move(record));
  return records;
}

std::vector<MetricsRecord> MetricsTail::ReadNew() {
  std::vector<MetricsRecord> records;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return records;
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  if (size < offset_) offset_ = 0;  // replaced: start over
  if (size == offset_) return records;
  in.seekg(offset_);
  std::string chunk(static_cast<size_t>(size - offset_), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  const size_t last_newline = chunk.rfind('\n');
  if (last_newline == std::string::npos) return records;
  offset_ += static_cast<int64_t>(last_newline + 1);
  for (absl::string_view line : absl::StrSplit(chunk.substr(0, last_newline), '\n')) {
    if (line.empty()) continue;
    absl::StatusOr<MetricsRecord> record = ParseMetricsLine(std::string(line));
    if (record.ok()) records.push_back(*std::move(record));
  }
  return records;
}

}  // namespace aoetron::study
