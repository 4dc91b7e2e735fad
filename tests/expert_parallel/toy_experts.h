// A stand-in for the grouped SwiGLU experts in dispatcher tests: simple enough that the whole
// dispatch → experts → combine round trip (and its backward) has a closed form computed straight
// from the routing on the source rank, so every row the dispatcher moves is checked.
//
//   expert e on pair (t, j):  out = (e + 1) · x_t + (Σ_c C_tj[c]) · 1      (C term only when g > 0;
//                            C_tj: slot j of token t in the [N, K·g] gate cache)
//   its backward, given d_out: dx = (e + 1) · d_out,  dC[c] = Σ_c' d_out[c']  (every c < g)
// So, with w the gate weights and "kept" the pairs that survive capacity:
//   y_t      = Σ_{j kept} w_tj · out_tj
//   dw_tj    = kept ? ⟨dy_t, out_tj⟩ : 0
//   dx_t     = Σ_{j kept} (e_tj + 1) · w_tj · dy_t
//   dC_tj[c] = w_tj · Σ_c' dy_t[c']   (kept pairs; 0 elsewhere)
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "parallel/expert_dispatcher.h"

namespace aoetron::expert_parallel_test {

// Runs the toy experts on a dispatched batch of f64 rows; `first_expert` is the global id of
// local expert 0.
inline void ToyExpertsForward(parallel::ExpertBatch& batch, int64_t first_expert, int64_t g) {
  const int64_t d = batch.x.dim(1);
  const double* x = batch.x.data<double>();
  const double* gate = g > 0 ? batch.gate.data<double>() : nullptr;
  double* out = batch.out.data<double>();
  for (size_t e = 0; e + 1 < batch.offsets.size(); ++e) {
    const double scale = static_cast<double>(first_expert + static_cast<int64_t>(e) + 1);
    for (int64_t row = batch.offsets[e]; row < batch.offsets[e + 1]; ++row) {
      double gate_sum = 0.0;
      for (int64_t c = 0; c < g; ++c) gate_sum += gate[row * g + c];
      for (int64_t c = 0; c < d; ++c) out[row * d + c] = scale * x[row * d + c] + gate_sum;
    }
  }
}

inline void ToyExpertsBackward(parallel::ExpertBatchGradients& grads,
                               const std::vector<int64_t>& offsets, int64_t first_expert,
                               int64_t g) {
  const int64_t d = grads.d_out.dim(1);
  const double* d_out = grads.d_out.data<double>();
  double* dx = grads.dx.data<double>();
  double* dgate = g > 0 ? grads.dgate.data<double>() : nullptr;
  for (size_t e = 0; e + 1 < offsets.size(); ++e) {
    const double scale = static_cast<double>(first_expert + static_cast<int64_t>(e) + 1);
    for (int64_t row = offsets[e]; row < offsets[e + 1]; ++row) {
      double d_out_sum = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        dx[row * d + c] += scale * d_out[row * d + c];
        d_out_sum += d_out[row * d + c];
      }
      for (int64_t c = 0; c < g; ++c) dgate[row * g + c] += d_out_sum;
    }
  }
}

// The closed form above, for one source rank's tokens. kept[t·K + j] says whether pair (t, j)
// survived capacity.
struct ToyExpected {
  std::vector<double> y, dw, dx, dcache;
};

inline ToyExpected ToyExpectation(const std::vector<double>& x, const std::vector<int32_t>& index,
                                  const std::vector<double>& cache,
                                  const std::vector<double>& weights, const std::vector<double>& dy,
                                  const std::vector<char>& kept, int64_t n_tokens, int64_t k,
                                  int64_t d, int64_t n_experts, int64_t g) {
  ToyExpected out;
  out.y.assign(n_tokens * d, 0.0);
  out.dw.assign(n_tokens * k, 0.0);
  out.dx.assign(n_tokens * d, 0.0);
  out.dcache.assign(n_tokens * k * g, 0.0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      if (!kept[t * k + j]) continue;
      const int64_t e = index[t * k + j];
      const double w = weights[t * k + j];
      double gate_sum = 0.0;
      for (int64_t c = 0; c < g; ++c) gate_sum += cache[(t * k + j) * g + c];
      double dot = 0.0, dy_sum = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        dy_sum += dy[t * d + c];
        const double expert_out = (e + 1) * x[t * d + c] + gate_sum;
        out.y[t * d + c] += w * expert_out;
        dot += dy[t * d + c] * expert_out;
        out.dx[t * d + c] += (e + 1) * w * dy[t * d + c];
      }
      out.dw[t * k + j] = dot;
      for (int64_t c = 0; c < g; ++c) {
        out.dcache[(t * k + j) * g + c] += w * dy_sum;
      }
    }
  }
  return out;
}

// The routing of one source rank, as plain vectors (f64 values).
struct ToyRouting {
  int64_t tokens = 0, k = 0, d = 0, n_experts = 0, g = 0;
  std::vector<double> x;            // [N, d]
  std::vector<int32_t> index;       // [N, K] global expert ids
  std::vector<double> cache;        // [N, K·g] by slot: pair (t, j) at (t·K + j)·g
  std::vector<double> weights;      // [N, K]
  std::vector<double> dy;           // [N, d]
  std::vector<int64_t> keep_limit;  // empty: dropless

  // Pairs kept under keep_limit: the first keep_limit[e] of expert e in (t, j) order.
  std::vector<char> Kept() const {
    std::vector<char> kept(tokens * k, 1);
    if (keep_limit.empty()) return kept;
    std::vector<int64_t> left = keep_limit;
    for (int64_t q = 0; q < tokens * k; ++q) kept[q] = left[index[q]]-- > 0;
    return kept;
  }
  ToyExpected Expected() const {
    return ToyExpectation(x, index, cache, weights, dy, Kept(), tokens, k, d, n_experts, g);
  }
  // The analytic minimum payload to peers, counted here independently of the dispatcher.
  int64_t MinimumPayloadBytes(int ep, int self) const {
    const std::vector<char> kept = Kept();
    const int64_t per_rank = n_experts / ep;
    int64_t x_rows = 0, gate_rows = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<char> seen(ep, 0);
      for (int64_t j = 0; j < k; ++j) {
        const int p = static_cast<int>(index[t * k + j] / per_rank);
        if (!kept[t * k + j] || p == self) continue;
        ++gate_rows;
        if (!seen[p]) ++x_rows;
        seen[p] = 1;
      }
    }
    return (x_rows * d + gate_rows * g) * static_cast<int64_t>(sizeof(double));
  }
};

// One forward + backward through `dispatcher` with the toy experts; returns what the source rank
// sees (y, dw, dx, dC) in ToyExpected's layout.
// `inspect`, if given, sees the expert-side batch before the experts run.
inline ToyExpected RunToyRoundTrip(
    parallel::ExpertDispatcher& dispatcher, ToyRouting& r, ActivationArena& arena,
    const std::function<void(const parallel::ExpertBatch&)>& inspect = nullptr) {
  arena.Reset();
  Tensor x = Tensor::Wrap(r.x.data(), {r.tokens, r.d}, DType::kF64);
  Tensor index = Tensor::Wrap(r.index.data(), {r.tokens, r.k}, DType::kI32);
  Tensor cache;
  if (r.g > 0) cache = Tensor::Wrap(r.cache.data(), {r.tokens, r.k * r.g}, DType::kF64);
  Tensor weights = Tensor::Wrap(r.weights.data(), {r.tokens, r.k}, DType::kF64);
  Tensor dy = Tensor::Wrap(r.dy.data(), {r.tokens, r.d}, DType::kF64);
  ToyExpected got;
  got.y.assign(r.tokens * r.d, -1.0);
  got.dw.assign(r.tokens * r.k, 0.0);
  got.dx.assign(r.tokens * r.d, 0.0);
  got.dcache.assign(r.tokens * r.k * r.g, 0.0);
  Tensor y = Tensor::Wrap(got.y.data(), {r.tokens, r.d}, DType::kF64);
  Tensor dw = Tensor::Wrap(got.dw.data(), {r.tokens, r.k}, DType::kF64);
  Tensor dx = Tensor::Wrap(got.dx.data(), {r.tokens, r.d}, DType::kF64);
  Tensor dcache;
  if (r.g > 0) {
    dcache = Tensor::Wrap(got.dcache.data(), {r.tokens, r.k * r.g}, DType::kF64);
  }
  parallel::ExpertBatch batch = dispatcher.Dispatch(x, index, cache, r.keep_limit, arena);
  if (inspect) inspect(batch);
  ToyExpertsForward(batch, dispatcher.first_local_expert(), r.g);
  dispatcher.Combine(weights, y, arena);
  parallel::ExpertBatchGradients grads = dispatcher.CombineBackward(dy, weights, dw, arena);
  ToyExpertsBackward(grads, batch.offsets, dispatcher.first_local_expert(), r.g);
  dispatcher.DispatchBackward(grads, dx, dcache, arena);
  return got;
}

// Random routing: K distinct experts per token, normal values.
inline ToyRouting RandomRouting(std::mt19937_64& rng, int64_t tokens, int64_t k, int64_t d,
                                int64_t n_experts, int64_t g) {
  ToyRouting r;
  r.tokens = tokens;
  r.k = k;
  r.d = d;
  r.n_experts = n_experts;
  r.g = g;
  std::normal_distribution<double> normal;
  auto fill = [&](std::vector<double>& v, int64_t size) {
    v.resize(size);
    for (double& value : v) value = normal(rng);
  };
  fill(r.x, tokens * d);
  fill(r.cache, tokens * k * g);
  fill(r.weights, tokens * k);
  fill(r.dy, tokens * d);
  r.index.resize(tokens * k);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int32_t> experts(n_experts);
    for (int32_t e = 0; e < n_experts; ++e) experts[e] = e;
    std::shuffle(experts.begin(), experts.end(), rng);
    for (int64_t j = 0; j < k; ++j) r.index[t * k + j] = experts[j];
  }
  return r;
}

inline void ExpectNear(const std::vector<double>& got, const std::vector<double>& want,
                       const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-12 * (1 + std::abs(want[i]))) << what << " element " << i;
  }
}

}  // namespace aoetron::expert_parallel_test
