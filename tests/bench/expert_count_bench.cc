// expert_count_bench: AoE against a router MoE from 8 to 256 experts, one routed FFN layer
// (RoutedFeedForward via MakeFeedForward, one process), forward + backward on T tokens.
// A plain program that prints a table (docs/performance.md, "AoE at 8 to 256 experts").
//
// Matching: both sides have d_model d and K·w = kActiveWidth hidden units per token (MoE expert
// width w = kActiveWidth / K); AoE's d_wide is parameter-matched to a width-w SwiGLU expert by
// AOE.md Eq. 5, d_wide = round((3·d·w − r·d) / (r + 2·d)) (set explicitly: unrounded to 64), so the
// active parameters per token agree (to the rounding of d_wide).
//
// FLOPs per layer (2 per multiply-add; backward = 2× forward for every GEMM):
//   MoE   forward  2·T·d·n (router) + 3 · 2·T·K·d·w (W_g, W_p, W_o)           total = 3 × forward
//   AoE   forward  2·T·d·n·r (C = x·Ŵ_down) + 2·T·K·d_wide·(r + 2·d)          keep_all: 3 × forward
//         blockwise adds one more 2·T·d·n·r (C recomputed in backward) and 2·T·K·d·r (the
//         selected C_i recomputed per pair).
// AoE's extra work over the MoE is the 2·T·(n − K)·d·r of the unselected experts' products
// (AOE.md), ×3 with backward (×4 blockwise).
//
// Each point runs in a forked child (fresh heap, fresh arena), which reports: the median step
// time of kReps steps after one warm-up; the arena's peak bytes (activations + scratch) plus
// parameter + gradient bytes ("model memory"); and the child's VmHWM (peak resident set, which
// also counts the program, oneDNN's scratch and allocator slack).
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "models/feed_forward.h"
#include "models/model_config.h"
#include "models/parameter.h"
#include "parallel/process_groups.h"

namespace aoetron {
namespace {

constexpr int64_t kTokens = 2048;
constexpr int64_t kDModel = 256;
constexpr int64_t kDLow = 64;
constexpr int64_t kActiveWidth = 1024;  // K·w
constexpr int kReps = 5;

struct Point {
  double seconds = 0;       // median step
  double model_bytes = 0;   // arena peak + parameters + gradients
  double arena_bytes = 0;   // arena peak alone
  double vm_hwm_bytes = 0;  // child's peak RSS
};

double VmHwmBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  }
  return 0;
}

Point Measure(const ModelConfig& config) {
  ParameterSet params(DType::kF32);
  std::unique_ptr<FeedForward> ffn =
      MakeFeedForward(config, 0, &params, parallel::SingleProcessGroups());
  params.Allocate();
  params.Initialize(1234);
  double param_bytes = 0;
  for (const Parameter& p : params.all()) param_bytes += 2.0 * p.value.numel() * sizeof(float);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  Tensor x = Tensor::Empty({kTokens, config.d_model}, DType::kF32);
  Tensor dy = Tensor::Empty({kTokens, config.d_model}, DType::kF32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
  for (int64_t i = 0; i < dy.numel(); ++i) dy.data<float>()[i] = normal(rng) * 1e-3f;
  Tensor dx = Tensor::Zeros({kTokens, config.d_model}, DType::kF32);
  ActivationArena arena;
  std::vector<double> times;
  for (int rep = 0; rep <= kReps; ++rep) {
    arena.Reset();
    const auto start = std::chrono::steady_clock::now();
    Tensor y = arena.Allocate({kTokens, config.d_model}, DType::kF32);
    ffn->Forward(x, y, arena);
    ffn->Backward(dy, 1.0, dx, arena);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rep > 0) times.push_back(s);  // rep 0 warms up (arena growth, oneDNN primitives)
  }
  std::sort(times.begin(), times.end());
  Point point;
  point.seconds = times[times.size() / 2];
  point.arena_bytes = static_cast<double>(arena.peak_bytes());
  point.model_bytes = point.arena_bytes + param_bytes;
  point.vm_hwm_bytes = VmHwmBytes();
  return point;
}

// Measure(config) in a child process, so that VmHWM is this point's alone.
Point MeasureInChild(const ModelConfig& config) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const Point point = Measure(config);
    if (write(fds[1], &point, sizeof(point)) != sizeof(point)) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Point point;
  if (read(fds[0], &point, sizeof(point)) != sizeof(point)) std::abort();
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return point;
}

ModelConfig LayerConfig(FfnKind kind, int64_t n, int64_t k, AoeMemory memory) {
  ModelConfig c;
  c.d_model = kDModel;
  c.n_heads = 4;
  c.n_layers = 1;
  c.ffn = kind;
  c.n_experts = n;
  c.top_k = k;
  c.d_ffn = kActiveWidth / k;  // MoE expert width w
  c.d_low = kDLow;
  // AoE: Eq. 5 rounded to the nearest integer, not to the training default's multiple of 64
  // (ModelConfig::ResolvedDWide), so that the active parameters match to within one column.
  if (kind == FfnKind::kAoe) c.d_wide = std::llround(c.ParameterMatchedDWide());
  c.aoe_memory = memory;
  c.aux_loss_coeff = 0.01;
  return c;
}

double Flops(const ModelConfig& c) {
  const double t = kTokens, d = c.d_model, n = c.n_experts, k = c.top_k, r = c.d_low;
  if (c.ffn == FfnKind::kRouterMoe) {
    const double w = c.d_ffn;
    return 3.0 * (2 * t * d * n + 3 * 2 * t * k * d * w);
  }
  const double wide = static_cast<double>(c.ResolvedDWide());
  const double scoring = 2 * t * d * n * r, experts = 2 * t * k * wide * (r + 2 * d);
  double total = 3.0 * (scoring + experts);
  if (c.aoe_memory == AoeMemory::kBlockwise) total += scoring + 2 * t * k * d * r;
  return total;
}

int Main() {
  std::printf(
      "expert_count_bench: T = %lld tokens, d = %lld, r = %lld, K·w = %lld, f32, "
      "%d OpenMP threads, median of %d steps (forward + backward of one layer)\n",
      static_cast<long long>(kTokens), static_cast<long long>(kDModel),
      static_cast<long long>(kDLow), static_cast<long long>(kActiveWidth), omp_get_max_threads(),
      kReps);
  std::printf("memory: model = arena peak + parameters + gradients; RSS = child VmHWM. MiB.\n\n");
  std::printf(
      "| n | K | w | d_wide | MoE ms | MoE MiB (RSS) | AoE mode | block | AoE ms | "
      "AoE MiB (RSS) | time ratio | FLOP ratio | time/FLOP | mem ratio | RSS ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t n : {8, 64, 256}) {
    for (int64_t k : {2, 8}) {
      const ModelConfig moe = LayerConfig(FfnKind::kRouterMoe, n, k, AoeMemory::kKeepAll);
      const Point m = MeasureInChild(moe);
      for (AoeMemory memory : {AoeMemory::kKeepAll, AoeMemory::kBlockwise}) {
        const ModelConfig aoe = LayerConfig(FfnKind::kAoe, n, k, memory);
        const Point a = MeasureInChild(aoe);
        const double time_ratio = a.seconds / m.seconds;
        const double flop_ratio = Flops(aoe) / Flops(moe);
        const bool blockwise = memory == AoeMemory::kBlockwise;
        std::printf(
            "| %lld | %lld | %lld | %lld | %.1f | %.1f (%.0f) | %s | %s | %.1f | %.1f (%.0f) | "
            "%.2f | %.2f | %.2f | %.2f | %.2f |\n",
            static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(moe.d_ffn),
            static_cast<long long>(aoe.ResolvedDWide()), m.seconds * 1e3, m.model_bytes / (1 << 20),
            m.vm_hwm_bytes / (1 << 20), blockwise ? "blockwise" : "keep_all",
            blockwise ? std::to_string(AoeScoreBlock(n, kDLow, 0)).c_str() : "-", a.seconds * 1e3,
            a.model_bytes / (1 << 20), a.vm_hwm_bytes / (1 << 20), time_ratio, flop_ratio,
            time_ratio / flop_ratio, a.model_bytes / m.model_bytes,
            a.vm_hwm_bytes / m.vm_hwm_bytes);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace aoetron

int main() { return aoetron::Main(); }
