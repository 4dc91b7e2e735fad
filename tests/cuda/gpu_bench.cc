// gpu_bench: the two ceilings of the GPU, then every CUDA op at a GPU-sized shape with its FLOPs,
// bytes, time and share of the ceiling. Prints one table; run by scripts/gpu_check.sh.
//
//   gpu_bench [--batch B] [--seq T] [--d D] [--heads H] [--vocab V] [--experts E] [--top-k K]
//             [--reps R]          (defaults: 8 × 2048 tokens, d 1024, 16 heads, V 50304, 8 experts
//                                  top-2, 20 repetitions)
//
// Ceilings, measured here (docs/cuda.md): device-to-device copy bandwidth (1 GiB, bytes read +
// written) and the bf16 cuBLASLt GEMM rate at 8192³ on random data. For each op:
//   floor = max(FLOPs / GEMM rate, bytes / copy bandwidth)      (bytes: each input read once,
//                                                                each output written once)
//   % of ceiling = floor / measured time
// Ops that run on CUDA cores, not tensor cores (attention is FFMA-only in this version), are held
// to the tensor-core rate all the same: the column shows how far each is from what the chip can
// do, which is what matters for the step time.
// Timing: CUDA events on the compute stream around each call, after 3 warm-up calls; the median of
// R repetitions. Inputs are random (never zeros).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_context.h"
#include "core/device_transfer.h"
#include "core/ops/aoe_gate.h"
#include "core/ops/attention.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/expert_permute.h"
#include "core/ops/gemm.h"
#include "core/ops/rmsnorm.h"
#include "core/ops/rope.h"
#include "core/ops/swiglu.h"
#include "core/ops/topk.h"
#include "core/optim/adamw.h"

namespace aoetron {
namespace {

struct Options {
  int64_t batch = 8, seq = 2048, d = 1024, heads = 16, vocab = 50304, experts = 8, top_k = 2;
  int reps = 20;
};

struct Ceilings {
  double copy_bytes_per_s = 0;
  double gemm_flops_per_s = 0;
};

const Device kGpu = Device::Cuda(0);

// Median seconds of `reps` timed calls of fn, after 3 warm-ups.
double TimeMedian(const std::function<void()>& fn, int reps) {
  cudaStream_t stream = cuda::DeviceContext::Get(0).stream();
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> seconds;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    seconds.push_back(ms * 1e-3);
  }
  SynchronizeDevice(kGpu);  // raises any error a kernel recorded
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

// Fast host random numbers for bench inputs (xorshift64*): the inputs are GBs, and only need to
// be non-zero and varied, not statistically strong.
class FastRandom {
 public:
  explicit FastRandom(uint64_t seed) : state_(seed | 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  float Uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f);
  }

 private:
  uint64_t state_;
};

// A device tensor of uniform random values in [lo, hi), f32 or bf16 (rounded to nearest even).
Tensor Random(const Shape& shape, DType dtype, FastRandom& rng, float lo = -1.0f, float hi = 1.0f) {
  Tensor host = Tensor::Empty(shape, dtype);
  for (int64_t i = 0; i < host.numel(); ++i) {
    const float value = rng.Uniform(lo, hi);
    if (dtype == DType::kF32) {
      host.data<float>()[i] = value;
    } else {
      uint32_t bits;
      std::memcpy(&bits, &value, 4);
      bits += 0x7FFF + ((bits >> 16) & 1);
      host.data<BFloat16>()[i].bits = static_cast<uint16_t>(bits >> 16);
    }
  }
  return CopyToDevice(host, kGpu);
}

Tensor RandomIndex(const Shape& shape, int32_t bound, FastRandom& rng) {
  Tensor host = Tensor::Empty(shape, DType::kI32);
  for (int64_t i = 0; i < host.numel(); ++i) {
    host.data<int32_t>()[i] = static_cast<int32_t>(rng.Next() % bound);
  }
  return CopyToDevice(host, kGpu);
}

struct Row {
  std::string op, shape;
  double seconds, flops, bytes;
};

void PrintRow(const Row& row, const Ceilings& ceilings) {
  const double floor =
      std::max(row.flops / ceilings.gemm_flops_per_s, row.bytes / ceilings.copy_bytes_per_s);
  const char* bound = row.flops / ceilings.gemm_flops_per_s > row.bytes / ceilings.copy_bytes_per_s
                          ? "flops"
                          : "bytes";
  std::printf("| %-28s | %-26s | %9.3f | %9.2f | %8.3f | %9.3f | %5s | %6.1f%% |\n", row.op.c_str(),
              row.shape.c_str(), row.seconds * 1e3, row.flops * 1e-9, row.bytes * 1e-9, floor * 1e3,
              bound, 100.0 * floor / row.seconds);
}

int Run(const Options& o) {
  if (CudaDeviceCount() == 0) {
    std::fprintf(stderr, "gpu_bench: no GPU visible: %s\n", NoCudaDeviceReason().c_str());
    return 1;
  }
  SetCudaDevice(0);
  FastRandom rng(12345);
  std::printf("device: %s\n", cuda::DeviceDescription(0).c_str());

  // ---- Ceilings -----------------------------------------------------------------------------
  Ceilings ceilings;
  {
    const int64_t bytes = int64_t{1} << 30;
    Tensor src = Random({bytes / 4}, DType::kF32, rng),
           dst = Tensor::Empty({bytes / 4}, DType::kF32, kGpu);
    const double s = TimeMedian([&] { ops::Copy(src, dst); }, o.reps);
    ceilings.copy_bytes_per_s = 2.0 * bytes / s;
  }
  {
    const int64_t n = 8192;
    Tensor a = Random({n, n}, DType::kBF16, rng), b = Random({n, n}, DType::kBF16, rng);
    Tensor c = Tensor::Empty({n, n}, DType::kBF16, kGpu);
    const double s = TimeMedian([&] { ops::Gemm(a, false, b, false, c); }, o.reps);
    ceilings.gemm_flops_per_s = 2.0 * n * n * n / s;
  }
  std::printf(
      "measured ceilings: device-to-device copy %.0f GB/s (read + write), bf16 cuBLASLt "
      "GEMM 8192^3 %.1f TFLOP/s\n",
      ceilings.copy_bytes_per_s * 1e-9, ceilings.gemm_flops_per_s * 1e-12);

  // ---- Ops at the model shape
  // ---------------------------------------------------------------------
  const int64_t n = o.batch * o.seq, d = o.d, hd = d / o.heads, e = o.experts, k = o.top_k;
  const int64_t d_low = (d / 3 + 7) / 8 * 8;  // AoE's low-rank width, d/3 rounded to 8
  const int64_t ffn = 4 * d / k;              // expert width: active FFN ≈ a dense 4d
  std::printf(
      "shape: tokens %ld (batch %ld x seq %ld), d %ld, heads %ld (hd %ld), vocab %ld, "
      "experts %ld top-%ld, d_low %ld, expert width %ld; bf16 unless noted\n",
      n, o.batch, o.seq, d, o.heads, hd, o.vocab, e, k, d_low, ffn);
  const DType bf = DType::kBF16;
  const double s2 = 2.0, s4 = 4.0;  // bytes per bf16, f32 element
  std::vector<Row> rows;
  auto add = [&](std::string op, std::string shape, double seconds, double flops, double bytes) {
    rows.push_back({std::move(op), std::move(shape), seconds, flops, bytes});
  };
  auto str = [](std::initializer_list<int64_t> dims) {
    std::ostringstream out;
    out << "[";
    const char* separator = "";
    for (int64_t v : dims) {
      out << separator << v;
      separator = ",";
    }
    out << "]";
    return out.str();
  };

  {  // Projections: the dense GEMMs of a layer.
    Tensor x = Random({n, d}, bf, rng), w = Random({d, 3 * d}, bf, rng);
    Tensor y = Tensor::Empty({n, 3 * d}, bf, kGpu);
    const double t = TimeMedian([&] { ops::Gemm(x, false, w, false, y); }, o.reps);
    add("Gemm x·W_qkv", str({n, d, 3 * d}), t, 2.0 * n * d * 3 * d,
        s2 * (n * d + d * 3 * d + n * 3 * d));
    Tensor dy = Random({n, 3 * d}, bf, rng), dw = Tensor::Empty({d, 3 * d}, bf, kGpu);
    const double t2 = TimeMedian([&] { ops::Gemm(x, true, dy, false, dw); }, o.reps);
    add("Gemm xᵀ·dy (weight grad)", str({d, n, 3 * d}), t2, 2.0 * n * d * 3 * d,
        s2 * (n * d + n * 3 * d + d * 3 * d));
  }
  {  // Embedding.
    Tensor ids = RandomIndex({n}, static_cast<int32_t>(o.vocab), rng);
    Tensor table = Random({o.vocab, d}, bf, rng), out = Tensor::Empty({n, d}, bf, kGpu);
    add("EmbeddingForward", str({n, d}),
        TimeMedian([&] { ops::EmbeddingForward(ids, table, out); }, o.reps), 0, s2 * 2 * n * d);
    Tensor dtable = Random({o.vocab, d}, bf, rng);
    add("EmbeddingBackward", str({n, d}),
        TimeMedian([&] { ops::EmbeddingBackward(ids, out, dtable); }, o.reps), n * d,
        s2 * 3 * n * d);
  }
  {  // RMSNorm.
    Tensor x = Random({n, d}, bf, rng), w = Random({d}, bf, rng, 0.5f, 1.5f);
    Tensor y = Tensor::Empty({n, d}, bf, kGpu), rstd = Tensor::Empty({n}, DType::kF32, kGpu);
    add("RmsNormForward", str({n, d}),
        TimeMedian([&] { ops::RmsNormForward(x, w, 1e-5f, y, rstd); }, o.reps), 4.0 * n * d,
        s2 * 2 * n * d);
    Tensor dx = Random({n, d}, bf, rng), dw = Random({d}, bf, rng);
    add("RmsNormBackward", str({n, d}),
        TimeMedian([&] { ops::RmsNormBackward(y, x, w, rstd, dx, dw); }, o.reps), 8.0 * n * d,
        s2 * 4 * n * d);
  }
  {  // RoPE and attention.
    Tensor qkv = Random({o.batch, o.seq, 3, o.heads, hd}, bf, rng);
    add("RopeForward", str({o.batch, o.seq, 3, o.heads, hd}),
        TimeMedian([&] { ops::RopeForward(qkv, 10000.0f); }, o.reps), 6.0 * n * 2 * d,
        s2 * 2 * 2 * n * d);
    Tensor out = Tensor::Empty({o.batch, o.seq, o.heads, hd}, bf, kGpu);
    Tensor lse = Tensor::Empty({o.batch, o.heads, o.seq}, DType::kF32, kGpu);
    // Causal: half of the T×T scores. Forward: S = QKᵀ and PV, 2·T²·hd/2 FMAs each per head.
    const double causal = 0.5 * o.batch * o.heads * static_cast<double>(o.seq) * o.seq * hd;
    add("AttentionForward", str({o.batch, o.seq, o.heads, hd}),
        TimeMedian([&] { ops::CausalAttentionForward(qkv, out, lse); }, o.reps), 4.0 * causal,
        s2 * (3 * n * d + n * d));
    Tensor dout = Random({o.batch, o.seq, o.heads, hd}, bf, rng);
    Tensor dqkv = Random({o.batch, o.seq, 3, o.heads, hd}, bf, rng);
    // Backward as implemented: S and dP twice (dQ and dK/dV kernels), dQ, dK, dV once: 7 products.
    add("AttentionBackward", str({o.batch, o.seq, o.heads, hd}),
        TimeMedian([&] { ops::CausalAttentionBackward(dout, qkv, out, lse, dqkv); }, o.reps),
        14.0 * causal, s2 * (3 * n * d + 3 * n * d + 2 * n * d));
  }
  {  // SwiGLU at the experts' width over all N·K pairs.
    const int64_t m = n * k;
    Tensor g = Random({m, ffn}, bf, rng, -4.0f, 4.0f), u = Random({m, ffn}, bf, rng);
    Tensor out = Tensor::Empty({m, ffn}, bf, kGpu);
    add("SwiGluForward", str({m, ffn}), TimeMedian([&] { ops::SwiGluForward(g, u, out); }, o.reps),
        4.0 * m * ffn, s2 * 3 * m * ffn);
    Tensor dg = Random({m, ffn}, bf, rng), du = Random({m, ffn}, bf, rng);
    add("SwiGluBackward", str({m, ffn}),
        TimeMedian([&] { ops::SwiGluBackward(out, g, u, dg, du); }, o.reps), 10.0 * m * ffn,
        s2 * 7 * m * ffn);
  }
  {  // Cross-entropy over the vocabulary.
    Tensor logits = Random({n, o.vocab}, bf, rng, -4.0f, 4.0f);
    Tensor targets = RandomIndex({n}, static_cast<int32_t>(o.vocab), rng);
    Tensor losses = Tensor::Empty({n}, DType::kF32, kGpu);
    add("CrossEntropyForwardBackward", str({n, o.vocab}),
        TimeMedian([&] { ops::CrossEntropyForwardBackward(logits, targets, 1.0 / n, losses); },
                   o.reps),
        5.0 * n * o.vocab, s2 * 2 * n * o.vocab);
  }
  {  // Routing: AoE gate, router top-K, layout, permute, combine.
    Tensor c = Random({n, e * d_low}, bf, rng);
    Tensor norms = Tensor::Empty({n, e}, bf, kGpu), values = Tensor::Empty({n, k}, bf, kGpu);
    Tensor index = Tensor::Empty({n, k}, DType::kI32, kGpu),
           gates = Tensor::Empty({n, k}, bf, kGpu);
    add("AoeGate (norms+top-K+softmax)", str({n, e * d_low}),
        TimeMedian([&] { ops::AoeGate(c, d_low, k, norms, values, index, gates); }, o.reps),
        2.0 * n * e * d_low, s2 * n * e * d_low);
    Tensor scores = Random({n, e}, bf, rng);
    add("TopK (router)", str({n, e}),
        TimeMedian([&] { ops::TopK(scores, k, values, index); }, o.reps), n * e * k, s2 * n * e);
    const ops::ExpertLayout layout = ops::BuildExpertLayout(index, e);
    add("BuildExpertLayout (host)", str({n, k}),
        TimeMedian([&] { ops::BuildExpertLayout(index, e); }, o.reps), 0, 4.0 * 2 * n * k);
    Tensor x = Random({n, d}, bf, rng), grouped = Tensor::Empty({n * k, d}, bf, kGpu);
    add("PermuteRows", str({n * k, d}),
        TimeMedian([&] { ops::PermuteRows(x, layout.position, grouped); }, o.reps), 0,
        s2 * (n * d + n * k * d));
    Tensor y = Tensor::Empty({n, d}, bf, kGpu);
    add("CombineRows", str({n * k, d}),
        TimeMedian([&] { ops::CombineRows(grouped, layout.position, gates, y); }, o.reps),
        2.0 * n * k * d, s2 * (n * k * d + n * d));
    Tensor dgrouped = Random({n * k, d}, bf, rng), dgates = Random({n, k}, bf, rng);
    add("CombineRowsBackward", str({n * k, d}),
        TimeMedian(
            [&] { ops::CombineRowsBackward(y, grouped, layout.position, gates, dgrouped, dgates); },
            o.reps),
        4.0 * n * k * d, s2 * (n * d + 3 * n * k * d));
  }
  {  // AdamW over a model's worth of f32 master weights (100 M parameters).
    const int64_t params = 100'000'000;
    Tensor p = Random({params}, DType::kF32, rng), g = Random({params}, DType::kF32, rng);
    Tensor m = Random({params}, DType::kF32, rng, -1e-3f, 1e-3f);
    Tensor v = Random({params}, DType::kF32, rng, 0.0f, 1e-6f);
    int64_t step = 1;
    add("AdamW (f32 master)", str({params}),
        TimeMedian([&] { AdamWUpdate(p, g, m, v, 1e-4f, 0.1f, {}, step++); }, o.reps),
        12.0 * params, s4 * 7 * params);
  }

  std::printf("\n| %-28s | %-26s | %9s | %9s | %8s | %9s | %5s | %7s |\n", "op", "shape", "time ms",
              "GFLOP", "GB", "floor ms", "bound", "% ceil");
  std::printf(
      "|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(30, '-').c_str(), std::string(28, '-').c_str(),
      std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(10, '-').c_str(),
      std::string(11, '-').c_str(), std::string(7, '-').c_str(), std::string(9, '-').c_str());
  for (const Row& row : rows) PrintRow(row, ceilings);
  return 0;
}

}  // namespace
}  // namespace aoetron

int main(int argc, char** argv) {
  aoetron::Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long value = std::atol(argv[i + 1]);
    if (flag == "--batch")
      options.batch = value;
    else if (flag == "--seq")
      options.seq = value;
    else if (flag == "--d")
      options.d = value;
    else if (flag == "--heads")
      options.heads = value;
    else if (flag == "--vocab")
      options.vocab = value;
    else if (flag == "--experts")
      options.experts = value;
    else if (flag == "--top-k")
      options.top_k = value;
    else if (flag == "--reps")
      options.reps = static_cast<int>(value);
    else {
      std::fprintf(stderr, "gpu_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  return aoetron::Run(options);
}
