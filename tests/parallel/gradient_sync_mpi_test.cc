// GradientSync under mpirun (world = dp): the overlapped form (StartStep, GradientsReadyFrom as
// backward would report, Finish) gives bitwise the blocking AllReduce's result, the rank-order
// sum, whatever the ranks' timing; the local finite check names the rank holding a NaN.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "parallel/gradient_sync.h"
#include "parallel/process_groups.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::parallel {
namespace {

using mpi_test::Context;
using mpi_test::TestSeed;

// Segments of irregular sizes (one is empty) covering `numel` elements.
std::vector<FlatSegment> Segments(int64_t* numel) {
  const int64_t sizes[] = {300, 7, 0, 1500, 64, 999, 1, 2048, 333};
  std::vector<FlatSegment> segments;
  int64_t offset = 0;
  for (int64_t n : sizes) {
    FlatSegment s;
    s.offset = offset;
    s.numel = n;
    segments.push_back(s);
    offset += n;
  }
  *numel = offset;
  return segments;
}

std::vector<float> RankGradients(int rank, int64_t n) {
  std::vector<float> g(n);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = UniformAt(TestSeed(), 900 + rank, i) * 2.0f - 1.0f;
  }
  return g;
}

struct Grid {
  ProcessGrid grid;
  ProcessGroups groups;
};

Grid DataParallelGroups() {
  DistributedContext& context = Context();
  absl::StatusOr<ProcessGrid> grid =
      ProcessGrid::Create(context.world_size(), context.world_rank(), 1, 1);
  AOETRON_CHECK(grid.ok()) << grid.status();
  absl::StatusOr<ProcessGroups> groups = CreateProcessGroups(*grid, context.world());
  AOETRON_CHECK(groups.ok()) << groups.status();
  return {*grid, std::move(*groups)};
}

TEST(GradientSyncTest, OverlappedSyncEqualsTheBlockingOneBitwise) {
  Grid g = DataParallelGroups();
  const int me = g.grid.dp_rank(), p = g.grid.dp_size();
  int64_t numel = 0;
  const std::vector<FlatSegment> segments = Segments(&numel);
  // The rank-order sum: ((g_0 + g_1) + g_2) + ...
  std::vector<float> expected = RankGradients(0, numel);
  for (int r = 1; r < p; ++r) {
    const std::vector<float> next = RankGradients(r, numel);
    for (int64_t i = 0; i < numel; ++i) expected[i] += next[i];
  }
  for (int64_t bucket_bytes : {int64_t{4} * 500, int64_t{4} << 20}) {
    SCOPED_TRACE(bucket_bytes);
    std::vector<float> blocking = RankGradients(me, numel);
    GradientSync blocking_sync(Tensor::Wrap(blocking.data(), {numel}, DType::kF32), segments,
                               g.groups, bucket_bytes);
    blocking_sync.AllReduce();
    EXPECT_EQ(std::memcmp(blocking.data(), expected.data(), numel * sizeof(float)), 0);

    std::vector<float> overlapped = RankGradients(me, numel);
    GradientSync sync(Tensor::Wrap(overlapped.data(), {numel}, DType::kF32), segments, g.groups,
                      bucket_bytes);
    sync.StartStep();
    // Backward reports finished suffixes, last segment first; ranks arrive at different times.
    for (int first : {8, 7, 5, 3, 2, 0}) {
      if (me == 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
      sync.GradientsReadyFrom(first);
    }
    sync.Finish();
    EXPECT_TRUE(sync.local_gradients_finite());
    EXPECT_EQ(std::memcmp(overlapped.data(), expected.data(), numel * sizeof(float)), 0);
  }
}

TEST(GradientSyncTest, LocalFiniteCheckHappensBeforeTheSum) {
  Grid g = DataParallelGroups();
  const int me = g.grid.dp_rank(), p = g.grid.dp_size();
  int64_t numel = 0;
  const std::vector<FlatSegment> segments = Segments(&numel);
  std::vector<float> grads = RankGradients(me, numel);
  const int culprit = p - 1;
  if (me == culprit) grads[1234] = std::numeric_limits<float>::quiet_NaN();
  GradientSync sync(Tensor::Wrap(grads.data(), {numel}, DType::kF32), segments, g.groups, 4 * 500);
  sync.StartStep();
  sync.Finish();
  // After the sum every rank holds the NaN; only the culprit saw it locally.
  EXPECT_TRUE(std::isnan(grads[1234]));
  EXPECT_EQ(sync.local_gradients_finite(), me != culprit) << "rank " << me;
}

}  // namespace
}  // namespace aoetron::parallel
