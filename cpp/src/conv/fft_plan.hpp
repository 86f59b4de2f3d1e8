// conv/fft_plan.hpp — how FFT convolution (fft.cpp) cuts a problem: the FFT extents, the
// overlap-save tiles they give, the chunk of tiles transformed at once, and the cost model that
// picks the extents; and the per-axis FFT plans (radices, twiddles) the kernels run.
//
// Overlap-save (Stockham, "High-speed convolution and correlation", AFIPS 1966): a tile of f
// inputs per axis gives f - ke + 1 outputs of a kernel whose (dilated) extent is ke, by one
// circular correlation of length f, the rest of which wraps around and is dropped. Tiles sit in
// the lanes of the vectors, two per lane (a real tile as the real part, another as the
// imaginary part): the kernel is real, so the correlation of x1 + i x2 is that of x1 plus i
// times that of x2, and one complex FFT serves two real tiles.
//
// Extents are 5-smooth (2^a 3^b 5^c), the radices of the kernels. Limits: one extent per axis
// is at most 2^16 (larger kernels are refused), and an axis whose kernel has one tap is not
// transformed (f = 1).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel_table.hpp"
#include "util/checked.hpp"

namespace fastconv::conv::fft {

using Ext = std::array<int64_t, 3>;

constexpr int64_t kMaxExtent = int64_t(1) << 16;

inline bool is_smooth(int64_t n) {
  if (n < 1) return false;
  for (int64_t r : {2, 3, 5})
    while (n % r == 0) n /= r;
  return n == 1;
}

// The smallest 5-smooth number >= n (1 <= n <= 2^61), from the products 2^a 3^b 5^c below
// the power of two >= n.
inline int64_t next_smooth(int64_t n) {
  int64_t best = 1;
  while (best < n) best *= 2;
  for (int64_t p5 = 1; p5 < best; p5 *= 5)
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t v = p35;
      while (v < n) v *= 2;
      best = std::min(best, v);
    }
  return best;
}

// The FFT plan of one axis for T: radices (4s first, then 2, 3, 5) and their twiddles.
template <typename T>
struct Axis {
  int64_t n = 1;
  std::vector<int> radix;
  std::vector<int64_t> offset;
  std::vector<T> re, im;
  // The position of the frequency -k mod n for the position of frequency k (the transform's
  // output is in digit-reversed order: position p = u q + p' holds k = u + r k', with q = n / r
  // and p' holding k' in the sub-transform).
  std::vector<int64_t> mirror;

  Axis() = default;
  explicit Axis(int64_t len) : n(len) {
    int64_t m = n;
    while (m % 4 == 0) radix.push_back(4), m /= 4;
    for (int r : {2, 3, 5})
      while (m % r == 0) radix.push_back(r), m /= r;
    int64_t l = n;
    for (int r : radix) {
      offset.push_back(static_cast<int64_t>(re.size()));
      const int64_t q = l / r;
      for (int64_t j = 0; j < q; ++j)
        for (int u = 1; u < r; ++u) {
          const double a = -2.0 * M_PI * static_cast<double>(j * u) / static_cast<double>(l);
          re.push_back(static_cast<T>(std::cos(a)));
          im.push_back(static_cast<T>(std::sin(a)));
        }
      l = q;
    }
    std::vector<int64_t> freq(n), pos(n);
    for (int64_t p = 0; p < n; ++p) {
      int64_t k = 0, scale = 1, rest = p, len = n;
      for (int r : radix) {
        const int64_t q = len / r;
        k += scale * (rest / q);
        scale *= r;
        rest %= q;
        len = q;
      }
      freq[p] = k;
      pos[k] = p;
    }
    mirror.resize(n);
    for (int64_t p = 0; p < n; ++p) mirror[p] = pos[(n - freq[p]) % n];
  }
  kernels::FftAxisView<T> view() const {
    kernels::FftAxisView<T> v;
    v.n = n;
    v.stages = static_cast<int>(radix.size());
    v.radix = radix.data();
    v.tw_offset = offset.data();
    v.tw_re = re.data();
    v.tw_im = im.data();
    return v;
  }
};

// A stride-1 correlation as the driver runs it, group by group (x is zero outside [0, in)):
//   y[n][g Kg + k][o] = sum_{c < Cg} sum_{j < ke} x[n][g Cg + c][o + j - lo] w_gkc[j],  o < out.
struct Geometry {
  int64_t N = 0, groups = 1, Cg = 0, Kg = 0;
  Ext in{1, 1, 1}, out{1, 1, 1}, ke{1, 1, 1}, lo{0, 0, 0};
};

// The FFT extents f and what they give: o outputs per tile and axis, the tile grid of one
// image, and the chunk: vector groups (W pairs of tiles each) transformed together.
struct Tiling {
  Ext f{1, 1, 1}, o{1, 1, 1}, grid{1, 1, 1};
  int64_t lanes = 1;   // W
  int64_t images = 0;  // N
  int64_t chunk = 1;   // vector groups per chunk
  // Whole planes instead of tiles in the lanes (whole_plane_tiling): one 2-D transform of
  // f[1] x f[2] per plane, its rows' elements in the lanes.
  bool whole = false;

  int64_t freqs() const { return f[0] * f[1] * f[2]; }
  int64_t tiles_per_image() const { return grid[0] * grid[1] * grid[2]; }
  // Tiles go in pairs of one image (tiles 2i and 2i + 1: real and imaginary part of a lane),
  // so a tile's rounding never depends on the batch a call is cut into.
  int64_t pairs_per_image() const { return util::ceil_div(tiles_per_image(), 2); }
  int64_t vector_groups() const { return util::ceil_div(images * pairs_per_image(), lanes); }
  // Elements: one tile buffer (a vector group in the frequency domain), a chunk's input and
  // output spectra.
  int64_t buffer_size() const { return freqs() * 2 * lanes; }
  int64_t spectra_size(const Geometry& g) const { return (g.Cg + g.Kg) * chunk * buffer_size(); }
};

// The spectrum of a real kernel is conjugate-symmetric, W(-k) = conj(W(k)): only one of each
// pair of mirrored positions is stored (the one with the lower index, its slot), the other read
// conjugated. Per position: its slot and whether to conjugate.
struct HalfSpectrum {
  std::vector<int64_t> slot;
  std::vector<char> conj;
  std::vector<int64_t> mirror;  // of every position
  int64_t slots = 0;

  template <typename T>
  HalfSpectrum(const Ext& f, const std::array<Axis<T>, 3>& axes) {
    const int64_t F = f[0] * f[1] * f[2];
    slot.assign(F, -1);
    conj.assign(F, 0);
    mirror.resize(F);
    for (int64_t p0 = 0; p0 < f[0]; ++p0)
      for (int64_t p1 = 0; p1 < f[1]; ++p1)
        for (int64_t p2 = 0; p2 < f[2]; ++p2)
          mirror[(p0 * f[1] + p1) * f[2] + p2] =
              (axes[0].mirror[p0] * f[1] + axes[1].mirror[p1]) * f[2] + axes[2].mirror[p2];
    for (int64_t p = 0; p < F; ++p) {
      if (mirror[p] < p) {
        slot[p] = slot[mirror[p]];
        conj[p] = 1;
      } else {
        slot[p] = slots++;
      }
    }
  }
};

inline Tiling tiling_for(const Geometry& g, const Ext& f, int64_t lanes, int64_t chunk_bytes,
                         int64_t elem) {
  Tiling t;
  t.f = f;
  t.lanes = lanes;
  t.images = g.N;
  for (int d = 0; d < 3; ++d) {
    t.o[d] = f[d] - g.ke[d] + 1;
    t.grid[d] = util::ceil_div(g.out[d], t.o[d]);
  }
  const int64_t per_group = (g.Cg + g.Kg) * t.buffer_size() * elem;
  t.chunk = std::max<int64_t>(1, std::min(t.vector_groups(), chunk_bytes / std::max<int64_t>(1, per_group)));
  return t;
}

// Modelled time (ns) of a call with extents f, from the operation counts: FFT stages, the
// gathers and scatters of tiles (transposes into lanes and copies of spectra), the complex
// products and, unless a plan holds them, the weight transforms. Per vector group (W pairs of
// tiles) and complex element, fitted to single-thread runs of the bench layers and template
// matching on the AVX-512 bench machine: a butterfly stage 2 ns, the gathers and scatters 20,
// a complex multiply-add 1.8; per weight spectrum element 0.7 to write.
inline double modelled_ns(const Geometry& g, const Tiling& t, bool weights_counted) {
  double stages = 0;
  for (int d = 0; d < 3; ++d)
    if (t.f[d] > 1) stages += std::log2(static_cast<double>(t.f[d]));
  const double F = static_cast<double>(t.freqs());
  const double G = static_cast<double>(t.vector_groups());
  const double CK = static_cast<double>(g.Cg) * static_cast<double>(g.Kg);
  double ns = G * (g.Cg + g.Kg) * F * (2.0 * stages + 20.0) + G * F * CK * 1.8;
  if (weights_counted)
    ns += static_cast<double>(util::ceil_div(g.Cg * g.Kg, t.lanes)) * F * 2.0 * stages + 0.7 * F * CK;
  return ns * static_cast<double>(g.groups);
}

// The smallest multiple of 16 (every ISA's lanes divide it) at least n whose quotient by 16 is
// 5-smooth: a whole plane's extents, rows of whole vectors after either orientation.
inline int64_t smooth16(int64_t n) { return 16 * next_smooth(util::ceil_div(n, 16)); }

// One channel pair per group on 2-D planes (template matching): the whole padded plane in one
// transform, vectorised along its rows, when tiles would leave the lanes idle or overlap much.
inline bool whole_plane_applies(const Geometry& g) {
  return g.Cg == 1 && g.Kg == 1 && g.ke[0] == 1 && g.out[0] == 1 && g.in[0] == 1 &&
         (g.ke[1] > 1 || g.ke[2] > 1) && g.out[1] > 1;
}

inline Tiling whole_plane_tiling(const Geometry& g, int64_t lanes) {
  Tiling t;
  t.whole = true;
  t.lanes = lanes;
  t.images = g.N;
  t.f = {1, smooth16(g.out[1] + g.ke[1] - 1), smooth16(g.out[2] + g.ke[2] - 1)};
  t.o = g.out;
  return t;
}

// Modelled time (ns) of the whole-plane path, in the units of modelled_ns: per plane, a forward
// and an inverse 2-D transform (two axis passes and two transposes each) and the elementwise
// product over F / W vectors; the weights' transform once per group.
inline double modelled_whole_ns(const Geometry& g, const Tiling& t, bool weights_counted) {
  const double F = static_cast<double>(t.freqs()), V = F / static_cast<double>(t.lanes);
  const double transform = V * (2.0 * std::log2(F) + 8.0);
  double ns = static_cast<double>(g.N) * (2.0 * transform + V);
  if (weights_counted) ns += transform;
  return ns * static_cast<double>(g.groups);
}

// Extents minimising modelled_ns: per axis with more than one tap, 5-smooth sizes from ke up to
// the one covering the whole output (at most 48 candidates per axis, spread geometrically).
inline Tiling choose_tiling(const Geometry& g, int64_t lanes, int64_t chunk_bytes, int64_t elem,
                            bool weights_counted) {
  std::array<std::vector<int64_t>, 3> cand;
  for (int d = 0; d < 3; ++d) {
    if (g.ke[d] == 1) {
      cand[d] = {1};
      continue;
    }
    const int64_t hi = std::min(kMaxExtent, next_smooth(g.out[d] + g.ke[d] - 1));
    for (int64_t n = next_smooth(g.ke[d]); n <= hi; n = next_smooth(n + 1)) {
      if (!cand[d].empty() && n < cand[d].back() * 9 / 8 && n != hi) continue;
      cand[d].push_back(n);
    }
    if (cand[d].empty()) cand[d].push_back(next_smooth(g.ke[d]));
  }
  Tiling best;
  double best_ns = -1;
  for (int64_t f0 : cand[0])
    for (int64_t f1 : cand[1])
      for (int64_t f2 : cand[2]) {
        const Tiling t = tiling_for(g, {f0, f1, f2}, lanes, chunk_bytes, elem);
        const double ns = modelled_ns(g, t, weights_counted);
        if (best_ns < 0 || ns < best_ns) best = t, best_ns = ns;
      }
  return best;
}

}  // namespace fastconv::conv::fft
