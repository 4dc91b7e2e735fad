#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include "parallel/abort.h"
#include "tests/parallel/mpi_test_environment.h"

namespace aoetron::parallel::mpi_test {
namespace {
DistributedContext* g_context = nullptr;
uint64_t g_seed = 0;
}  // namespace

DistributedContext& Context() { return *g_context; }
uint64_t TestSeed() { return g_seed; }

}  // namespace aoetron::parallel::mpi_test

int main(int argc, char** argv) {
  using namespace aoetron;
  using namespace aoetron::parallel;
  DistributedOptions options;
  options.collective_timeout = absl::Seconds(60);
  options.check_collective_agreement = true;
  absl::StatusOr<DistributedContext> context = InitializeDistributed(&argc, &argv, options);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  mpi_test::g_context = &*context;
  // Rank 0 prints the whole run; the others print only their failures.
  if (context->world_rank() != 0) GTEST_FLAG_SET(brief, true);
  ::testing::InitGoogleTest(&argc, argv);

  int64_t seed = 0;
  if (const char* fixed = std::getenv("AOETRON_TEST_SEED")) {
    seed = std::stoll(fixed);
  } else {
    seed = static_cast<int64_t>(std::random_device{}() >> 1);
  }
  context->world().Broadcast(Tensor::Wrap(&seed, {1}, DType::kI64), 0);
  mpi_test::g_seed = static_cast<uint64_t>(seed);
  if (context->world_rank() == 0) {
    std::cout << "world size " << context->world_size() << ", MPI thread level "
              << context->thread_level() << ", test seed " << seed << " (AOETRON_TEST_SEED=" << seed
              << " replays it)" << std::endl;
  }

  int32_t failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  context->world().AllReduce(Tensor::Wrap(&failed, {1}, DType::kI32), ReduceOp::kMax);
  if (context->world_rank() == 0 && failed) {
    std::cout << "some rank failed a test (seed " << seed << ")" << std::endl;
  }
  const absl::Status finalized = context->Finalize();
  if (!finalized.ok()) {
    std::cerr << finalized << "\n";
    return 1;
  }
  return failed;
}
