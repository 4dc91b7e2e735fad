// ParameterSet: tensor-parallel boxes and layout-independent initialisation.
#include "models/parameter.h"

#include <gtest/gtest.h>

#include <cstring>

namespace aoetron {
namespace {

// Registers a [6, 8] matrix split along `dim` (or whole when dim < 0) plus an expert weight.
void AddTestParameters(ParameterSet& set, int dim) {
  Parameter matrix;
  matrix.name = "w";
  matrix.global_shape = {6, 8};
  matrix.sharding = dim >= 0 ? Sharding::TensorSplit(dim) : Sharding::Replicated();
  matrix.init_std = 0.02;
  set.Add(std::move(matrix));
  Parameter expert;
  expert.name = "experts.3.w_up";
  expert.global_shape = {4, 6};
  expert.sharding = Sharding::Expert(3, dim >= 0 ? 1 : -1);
  expert.init_std = 1.0;
  set.Add(std::move(expert));
}

// Every tp rank's box, placed at its offset, rebuilds exactly the one-rank initialisation.
TEST(ParameterSetTest, TensorSplitBoxesTileTheGlobalInitialisation) {
  for (int dim : {0, 1}) {
    for (int tp : {2, 3}) {
      if ((dim == 0 ? 6 : 8) % tp != 0) continue;
      ParameterSet whole;
      AddTestParameters(whole, -1);
      whole.Allocate();
      whole.Initialize(7);
      std::vector<float> rebuilt(6 * 8, -1.0f);
      for (int rank = 0; rank < tp; ++rank) {
        ParameterSet part(DType::kF32, rank, tp);
        AddTestParameters(part, dim);
        part.Allocate();
        part.Initialize(7);
        const Parameter& p = part[0];
        ASSERT_EQ(p.local_shape[dim], p.global_shape[dim] / tp);
        ASSERT_EQ(p.local_offset[dim], rank * p.global_shape[dim] / tp);
        const float* local = p.value.data<float>();
        for (int64_t i = 0; i < p.local_shape[0]; ++i) {
          for (int64_t j = 0; j < p.local_shape[1]; ++j) {
            rebuilt[(i + p.local_offset[0]) * 8 + j + p.local_offset[1]] =
                local[i * p.local_shape[1] + j];
          }
        }
        const Parameter& e = part[1];
        EXPECT_EQ(e.local_shape, (Shape{4, 6 / (6 % tp == 0 ? tp : 1)}));
      }
      EXPECT_EQ(0, std::memcmp(rebuilt.data(), whole[0].value.data<float>(), rebuilt.size() * 4))
          << "dim " << dim << " tp " << tp;
    }
  }
}

TEST(ParameterSetDeathTest, RejectsIndivisibleSplit) {
  ParameterSet set(DType::kF32, 0, 5);
  Parameter p;
  p.name = "w";
  p.global_shape = {6, 8};
  p.sharding = Sharding::TensorSplit(1);
  EXPECT_DEATH(set.Add(std::move(p)), "not divisible by the tensor-parallel size 5");
}

}  // namespace
}  // namespace aoetron
