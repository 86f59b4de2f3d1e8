// kernels/generic/peak_ukernel.hpp — the FMA throughput probe: 16 independent accumulator
// chains of V::fmadd, enough to cover the FMA latency x throughput of current x86 cores. The
// benchmark divides its FLOPs by its time to get this machine's fp32 peak for the ISA.
#pragma once

#include <cstdint>

namespace fastconv::kernels {

// Runs `iters` rounds of 16 vector FMAs; returns the FLOPs executed. *sink receives a value
// that depends on every accumulator (so the loop is not optimised away).
template <typename V>
double fma_probe(int64_t iters, typename V::T* sink) {
  using R = typename V::R;
  constexpr int kChains = 16;
  R acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = V::set1(typename V::T(i) * typename V::T(1e-3));
  const R a = V::set1(typename V::T(0.9999)), b = V::set1(typename V::T(1e-4));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = V::fmadd(acc[i], a, b);
  for (int i = 1; i < kChains; ++i) acc[0] = V::add(acc[0], acc[i]);
  alignas(64) typename V::T t[V::W];
  V::storeu(t, acc[0]);
  *sink = t[0];
  return static_cast<double>(iters) * kChains * V::W * 2;
}

}  // namespace fastconv::kernels
