// NcclCommunicator under mpirun: every collective on GPU tensors against the MPI backend on the
// same inputs (bitwise: both reduce in rank order), AllToAllV with random counts, Split, and the
// ordering of collectives against the compute stream.
//
// Needs one GPU per rank on each node (NCCL refuses two ranks on one device). When any rank lacks
// one, every rank skips every test with the reason, so the job still passes on CI and on a
// one-GPU machine (run with -np 1 there: a group of one still exercises the stream and copy
// paths). Inputs are drawn from (seed, rank), the seed broadcast from rank 0 (AOETRON_TEST_SEED
// replays one).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

#include "core/device_transfer.h"
#include "core/ops/elementwise.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"
#include "parallel/nccl/nccl_communicator.h"

namespace aoetron::parallel {
namespace {

DistributedContext* g_context = nullptr;
NcclCommunicator* g_nccl = nullptr;
std::string g_skip_reason;
uint64_t g_seed = 0;

#define SKIP_WITHOUT_GPUS() \
  if (!g_skip_reason.empty()) GTEST_SKIP() << g_skip_reason

Communicator& Mpi() { return g_context->world(); }
Device Gpu() { return Device::Cuda(g_nccl->device()); }

// f32 values from (seed, rank, salt): the same on every run of the job.
Tensor RankValues(int rank, int64_t n, uint64_t salt) {
  std::mt19937_64 rng(g_seed ^ (static_cast<uint64_t>(rank) * 0x9E3779B97F4A7C15ull) ^ salt);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t = Tensor::Empty({n}, DType::kF32);
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = dist(rng);
  return t;
}

Tensor ToHost(const Tensor& device) {
  Tensor host = Tensor::Empty(device.shape(), device.dtype());
  CopyAcrossDevices(device, host);
  return host;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(Nccl, AllReduceMatchesTheMpiBackendBitwise) {
  SKIP_WITHOUT_GPUS();
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{(1 << 20) + 3}}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      const Tensor mine = RankValues(g_nccl->rank(), n, 1);
      Tensor expected = Tensor::Empty({n}, DType::kF32);
      std::memcpy(expected.raw_data(), mine.raw_data(), mine.nbytes());
      Mpi().AllReduce(expected, op);
      Tensor device = CopyToDevice(mine, Gpu());
      g_nccl->AllReduce(device, op);
      EXPECT_TRUE(SameBytes(ToHost(device), expected)) << "n = " << n << " " << ReduceOpName(op);
    }
  }
}

TEST(Nccl, ReduceScatterAndAllGatherMatchTheMpiBackend) {
  SKIP_WITHOUT_GPUS();
  const int p = g_nccl->size();
  const int64_t block = 777;
  const Tensor mine = RankValues(g_nccl->rank(), p * block, 2);
  Tensor expected = Tensor::Empty({block}, DType::kF32);
  Mpi().ReduceScatter(mine, expected);
  Tensor out = Tensor::Empty({block}, DType::kF32, Gpu());
  g_nccl->ReduceScatter(CopyToDevice(mine, Gpu()), out);
  EXPECT_TRUE(SameBytes(ToHost(out), expected));

  Tensor gathered_expected = Tensor::Empty({p * block}, DType::kF32);
  Mpi().AllGather(expected, gathered_expected);
  Tensor gathered = Tensor::Empty({p * block}, DType::kF32, Gpu());
  g_nccl->AllGather(out, gathered);
  EXPECT_TRUE(SameBytes(ToHost(gathered), gathered_expected));
}

TEST(Nccl, AllToAllVAndBroadcastMoveEveryRow) {
  SKIP_WITHOUT_GPUS();
  const int p = g_nccl->size(), rank = g_nccl->rank();
  const int64_t width = 5;
  std::mt19937_64 rng(g_seed + 17 * rank);
  std::vector<int64_t> send_rows(p);
  int64_t total = 0;
  for (int r = 0; r < p; ++r) total += send_rows[r] = static_cast<int64_t>(rng() % 50);
  const std::vector<int64_t> recv_rows = Mpi().ExchangeCounts(send_rows);
  Tensor send = Tensor::Empty({total, width}, DType::kI32);
  for (int64_t i = 0; i < send.numel(); ++i) send.data<int32_t>()[i] = rank * 1000000 + i;
  const Tensor expected = Mpi().AllToAllV(send, send_rows, recv_rows);
  Tensor recv = Tensor::Empty(expected.shape(), DType::kI32, Gpu());
  ops::Fill(recv, -1.0);
  g_nccl->AllToAllV(CopyToDevice(send, Gpu()), send_rows, recv, recv_rows);
  EXPECT_TRUE(SameBytes(ToHost(recv), expected));

  Tensor value = CopyToDevice(RankValues(rank, 333, 3), Gpu());
  g_nccl->Broadcast(value, p - 1);
  EXPECT_TRUE(SameBytes(ToHost(value), RankValues(p - 1, 333, 3)));
}

TEST(Nccl, CollectivesAreOrderedWithTheComputeStream) {
  SKIP_WITHOUT_GPUS();
  // Fill (compute stream) → AllReduce (communication stream) → Scale (compute stream), with no
  // host synchronisation in between: the events must order all three.
  const int p = g_nccl->size();
  Tensor x = Tensor::Empty({1 << 22}, DType::kF32, Gpu());
  ops::Fill(x, static_cast<double>(g_nccl->rank() + 1));
  g_nccl->AllReduce(x, ReduceOp::kSum);
  ops::Scale(x, 2.0);
  const Tensor host = ToHost(x);
  const float expected = static_cast<float>(p * (p + 1));  // 2 · Σ_{r=1..p} r
  int64_t wrong = 0;
  for (int64_t i = 0; i < host.numel(); ++i) wrong += host.data<float>()[i] != expected;
  EXPECT_EQ(wrong, 0);
}

TEST(Nccl, SplitMakesWorkingSubgroups) {
  SKIP_WITHOUT_GPUS();
  const int rank = g_nccl->rank();
  std::unique_ptr<Communicator> part = g_nccl->Split(rank % 2, rank, "parity");
  Tensor x = Tensor::Empty({10}, DType::kI64, Gpu());
  ops::Fill(x, static_cast<double>(rank));
  part->AllReduce(x, ReduceOp::kSum);
  int64_t expected = 0;
  for (int r = rank % 2; r < g_nccl->size(); r += 2) expected += r;
  const Tensor host = ToHost(x);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(host.data<int64_t>()[i], expected);
}

}  // namespace
}  // namespace aoetron::parallel

int main(int argc, char** argv) {
  using namespace aoetron;
  using namespace aoetron::parallel;
  DistributedOptions options;
  options.collective_timeout = absl::Seconds(120);
  options.check_collective_agreement = true;
  absl::StatusOr<DistributedContext> context = InitializeDistributed(&argc, &argv, options);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  g_context = &*context;
  if (context->world_rank() != 0) GTEST_FLAG_SET(brief, true);
  ::testing::InitGoogleTest(&argc, argv);

  // Every rank must agree on skipping: one rank without a GPU skips them all.
  const int visible = CudaDeviceCount();
  int32_t missing = visible < context->local_size() ? 1 : 0;
  context->world().AllReduce(Tensor::Wrap(&missing, {1}, DType::kI32), ReduceOp::kMax);
  std::unique_ptr<NcclCommunicator> nccl;
  if (missing) {
    g_skip_reason = "needs one GPU per rank on every node (" + std::to_string(visible) +
                    " visible here for " + std::to_string(context->local_size()) +
                    " local ranks; " + NoCudaDeviceReason() + ")";
  } else {
    SetCudaDevice(DeviceForLocalRank(context->local_rank()));
    nccl = NcclCommunicator::Create(context->world());
    g_nccl = nccl.get();
  }
  int64_t seed = 0;
  if (const char* fixed = std::getenv("AOETRON_TEST_SEED")) {
    seed = std::stoll(fixed);
  } else {
    seed = static_cast<int64_t>(std::random_device{}() >> 1);
  }
  context->world().Broadcast(Tensor::Wrap(&seed, {1}, DType::kI64), 0);
  g_seed = static_cast<uint64_t>(seed);
  if (context->world_rank() == 0) {
    std::cout << "world size " << context->world_size() << ", test seed " << seed << std::endl;
  }
  int32_t failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  context->world().AllReduce(Tensor::Wrap(&failed, {1}, DType::kI32), ReduceOp::kMax);
  nccl.reset();
  const absl::Status finalized = context->Finalize();
  if (!finalized.ok()) {
    std::cerr << finalized << "\n";
    return 1;
  }
  return failed;
}
