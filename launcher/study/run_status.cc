#include "launcher/study/run_status.h"

#include <google/protobuf/text_format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace aoetron::study {

absl::StatusOr<RunStatus> ReadRunStatus(const std::string& run_dir) {
  const std::string path = run_dir + "/" + kRunStatusFile;
  RunStatus status;
  std::ifstream in(path);
  if (!in) return status;
  std::ostringstream text;
  text << in.rdbuf();
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &status)) {
    return absl::DataLossError(absl::StrFormat("%s: not a RunStatus text proto", path));
  }
  return status;
}

absl::Status WriteRunStatus(const std::string& run_dir, RunStatus status) {
  status.set_updated(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  std::string text;
  google::protobuf::TextFormat::PrintToString(status, &text);
  const std::string path = run_dir + "/" + kRunStatusFile;
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      return absl::InternalError(
          absl::StrFormat("cannot write %s: %s", temporary, std::strerror(errno)));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrFormat("cannot rename %s to %s: %s", temporary, path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string RunStateName(RunStatus::State state) { return RunStatus::State_Name(state); }

}  // namespace aoetron::study
