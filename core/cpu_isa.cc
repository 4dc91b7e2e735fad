#include "core/cpu_isa.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_format.h"

namespace aoetron {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_active{kUnset};

CpuIsa Detect() {
  const char* forced = std::getenv("AOETRON_CPU_ISA");
  if (forced != nullptr && *forced != '\0') {
    CpuIsa isa;
    if (std::strcmp(forced, "avx2") == 0) {
      isa = CpuIsa::kAvx2;
    } else if (std::strcmp(forced, "avx512") == 0) {
      isa = CpuIsa::kAvx512;
    } else {
      std::fprintf(stderr, "aoetron: AOETRON_CPU_ISA=%s: expected avx2 or avx512\n", forced);
      std::exit(2);
    }
    if (!CpuSupports(isa)) {
      std::fprintf(stderr, "aoetron: AOETRON_CPU_ISA=%s: this CPU does not support %s\n", forced,
                   forced);
      std::exit(2);
    }
    return isa;
  }
  return CpuSupports(CpuIsa::kAvx512) ? CpuIsa::kAvx512 : CpuIsa::kAvx2;
}

}  // namespace

const char* CpuIsaName(CpuIsa isa) { return isa == CpuIsa::kAvx512 ? "avx512" : "avx2"; }

bool CpuSupports(CpuIsa isa) {
  // libgcc's feature bits include the OS check (XCR0) for the AVX and AVX-512 register state.
  __builtin_cpu_init();
  if (isa == CpuIsa::kAvx2) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}

CpuIsa ActiveCpuIsa() {
  int active = g_active.load(std::memory_order_acquire);
  if (active == kUnset) {
    active = static_cast<int>(Detect());
    g_active.store(active, std::memory_order_release);
  }
  return static_cast<CpuIsa>(active);
}

absl::Status ForceCpuIsa(CpuIsa isa) {
  if (!CpuSupports(isa)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("this CPU does not support %s", CpuIsaName(isa)));
  }
  g_active.store(static_cast<int>(isa), std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace aoetron
