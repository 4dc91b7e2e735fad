// aoetron-data: turn corpora into Megatron token datasets and check them.
//
//   aoetron-data tokenize --tokenizer DIR --output PREFIX [options] INPUT...
//   aoetron-data verify [--vocab-size N] PREFIX...
//   aoetron-data stats PREFIX...
//   aoetron-data train-tokenizer --vocab-size N --output DIR [options] INPUT...
//   aoetron-data encode --tokenizer DIR TEXT...
//
// Run without arguments for the full usage. Exit status: 0 on success, 1 on bad input (the
// message names the file and byte offset or line), 2 on bad usage.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"
#include "data/corpus_tokenizer.h"
#include "data/dataset_verify.h"
#include "data/document_reader.h"
#include "data/tokenizer_files.h"

namespace aoetron::data {
namespace {

constexpr char kUsage[] = R"(usage: aoetron-data COMMAND [options] [arguments]

commands:
  tokenize --tokenizer DIR --output PREFIX [options] INPUT...
      Encode documents into sharded Megatron datasets: PREFIX.manifest and
      PREFIX_000000.bin/.idx, ... INPUTs are plain text files (one document each),
      JSON Lines files (*.jsonl, *.json: one document per line) or directories of them.
      --json-key KEY          JSONL field holding the text (default: text)
      --shard-size-mb N       close a shard when its .bin reaches N MiB (default: 256)
      --threads N             encoding threads (default: all cores)
      --no-eod                do not append <|endoftext|> to each document
      --skip-empty            leave empty documents out instead of failing
      --allow-invalid-utf8    tokenize non-UTF-8 text as raw bytes instead of failing
  verify [--vocab-size N] PREFIX...
      Check sizes, offsets, document boundaries and that every token is < the vocabulary
      size (from the manifest, or --vocab-size for a plain Megatron .bin/.idx pair).
  stats PREFIX...
      Documents, tokens, bytes per token.
  train-tokenizer --vocab-size N --output DIR [--json-key KEY] [--max-mb N] INPUT...
      Train a byte-level BPE vocabulary of N tokens (including the 256 bytes and
      <|endoftext|>); writes DIR/encoder.json and DIR/vocab.bpe in GPT-2's formats.
  encode --tokenizer DIR TEXT...
      Print the token ids of each TEXT.
)";

int UsageError(const std::string& message) {
  std::cerr << "aoetron-data: " << message << "\n\n" << kUsage;
  return 2;
}

int Fail(const absl::Status& status) {
  std::cerr << "aoetron-data: error: " << status.message() << "\n";
  return 1;
}

// Splits args into --flags (with values where `takes_value`) and positional arguments.
struct ParsedArgs {
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> positional;
  std::string error;
  const std::string* Get(const std::string& name) const {
    for (const auto& [k, v] : flags) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  bool Has(const std::string& name) const { return Get(name) != nullptr; }
};

ParsedArgs ParseArgs(int argc, char** argv, const std::vector<std::string>& with_value,
                     const std::vector<std::string>& switches) {
  ParsedArgs out;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
      continue;
    }
    std::string value;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      if (eq == std::string::npos) {
        if (i + 1 >= argc) {
          out.error = a + " needs a value";
          return out;
        }
        value = argv[++i];
      }
      out.flags.emplace_back(a, value);
    } else if (std::find(switches.begin(), switches.end(), a) != switches.end()) {
      out.flags.emplace_back(a, "");
    } else {
      out.error = "unknown option " + a;
      return out;
    }
  }
  return out;
}

bool ParseInt(const std::string* text, int64_t* out) {
  return text != nullptr && absl::SimpleAtoi(*text, out);
}

int Tokenize(int argc, char** argv) {
  ParsedArgs args = ParseArgs(
      argc, argv, {"--tokenizer", "--output", "--json-key", "--shard-size-mb", "--threads"},
      {"--no-eod", "--skip-empty", "--allow-invalid-utf8"});
  if (!args.error.empty()) return UsageError(args.error);
  if (!args.Has("--tokenizer") || !args.Has("--output") || args.positional.empty()) {
    return UsageError("tokenize needs --tokenizer, --output and at least one input");
  }
  TokenizeOptions options;
  options.inputs = args.positional;
  options.output_prefix = *args.Get("--output");
  options.tokenizer_name = *args.Get("--tokenizer");
  if (args.Has("--json-key")) options.reader.json_key = *args.Get("--json-key");
  options.reader.skip_empty = args.Has("--skip-empty");
  options.reader.allow_invalid_utf8 = args.Has("--allow-invalid-utf8");
  options.append_end_of_document = !args.Has("--no-eod");
  if (args.Has("--shard-size-mb")) {
    int64_t mb;
    if (!ParseInt(args.Get("--shard-size-mb"), &mb) || mb < 1) {
      return UsageError("--shard-size-mb must be a positive integer");
    }
    options.shard_bytes = mb << 20;
  }
  if (args.Has("--threads")) {
    int64_t t;
    if (!ParseInt(args.Get("--threads"), &t) || t < 1) return UsageError("bad --threads");
    options.num_threads = static_cast<int>(t);
  }
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer =
      BpeTokenizer::LoadFromDirectory(options.tokenizer_name);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  absl::StatusOr<TokenizeReport> report = TokenizeCorpus(**tokenizer, options);
  if (!report.ok()) return Fail(report.status());
  const int threads = options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
  std::cout << absl::StrFormat(
      "tokenized %d documents, %d bytes -> %d tokens (%.3f bytes/token) into %d shard(s) at "
      "%s in %.2f s (read %.2f, encode %.2f, write %.2f): %.1f MB/s on %d threads%s\n",
      report->documents, report->text_bytes, report->tokens,
      report->tokens > 0 ? static_cast<double>(report->text_bytes) / report->tokens : 0.0,
      report->shards, options.output_prefix, report->seconds, report->read_seconds,
      report->encode_seconds, report->write_seconds,
      report->text_bytes / 1e6 / std::max(report->seconds, 1e-9), threads,
      report->skipped_empty > 0
          ? absl::StrFormat(" (%d empty documents skipped)", report->skipped_empty)
          : "");
  return 0;
}

void PrintStats(const std::string& path, const DatasetStats& s) {
  std::cout << absl::StrFormat(
      "%s: %d shard(s), %d documents, %d sequences (length %d..%d), %d tokens, %d .bin bytes", path,
      s.shards, s.documents, s.sequences, s.min_sequence_length, s.max_sequence_length, s.tokens,
      s.bin_bytes);
  if (s.vocab_size > 0) std::cout << absl::StrFormat(", vocabulary %d", s.vocab_size);
  if (s.text_bytes > 0 && s.tokens > 0) {
    std::cout << absl::StrFormat(", %d text bytes, %.3f bytes/token", s.text_bytes,
                                 static_cast<double>(s.text_bytes) / s.tokens);
  }
  std::cout << "\n";
}

int Verify(int argc, char** argv) {
  ParsedArgs args = ParseArgs(argc, argv, {"--vocab-size"}, {});
  if (!args.error.empty()) return UsageError(args.error);
  if (args.positional.empty()) return UsageError("verify needs at least one dataset prefix");
  int64_t vocab = 0;
  if (args.Has("--vocab-size") && (!ParseInt(args.Get("--vocab-size"), &vocab) || vocab < 1)) {
    return UsageError("bad --vocab-size");
  }
  for (const std::string& path : args.positional) {
    absl::StatusOr<DatasetStats> stats = VerifyDataset(path, vocab);
    if (!stats.ok()) return Fail(stats.status());
    std::cout << "OK ";
    PrintStats(path, *stats);
  }
  return 0;
}

int Stats(int argc, char** argv) {
  ParsedArgs args = ParseArgs(argc, argv, {}, {});
  if (!args.error.empty()) return UsageError(args.error);
  if (args.positional.empty()) return UsageError("stats needs at least one dataset prefix");
  for (const std::string& path : args.positional) {
    absl::StatusOr<DatasetStats> stats = ComputeDatasetStats(path);
    if (!stats.ok()) return Fail(stats.status());
    PrintStats(path, *stats);
  }
  return 0;
}

int TrainTokenizer(int argc, char** argv) {
  ParsedArgs args = ParseArgs(argc, argv, {"--vocab-size", "--output", "--json-key", "--max-mb"},
                              {"--skip-empty", "--allow-invalid-utf8"});
  if (!args.error.empty()) return UsageError(args.error);
  int64_t vocab = 0;
  if (!ParseInt(args.Get("--vocab-size"), &vocab) || !args.Has("--output") ||
      args.positional.empty()) {
    return UsageError("train-tokenizer needs --vocab-size, --output and at least one input");
  }
  int64_t max_mb = 0;
  if (args.Has("--max-mb") && (!ParseInt(args.Get("--max-mb"), &max_mb) || max_mb < 1)) {
    return UsageError("bad --max-mb");
  }
  DocumentReaderOptions reader_options;
  if (args.Has("--json-key")) reader_options.json_key = *args.Get("--json-key");
  reader_options.skip_empty = args.Has("--skip-empty");
  reader_options.allow_invalid_utf8 = args.Has("--allow-invalid-utf8");
  absl::StatusOr<std::unique_ptr<DocumentReader>> reader =
      DocumentReader::Create(args.positional, reader_options);
  if (!reader.ok()) return Fail(reader.status());
  std::vector<std::string> texts;
  std::vector<Document> batch;
  const int64_t limit = max_mb > 0 ? (max_mb << 20) : INT64_MAX;
  while ((*reader)->text_bytes() < limit) {
    batch.clear();
    absl::StatusOr<bool> more = (*reader)->NextBatch(size_t{16} << 20, &batch);
    if (!more.ok()) return Fail(more.status());
    if (!*more) break;
    for (Document& d : batch) texts.push_back(std::move(d.text));
  }
  BpeTrainerOptions options;
  options.vocab_size = static_cast<int32_t>(vocab);
  absl::StatusOr<BpeVocabulary> trained = TrainBpe(texts, options);
  if (!trained.ok()) return Fail(trained.status());
  if (absl::Status s = WriteGpt2TokenizerFiles(*trained, *args.Get("--output")); !s.ok()) {
    return Fail(s);
  }
  std::cout << absl::StrFormat("trained %d tokens (%d merges) on %d bytes of %d documents -> %s\n",
                               trained->size(), trained->merges.size(), (*reader)->text_bytes(),
                               texts.size(), *args.Get("--output"));
  return 0;
}

int Encode(int argc, char** argv) {
  ParsedArgs args = ParseArgs(argc, argv, {"--tokenizer"}, {});
  if (!args.error.empty()) return UsageError(args.error);
  if (!args.Has("--tokenizer")) return UsageError("encode needs --tokenizer");
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer =
      BpeTokenizer::LoadFromDirectory(*args.Get("--tokenizer"));
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  for (const std::string& text : args.positional) {
    std::vector<int32_t> ids = (*tokenizer)->Encode(text);
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "tokenize") return Tokenize(argc, argv);
  if (command == "verify") return Verify(argc, argv);
  if (command == "stats") return Stats(argc, argv);
  if (command == "train-tokenizer") return TrainTokenizer(argc, argv);
  if (command == "encode") return Encode(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  return UsageError("unknown command '" + command + "'");
}

}  // namespace
}  // namespace aoetron::data

int main(int argc, char** argv) { return aoetron::data::Main(argc, argv); }
