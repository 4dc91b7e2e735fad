#include "models/dense_ffn.h"

#include <cmath>
#include <string>

namespace aoetron {

DenseSwiGlu::DenseSwiGlu(const ModelConfig& c, int layer, ParameterSet* params,
                         parallel::ProcessGroups& groups)
    : mlp_(params, groups.tensor_parallel(), {"layers." + std::to_string(layer) + ".ffn"}, "w_g",
           c.d_model, c.d_model, c.d_ffn, c.init_std, c.init_std / std::sqrt(2.0 * c.n_layers),
           // Not an expert weight (replicated over dp); GroupedSwiGluExperts splits W_g, W_p by
           // columns and W_o by rows over tp.
           {Sharding::Replicated()}) {}

void DenseSwiGlu::Forward(const Tensor& x, Tensor& y, ActivationArena& arena) {
  mlp_.Forward(x, x, {0, x.dim(0)}, y, arena);
}

void DenseSwiGlu::Backward(const Tensor& dy, double loss_scale, Tensor& dx,
                           ActivationArena& arena) {
  mlp_.Backward(dy, dx, dx, arena);
}

}  // namespace aoetron
