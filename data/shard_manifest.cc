#include "data/shard_manifest.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "data/tokenizer_files.h"

namespace aoetron::data {

absl::StatusOr<ShardManifest> ParseShardManifest(const std::string& content,
                                                 const std::string& path) {
  ShardManifest m;
  bool have_format = false;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_number;
    auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: line %d: %s", path, line_number, what));
    };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto number = [&](const std::string& text, int64_t* out) {
      return absl::SimpleAtoi(text, out) && *out >= 0;
    };
    if (f[0] == "format") {
      if (f.size() != 3 || f[1] != "aoetron-shards" || f[2] != "1") {
        return bad("expected 'format aoetron-shards 1'");
      }
      have_format = true;
    } else if (!have_format) {
      return bad("the first line must be 'format aoetron-shards 1'");
    } else if (f[0] == "vocab_size") {
      if (f.size() != 2 || !number(f[1], &m.vocab_size)) return bad("bad vocab_size");
    } else if (f[0] == "dtype") {
      if (f.size() != 2) return bad("bad dtype");
      m.dtype = f[1];
    } else if (f[0] == "tokenizer") {
      m.tokenizer = f.size() >= 2 ? std::string(line.substr(10)) : "";
    } else if (f[0] == "text_bytes") {
      if (f.size() != 2 || !number(f[1], &m.text_bytes)) return bad("bad text_bytes");
    } else if (f[0] == "shard") {
      ShardEntry e;
      if (f.size() != 6 || f[2] != "documents" || f[4] != "tokens" || !number(f[3], &e.documents) ||
          !number(f[5], &e.tokens)) {
        return bad("expected 'shard NAME documents N tokens N'");
      }
      e.name = f[1];
      m.shards.push_back(std::move(e));
    } else {
      return bad("unknown field '" + f[0] + "'");
    }
  }
  if (!have_format) {
    return absl::InvalidArgumentError(path + ": line 1: not a shard manifest (no format line)");
  }
  if (m.shards.empty()) return absl::InvalidArgumentError(path + ": lists no shards");
  return m;
}

absl::StatusOr<ShardManifest> ReadShardManifest(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) return content.status();
  return ParseShardManifest(*content, path);
}

absl::Status WriteShardManifest(const ShardManifest& m, const std::string& path) {
  std::string text = "format aoetron-shards 1\n";
  text += absl::StrFormat("vocab_size %d\ndtype %s\n", m.vocab_size, m.dtype);
  if (!m.tokenizer.empty()) text += absl::StrFormat("tokenizer %s\n", m.tokenizer);
  text += absl::StrFormat("text_bytes %d\n", m.text_bytes);
  for (const ShardEntry& e : m.shards) {
    text += absl::StrFormat("shard %s documents %d tokens %d\n", e.name, e.documents, e.tokens);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::InternalError(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(path + ": rename failed");
  }
  return absl::OkStatus();
}

std::string ShardPrefix(const std::string& prefix, int index) {
  return absl::StrFormat("%s_%06d", prefix, index);
}

}  // namespace aoetron::data
