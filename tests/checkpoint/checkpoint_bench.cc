// checkpoint_bench: save and load throughput of the checkpoint library against the disk's own
// sequential write and read rates, measured in the same run on the same directory, and the
// training stall of an asynchronous save of the bench model (configs/bench_aoe_small.textproto).
//
//   checkpoint_bench [--dir=/tmp/aoetron_ckpt_bench] [--mib=1024] [--tensors=96] [--repeats=3]
//                    [--stall=1]
//
// 1. Disk baseline: one file of the same size written with 64 MiB write() calls + fsync; read
//    back with 64 MiB read() calls after dropping its pages from the cache (posix_fadvise
//    DONTNEED: a cold read, from the disk).
// 2. Save: a synchronous CheckpointManager::Save of `tensors` f32 tensors totalling `mib` MiB,
//    one process (snapshot copy, CRC-32C, write, fsync, manifest, commit, latest): bytes / time.
// 3. Load: the shard file's pages dropped, then CheckpointReader::Open + Read of every tensor
//    (whole, CRC-checked, staged): bytes / time.
// Each is repeated (disk and ours alternating first, sync() and a pause before each) and the
// median reported; ratios are ours / disk. The first save also faults in its snapshot buffer.
// 4. Stall (--stall=1): the bench AoE model's parameters + AdamW m, v (f32) saved asynchronously
//    between ForwardBackward steps; step time with a save (including Save() and AwaitSnapshot())
//    against the median step without one, for snapshot in Save and in the background.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/arena.h"
#include "core/rng.h"
#include "launcher/checkpoint/checkpoint_manager.h"
#include "launcher/checkpoint/crc32c.h"
#include "launcher/checkpoint/durable_file.h"
#include "launcher/checkpoint/parameter_checkpoint.h"
#include "models/gpt_model.h"
#include "parallel/single_process_communicator.h"

namespace aoetron::checkpoint {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
constexpr double kMiB = 1024.0 * 1024.0;

void Die(const absl::Status& s) {
  std::cerr << "checkpoint_bench: " << s << "\n";
  std::exit(1);
}

void DropCache(const std::string& path) {
  absl::StatusOr<FileDescriptor> f = FileDescriptor::OpenForRead(path);
  if (f.ok()) f->DropCache();
}

double DiskWrite(const std::string& path, const std::vector<uint8_t>& buffer) {
  const auto start = Clock::now();
  absl::StatusOr<FileDescriptor> f = FileDescriptor::Create(path);
  if (!f.ok()) Die(f.status());
  constexpr size_t kWindow = size_t{64} << 20;
  for (size_t at = 0; at < buffer.size(); at += kWindow) {
    if (absl::Status s = f->WriteAll(buffer.data() + at, std::min(kWindow, buffer.size() - at));
        !s.ok()) {
      Die(s);
    }
  }
  if (absl::Status s = f->Sync(); !s.ok()) Die(s);
  if (absl::Status s = f->Close(); !s.ok()) Die(s);
  return buffer.size() / Seconds(start);
}

double DiskRead(const std::string& path, std::vector<uint8_t>& buffer) {
  DropCache(path);
  const auto start = Clock::now();
  absl::StatusOr<FileDescriptor> f = FileDescriptor::OpenForRead(path);
  if (!f.ok()) Die(f.status());
  constexpr size_t kWindow = size_t{64} << 20;
  for (size_t at = 0; at < buffer.size(); at += kWindow) {
    if (absl::Status s = f->ReadAt(buffer.data() + at, std::min(kWindow, buffer.size() - at), at);
        !s.ok()) {
      Die(s);
    }
  }
  return buffer.size() / Seconds(start);
}

void Throughput(const std::string& dir, int64_t mib, int tensors, int repeats) {
  const uint64_t total = static_cast<uint64_t>(mib) << 20;
  // Tensors of uneven sizes (1 to 2 units) summing to about `total`.
  std::vector<SaveItem> items;
  std::vector<ReadRequest> requests;
  uint64_t units = 0;
  for (int i = 0; i < tensors; ++i) units += 1 + i % 2;
  uint64_t bytes = 0;
  for (int i = 0; i < tensors; ++i) {
    const int64_t rows = static_cast<int64_t>(total / units * (1 + i % 2) / 4 / 1024);
    TensorBox box{
        absl::StrFormat("layers.%d.w", i), DType::kF32, {rows, 1024}, WholeRegion({rows, 1024})};
    Tensor values = Tensor::Empty({rows, 1024}, DType::kF32);
    float* v = values.data<float>();
    for (int64_t k = 0; k < values.numel(); ++k) v[k] = static_cast<float>(k % 9973) * 0.5f + i;
    items.push_back(SaveItem{box, pb::KIND_PARAMETER, values, true});
    Tensor out = Tensor::Empty({rows, 1024}, DType::kF32);
    std::memset(out.raw_data(), 0, out.nbytes());  // touched, like a model's weights
    requests.push_back(ReadRequest{box, out});
    bytes += values.nbytes();
  }
  std::vector<uint8_t> buffer(bytes);
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<uint8_t>(i * 131);
  const std::string baseline = JoinPath(dir, "disk_baseline.bin");
  const std::string root = JoinPath(dir, "ckpt");
  parallel::SingleProcessCommunicator world;
  absl::StatusOr<std::unique_ptr<CheckpointManager>> manager = CheckpointManager::Create(
      {.root = root, .retention = {.keep_last = 1}, .async = false}, world);
  if (!manager.ok()) Die(manager.status());
  std::vector<double> disk_w, disk_r, save, load, unstaged, snap, write, commit;
  // Before each timed phase: sync() and a pause, so that the previous phase's writeback is not
  // charged to the next. The order of disk baseline and save alternates between repeats.
  auto quiesce = [] {
    ::sync();
    ::usleep(300000);
  };
  for (int r = 0; r < repeats; ++r) {
    auto timed_save = [&] {
      quiesce();
      const auto start = Clock::now();
      if (absl::Status s = (*manager)->Save(r + 1, items, pb::TrainingState()); !s.ok()) Die(s);
      save.push_back(bytes / Seconds(start));
    };
    if (r % 2 == 1) timed_save();
    quiesce();
    disk_w.push_back(DiskWrite(baseline, buffer));
    if (r % 2 == 0) timed_save();
    snap.push_back((*manager)->last_stats().snapshot_seconds);
    write.push_back((*manager)->last_stats().write_seconds);
    commit.push_back((*manager)->last_stats().commit_seconds);
    quiesce();
    disk_r.push_back(DiskRead(baseline, buffer));
    quiesce();
    const std::string step_dir = StepDirectory(root, r + 1);
    for (const auto& e : std::filesystem::directory_iterator(step_dir)) DropCache(e.path());
    const auto load_start = Clock::now();
    absl::StatusOr<CheckpointReader> reader = CheckpointReader::Open(step_dir);
    if (!reader.ok()) Die(reader.status());
    if (absl::Status s = reader->Read(requests); !s.ok()) Die(s);
    load.push_back(bytes / Seconds(load_start));
    // The same without staging (no all-or-nothing guarantee), cold again.
    quiesce();
    for (const auto& e : std::filesystem::directory_iterator(step_dir)) DropCache(e.path());
    const auto unstaged_start = Clock::now();
    if (absl::Status s = reader->Read(requests, ReadOptions{.staging = false}); !s.ok()) Die(s);
    unstaged.push_back(bytes / Seconds(unstaged_start));
    std::cout << absl::StrFormat(
        "  repeat %d: disk write %.0f MiB/s, save %.0f MiB/s (snapshot %.3f s, write+fsync %.3f "
        "s, commit %.3f s); disk read %.0f MiB/s, load %.0f MiB/s (unstaged %.0f MiB/s)\n",
        r + 1, disk_w.back() / kMiB, save.back() / kMiB, snap.back(), write.back(), commit.back(),
        disk_r.back() / kMiB, load.back() / kMiB, unstaged.back() / kMiB);
  }
  std::filesystem::remove(baseline);
  std::cout << absl::StrFormat(
      "%d tensors, %.0f MiB, median of %d:\n"
      "  save  %7.0f MiB/s  vs disk sequential write %7.0f MiB/s  = %3.0f%%\n"
      "  load  %7.0f MiB/s  vs disk sequential read  %7.0f MiB/s  = %3.0f%%  (cold cache, CRC "
      "checked, staged)\n"
      "  load  %7.0f MiB/s  unstaged                                 = %3.0f%%\n",
      tensors, bytes / kMiB, repeats, Median(save) / kMiB, Median(disk_w) / kMiB,
      100 * Median(save) / Median(disk_w), Median(load) / kMiB, Median(disk_r) / kMiB,
      100 * Median(load) / Median(disk_r), Median(unstaged) / kMiB,
      100 * Median(unstaged) / Median(disk_r));
  // CRC-32C alone, on data in memory.
  const auto crc_start = Clock::now();
  uint32_t crc = 0;
  for (int k = 0; k < 4; ++k) crc ^= Crc32c(buffer.data(), buffer.size());
  std::cout << absl::StrFormat("  CRC-32C in memory: %.0f MiB/s (%08x)\n",
                               4 * bytes / Seconds(crc_start) / kMiB, crc);
}

void Stall(const std::string& dir) {
  // configs/bench_aoe_small.textproto's model and batch.
  ModelConfig c;
  c.vocab_size = 8192;
  c.d_model = 256;
  c.n_layers = 4;
  c.n_heads = 4;
  c.seq_len = 256;
  c.d_ffn = 1024;
  c.ffn = FfnKind::kAoe;
  c.n_experts = 8;
  c.top_k = 2;
  c.d_low = 64;
  GptModel model(c);
  ParameterSet& params = model.parameters();
  params.Initialize(1);
  Tensor m = Tensor::Zeros({params.num_elements()}, DType::kF32);
  Tensor v = Tensor::Zeros({params.num_elements()}, DType::kF32);
  Tensor tokens = Tensor::Empty({8, c.seq_len}, DType::kI32), targets = tokens;
  targets = Tensor::Empty({8, c.seq_len}, DType::kI32);
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    tokens.data<int32_t>()[i] = static_cast<int32_t>(UniformIntAt(3, 1, i, c.vocab_size));
    targets.data<int32_t>()[i] = static_cast<int32_t>(UniformIntAt(3, 2, i, c.vocab_size));
  }
  ActivationArena arena;
  absl::StatusOr<parallel::ProcessGrid> grid = parallel::ProcessGrid::Create(1, 0, 1, 1);
  const std::vector<SaveItem> items =
      ParameterSaveItems(params, *grid, {{".adam_m", m}, {".adam_v", v}});
  uint64_t state_bytes = 0;
  for (const SaveItem& i : items) state_bytes += i.values.nbytes();
  auto step = [&] {
    params.ZeroGrads();
    model.ForwardBackward(tokens, targets, 1.0, arena);
  };
  step();  // warm up (arena growth, first touches)
  std::cout << absl::StrFormat("bench AoE model: %d parameters, %.0f MiB saved (values, m, v)\n",
                               params.num_elements(), state_bytes / kMiB);
  parallel::SingleProcessCommunicator world;
  for (bool background : {false, true}) {
    absl::StatusOr<std::unique_ptr<CheckpointManager>> manager =
        CheckpointManager::Create({.root = JoinPath(dir, background ? "stall_bg" : "stall_fg"),
                                   .retention = {.keep_last = 1},
                                   .async = true,
                                   .snapshot_in_background = background},
                                  world);
    if (!manager.ok()) Die(manager.status());
    // Pairs on a noisy machine: a plain step, then a step that starts with Save() and ends with
    // AwaitSnapshot(); the stall is the median of the pairwise differences.
    std::vector<double> plain, with_save, stalls, returns, totals;
    for (int i = 0; i < 5; ++i) {
      auto start = Clock::now();
      step();
      plain.push_back(Seconds(start));
      start = Clock::now();
      if (absl::Status s = (*manager)->Save(i + 1, items, pb::TrainingState()); !s.ok()) Die(s);
      returns.push_back(Seconds(start));
      step();
      (*manager)->AwaitSnapshot();  // before the optimizer would touch the weights
      with_save.push_back(Seconds(start));
      stalls.push_back(with_save.back() - plain.back());
      if (absl::Status s = (*manager)->Wait(); !s.ok()) Die(s);
      totals.push_back((*manager)->last_stats().write_seconds +
                       (*manager)->last_stats().commit_seconds);
    }
    const double base = Median(plain), stall = Median(stalls);
    std::cout << absl::StrFormat(
        "  async save, snapshot %s: Save() returns in %.3f s; plain step %.3f s, step with save "
        "%.3f s; stall (median of 5 pairs) %.3f s = %.1f%% of a step; background write+commit "
        "%.2f s\n",
        background ? "in the background" : "inside Save()", Median(returns), base,
        Median(with_save), stall, 100 * stall / base, Median(totals));
  }
}

}  // namespace
}  // namespace aoetron::checkpoint

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags = {{"dir", "/tmp/aoetron_ckpt_bench"},
                                              {"mib", "1024"},
                                              {"tensors", "96"},
                                              {"repeats", "3"},
                                              {"stall", "1"}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos || !flags.count(arg.substr(2, eq - 2))) {
      std::cerr << "usage: checkpoint_bench [--dir=D] [--mib=N] [--tensors=N] [--repeats=N] "
                   "[--stall=0|1]\n";
      return 2;
    }
    flags[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
  }
  int64_t mib = 0, tensors = 0, repeats = 0, stall = 0;
  if (!absl::SimpleAtoi(flags["mib"], &mib) || !absl::SimpleAtoi(flags["tensors"], &tensors) ||
      !absl::SimpleAtoi(flags["repeats"], &repeats) || !absl::SimpleAtoi(flags["stall"], &stall) ||
      mib < 1 || tensors < 1 || repeats < 1) {
    std::cerr << "checkpoint_bench: bad numeric flag\n";
    return 2;
  }
  const std::string dir = flags["dir"];
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  aoetron::checkpoint::Throughput(dir, mib, static_cast<int>(tensors), static_cast<int>(repeats));
  if (stall) aoetron::checkpoint::Stall(dir);
  std::filesystem::remove_all(dir);
  return 0;
}
