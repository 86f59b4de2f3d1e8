// conv/fft_plan.hpp — how FFT convolution (fft.cpp) cuts a problem: the FFT extents, the
// overlap-save tiles they give, what the lanes hold, the chunk of tiles transformed at once,
// and the cost model that picks the extents and lanes; and the per-axis FFT plans (radices,
// twiddles) the kernels run.
//
// Overlap-save (Stockham, "High-speed convolution and correlation", AFIPS 1966): a tile of f
// inputs per axis gives f - ke + 1 outputs of a kernel whose (dilated) extent is ke, by one
// circular correlation of length f, the rest of which wraps around and is dropped. Tiles sit in
// the lanes of the vectors, two per lane (a real tile as the real part, another as the
// imaginary part): the kernel is real, so the correlation of x1 + i x2 is that of x1 plus i
// times that of x2, and one complex FFT serves two real tiles. The lanes of a vector hold
// tiles of one channel or one pair of tiles of as many channels (Tiling::by_channel).
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
    v.live = n;
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
// image, the assignment of lanes, and the chunk transformed at once.
//
// Tiles go in pairs of one image (tiles 2i and 2i + 1: real and imaginary part of a lane), so
// a tile's rounding never depends on the batch a call is cut into. A vector group (W lanes,
// one transform per lane) holds either
// - by tile: W pairs of tiles of one channel; the products multiply a broadcast weight by the
//   tiles in the lanes, so they need many tiles (a large image or batch) to fill the lanes;
// - by channel: one pair of tiles of W channels; the products are, per frequency, a complex
//   matrix product vectorised over output channels (pairs x Cg times Cg x Kg), so a single
//   tile pair fills the lanes and large tiles (few of them, little overlap) pay off.
struct Tiling {
  Ext f{1, 1, 1}, o{1, 1, 1}, grid{1, 1, 1};
  int64_t lanes = 1;   // W
  int64_t images = 0;  // N
  bool by_channel = false;
  int64_t chunk = 1;  // units (below) per chunk
  int64_t elem = 4;   // bytes per real element
  // Whole planes instead of tiles in the lanes (whole_plane_tiling): one 2-D transform of
  // f[1] x f[2] per plane, its rows' elements in the lanes.
  bool whole = false;

  int64_t freqs() const { return f[0] * f[1] * f[2]; }
  int64_t tiles_per_image() const { return grid[0] * grid[1] * grid[2]; }
  int64_t pairs_per_image() const { return util::ceil_div(tiles_per_image(), 2); }
  int64_t pairs() const { return images * pairs_per_image(); }
  int64_t vector_groups() const { return util::ceil_div(pairs(), lanes); }
  // What a chunk counts: vector groups of tile pairs (by tile) or tile pairs (by channel).
  int64_t units() const { return by_channel ? pairs() : vector_groups(); }
  // Channels rounded up to whole vectors (by channel).
  int64_t padded(int64_t channels) const { return util::round_up(channels, lanes); }
  // Elements: one tile buffer (a vector group in the frequency domain), a chunk's input and
  // output spectra.
  int64_t buffer_size() const { return freqs() * 2 * lanes; }
  int64_t spectra_size(const Geometry& g) const {
    return by_channel ? (util::round_up(g.Cg, 2) + padded(g.Kg)) * chunk * 2 * freqs()
                      : (g.Cg + g.Kg) * chunk * buffer_size();
  }
};

// The spectrum of a real kernel is conjugate-symmetric, W(-k) = conj(W(k)): only one of each
// pair of mirrored positions is stored (the one with the lower index, its slot), the other read
// conjugated. Per position: its slot and whether to conjugate.
struct HalfSpectrum {
  std::vector<int64_t> slot;
  std::vector<char> conj;
  std::vector<int64_t> mirror;  // of every position
  int64_t slots = 0;
  std::vector<int64_t> at;  // the position each slot stores

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
        at.push_back(p);
      }
    }
  }
};

// By channel needs two input channels at least (one per group is the pointwise path).
inline bool by_channel_applies(const Geometry& g) { return g.Cg > 1; }

inline Tiling tiling_for(const Geometry& g, const Ext& f, bool by_channel, int64_t lanes,
                         int64_t chunk_bytes, int64_t elem) {
  Tiling t;
  t.f = f;
  t.lanes = lanes;
  t.images = g.N;
  t.by_channel = by_channel;
  t.elem = elem;
  for (int d = 0; d < 3; ++d) {
    t.o[d] = f[d] - g.ke[d] + 1;
    t.grid[d] = util::ceil_div(g.out[d], t.o[d]);
  }
  t.chunk = 1;
  const int64_t per_unit = t.spectra_size(g) * elem;
  t.chunk = std::max<int64_t>(1, std::min(t.units(), chunk_bytes / std::max<int64_t>(1, per_unit)));
  return t;
}

// Modelled time (ns) of a call with tiling t on one thread, from the operation counts: per
// transform of W lanes and complex element, the gathers and scatters of tiles (transposes
// into lanes, copies of spectra) and the butterfly stages; per complex multiply-add of
// vectors in the products; and, unless a plan holds them, the weight transforms' stages.
// Coefficients fitted (non-negative least squares on the relative error) to 130 stateless
// single-thread calls on the AVX-512 bench machine: both lane assignments at 6 to 11 square
// extents each on the large-kernel bench layers (13 x 13, 31 x 31, AlexNet's and GoogLeNet's
// 5 x 5; 13 x 13 at batch 8 too), an 11 x 11 layer of 8 -> 12 channels, template matching on
// 512 x 512 and 256 x 256 (kernels 3 to 127) and the 255-tap 1-D filter. Modelled / measured:
// median 0.97; on each problem the extents the model picks among those ran within 11 % of the
// fastest. The chunks' term below was fitted afterwards to the C3D layer.
inline double modelled_ns(const Geometry& g, const Tiling& t, bool weights_counted) {
  double stages = 0;
  for (int d = 0; d < 3; ++d)
    if (t.f[d] > 1) stages += std::log2(static_cast<double>(t.f[d]));
  const double F = static_cast<double>(t.freqs());
  // Per group: transforms of W lanes, complex vector multiply-adds of the products and the
  // weight transforms' vectors (two kernels per lane).
  double transforms, products, weight_vectors;
  if (t.by_channel) {
    const double P = static_cast<double>(t.pairs());
    const double CB = static_cast<double>(util::ceil_div(g.Cg, t.lanes));
    const double KB = static_cast<double>(util::ceil_div(g.Kg, t.lanes));
    transforms = P * (CB + KB);
    products = P * static_cast<double>(g.Cg) * KB;
    weight_vectors = 2.0 * static_cast<double>(util::ceil_div(g.Cg, 2)) * KB;
  } else {
    const double G = static_cast<double>(t.vector_groups());
    // A tile's forward transform (16 tiles gathered into the lanes, then the whole transform)
    // costs more than an inverse (pruned to the kept box, which alone is scattered): 1.6 and
    // 0.6 times the term both shared before, refitted on the 13 x 13 kernel by tile with 1
    // input and 64 output channels and the reverse, on 28^2 and 56^2 (measured 0.33 / 0.72 and
    // 0.45 / 1.14 ms; modelled 0.36 / 0.69 and 0.50 / 1.16, against 0.45 / 0.45 and 0.76 /
    // 0.76 with one term). The weight gradients' correlations, mostly inverses (Kg = K output
    // channels, Cg = a few pieces of dy), came out 1.3-1.9x slower than measured before it.
    transforms = G * (1.6 * static_cast<double>(g.Cg) + 0.6 * static_cast<double>(g.Kg));
    products = G * static_cast<double>(g.Cg) * static_cast<double>(g.Kg);
    weight_vectors = static_cast<double>(util::ceil_div(g.Cg * g.Kg, t.lanes));
  }
  double ns = transforms * F * (0.15 * stages + 18.0) + products * F * 1.9;
  if (weights_counted) ns += weight_vectors * F * 0.9 * stages;
  // Each chunk after the first reads the weight spectra (F / 2 complex elements per pair of
  // channels) again from memory: 0.1 ns per byte (fitted to the 3 x 3 x 3 C3D layer, whose
  // 25 MB of spectra are read 2 to 7 times).
  const double chunks = static_cast<double>(util::ceil_div(t.units(), t.chunk));
  const double kg = static_cast<double>(t.by_channel ? t.padded(g.Kg) : g.Kg);
  ns += (chunks - 1.0) * F * static_cast<double>(g.Cg) * kg * static_cast<double>(t.elem) * 0.1;
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

// Modelled time (ns) of the whole-plane path: per 2-D transform of a plane (a forward and an
// inverse per image, the weights' once per group unless a plan holds them), 2.1 ns per vector
// of W elements and stage (log2 F), fitted with modelled_ns to template matching on 512 x 512
// (kernels 3 to 127: 1.96 to 2.16 ms measured, 1.89 modelled), 256 x 256 (61 x 61) and two
// 150 x 170 images (31 x 31).
inline double modelled_whole_ns(const Geometry& g, const Tiling& t, bool weights_counted) {
  const double F = static_cast<double>(t.freqs()), V = F / static_cast<double>(t.lanes);
  const double transforms = 2.0 * static_cast<double>(g.N) + (weights_counted ? 1.0 : 0.0);
  return 2.1 * V * std::log2(F) * transforms * static_cast<double>(g.groups);
}

// Extents and lanes minimising modelled_ns: per axis with more than one tap, 5-smooth sizes
// from ke up to the one covering the whole output, spread geometrically (at least 1/16 apart,
// 1/8 with three transformed axes, so that a call evaluates some thousands of tilings at
// most), lanes by tile or, where it applies, by channel; where some tiling's unit (a vector
// group by tile, a pair of tiles by channel) has spectra within 1.6 times the chunk's budget,
// one of those (so that the workspace stays within 16 MiB: C3D's 3x3x3 layer takes 13.3 MB
// of spectra by tile, 10 x 9 x 9 tiles, and 15.9 MB in all on 2 threads).
inline Tiling choose_tiling(const Geometry& g, int64_t lanes, int64_t chunk_bytes, int64_t elem,
                            bool weights_counted) {
  std::array<std::vector<int64_t>, 3> cand;
  const int axes = (g.ke[0] > 1) + (g.ke[1] > 1) + (g.ke[2] > 1);
  const int64_t spread = axes == 3 ? 8 : 16;  // candidates at least 1 / spread apart
  for (int d = 0; d < 3; ++d) {
    if (g.ke[d] == 1) {
      cand[d] = {1};
      continue;
    }
    const int64_t hi = std::min(kMaxExtent, next_smooth(g.out[d] + g.ke[d] - 1));
    for (int64_t n = next_smooth(g.ke[d]); n <= hi; n = next_smooth(n + 1)) {
      if (!cand[d].empty() && n < cand[d].back() * (spread + 1) / spread && n != hi) continue;
      cand[d].push_back(n);
    }
    if (cand[d].empty()) cand[d].push_back(next_smooth(g.ke[d]));
  }
  Tiling best;
  double best_ns = -1;
  for (bool by_channel : {false, true}) {
    if (by_channel && !by_channel_applies(g)) continue;
    for (int64_t f0 : cand[0])
      for (int64_t f1 : cand[1])
        for (int64_t f2 : cand[2]) {
          const Tiling t = tiling_for(g, {f0, f1, f2}, by_channel, lanes, chunk_bytes, elem);
          // A unit whose spectra exceed 1.6 chunk budgets counts as slower than any within.
          const bool over = t.chunk == 1 && 5 * t.spectra_size(g) * elem > 8 * chunk_bytes;
          const double ns = modelled_ns(g, t, weights_counted) + (over ? 1e30 : 0.0);
          if (best_ns < 0 || ns < best_ns) best = t, best_ns = ns;
        }
  }
  return best;
}

// The cheaper lane assignment for extents f.
inline Tiling cheaper_lanes(const Geometry& g, const Ext& f, int64_t lanes, int64_t chunk_bytes,
                            int64_t elem, bool weights_counted) {
  const Tiling t = tiling_for(g, f, false, lanes, chunk_bytes, elem);
  if (!by_channel_applies(g)) return t;
  const Tiling c = tiling_for(g, f, true, lanes, chunk_bytes, elem);
  return modelled_ns(g, c, weights_counted) < modelled_ns(g, t, weights_counted) ? c : t;
}

}  // namespace fastconv::conv::fft
