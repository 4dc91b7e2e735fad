// Compiling one kernel source for both ISAs of core/cpu_isa.h.
//
// A kernel file keeps its code in <name>_cpu_body.h, written inside
//     namespace aoetron::ops::cpu::AOETRON_CPU_ISA { namespace { ... } }
// with kVectorBytes (below) as its vector width, and includes that body twice:
//     #define AOETRON_CPU_ISA avx2
//     #include "core/ops/cpu/<name>_cpu_body.h"
//     #undef AOETRON_CPU_ISA
//     AOETRON_AVX512_BEGIN
//     #define AOETRON_CPU_ISA avx512
//     #include "core/ops/cpu/<name>_cpu_body.h"
//     #undef AOETRON_CPU_ISA
//     AOETRON_AVX512_END
// then defines the kernels.h entry points as AOETRON_CPU_DISPATCH(avx512::F, avx2::F)(args).
//
// Why this shape: every function of the AVX-512 copy is compiled with the AVX-512 target (the
// pragma marks each function defined between BEGIN and END, OpenMP's outlined regions included)
// and has internal linkage (the anonymous namespace), so the linker can never hand the AVX2
// path an AVX-512 copy of a shared inline function. Helpers defined outside (vec_math.h, the
// standard library) are compiled for x86-64-v3 and inlined into either copy. The AVX2 pass comes
// first, so every header a body includes is first read outside the AVX-512 region (a header
// read inside it would give its inline functions the AVX-512 target, and the linker might then
// hand them to AVX2 callers elsewhere). Templates defined outside keep the x86-64-v3 target even
// when first instantiated inside.
#pragma once

#include "core/cpu_isa.h"

// clang-format off
#if defined(__clang__)
#define AOETRON_AVX512_BEGIN _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512cd,avx512dq,avx512vl\"))), apply_to = function)")
#define AOETRON_AVX512_END _Pragma("clang attribute pop")
#else
#define AOETRON_AVX512_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512cd,avx512dq,avx512vl,prefer-vector-width=512\")")
#define AOETRON_AVX512_END _Pragma("GCC pop_options")
#endif
// clang-format on

// Inside a body: the vector width of the ISA being compiled, in bytes.
#define AOETRON_CPU_VECTOR_BYTES_avx2 32
#define AOETRON_CPU_VECTOR_BYTES_avx512 64
#define AOETRON_CPU_VECTOR_BYTES_OF(isa) AOETRON_CPU_VECTOR_BYTES_OF_(isa)
#define AOETRON_CPU_VECTOR_BYTES_OF_(isa) AOETRON_CPU_VECTOR_BYTES_##isa
#define AOETRON_CPU_VECTOR_BYTES AOETRON_CPU_VECTOR_BYTES_OF(AOETRON_CPU_ISA)

// The variant for this process's ISA.
#define AOETRON_CPU_DISPATCH(avx512_fn, avx2_fn) \
  (::aoetron::ActiveCpuIsa() == ::aoetron::CpuIsa::kAvx512 ? (avx512_fn) : (avx2_fn))
