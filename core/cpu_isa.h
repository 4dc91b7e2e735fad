// CpuIsa: the x86 instruction set this process's own CPU kernels run with, chosen at run time.
//
// The build targets x86-64-v3 (AVX2, FMA, BMI2: every x86 server of the last decade), so one
// binary runs on Intel and AMD machines alike. Kernels whose speed depends on vector width
// (attention's register-tiled products, the exponentials of SwiGLU, softmax and cross-entropy)
// are compiled twice from one source (core/ops/cpu/isa_variants.h): once for x86-64-v3 with
// 32-byte vectors, once more with AVX-512 (F, BW, CD, DQ, VL) and 64-byte vectors. On first use
// the process picks the widest its CPU and OS support; oneDNN's GEMM dispatches on its own.
//
// Results are deterministic per ISA (same inputs, same thread count, same bits), and the two
// ISAs agree within the kernels' rounding tolerance, not bit for bit (different vector widths
// add in different orders).
//
// AOETRON_CPU_ISA=avx2 (or avx512) in the environment overrides the choice, for tests that
// exercise the AVX2 path on an AVX-512 machine and for benchmarks; the fast path never needs it.
// Asking for an ISA the CPU lacks is an error at first use, naming the variable.
//
// Thread safety: ActiveCpuIsa is safe from any thread; ForceCpuIsa must not race with kernels.
#pragma once

#include "absl/status/status.h"

namespace aoetron {

enum class CpuIsa { kAvx2, kAvx512 };

// "avx2" | "avx512".
const char* CpuIsaName(CpuIsa isa);

// Whether this CPU (and its OS, which must save the vector state) can run `isa`.
bool CpuSupports(CpuIsa isa);

// The ISA the kernels use: AOETRON_CPU_ISA when set (ending the process with a message when the
// value is unknown or the CPU lacks it), else the widest this CPU supports.
CpuIsa ActiveCpuIsa();

// Makes the kernels use `isa` from now on (tests). FailedPrecondition when the CPU lacks it.
absl::Status ForceCpuIsa(CpuIsa isa);

}  // namespace aoetron
