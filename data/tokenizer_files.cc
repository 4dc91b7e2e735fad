#include "data/tokenizer_files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/byte_unicode.h"
#include "data/json_string.h"
#include "data/string_view_compat.h"

namespace aoetron::data {
namespace {

bool IsSpecialName(std::string_view text) {
  return text.size() >= 4 && text.substr(0, 2) == "<|" && text.substr(text.size() - 2) == "|>";
}

// Parses {"text": id, ...}. Fills texts[id].
absl::Status ParseEncoderJson(std::string_view json, std::string_view name,
                              std::vector<std::string>* texts) {
  size_t pos = 0;
  auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: byte offset %d: %s", name, pos, what));
  };
  auto skip_space = [&] {
    while (pos < json.size() &&
           (json[pos] == ' ' || json[pos] == '\n' || json[pos] == '\r' || json[pos] == '\t')) {
      ++pos;
    }
  };
  std::vector<std::pair<std::string, int64_t>> entries;
  skip_space();
  if (pos >= json.size() || json[pos] != '{') return error("expected '{' starting the object");
  ++pos;
  skip_space();
  if (pos < json.size() && json[pos] == '}') {
    ++pos;
  } else {
    while (true) {
      skip_space();
      std::string key;
      if (absl::Status s = ParseJsonString(json, &pos, &key); !s.ok()) {
        // The message carries the byte offset of the problem.
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: bad token text: %s", name, s.message()));
      }
      skip_space();
      if (pos >= json.size() || json[pos] != ':') return error("expected ':' after token text");
      ++pos;
      skip_space();
      size_t num_start = pos;
      int64_t id = 0;
      while (pos < json.size() && json[pos] >= '0' && json[pos] <= '9' && pos - num_start < 10) {
        id = id * 10 + (json[pos] - '0');
        ++pos;
      }
      if (pos == num_start) return error("expected a non-negative integer token id");
      if (pos < json.size() && json[pos] >= '0' && json[pos] <= '9') {
        return error("token id too large");
      }
      entries.emplace_back(std::move(key), id);
      skip_space();
      if (pos < json.size() && json[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < json.size() && json[pos] == '}') {
        ++pos;
        break;
      }
      return error("expected ',' or '}' after a token id");
    }
  }
  skip_space();
  if (pos != json.size()) return error("unexpected text after the object");
  if (entries.empty()) return error("the vocabulary is empty");
  if (entries.size() > (1u << 24)) return error("more than 16M tokens");
  texts->assign(entries.size(), std::string());
  std::vector<bool> seen(entries.size(), false);
  for (auto& [text, id] : entries) {
    if (id >= static_cast<int64_t>(entries.size())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: token id %d is outside 0..%d (ids must be dense)", name, id, entries.size() - 1));
    }
    if (seen[id]) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: token id %d appears twice", name, id));
    }
    seen[id] = true;
    (*texts)[id] = std::move(text);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BpeVocabulary> ParseGpt2TokenizerFiles(std::string_view encoder_json,
                                                      std::string_view encoder_name,
                                                      std::string_view vocab_bpe,
                                                      std::string_view merges_name) {
  std::vector<std::string> texts;
  if (absl::Status s = ParseEncoderJson(encoder_json, encoder_name, &texts); !s.ok()) return s;

  BpeVocabulary vocab;
  vocab.tokens.resize(texts.size());
  vocab.is_special.assign(texts.size(), false);
  absl::flat_hash_map<std::string, int32_t> id_of_text;
  absl::flat_hash_map<std::string, int32_t> id_of_bytes;
  for (size_t id = 0; id < texts.size(); ++id) {
    if (!id_of_text.emplace(texts[id], static_cast<int32_t>(id)).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: token text of id %d appears twice", encoder_name, id));
    }
    if (IsSpecialName(texts[id])) {
      vocab.tokens[id] = texts[id];
      vocab.is_special[id] = true;
      continue;
    }
    std::optional<std::string> bytes = MappedTextToBytes(texts[id]);
    if (!bytes || bytes->empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: token id %d: text is not made of GPT-2 byte characters", encoder_name, id));
    }
    if (!id_of_bytes.emplace(*bytes, static_cast<int32_t>(id)).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: token id %d has the same bytes as token id %d", encoder_name, id,
                          id_of_bytes[*bytes]));
    }
    vocab.tokens[id] = std::move(*bytes);
  }
  for (int b = 0; b < 256; ++b) {
    if (!id_of_bytes.contains(std::string(1, static_cast<char>(b)))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: no token for the single byte 0x%02x", encoder_name, b));
    }
  }

  // vocab.bpe: header line, then "left right" per line.
  size_t pos = 0;
  int line_number = 0;
  while (pos < vocab_bpe.size()) {
    size_t eol = vocab_bpe.find('\n', pos);
    if (eol == std::string_view::npos) eol = vocab_bpe.size();
    std::string_view line = vocab_bpe.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.substr(0, 9) == "#version:") continue;
    if (line.empty()) continue;
    auto error = [&](std::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: line %d: %s", merges_name, line_number, what));
    };
    size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      return error("expected two token texts separated by one space");
    }
    std::string left(line.substr(0, space));
    std::string right(line.substr(space + 1));
    auto l = id_of_text.find(left);
    auto r = id_of_text.find(right);
    if (l == id_of_text.end() || r == id_of_text.end()) {
      return error(absl::StrCat("merge part '", l == id_of_text.end() ? left : right,
                                "' is not in ", ToAbsl(encoder_name)));
    }
    if (vocab.is_special[l->second] || vocab.is_special[r->second]) {
      return error("a merge part is a special token");
    }
    if (!id_of_text.contains(left + right)) {
      return error(
          absl::StrCat("merged token '", left, right, "' is not in ", ToAbsl(encoder_name)));
    }
    vocab.merges.emplace_back(l->second, r->second);
  }
  return vocab;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path)) return absl::NotFoundError(path + ": no such file");
    return absl::InternalError(path + ": cannot open: " + std::strerror(errno));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::InternalError(path + ": read error");
  return std::move(buffer).str();
}

absl::StatusOr<BpeVocabulary> ReadGpt2TokenizerFiles(const std::string& dir) {
  const std::string encoder_path = dir + "/encoder.json";
  const std::string merges_path = dir + "/vocab.bpe";
  absl::StatusOr<std::string> encoder = ReadFileToString(encoder_path);
  if (!encoder.ok()) return encoder.status();
  absl::StatusOr<std::string> merges = ReadFileToString(merges_path);
  if (!merges.ok()) return merges.status();
  return ParseGpt2TokenizerFiles(*encoder, encoder_path, *merges, merges_path);
}

absl::Status WriteGpt2TokenizerFiles(const BpeVocabulary& vocab, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  auto text_of = [&](int32_t id) {
    return vocab.is_special[id] ? vocab.tokens[id] : BytesToMappedText(vocab.tokens[id]);
  };
  std::string json = "{";
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (id > 0) json += ", ";
    AppendJsonString(text_of(id), /*ascii_only=*/true, &json);
    absl::StrAppend(&json, ": ", id);
  }
  json += "}";
  std::string merges = "#version: 0.2\n";
  for (const auto& [left, right] : vocab.merges) {
    absl::StrAppend(&merges, text_of(left), " ", text_of(right), "\n");
  }
  for (const auto& [name, content] : {std::pair<std::string, std::string*>{"encoder.json", &json},
                                      std::pair<std::string, std::string*>{"vocab.bpe", &merges}}) {
    const std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content->data(), static_cast<std::streamsize>(content->size()));
    out.close();
    if (!out) return absl::InternalError(path + ": write failed");
  }
  return absl::OkStatus();
}

}  // namespace aoetron::data
