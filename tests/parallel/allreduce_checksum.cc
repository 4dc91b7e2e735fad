// allreduce_checksum: prints a hash of AllReduce results on fixed data, one line per rank and
// case. check_allreduce_determinism.sh runs it twice (over shared memory, then over TCP) and
// requires identical lines on every rank and in both runs.
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "parallel/distributed.h"

int main(int argc, char** argv) {
  using namespace aoetron;
  using namespace aoetron::parallel;
  absl::StatusOr<DistributedContext> context = InitializeDistributed(&argc, &argv);
  if (!context.ok()) {
    std::fprintf(stderr, "%s\n", context.status().ToString().c_str());
    return 1;
  }
  Communicator& world = context->world();
  const int rank = world.rank();
  for (int64_t n : {int64_t{1000}, int64_t{1} << 20, (int64_t{5} << 20) + 7}) {
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) {
      // Magnitudes from 2^-20 to 2^20: the rounding of a sum depends on its order.
      const float u = UniformAt(42, static_cast<uint64_t>(rank), 2 * i);
      const float v = UniformAt(42, static_cast<uint64_t>(rank), 2 * i + 1);
      x[i] = std::ldexp(2.0f * u - 1.0f, static_cast<int>(v * 41.0f) - 20);
    }
    world.AllReduce(Tensor::Wrap(x.data(), {n}, DType::kF32), ReduceOp::kSum);
    const uint64_t hash =
        StableHash(std::string_view(reinterpret_cast<const char*>(x.data()), n * sizeof(float)));
    std::printf("allreduce f32[%ld] over %d ranks: %016lx\n", static_cast<long>(n), world.size(),
                static_cast<unsigned long>(hash));
  }
  std::fflush(stdout);
  return context->Finalize().ok() ? 0 : 1;
}
