// The strict_cpu device (core/device.h): host access to its tensors outside a DeviceAccessScope
// fails naming the caller, and the ops that replaced host loops in models/ and parallel/ give the
// cpu device's bits on it and match plain references on fresh random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/device_transfer.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/expert_permute.h"
#include "core/ops/loss_reduction.h"
#include "core/ops/routing_statistics.h"
#include "core/ops/row_movement.h"

namespace aoetron {
namespace {

std::mt19937_64& Rng() {
  static std::mt19937_64 rng(std::random_device{}());
  return rng;
}

Tensor RandomFloats(Shape shape) {
  Tensor t = Tensor::Empty(std::move(shape), DType::kF32);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  float* v = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = normal(Rng());
  return t;
}

Tensor Ints(const std::vector<int32_t>& values) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

Tensor Strict(const Tensor& t) { return CopyToDevice(t, Device::StrictCpu()); }
Tensor Host(const Tensor& t) { return CopyToDevice(t, Device::Cpu()); }

bool Bitwise(const Tensor& a, const Tensor& b) {
  const Tensor x = Host(a), y = Host(b);
  return x.nbytes() == y.nbytes() && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

TEST(StrictDeviceDeathTest, HostAccessFailsNamingTheCaller) {
  Tensor t = Tensor::Empty({4}, DType::kF32, Device::StrictCpu());
  EXPECT_DEATH(t.data<float>()[0] = 1.0f,
               "host access to the elements of f32\\[4\\] on strict_cpu "
               "from .*strict_device_test.cc");
  EXPECT_DEATH((void)t.raw_data(), "strict_device_test.cc");
  // Ops, device copies and metadata are fine.
  ops::Fill(t, 2.0);
  EXPECT_EQ(Host(t).data<float>()[3], 2.0f);
  EXPECT_TRUE(t.Rows(1, 3).IsSameView(t.Rows(1, 3)));
  EXPECT_EQ(t.device().ToString(), "strict_cpu");
}

TEST(StrictDeviceTest, VocabShardedEmbeddingMatchesTheWholeTable) {
  const int64_t vocab = 12, d = 5, n = 9, begin = 4, rows = 4;
  const Tensor table = RandomFloats({vocab, d});
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& x : ids) x = id(Rng());
  const Tensor host_ids = Ints(ids);
  Tensor shard = Tensor::Empty({rows, d}, DType::kF32);
  ops::Copy(table.Rows(begin, begin + rows), shard);
  Tensor out = Tensor::Empty({n, d}, DType::kF32, Device::StrictCpu());
  ops::EmbeddingShardForward(Strict(host_ids), Strict(shard), begin, vocab, out);
  const Tensor got = Host(out);
  for (int64_t t = 0; t < n; ++t) {
    const bool held = ids[t] >= begin && ids[t] < begin + rows;
    for (int64_t c = 0; c < d; ++c) {
      EXPECT_EQ(got.data<float>()[t * d + c], held ? table.data<float>()[ids[t] * d + c] : 0.0f);
    }
  }
  // Backward: the shard's rows of the whole table's gradient, same additions in the same order.
  const Tensor dout = RandomFloats({n, d});
  Tensor whole = Tensor::Zeros({vocab, d}, DType::kF32);
  ops::EmbeddingBackward(host_ids, dout, whole);
  Tensor dshard = Strict(Tensor::Zeros({rows, d}, DType::kF32));
  ops::EmbeddingShardBackward(Strict(host_ids), Strict(dout), begin, vocab, dshard);
  EXPECT_TRUE(Bitwise(dshard, whole.Rows(begin, begin + rows)));
}

TEST(StrictDeviceTest, OneShardCrossEntropyStagesAreTheFusedKernel) {
  const int64_t n = 7, vocab = 1500;  // more than one summation block of 1024
  const Tensor logits = RandomFloats({n, vocab});
  std::vector<int32_t> targets(n);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  for (int32_t& x : targets) x = id(Rng());
  targets[2] = -1;  // ignored
  const Tensor host_targets = Ints(targets);
  Tensor fused = Tensor::Empty({n, vocab}, DType::kF32);
  ops::Copy(logits, fused);
  Tensor fused_losses = Tensor::Empty({n}, DType::kF32);
  ops::CrossEntropyForwardBackward(fused, host_targets, 0.125, fused_losses);

  Tensor staged = Strict(logits), targets_s = Strict(host_targets);
  Tensor row_max = Tensor::Empty({n}, DType::kF64, Device::StrictCpu());
  Tensor sums = Tensor::Empty({2, n}, DType::kF64, Device::StrictCpu());
  Tensor losses = Tensor::Empty({n}, DType::kF32, Device::StrictCpu());
  ops::CrossEntropyShardRowMax(staged, row_max);
  ops::CrossEntropyShardSums(staged, targets_s, 0, vocab, row_max, /*store_exp=*/true, sums);
  ops::CrossEntropyShardFinish(staged, targets_s, 0, row_max, sums, /*backward=*/true, 0.125,
                               losses);
  EXPECT_TRUE(Bitwise(losses, fused_losses));
  EXPECT_TRUE(Bitwise(staged, fused));
  EXPECT_EQ(ops::CountTargets(targets_s), n - 1);
  double sum = 0.0;
  for (int64_t t = 0; t < n; ++t) sum += fused_losses.data<float>()[t];
  EXPECT_EQ(ops::SumInOrder(losses), sum);
}

TEST(StrictDeviceTest, RowMovesMatchPlainLoops) {
  const int64_t rows = 10, w = 6;
  const Tensor src = RandomFloats({rows, w});
  std::vector<int32_t> perm(rows);
  for (int i = 0; i < rows; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), Rng());
  const std::vector<int32_t> from(perm.begin(), perm.begin() + 5);
  const std::vector<int32_t> to(perm.rbegin(), perm.rbegin() + 5);
  Tensor dst = RandomFloats({rows, w});
  const Tensor before = Host(dst);
  Tensor strict_dst = Strict(dst);
  ops::CopyRows(Strict(src), Strict(Ints(from)), strict_dst, Strict(Ints(to)));
  Tensor added = Strict(before);
  ops::AddRows(Strict(src), Strict(Ints(from)), added, Strict(Ints(to)));
  const Tensor copied = Host(strict_dst), summed = Host(added);
  for (int64_t r = 0; r < rows; ++r) {
    const auto hit = std::find(to.begin(), to.end(), r);
    for (int64_t c = 0; c < w; ++c) {
      const float old = before.data<float>()[r * w + c];
      const float moved =
          hit == to.end() ? 0.0f : src.data<float>()[from[hit - to.begin()] * w + c];
      EXPECT_EQ(copied.data<float>()[r * w + c], hit == to.end() ? old : moved);
      EXPECT_EQ(summed.data<float>()[r * w + c], hit == to.end() ? old : old + moved);
    }
  }
  // Segments [0, 2), [2, 3), [3, 5) of rows `from`, summed in order.
  Tensor begin = Tensor::Empty({4}, DType::kI64);
  const int64_t bounds[] = {0, 2, 3, 5};
  std::copy(bounds, bounds + 4, begin.data<int64_t>());
  Tensor segments = Tensor::Empty({3, w}, DType::kF32, Device::StrictCpu());
  ops::SegmentSumRows(Strict(src), Strict(Ints(from)), Strict(begin), segments);
  const Tensor got = Host(segments);
  for (int s = 0; s < 3; ++s) {
    for (int64_t c = 0; c < w; ++c) {
      float expected = src.data<float>()[from[bounds[s]] * w + c];
      for (int64_t q = bounds[s] + 1; q < bounds[s + 1]; ++q) {
        expected += src.data<float>()[from[q] * w + c];
      }
      EXPECT_EQ(got.data<float>()[s * w + c], expected);
    }
  }
  Tensor twice = Strict(dst);
  EXPECT_DEATH(ops::CopyRows(Strict(src).Rows(0, 2), Tensor(), twice, Strict(Ints({1, 1}))),
               "dst row 1 is named twice");
}

TEST(StrictDeviceTest, RoutingArithmeticMatchesPlainLoops) {
  const int64_t tokens = 6, n = 4, k = 2;
  Tensor probs = RandomFloats({tokens, n});
  float* q = probs.data<float>();
  for (int64_t t = 0; t < tokens; ++t) {  // rows of a softmax
    float total = 0.0f;
    for (int64_t i = 0; i < n; ++i) total += q[t * n + i] = std::exp(q[t * n + i]);
    for (int64_t i = 0; i < n; ++i) q[t * n + i] /= total;
  }
  const std::vector<int32_t> chosen = {0, 1, 2, 1, 3, 0, 1, 2, 0, 3, 2, 3};
  const Tensor index = Ints(chosen).Reshape({tokens, k});
  const std::vector<double> stats = ops::RoutingStatistics(Strict(index), Strict(probs));
  ASSERT_EQ(stats.size(), static_cast<size_t>(2 * n + 2));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(stats[i], std::count(chosen.begin(), chosen.end(), i));
    double column = 0.0;
    for (int64_t t = 0; t < tokens; ++t) column += q[t * n + i];
    EXPECT_EQ(stats[n + i], column);
  }
  EXPECT_EQ(stats[2 * n], tokens);
  double entropy = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      const double p = q[t * n + i];  // in double, in (t, i) order: the op's arithmetic
      entropy -= p * std::log(p);
    }
  }
  EXPECT_EQ(stats[2 * n + 1], entropy);
  Tensor taken = Tensor::Empty({tokens, k}, DType::kF32, Device::StrictCpu());
  ops::TakeAlongRows(Strict(probs), Strict(index), taken);
  const std::vector<double> row = {0.5, -1.0, 0.25, 3.0};
  Tensor shifted = Strict(probs);
  ops::AddRowVector(row, shifted);
  const Tensor got_taken = Host(taken), got_shifted = Host(shifted);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(got_taken.data<float>()[t * k + j], q[t * n + chosen[t * k + j]]);
    }
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(got_shifted.data<float>()[t * n + i],
                static_cast<float>(static_cast<double>(q[t * n + i]) + row[i]));
    }
  }
  // Expert layout with keep limits: expert e keeps its first limit[e] pairs in pair order.
  const std::vector<int64_t> limit = {2, 1, 3, 0};
  const ops::ExpertLayout layout = ops::BuildExpertLayout(Strict(index), n, limit);
  const ops::ExpertLayout reference = ops::BuildExpertLayout(index, n, limit);
  EXPECT_EQ(layout.counts, reference.counts);
  EXPECT_EQ(layout.offsets, reference.offsets);
  EXPECT_EQ(layout.counts, (std::vector<int64_t>{2, 1, 3, 0}));
  EXPECT_TRUE(Bitwise(layout.position, reference.position));
  EXPECT_EQ(layout.position.device(), Device::StrictCpu());
}

}  // namespace
}  // namespace aoetron
