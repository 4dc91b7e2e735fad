// Per-layer expert-load diagnostics (AOE.md "Diagnostics"), computed from one micro-batch.
#pragma once

#include <cstdint>
#include <vector>

namespace aoetron {

struct ExpertLoadStats {
  std::vector<int64_t> tokens_per_expert;  // pairs routed to each expert (Σ = T·K)
  double load_fraction_min = 0.0;          // min_i f_i / K   (f_i as in AOE.md, so Σ f̂ = 1)
  double load_fraction_max = 0.0;          // max_i f_i / K
  double entropy_load = 0.0;               // Ent_load = −Σ f̂_i log f̂_i  (max ln n)
  double entropy_confidence = 0.0;         // Ent_conf = mean_t −Σ_i q_ti log q_ti
  double aux_loss = 0.0;                   // this layer's α·n·Σ f_i P_i
};

}  // namespace aoetron
