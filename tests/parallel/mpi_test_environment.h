// Shared state of the multi-rank GoogleTest binaries (run under mpirun by ctest).
//
// mpi_test_main.cc initializes the distributed context with a short collective timeout and the
// agreement check on, so a test that desynchronises the ranks ends the job with a message
// instead of hanging; then every rank runs every test, and the job fails if any rank failed.
// Test data is random and fresh each run: rank 0 draws the seed and broadcasts it (set
// AOETRON_TEST_SEED to replay one). Every rank can compute every rank's data from (seed, rank),
// so expectations are computed locally.
#pragma once

#include <cstdint>

#include "parallel/distributed.h"

namespace aoetron::parallel::mpi_test {

DistributedContext& Context();
uint64_t TestSeed();

}  // namespace aoetron::parallel::mpi_test
