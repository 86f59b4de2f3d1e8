// kernels/dispatch.cpp — builds one kernel table per ISA the CPU supports, once, and keeps the
// active one. The only place outside the kernel folders that names instruction sets.
//
// Order is best first: avx512 (AVX-512F) -> avx2 (AVX2 + FMA) -> scalar. FASTCONV_ISA caps the
// choice at start-up; set_isa() picks any table at or below the cap. CPU support is read with
// __builtin_cpu_supports, which also checks that the OS saves the wide registers.
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "kernel_table.hpp"

namespace fastconv::kernels {

namespace scalar {
void fill_kernels(KernelTable& table);
}
namespace avx2 {
void fill_kernels(KernelTable& table);
}
namespace avx512 {
void fill_kernels(KernelTable& table);
}

namespace {

struct IsaEntry {
  const char* name;
  bool (*cpu_has)();
  void (*fill)(KernelTable&);
};

// Vector FMAs per cycle at the width of `isa`: Intel's server cores with AVX-512 issue two
// 512-bit FMAs per cycle (ports 0 and 5), AMD's Zen 4 one (its 512-bit operations run as two
// 256-bit halves). Zen 5's full-width pipes, Intel parts with one 512-bit FMA unit and AVX2's
// two 256-bit pipes everywhere are left at 1: the cost models' other coefficients were fitted
// there (on Zen 4), not measured for them.
int fma_pipes(const std::string& isa) {
  __builtin_cpu_init();
  return isa == "avx512" && __builtin_cpu_is("intel") ? 2 : 1;
}

// Ascending: index 0 is the portable fallback.
const IsaEntry kIsas[] = {
    {"scalar", [] { return true; }, &scalar::fill_kernels},
    {"avx2",
     [] {
       __builtin_cpu_init();
       return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
     },
     &avx2::fill_kernels},
    {"avx512",
     [] {
       __builtin_cpu_init();
       return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
              __builtin_cpu_supports("fma");
     },
     &avx512::fill_kernels},
};
constexpr int kNumIsas = sizeof(kIsas) / sizeof(kIsas[0]);

struct Registry {
  KernelTable tables[kNumIsas];
  int available = 0;  // tables[0 .. available) may be selected
  std::atomic<int> active{0};

  Registry() {
    int cap = kNumIsas - 1;
    if (const char* env = std::getenv("FASTCONV_ISA"); env && *env) {
      cap = -1;
      for (int i = 0; i < kNumIsas; ++i)
        if (std::string(env) == kIsas[i].name) cap = i;
      if (cap < 0) {
        throw InvalidArgument(std::string("FASTCONV_ISA='") + env +
                              "' is not one of scalar, avx2, avx512");
      }
    }
    for (int i = 0; i < kNumIsas; ++i) {
      if (i > cap || !kIsas[i].cpu_has()) break;
      tables[i].fma_pipes = fma_pipes(kIsas[i].name);  // (the tiles an ISA fills follow it)
      kIsas[0].fill(tables[i]);  // float64 (and anything an ISA lacks) stays portable
      kIsas[i].fill(tables[i]);
      available = i + 1;
    }
    active = available - 1;
  }
};

Registry& registry() {
  static Registry r;  // thread-safe initialisation (C++11 magic statics)
  return r;
}

}  // namespace

const KernelTable& active_kernels() {
  Registry& r = registry();
  return r.tables[r.active.load(std::memory_order_acquire)];
}

const KernelTable& kernels_for(const std::string& isa) {
  Registry& r = registry();
  for (int i = 0; i < r.available; ++i)
    if (isa == kIsas[i].name) return r.tables[i];
  std::string list;
  for (int i = 0; i < r.available; ++i) list += std::string(list.empty() ? "" : ", ") + kIsas[i].name;
  throw InvalidArgument("isa '" + isa + "' is not available here; available: " + list);
}

}  // namespace fastconv::kernels

namespace fastconv {

std::vector<std::string> available_isas() {
  std::vector<std::string> names;
  for (int i = 0; i < kernels::registry().available; ++i) names.push_back(kernels::kIsas[i].name);
  return names;
}

std::string active_isa() { return kernels::active_kernels().isa; }

int active_fma_pipes() { return kernels::active_kernels().fma_pipes; }

std::string set_isa(const std::string& name) {
  kernels::Registry& r = kernels::registry();
  const int chosen = static_cast<int>(&kernels::kernels_for(name) - r.tables);
  const int previous = r.active.exchange(chosen, std::memory_order_acq_rel);
  return kernels::kIsas[previous].name;
}

}  // namespace fastconv
