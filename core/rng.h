// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011).
//
// A value is a pure function of (seed, stream, index): no hidden state, no dependence on the
// order in which values are drawn or on how many threads draw them. Parameter initialisation
// uses stream = hash of the parameter's name and index = the element's position in the *global*
// (unsharded) tensor, so every parallel layout initialises the same model bit for bit.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace aoetron {

// Four 32-bit random words for a 128-bit counter under a 64-bit key.
std::array<uint32_t, 4> Philox4x32(uint64_t key, uint64_t counter_high, uint64_t counter_low);

// Uniform in (0, 1), 24 bits of precision, never exactly 0 or 1.
float UniformAt(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal via Box–Muller on two uniforms of the same counter.
float NormalAt(uint64_t seed, uint64_t stream, uint64_t index);
// A uniformly distributed integer in [0, bound).
uint64_t UniformIntAt(uint64_t seed, uint64_t stream, uint64_t index, uint64_t bound);

// Stable 64-bit hash of a string (FNV-1a), for turning parameter names into streams.
uint64_t StableHash(std::string_view text);

}  // namespace aoetron
