#include "data/sample_index_cache.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/fingerprint.h"
#include "data/mapped_file.h"
#include "data/mmidx_format.h"

namespace aoetron::data {
namespace {

constexpr char kMagic[8] = {'A', 'O', 'E', 'G', 'P', 'T', 'I', 'X'};
constexpr uint32_t kVersion = 1;

template <typename T>
void Put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
void PutArray(std::string* out, const std::vector<T>& v) {
  out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace

std::string SampleIndexCachePath(const std::string& cache_dir, const std::string& description) {
  return absl::StrCat(cache_dir, "/", FingerprintHex(Fingerprint64(description)), ".gptidx");
}

absl::Status WriteSampleIndexCache(const GptSampleIndex& index, const std::string& path,
                                   const std::string& description) {
  std::string bytes;
  bytes.append(kMagic, sizeof(kMagic));
  Put<uint32_t>(&bytes, kVersion);
  Put<uint32_t>(&bytes, static_cast<uint32_t>(description.size()));
  bytes += description;
  Put<int64_t>(&bytes, index.seq_length);
  Put<int64_t>(&bytes, index.num_epochs);
  Put<uint64_t>(&bytes, index.document_index.size());
  Put<uint64_t>(&bytes, index.shuffle_index.size());
  PutArray(&bytes, index.document_index);
  PutArray(&bytes, index.sample_doc_position);
  PutArray(&bytes, index.sample_offset);
  PutArray(&bytes, index.shuffle_index);
  Put<uint64_t>(&bytes, Fingerprint64(bytes));

  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::random_device random;
  const std::string tmp = absl::StrFormat("%s.tmp.%d.%08x", path, getpid(), random());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::InternalError(tmp + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(path + ": rename failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<GptSampleIndex> ReadSampleIndexCache(const std::string& path,
                                                    const std::string& description) {
  absl::StatusOr<std::unique_ptr<MappedFile>> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  const char* p = (*file)->data();
  const size_t size = (*file)->size();
  size_t pos = 0;
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: byte offset %d: %s", path, pos, what));
  };
  auto need = [&](size_t n) { return n <= size && pos <= size - n; };
  if (!need(16) || std::memcmp(p, kMagic, 8) != 0) return bad("not a sample index cache");
  pos = 8;
  if (LoadUnaligned<uint32_t>(p + pos) != kVersion) return bad("unsupported version");
  pos += 4;
  const uint32_t description_size = LoadUnaligned<uint32_t>(p + pos);
  pos += 4;
  if (!need(description_size)) return bad("truncated description");
  if (std::string_view(p + pos, description_size) != description) {
    return absl::FailedPreconditionError(path + ": built for other inputs");
  }
  pos += description_size;
  if (!need(32)) return bad("truncated counts");
  GptSampleIndex index;
  index.seq_length = LoadUnaligned<int64_t>(p + pos);
  index.num_epochs = LoadUnaligned<int64_t>(p + pos + 8);
  const uint64_t documents = LoadUnaligned<uint64_t>(p + pos + 16);
  const uint64_t samples = LoadUnaligned<uint64_t>(p + pos + 24);
  pos += 32;
  const uint64_t kMax = uint64_t{1} << 36;
  if (documents > kMax || samples > kMax) return bad("absurd counts");
  const uint64_t body = 8 * documents + 8 * (samples + 1) + 4 * (samples + 1) + 8 * samples;
  if (!need(body + 8) || size != pos + body + 8) return bad("size does not match the counts");
  if (Fingerprint64(p, size - 8) != LoadUnaligned<uint64_t>(p + size - 8)) {
    pos = size - 8;
    return bad("checksum mismatch (corrupt file)");
  }
  auto take = [&](auto* v, uint64_t n) {
    using T = typename std::remove_reference_t<decltype(*v)>::value_type;
    v->resize(n);
    std::memcpy(v->data(), p + pos, n * sizeof(T));
    pos += n * sizeof(T);
  };
  take(&index.document_index, documents);
  take(&index.sample_doc_position, samples + 1);
  take(&index.sample_offset, samples + 1);
  take(&index.shuffle_index, samples);
  return index;
}

absl::StatusOr<GptSampleIndex> LoadOrBuildSampleIndex(
    const std::string& cache_dir, const std::string& description, bool is_builder,
    double timeout_seconds, const std::function<absl::StatusOr<GptSampleIndex>()>& build) {
  const std::string path = SampleIndexCachePath(cache_dir, description);
  absl::StatusOr<GptSampleIndex> cached = ReadSampleIndexCache(path, description);
  if (cached.ok()) return cached;
  if (is_builder) {
    absl::StatusOr<GptSampleIndex> built = build();
    if (!built.ok()) return built.status();
    if (absl::Status s = WriteSampleIndexCache(*built, path, description); !s.ok()) return s;
    return built;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    if (cached.ok()) return cached;
    if (!absl::IsNotFound(cached.status()) && !absl::IsFailedPrecondition(cached.status())) {
      return cached.status();  // a complete but corrupt file: waiting will not help
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "timed out after %.1f s waiting for the sample index %s, which the process created "
          "with build_indices = true (normally global rank 0) builds: check that it runs and "
          "shares this cache directory",
          timeout_seconds, path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cached = ReadSampleIndexCache(path, description);
  }
}

}  // namespace aoetron::data
