// Every collective of the MPI backend against an expectation computed locally, on fresh random
// data, at whatever world size mpirun gives (ctest runs np 2 and np 4).
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "parallel/mpi/mpi_communicator.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::parallel {
namespace {

using mpi_test::Context;
using mpi_test::TestSeed;

Communicator& World() { return Context().world(); }

// Rank r's element i for test stream `stream`. Floats span 2^-20 .. 2^20 in magnitude, so the
// order of a sum changes its rounding: a reduction in any other order than the contract's would
// not match bitwise.
template <typename T>
T Value(uint64_t stream, int rank, int64_t i) {
  const uint64_t s = stream * 1000003 + static_cast<uint64_t>(rank);
  const float u = UniformAt(TestSeed(), s, 2 * static_cast<uint64_t>(i));
  if constexpr (std::is_floating_point_v<T>) {
    const float v = UniformAt(TestSeed(), s, 2 * static_cast<uint64_t>(i) + 1);
    const int exponent = static_cast<int>(v * 41.0f) - 20;
    return static_cast<T>(std::ldexp(static_cast<double>(u) * 2.0 - 1.0, exponent) +
                          (std::is_same_v<T, double> ? static_cast<double>(v) * 1e-9 : 0.0));
  } else {
    return static_cast<T>(static_cast<int64_t>(u * 2e6f) - 1000000);
  }
}

template <typename T>
std::vector<T> RankData(uint64_t stream, int rank, int64_t n) {
  std::vector<T> data(n);
  for (int64_t i = 0; i < n; ++i) data[i] = Value<T>(stream, rank, i);
  return data;
}

// The contract: ((x_0 + x_1) + x_2) + ... in T.
template <typename T>
std::vector<T> RankOrderSum(uint64_t stream, int ranks, int64_t n) {
  std::vector<T> sum = RankData<T>(stream, 0, n);
  for (int r = 1; r < ranks; ++r) {
    const std::vector<T> next = RankData<T>(stream, r, n);
    for (int64_t i = 0; i < n; ++i) sum[i] += next[i];
  }
  return sum;
}

template <typename T>
bool BitwiseEqual(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <typename T>
void ExpectAllReduceSumIsRankOrderSum(Communicator& comm, uint64_t stream, int64_t n) {
  std::vector<T> mine = RankData<T>(stream, comm.rank(), n);
  comm.AllReduce(Tensor::Wrap(mine.data(), {n}, DTypeOf<T>::value), ReduceOp::kSum);
  const std::vector<T> expected = RankOrderSum<T>(stream, comm.size(), n);
  EXPECT_TRUE(BitwiseEqual(mine, expected))
      << DTypeName(DTypeOf<T>::value) << " n=" << n << " group " << comm.name();
}

const int64_t kSizes[] = {0, 1, 3, 5, 1000, (int64_t{1} << 18) + 3};

TEST(CollectivesTest, AllReduceSumIsTheRankOrderSumBitwise) {
  uint64_t stream = 100;
  for (int64_t n : kSizes) {
    ExpectAllReduceSumIsRankOrderSum<float>(World(), ++stream, n);
    ExpectAllReduceSumIsRankOrderSum<double>(World(), ++stream, n);
    ExpectAllReduceSumIsRankOrderSum<int32_t>(World(), ++stream, n);
    ExpectAllReduceSumIsRankOrderSum<int64_t>(World(), ++stream, n);
  }
}

// A tiny reduction segment exercises the segmented path; the result may not change.
TEST(CollectivesTest, ReductionSegmentsDoNotChangeResults) {
  MPI_Comm dup;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &dup), MPI_SUCCESS);
  CollectiveOptions options = Context().collective_options();
  options.reduction_segment_bytes = 40;  // 10 floats
  MpiCommunicator small_segments(dup, /*take_ownership=*/true, "world-small-segments", options);
  ExpectAllReduceSumIsRankOrderSum<float>(small_segments, 201, 1003);
  ExpectAllReduceSumIsRankOrderSum<double>(small_segments, 202, 997);
  ExpectAllReduceSumIsRankOrderSum<float>(small_segments, 203, 2);  // fewer elements than ranks

  const int p = small_segments.size();
  const int64_t block = 101;
  std::vector<float> input = RankData<float>(204, small_segments.rank(), p * block);
  std::vector<float> output(block);
  small_segments.ReduceScatter(Tensor::Wrap(input.data(), {p * block}, DType::kF32),
                               Tensor::Wrap(output.data(), {block}, DType::kF32));
  const std::vector<float> sum = RankOrderSum<float>(204, p, p * block);
  EXPECT_TRUE(
      BitwiseEqual(output, std::vector<float>(sum.begin() + small_segments.rank() * block,
                                              sum.begin() + (small_segments.rank() + 1) * block)));
}

// Started AllReduces complete in whatever order the ranks' timing gives, while other
// collectives run on the same group: the ranks poll a different number of times and rank 0 is
// late, yet every result is the rank-order sum bitwise (MPI sees the same call order everywhere).
TEST(CollectivesTest, StartedAllReducesInterleavedWithOtherCollectives) {
  MPI_Comm dup;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &dup), MPI_SUCCESS);
  CollectiveOptions options = Context().collective_options();
  options.reduction_segment_bytes = 4000;  // several segments per call
  MpiCommunicator comm(dup, /*take_ownership=*/true, "world-started", options);
  const int me = comm.rank(), p = comm.size();
  const int64_t sizes[] = {1003, 5, 40000, 0, 777};
  std::vector<std::vector<float>> data;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    data.push_back(RankData<float>(300 + i, me, sizes[i]));
  }
  std::vector<std::unique_ptr<PendingCollective>> pending;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    pending.push_back(
        comm.StartAllReduce(Tensor::Wrap(data[i].data(), {sizes[i]}, DType::kF32), ReduceOp::kSum));
    for (int poll = 0; poll < me * 3; ++poll) pending.back()->Test();
    if (me == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (i == 1) {  // a blocking collective of another kind while two are pending
      std::vector<int64_t> counts(p, i);
      EXPECT_EQ(comm.ExchangeCounts(counts), counts);
    }
    if (i == 2) {  // and a blocking AllReduce
      ExpectAllReduceSumIsRankOrderSum<double>(comm, 310, 999);
    }
  }
  // Waited for newest first.
  for (size_t i = std::size(sizes); i-- > 0;) {
    pending[i]->Wait();
    EXPECT_TRUE(pending[i]->Test());
    EXPECT_TRUE(BitwiseEqual(data[i], RankOrderSum<float>(300 + i, p, sizes[i]))) << "call " << i;
  }
}

TEST(CollectivesTest, AllReduceMaxMatchesAndPropagatesNaN) {
  const int p = World().size();
  const int64_t n = 777;
  std::vector<float> mine = RankData<float>(300, World().rank(), n);
  if (World().rank() == p - 1) mine[3] = std::numeric_limits<float>::quiet_NaN();
  World().AllReduce(Tensor::Wrap(mine.data(), {n}, DType::kF32), ReduceOp::kMax);
  for (int64_t i = 0; i < n; ++i) {
    if (i == 3) {
      EXPECT_TRUE(std::isnan(mine[i]));
      continue;
    }
    float expected = Value<float>(300, 0, i);
    for (int r = 1; r < p; ++r) expected = std::max(expected, Value<float>(300, r, i));
    ASSERT_EQ(mine[i], expected) << "element " << i;
  }
  std::vector<int64_t> ints = RankData<int64_t>(301, World().rank(), 50);
  World().AllReduce(Tensor::Wrap(ints.data(), {50}, DType::kI64), ReduceOp::kMax);
  for (int64_t i = 0; i < 50; ++i) {
    int64_t expected = Value<int64_t>(301, 0, i);
    for (int r = 1; r < p; ++r) expected = std::max(expected, Value<int64_t>(301, r, i));
    ASSERT_EQ(ints[i], expected);
  }
}

TEST(CollectivesTest, AllReduceIsBitwiseIdenticalOnEveryRankAndEveryRepeat) {
  const int64_t n = (int64_t{1} << 20) + 17;
  std::vector<float> first = RankData<float>(400, World().rank(), n);
  std::vector<float> second = first;
  World().AllReduce(Tensor::Wrap(first.data(), {n}, DType::kF32), ReduceOp::kSum);
  World().AllReduce(Tensor::Wrap(second.data(), {n}, DType::kF32), ReduceOp::kSum);
  EXPECT_TRUE(BitwiseEqual(first, second));
  const int64_t hash = static_cast<int64_t>(
      StableHash(std::string_view(reinterpret_cast<const char*>(first.data()), n * sizeof(float))));
  std::vector<int64_t> hashes(World().size());
  World().AllGather(Tensor::Wrap(const_cast<int64_t*>(&hash), {1}, DType::kI64),
                    Tensor::Wrap(hashes.data(), {World().size()}, DType::kI64));
  for (int r = 0; r < World().size(); ++r) EXPECT_EQ(hashes[r], hash) << "rank " << r;
}

TEST(CollectivesTest, ReduceScatterIsTheOwnBlockOfTheAllReduce) {
  const int p = World().size();
  for (int64_t rows : {0, 1, 9}) {
    const int64_t width = 3;
    const int64_t total = p * rows * width;
    std::vector<float> input = RankData<float>(500 + rows, World().rank(), total);
    std::vector<float> reduced = input;
    std::vector<float> output(rows * width);
    World().ReduceScatter(Tensor::Wrap(input.data(), {p * rows, width}, DType::kF32),
                          Tensor::Wrap(output.data(), {rows, width}, DType::kF32));
    World().AllReduce(Tensor::Wrap(reduced.data(), {total}, DType::kF32), ReduceOp::kSum);
    const int64_t begin = World().rank() * rows * width;
    EXPECT_TRUE(BitwiseEqual(output, std::vector<float>(reduced.begin() + begin,
                                                        reduced.begin() + begin + rows * width)))
        << "rows " << rows;
  }
  std::vector<int64_t> ints = RankData<int64_t>(510, World().rank(), p * 4);
  std::vector<int64_t> out(4);
  World().ReduceScatter(Tensor::Wrap(ints.data(), {p * 4}, DType::kI64),
                        Tensor::Wrap(out.data(), {4}, DType::kI64));
  const std::vector<int64_t> sum = RankOrderSum<int64_t>(510, p, p * 4);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(out[j], sum[World().rank() * 4 + j]);
}

template <typename T>
void ExpectAllGather(uint64_t stream, int64_t n, bool in_place) {
  const int p = World().size();
  std::vector<T> output(p * n);
  std::vector<T> input = RankData<T>(stream, World().rank(), n);
  Tensor in = Tensor::Wrap(input.data(), {n}, DTypeOf<T>::value);
  if (in_place) {
    std::copy(input.begin(), input.end(), output.begin() + World().rank() * n);
    in = Tensor::Wrap(output.data() + World().rank() * n, {n}, DTypeOf<T>::value);
  }
  World().AllGather(in, Tensor::Wrap(output.data(), {p, n}, DTypeOf<T>::value));
  std::vector<T> expected;
  for (int r = 0; r < p; ++r) {
    const std::vector<T> block = RankData<T>(stream, r, n);
    expected.insert(expected.end(), block.begin(), block.end());
  }
  EXPECT_TRUE(BitwiseEqual(output, expected)) << "n=" << n << " in_place=" << in_place;
}

TEST(CollectivesTest, AllGatherConcatenatesInRankOrder) {
  for (int64_t n : {0, 1, 1000}) {
    ExpectAllGather<float>(600, n, false);
    ExpectAllGather<float>(601, n, true);
    ExpectAllGather<int64_t>(602, n, false);
    ExpectAllGather<double>(603, n, true);
  }
  // Moves are dtype-agnostic: bf16 words arrive untouched.
  const int p = World().size();
  std::vector<BFloat16> mine(5);
  for (int i = 0; i < 5; ++i) mine[i].bits = static_cast<uint16_t>(World().rank() * 1000 + i);
  std::vector<BFloat16> all(p * 5);
  World().AllGather(Tensor::Wrap(mine.data(), {5}, DType::kBF16),
                    Tensor::Wrap(all.data(), {p * 5}, DType::kBF16));
  for (int r = 0; r < p; ++r) {
    for (int i = 0; i < 5; ++i) EXPECT_EQ(all[r * 5 + i].bits, r * 1000 + i);
  }
}

// Rows sent from rank `src` to rank `dst`: a count known to every rank. Many are zero, and in
// the all-quiet variant rank 0 sends nothing at all.
int64_t Rows(uint64_t stream, int src, int dst, bool rank0_quiet) {
  if (rank0_quiet && src == 0) return 0;
  const uint64_t k = UniformIntAt(TestSeed(), stream, static_cast<uint64_t>(src * 64 + dst), 7);
  return k < 3 ? 0 : static_cast<int64_t>(k) - 2;  // 0 with probability 3/7, else 1..4
}

// Element c of row j sent from src to dst; identifies all four.
float RowElement(int src, int dst, int64_t j, int64_t c) {
  return static_cast<float>(src * 1000000 + dst * 10000 + j * 10 + c);
}

void ExpectAllToAllV(uint64_t stream, Shape row_shape, bool rank0_quiet) {
  const int p = World().size();
  const int me = World().rank();
  int64_t width = 1;
  for (int64_t d : row_shape) width *= d;
  std::vector<int64_t> send_rows(p), expected_recv_rows(p);
  int64_t send_total = 0;
  for (int dst = 0; dst < p; ++dst) {
    send_rows[dst] = Rows(stream, me, dst, rank0_quiet);
    expected_recv_rows[dst] = Rows(stream, dst, me, rank0_quiet);
    send_total += send_rows[dst];
  }
  Shape send_shape = {send_total};
  send_shape.insert(send_shape.end(), row_shape.begin(), row_shape.end());
  Tensor send = Tensor::Empty(send_shape, DType::kF32);
  int64_t row = 0;
  for (int dst = 0; dst < p; ++dst) {
    for (int64_t j = 0; j < send_rows[dst]; ++j, ++row) {
      for (int64_t c = 0; c < width; ++c)
        send.data<float>()[row * width + c] = RowElement(me, dst, j, c);
    }
  }
  const std::vector<int64_t> recv_rows = World().ExchangeCounts(send_rows);
  ASSERT_EQ(recv_rows, expected_recv_rows);
  Tensor recv = World().AllToAllV(send, send_rows, recv_rows);
  row = 0;
  for (int src = 0; src < p; ++src) {
    for (int64_t j = 0; j < recv_rows[src]; ++j, ++row) {
      for (int64_t c = 0; c < width; ++c) {
        ASSERT_EQ(recv.data<float>()[row * width + c], RowElement(src, me, j, c))
            << "row " << j << " from rank " << src;
      }
    }
  }
  EXPECT_EQ(row, recv.dim(0));
}

TEST(CollectivesTest, AllToAllVWithUnevenAndZeroCounts) {
  for (uint64_t stream = 700; stream < 706; ++stream) {
    ExpectAllToAllV(stream, {1}, false);
    ExpectAllToAllV(stream, {3, 2}, false);
    ExpectAllToAllV(stream, {5}, true);
  }
}

TEST(CollectivesTest, AllToAllVOfIntegersIntoACallerBuffer) {
  const int p = World().size();
  const int me = World().rank();
  // Rank i sends i + j rows of one i64 to rank j: rank j receives i + j rows from each i.
  std::vector<int64_t> send_rows(p), recv_rows(p);
  std::vector<int64_t> send;
  for (int j = 0; j < p; ++j) {
    send_rows[j] = me + j;
    recv_rows[j] = j + me;
    for (int k = 0; k < me + j; ++k) send.push_back(me * 100 + j);
  }
  std::vector<int64_t> recv(std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0}));
  World().AllToAllV(
      Tensor::Wrap(send.data(), {static_cast<int64_t>(send.size())}, DType::kI64), send_rows,
      Tensor::Wrap(recv.data(), {static_cast<int64_t>(recv.size())}, DType::kI64), recv_rows);
  size_t at = 0;
  for (int i = 0; i < p; ++i) {
    for (int k = 0; k < i + me; ++k) EXPECT_EQ(recv[at++], i * 100 + me);
  }
}

TEST(CollectivesTest, BroadcastFromEveryRoot) {
  for (int root = 0; root < World().size(); ++root) {
    std::vector<double> data = RankData<double>(800 + root, World().rank(), 333);
    World().Broadcast(Tensor::Wrap(data.data(), {3, 111}, DType::kF64), root);
    EXPECT_TRUE(BitwiseEqual(data, RankData<double>(800 + root, root, 333))) << "root " << root;
  }
}

TEST(CollectivesTest, BarrierWaitsForTheSlowestRank) {
  World().Barrier();
  const auto start = std::chrono::steady_clock::now();
  if (World().rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  World().Barrier();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.25);
}

// seconds_in_collectives counts a rank's time inside calls, waiting for a late peer included.
TEST(CollectivesTest, SecondsInCollectivesCountTheWaitForALatePeer) {
  World().Barrier();
  const double before = World().seconds_in_collectives();
  if (World().rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double value = 1.0;
  World().AllReduce(Tensor::Wrap(&value, {1}, DType::kF64), ReduceOp::kSum);
  const double spent = World().seconds_in_collectives() - before;
  EXPECT_EQ(value, static_cast<double>(World().size()));
  if (World().rank() == 0) {
    // Rank 0 arrived last; its call is short (seconds, not the 0.3 s it slept).
    EXPECT_LT(spent, 0.25);
  } else {
    EXPECT_GE(spent, 0.25);  // waited for rank 0's 0.3 s sleep
  }
  // Every call adds; nothing else does.
  const double after_allreduce = World().seconds_in_collectives();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(World().seconds_in_collectives(), after_allreduce);
  std::vector<int64_t> counts(World().size(), 1);
  World().ExchangeCounts(counts);
  EXPECT_GT(World().seconds_in_collectives(), after_allreduce);
}

TEST(CollectivesTest, SplitIntoEvenAndOddRanks) {
  const int me = World().rank();
  std::unique_ptr<Communicator> half = World().Split(me % 2, me, "parity");
  EXPECT_EQ(half->name(), "parity");
  EXPECT_EQ(half->size(), (World().size() + 1 - me % 2) / 2);
  EXPECT_EQ(half->rank(), me / 2);
  int64_t value = me;
  half->AllReduce(Tensor::Wrap(&value, {1}, DType::kI64), ReduceOp::kSum);
  int64_t expected = 0;
  for (int r = me % 2; r < World().size(); r += 2) expected += r;
  EXPECT_EQ(value, expected);
}

}  // namespace
}  // namespace aoetron::parallel
