#include "data/corpus_tokenizer.h"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>

#include "absl/strings/str_format.h"
#include "data/indexed_dataset_writer.h"
#include "data/shard_manifest.h"
#include "data/unicode_classes.h"

namespace aoetron::data {
namespace {

constexpr size_t kBatchBytes = size_t{16} << 20;
constexpr size_t kPartBytes = size_t{1} << 20;

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

std::vector<size_t> SafeCuts(std::string_view text, size_t target_bytes) {
  std::vector<size_t> cuts{0};
  size_t from = target_bytes;
  while (from < text.size()) {
    size_t cut = std::string_view::npos;
    for (size_t p = from; p < text.size(); ++p) {
      // After '\n', before a character that is neither ASCII whitespace nor a UTF-8 byte of a
      // possibly-whitespace character: letters, digits and punctuation start a new piece.
      if (text[p - 1] == '\n' && !IsAsciiSpace(text[p]) &&
          static_cast<unsigned char>(text[p]) < 0x80) {
        cut = p;
        break;
      }
    }
    if (cut == std::string_view::npos) break;
    cuts.push_back(cut);
    from = cut + target_bytes;
  }
  cuts.push_back(text.size());
  return cuts;
}

absl::StatusOr<TokenizeReport> TokenizeCorpus(const BpeTokenizer& tokenizer,
                                              const TokenizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.output_prefix.empty()) return absl::InvalidArgumentError("no output prefix given");
  if (options.shard_bytes < 1) return absl::InvalidArgumentError("shard size must be positive");
  const int32_t eod = tokenizer.end_of_text_id();
  if (options.append_end_of_document && eod < 0) {
    return absl::InvalidArgumentError(
        "the tokenizer has no <|endoftext|> token to end documents with");
  }
  absl::StatusOr<std::unique_ptr<DocumentReader>> reader =
      DocumentReader::Create(options.inputs, options.reader);
  if (!reader.ok()) return reader.status();

  const std::string manifest_path = options.output_prefix + kManifestSuffix;
  std::remove(manifest_path.c_str());
  const TokenDType dtype = TokenDTypeForVocab(tokenizer.vocab_size());
  ShardManifest manifest;
  manifest.vocab_size = tokenizer.vocab_size();
  manifest.dtype = TokenDTypeName(static_cast<uint8_t>(dtype));
  manifest.tokenizer = options.tokenizer_name;
  const std::string shard_base = std::filesystem::path(options.output_prefix).filename().string();

  std::unique_ptr<IndexedDatasetWriter> writer;
  auto close_shard = [&]() -> absl::Status {
    if (writer == nullptr) return absl::OkStatus();
    if (absl::Status s = writer->Finish(); !s.ok()) return s;
    manifest.shards.push_back({ShardPrefix(shard_base, static_cast<int>(manifest.shards.size())),
                               writer->num_documents(), writer->num_tokens()});
    writer.reset();
    return absl::OkStatus();
  };

  const int threads = options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
  TokenizeReport report;
  std::vector<Document> batch;
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  // The next batch is read on another thread while this one is encoded and written.
  using ReadResult = std::pair<absl::StatusOr<bool>, std::vector<Document>>;
  DocumentReader* source = reader->get();
  auto read_batch = [source]() -> ReadResult {
    std::vector<Document> docs;
    absl::StatusOr<bool> more = source->NextBatch(kBatchBytes, &docs);
    return {std::move(more), std::move(docs)};
  };
  std::future<ReadResult> next_batch = std::async(std::launch::async, read_batch);
  while (true) {
    auto phase = Clock::now();
    ReadResult read = next_batch.get();
    if (!read.first.ok()) return read.first.status();
    if (!*read.first) break;
    batch = std::move(read.second);
    next_batch = std::async(std::launch::async, read_batch);
    report.read_seconds += seconds_since(phase);  // time spent waiting for the reader
    phase = Clock::now();
    // Parts: (document, begin, end), encoded independently in parallel.
    struct Part {
      size_t document;
      size_t begin, end;
      std::vector<int32_t> ids;
    };
    std::vector<Part> parts;
    for (size_t d = 0; d < batch.size(); ++d) {
      std::vector<size_t> cuts = SafeCuts(batch[d].text, kPartBytes);
      for (size_t i = 0; i + 1 < cuts.size(); ++i) parts.push_back({d, cuts[i], cuts[i + 1], {}});
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t i = 0; i < parts.size(); ++i) {
      Part& part = parts[i];
      std::string_view text(batch[part.document].text);
      part.ids.reserve((part.end - part.begin) / 3 + 16);
      tokenizer.Encode(text.substr(part.begin, part.end - part.begin), &part.ids);
    }
    report.encode_seconds += seconds_since(phase);
    phase = Clock::now();
    std::vector<int32_t> ids;
    for (size_t i = 0; i < parts.size(); ++i) {
      ids.insert(ids.end(), parts[i].ids.begin(), parts[i].ids.end());
      std::vector<int32_t>().swap(parts[i].ids);
      const bool last_part = i + 1 == parts.size() || parts[i + 1].document != parts[i].document;
      if (!last_part) continue;
      if (options.append_end_of_document) ids.push_back(eod);
      if (writer == nullptr) {
        const std::string prefix =
            ShardPrefix(options.output_prefix, static_cast<int>(manifest.shards.size()));
        absl::StatusOr<std::unique_ptr<IndexedDatasetWriter>> w =
            IndexedDatasetWriter::Create(prefix, dtype);
        if (!w.ok()) return w.status();
        writer = *std::move(w);
      }
      if (absl::Status s = writer->AddDocument(ids); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: %s", batch[parts[i].document].origin, s.message()));
      }
      ++report.documents;
      report.tokens += static_cast<int64_t>(ids.size());
      ids.clear();
      if (writer->bin_bytes() >= options.shard_bytes) {
        if (absl::Status s = close_shard(); !s.ok()) return s;
      }
    }
    report.write_seconds += seconds_since(phase);
  }
  if (absl::Status s = close_shard(); !s.ok()) return s;
  if (manifest.shards.empty()) {
    return absl::InvalidArgumentError("the inputs hold no documents");
  }
  next_batch = std::future<ReadResult>();
  report.text_bytes = (*reader)->text_bytes();
  report.skipped_empty = (*reader)->skipped_empty();
  report.shards = static_cast<int>(manifest.shards.size());
  manifest.text_bytes = report.text_bytes;
  if (absl::Status s = WriteShardManifest(manifest, manifest_path); !s.ok()) return s;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace aoetron::data
