#include "core/optim/adamw.h"

#include <cmath>

#include "core/check.h"
#include "core/ops/cuda/kernels.h"

namespace aoetron {
namespace {

void CheckAdamWOperand(const char* name, const Tensor& t, const Tensor& param) {
  AOETRON_CHECK(t.defined()) << "AdamWUpdate: " << name << " is an undefined tensor";
  AOETRON_CHECK(!t.device().is_cuda() || CudaBackendBuilt())
      << "no CUDA kernel for AdamWUpdate in this build (built without CUDA): " << name << " is "
      << t.DebugString();
  AOETRON_CHECK(t.device() == param.device())
      << "AdamWUpdate: " << name << " " << t.DebugString() << " is not on param's device "
      << param.device().ToString();
  AOETRON_CHECK(t.dtype() == DType::kF32)
      << "AdamWUpdate: " << name << " must be f32, got " << t.DebugString();
  AOETRON_CHECK(t.shape() == param.shape())
      << "AdamWUpdate: " << name << " must have param's shape " << ShapeToString(param.shape())
      << ", got " << t.DebugString();
}

}  // namespace

void AdamWUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, float lr,
                 float weight_decay, const AdamWHyperParams& hp, int64_t step) {
  const DeviceAccessScope kernel_access;
  CheckAdamWOperand("param", param, param);
  CheckAdamWOperand("grad", grad, param);
  CheckAdamWOperand("m", m, param);
  CheckAdamWOperand("v", v, param);
  AOETRON_CHECK(step >= 1) << "AdamWUpdate: step is 1-based, got " << step;

  // Bias corrections 1 − β^s in double: for large s, β^s underflows gracefully to 0 and the
  // corrections reach exactly 1; for s = 1 they are (1 − β), undoing the zero-initialised moments.
  const float inv_bias_correction1 =
      static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(hp.beta1), step)));
  const float inv_bias_correction2 =
      static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(hp.beta2), step)));
  const float beta1 = hp.beta1, one_minus_beta1 = 1.0f - hp.beta1;
  const float beta2 = hp.beta2, one_minus_beta2 = 1.0f - hp.beta2;
  const float eps = hp.eps;
#ifdef AOETRON_WITH_CUDA
  if (param.device().kind == DeviceKind::kCuda) {
    ops::cuda::AdamW(param.device().index, param.data<float>(), grad.data<float>(), m.data<float>(),
                     v.data<float>(), param.numel(), lr, weight_decay, beta1, beta2, eps,
                     inv_bias_correction1, inv_bias_correction2);
    return;
  }
#endif

  float* __restrict theta = param.data<float>();
  const float* __restrict g = grad.data<float>();
  float* __restrict m1 = m.data<float>();
  float* __restrict m2 = v.data<float>();
  const int64_t n = param.numel();
  // Element-wise, so the result does not depend on how the range is split across threads.
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float m_i = beta1 * m1[i] + one_minus_beta1 * g[i];         // m ← β1·m + (1−β1)·g
    const float v_i = beta2 * m2[i] + one_minus_beta2 * g[i] * g[i];  // v ← β2·v + (1−β2)·g²
    m1[i] = m_i;
    m2[i] = v_i;
    const float m_hat = m_i * inv_bias_correction1;  // m̂ = m / (1−β1^s)
    const float v_hat = v_i * inv_bias_correction2;  // v̂ = v / (1−β2^s)
    // θ ← θ − η·(m̂ / (sqrt(v̂) + ε) + λ·θ): the decay uses θ before this step's update.
    theta[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * theta[i]);
  }
}

}  // namespace aoetron
