// conv/blocked_layout.hpp — NCHW images to the channel-blocked layout of the direct
// algorithm's dense kernels (direct_blocked.cpp): [g][block][D][H][W][lane], channels in blocks
// of W vector lanes per group (zero beyond the group's channels), spatial extents possibly
// larger than the source's (zero outside it: the padding, applied while converting).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fastconv::conv {

// The blocked image: groups x blocks x ext[0] x ext[1] x ext[2] x w.
struct BlockedLayout {
  int64_t groups, per_group, blocks;  // channels per group; blocks of w of them (rounded up)
  std::array<int64_t, 3> ext;
  int64_t w;

  int64_t block_size() const { return ext[0] * ext[1] * ext[2] * w; }
  int64_t size() const { return groups * blocks * block_size(); }
};

// The outputs a blocked driver computes: [lo, hi) per spatial dim.
struct Window {
  std::array<int64_t, 3> lo, hi;
  int64_t width() const { return hi[2] - lo[2]; }
};

// Where a blocked driver's outputs go: output (od, oh, ow) of plane (n, k) at y[(n*K + k)*E0*E1*E2
// + ((od - base0)*E1 + oh - base1)*E2 + ow - base2], E = ext: the whole output (base 0, ext out)
// or a box of it.
template <typename T>
struct Destination {
  T* y;
  std::array<int64_t, 3> base, ext;
};

// Source images: N x (groups * per_group) x extent, placed at offset `lo` of the blocked
// extents (lo may be negative: the source's first positions are dropped).
template <typename T>
struct Source {
  const T* x;
  std::array<int64_t, 3> extent, lo;
};

// Whether x[0..n) holds a NaN or an infinity: an all-ones exponent, tested on the bits (integer
// operations the compiler vectorises, unlike a floating-point test).
template <typename T>
bool any_non_finite(const T* x, int64_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kExponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits hit = 0;
  for (int64_t i = 0; i < n; ++i) {
    Bits u;
    std::memcpy(&u, x + i, sizeof u);
    hit |= static_cast<Bits>((u & kExponent) == kExponent);
  }
  return hit != 0;
}

// Whether x[0 .. n) holds no NaN or infinity, looked for on `threads` threads.
template <typename T>
bool all_finite(const T* x, int64_t n, int threads) {
  constexpr int64_t kPiece = int64_t(1) << 16;
  int bad = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1) reduction(| : bad)
  for (int64_t i = 0; i < n; i += kPiece)
    if (any_non_finite(x + i, std::min(kPiece, n - i))) bad = 1;
  return bad == 0;
}

// dst[i*w + c] = rows[c][i] (0 where rows[c] is null) for i < n, c < w: the portable
// channels-into-lanes copy, for the narrow layout's few lanes.
template <typename T>
void interleave_narrow(const T* const* rows, int64_t n, int64_t w, T* dst) {
  for (int64_t c = 0; c < w; ++c) {
    if (!rows[c]) {
      for (int64_t i = 0; i < n; ++i) dst[i * w + c] = T(0);
      continue;
    }
    for (int64_t i = 0; i < n; ++i) dst[i * w + c] = rows[c][i];
  }
}

// Image n of src -> xb (L.size() elements); `interleave` is the ISA's channels-into-lanes
// kernel (kernels::BlockedConvUkernel::interleave, for L.w lanes), or null for a narrow layout
// (interleave_narrow). With `non_finite` not null,
// each row is also checked while in cache, and *non_finite set when one holds a NaN or an
// infinity (else left as it was).
template <typename T>
void to_blocked(const BlockedLayout& L, const Source<T>& src, int64_t n, T* xb, int threads,
                void (*interleave)(const T* const*, int64_t, T*), bool* non_finite = nullptr) {
  const int64_t W = L.w, Hp = L.ext[1], Wp = L.ext[2], rows = L.ext[0] * Hp;
  const auto& e = src.extent;
  const int64_t plane = e[0] * e[1] * e[2], C = L.groups * L.per_group;
  // The source's columns land on [i0, i1) of a blocked row.
  const int64_t i0 = std::max<int64_t>(0, src.lo[2]), i1 = std::min(Wp, src.lo[2] + e[2]);
  // One row of one channel block; true when non_finite is asked for and the row holds a NaN or
  // an infinity.
  const auto convert = [&](int64_t gcb, int64_t row) {
    const int64_t g = gcb / L.blocks, cb = gcb % L.blocks;
    T* dst = xb + (gcb * rows + row) * Wp * W;
    const int64_t d = row / Hp - src.lo[0], h = row % Hp - src.lo[1];
    if (d < 0 || d >= e[0] || h < 0 || h >= e[1] || i1 <= i0) {
      std::fill(dst, dst + Wp * W, T(0));
      return false;
    }
    std::fill(dst, dst + i0 * W, T(0));
    std::fill(dst + i1 * W, dst + Wp * W, T(0));
    constexpr int kMaxLanes = 64;
    const T* from[kMaxLanes];
    for (int64_t ci = 0; ci < W; ++ci) {
      const int64_t c = cb * W + ci;
      from[ci] = c < L.per_group
                     ? src.x + (n * C + g * L.per_group + c) * plane + (d * e[1] + h) * e[2] +
                           (i0 - src.lo[2])
                     : nullptr;
    }
    if (interleave) {
      interleave(from, i1 - i0, dst + i0 * W);
    } else {
      interleave_narrow(from, i1 - i0, W, dst + i0 * W);
    }
    return non_finite && any_non_finite(dst + i0 * W, (i1 - i0) * W);
  };
  // Each thread converts a band of rows, every channel block of it (block by block, so that
  // the source is read as W streams): the rows its convolution tasks will mostly read, which
  // then stay in its core's cache. The 3x3 / 2 of ResNet-50 on 2 threads, plans by `direct`,
  // alternating processes (5 rounds): 0.874 -> 0.784 ms against a thread per half of the
  // blocks; rows split across the blocks (W x blocks source streams): 0.829 -> 0.762, but
  // Winograd plans and weight gradients 2-7 % slower. With fewer rows than threads (1-D
  // signals: one row) each thread converts a share of the blocks instead.
  const int64_t blocks = L.groups * L.blocks;
  const bool by_rows = rows >= threads;
  int bad = 0;
#pragma omp parallel for schedule(static, 1) num_threads(threads) if (threads > 1) reduction(| : bad)
  for (int part = 0; part < threads; ++part) {
    const int64_t b0 = by_rows ? 0 : blocks * part / threads;
    const int64_t b1 = by_rows ? blocks : blocks * (part + 1) / threads;
    const int64_t r0 = by_rows ? rows * part / threads : 0;
    const int64_t r1 = by_rows ? rows * (part + 1) / threads : rows;
    for (int64_t gcb = b0; gcb < b1; ++gcb)
      for (int64_t row = r0; row < r1; ++row) bad |= convert(gcb, row) ? 1 : 0;
  }
  if (non_finite && bad) *non_finite = true;
}

}  // namespace fastconv::conv
