// cpp/tests/test_kernels_conv.cpp — the direct convolution microkernels of every available ISA's
// table (kernels/kernel_table.hpp), float32 and float64, called directly; outputs between guard
// regions of canaries, inputs in vectors of exactly the size the contract reads (so a sanitizer
// build sees any read past them). See test_kernels.cpp for the other families.
//
//   direct row run / run_single: KB lanes and one, kb < KB and kb = KB, bias or none, strides
//               and dilations 1 and 2, tap counts and kw up to a reduction longer than one block,
//               ow below, between and at multiples of the vector; rows ldy apart with a gap
//   bwd_data:   KB and 1, kb < KB and kb = KB, kw, strides, dilations; into a nonzero gradient,
//               positions no tap reaches kept bit for bit
//   bwd_weights: kw, strides, dilations, ow around the vector; added to nonzero sums
//   depthwise_plane: kernels 3x3 (the unrolled, the stride-2 split and the strip paths), 5x3
//               and 1x1, planes from narrower than a vector to larger than the flat path and
//               over five vectors wide, strides, dilations; no padding (x rows ldx apart, NaN in
//               the gap) and padding on any sides (wider than a vector too), where the scratch
//               border (zeroed by the caller) must stay zero and the interior hold x, or the
//               scratch stay untouched where the strips fold the padding into their loads
//   depthwise_blocked: 3x3, 5x5 and 7x7 (more taps than kept in registers), strides,
//               dilations, ow around the 4-output block, with and without the clamp
//   blocked tile: every non-null [NB][UR][stride] (and null exactly where NB x UR > max_acc);
//               one or more input blocks and taps, all lanes and a partial last block, a
//               reduction longer than one register block, also split into two calls of step
//               ranges (bit for bit one call's); output blocks y_block apart with a gap
//   interleave / deinterleave: n below, at and above W; null rows; count < W
//   wgrad:      every [NB][stride]; rows and positions; first and accumulating
//
// Reference sums in double; float32 within 1e-5 of the largest term sum, float64 within 1e-12.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernel_test.hpp"

namespace {

using namespace kernel_test;
namespace fk = fastconv::kernels;

// ---- direct row: run (KB lanes) and run_single (KB = 1)

template <typename T>
void test_direct_run(const std::string& isa, const fk::DirectRowUkernel<T>& dr, bool single) {
  const int W = dr.w, KB = single ? 1 : dr.kb;
  const auto run = single ? dr.run_single : dr.run;
  std::vector<int> kbs = {1, KB - 1, KB};
  kbs.erase(std::remove(kbs.begin(), kbs.end(), 0), kbs.end());
  kbs.erase(std::unique(kbs.begin(), kbs.end()), kbs.end());
  struct Taps {
    int64_t ntaps, kw;
  };
  // 40 x 9 taps: 360 terms, more than one reduction block (kDirectReductionBlock = 256)
  for (Taps tp : {Taps{1, 1}, Taps{3, 3}, Taps{2, 5}, Taps{40, 9}})
    for (int64_t stride : {1, 2})
      for (int64_t dilation : {1, 2})
        for (int64_t ow : {int64_t(1), int64_t(W - 1), int64_t(W + 3), int64_t(2 * W + 5), int64_t(4 * W)}) {
          if (ow < 1) continue;
          const int64_t span = (ow - 1) * stride + (tp.kw - 1) * dilation + 1, row = span + 2;
          std::vector<int64_t> tap(static_cast<size_t>(tp.ntaps));
          for (int64_t t = 0; t < tp.ntaps; ++t) tap[static_cast<size_t>(t)] = t * row + t % 2;
          const auto x = random<T>(tap.back() + span, 31);
          for (int kb : kbs)
            for (bool with_bias : {false, true}) {
              auto w = random<T>(tp.ntaps * tp.kw * KB, 32);
              for (int64_t i = 0; i < tp.ntaps * tp.kw; ++i)
                for (int k = kb; k < KB; ++k) w[static_cast<size_t>(i * KB + k)] = T(0);
              const auto bias = random<T>(kb, 33);
              const int64_t ldy = ow + 3;
              Guarded<T> y(KB * ldy);
              y.snapshot();
              fk::DirectRowArgs<T> a{x.data(), tap.data(), tp.ntaps, tp.kw, stride, dilation,
                                     w.data(), with_bias ? bias.data() : nullptr, y.data(), ldy,
                                     kb, ow};
              run(a);
              Expected e(y.size());
              for (int k = 0; k < kb; ++k)
                for (int64_t o = 0; o < ow; ++o) {
                  double s = with_bias ? double(bias[static_cast<size_t>(k)]) : 0.0, scale = std::fabs(s);
                  for (int64_t t = 0; t < tp.ntaps; ++t)
                    for (int64_t j = 0; j < tp.kw; ++j) {
                      const double term = double(w[static_cast<size_t>((t * tp.kw + j) * KB + k)]) *
                                          double(x[static_cast<size_t>(tap[static_cast<size_t>(t)] + o * stride + j * dilation)]);
                      s += term;
                      scale += std::fabs(term);
                    }
                  e.put(k * ldy + o, s, scale);
                }
              check_output(y, e, tolerance<T>(),
                           label(isa, single ? "direct run_single" : "direct run", bits<T>(), "kb", kb,
                                 "ntaps", tp.ntaps, "kw", tp.kw, "stride", stride, "dilation",
                                 dilation, "ow", ow, with_bias ? "bias" : "no bias"));
            }
        }
}

// ---- direct row: backward data and backward weights

template <typename T>
void test_direct_bwd_data(const std::string& isa, const fk::DirectRowUkernel<T>& dr) {
  const int W = dr.w;
  for (int KB : {1, dr.kb})
    for (int kb : {1, KB})
      for (int64_t kw : {1, 3, 5})
        for (int64_t stride : {1, 2})
          for (int64_t dilation : {1, 2})
            for (int64_t ow : {int64_t(1), int64_t(W + 3), int64_t(3 * W + 1)}) {
              const int64_t ldgy = ow + 2, span = (ow - 1) * stride + (kw - 1) * dilation + 1;
              const auto gy = random<T>((kb - 1) * ldgy + ow, 41);
              auto w = random<T>(kw * KB, 42);
              for (int64_t s = 0; s < kw; ++s)
                for (int k = kb; k < KB; ++k) w[static_cast<size_t>(s * KB + k)] = T(0);
              Guarded<T> gx(span + 3);
              gx.fill(random<T>(gx.size(), 43));
              gx.snapshot();
              dr.bwd_data({gx.data(), gy.data(), ldgy, w.data(), KB, kb, kw, stride, dilation, ow});
              std::vector<double> sum(static_cast<size_t>(gx.size())), scale(sum.size());
              std::vector<char> hit(sum.size());
              for (int64_t s = 0; s < kw; ++s)
                for (int64_t o = 0; o < ow; ++o)
                  for (int k = 0; k < kb; ++k) {
                    const size_t i = static_cast<size_t>(o * stride + s * dilation);
                    const double term = double(w[static_cast<size_t>(s * KB + k)]) *
                                        double(gy[static_cast<size_t>(k * ldgy + o)]);
                    sum[i] += term;
                    scale[i] += std::fabs(term);
                    hit[i] = 1;
                  }
              Expected e(gx.size());
              for (int64_t i = 0; i < gx.size(); ++i)
                if (hit[static_cast<size_t>(i)])
                  e.put(i, double(gx.before()[static_cast<size_t>(gx.begin() + i)]) + sum[static_cast<size_t>(i)],
                        std::fabs(double(gx.before()[static_cast<size_t>(gx.begin() + i)])) + scale[static_cast<size_t>(i)]);
              check_output(gx, e, tolerance<T>(),
                           label(isa, "direct bwd_data", bits<T>(), "KB", KB, "kb", kb, "kw", kw,
                                 "stride", stride, "dilation", dilation, "ow", ow));
            }
}

template <typename T>
void test_direct_bwd_weights(const std::string& isa, const fk::DirectRowUkernel<T>& dr) {
  const int W = dr.w;
  for (int64_t kw : {1, 3, 7})
    for (int64_t stride : {1, 2})
      for (int64_t dilation : {1, 2})
        for (int64_t ow : {int64_t(1), int64_t(W - 1), int64_t(2 * W + 3)}) {
          const auto x = random<T>((ow - 1) * stride + (kw - 1) * dilation + 1, 51);
          const auto gy = random<T>(ow, 52);
          Guarded<T> sums(kw);
          sums.fill(random<T>(kw, 53));
          sums.snapshot();
          dr.bwd_weights({x.data(), gy.data(), kw, stride, dilation, ow, sums.data()});
          Expected e(kw);
          for (int64_t s = 0; s < kw; ++s) {
            double r = double(sums.before()[static_cast<size_t>(sums.begin() + s)]), scale = std::fabs(r);
            for (int64_t o = 0; o < ow; ++o) {
              const double term = double(gy[static_cast<size_t>(o)]) *
                                  double(x[static_cast<size_t>(o * stride + s * dilation)]);
              r += term;
              scale += std::fabs(term);
            }
            e.put(s, r, scale);
          }
          check_output(sums, e, tolerance<T>(),
                       label(isa, "direct bwd_weights", bits<T>(), "kw", kw, "stride", stride,
                             "dilation", dilation, "ow", ow));
        }
}

// ---- depthwise over one plane, with and without padding

struct PlaneCase {
  int64_t in_h, in_w, kh, kw, sh, sw, dh, dw, top, left, bottom, right;
};

template <typename T>
void run_depthwise_plane(const std::string& isa, const fk::DirectRowUkernel<T>& dr, const PlaneCase& c) {
  const int64_t hp = c.top + c.in_h + c.bottom, wp = c.left + c.in_w + c.right;
  const int64_t oh = (hp - (c.kh - 1) * c.dh - 1) / c.sh + 1, ow = (wp - (c.kw - 1) * c.dw - 1) / c.sw + 1;
  if (hp - (c.kh - 1) * c.dh < 1 || wp - (c.kw - 1) * c.dw < 1) return;
  const bool padded = hp != c.in_h || wp != c.in_w;
  // unpadded: rows ldx apart with NaN in the gap (never an output's input)
  const int64_t ldx = padded ? c.in_w : c.in_w + 3;
  auto x = random<T>((c.in_h - 1) * ldx + c.in_w, 61);
  for (int64_t i = 0; i < c.in_h - 1; ++i)
    for (int64_t j = c.in_w; j < ldx; ++j)
      x[static_cast<size_t>(i * ldx + j)] = std::numeric_limits<T>::quiet_NaN();
  const auto w = random<T>(c.kh * c.kw, 62);
  const T bias = T(0.375);
  const auto xp = [&](int64_t h, int64_t v) {  // the padded plane
    h -= c.top, v -= c.left;
    return h >= 0 && h < c.in_h && v >= 0 && v < c.in_w ? double(x[static_cast<size_t>(h * ldx + v)]) : 0.0;
  };
  Guarded<T> scratch(padded ? hp * wp : 1), y(oh * ow);
  Expected e_scratch(scratch.size());
  const bool strips =
      dr.plane_strips && fk::depthwise_plane_strips(c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, ow, dr.w);
  if (padded)  // the caller zeroes the border; the interior starts as canaries
    for (int64_t h = 0; h < hp; ++h)
      for (int64_t v = 0; v < wp; ++v) {
        const bool inside = h >= c.top && h < c.top + c.in_h && v >= c.left && v < c.left + c.in_w;
        if (!inside) scratch[h * wp + v] = T(0);
        if (!strips) e_scratch.put(h * wp + v, xp(h, v), 0.0);  // else left as it is
      }
  scratch.snapshot();
  y.snapshot();
  fk::DepthwisePlaneArgs<T> a{x.data(), ldx, c.in_h, c.in_w, c.top, c.left, hp, wp,
                              padded ? scratch.data() : nullptr, w.data(), bias, y.data(),
                              oh, ow, c.kh, c.kw, c.sh, c.sw, c.dh, c.dw};
  dr.depthwise_plane(a);
  Expected e(y.size());
  for (int64_t r = 0; r < oh; ++r)
    for (int64_t o = 0; o < ow; ++o) {
      double s = double(bias), scale = std::fabs(s);
      for (int64_t i = 0; i < c.kh; ++i)
        for (int64_t j = 0; j < c.kw; ++j) {
          const double term = double(w[static_cast<size_t>(i * c.kw + j)]) * xp(r * c.sh + i * c.dh, o * c.sw + j * c.dw);
          s += term;
          scale += std::fabs(term);
        }
      e.put(r * ow + o, s, scale);
    }
  const std::string where =
      label(isa, "depthwise_plane", bits<T>(), "in", c.in_h, "x", c.in_w, "kernel", c.kh, "x", c.kw,
            "stride", c.sh, c.sw, "dilation", c.dh, c.dw, "pad", c.top, c.left, c.bottom, c.right);
  check_output(y, e, tolerance<T>(), where);
  check_output(scratch, e_scratch, 0.0, where + " scratch");
}

template <typename T>
void test_depthwise_plane(const std::string& isa, const fk::DirectRowUkernel<T>& dr) {
  const int64_t W = dr.w;
  struct Extent {
    int64_t h, w;
  };
  struct Pad {
    int64_t top, left, bottom, right;
  };
  // planes narrower than a vector, between one and two (the flat path at stride 1), wider, one
  // larger than the flat path's run, and one of strips with whole vectors inside the row
  for (Extent p : {Extent{5, 7}, Extent{9, W + 5}, Extent{12, 2 * W + 7}, Extent{40, 40},
                   Extent{6, 5 * W + 3}})
    for (Extent k : {Extent{3, 3}, Extent{5, 3}, Extent{1, 1}})
      for (Extent s : {Extent{1, 1}, Extent{2, 2}, Extent{1, 2}})
        for (int64_t d : {1, 2})
          for (Pad pad : {Pad{0, 0, 0, 0}, Pad{1, 1, 1, 1}, Pad{2, 0, 1, 3}, Pad{3, W + 2, 4, 1}})
            run_depthwise_plane(isa, dr, {p.h, p.w, k.h, k.w, s.h, s.w, d, d, pad.top, pad.left,
                                          pad.bottom, pad.right});
}

// ---- depthwise on channel-blocked planes

template <typename T>
void test_depthwise_blocked(const std::string& isa, const fk::DirectRowUkernel<T>& dr) {
  const int64_t W = dr.w, oh = 2;
  for (int64_t k : {3, 5, 7})  // 7 x 7: more taps than kept in registers
    for (int64_t stride : {1, 2})
      for (int64_t dilation : {1, 2})
        for (int64_t ow : {1, 4, 7})
          for (bool clamp : {false, true}) {
            const int64_t hp = (oh - 1) * stride + (k - 1) * dilation + 1;
            const int64_t wp = (ow - 1) * stride + (k - 1) * dilation + 1, ldx = (wp + 1) * W;
            auto x = random<T>((hp - 1) * ldx + wp * W, 71);
            for (int64_t h = 0; h < hp - 1; ++h)  // the gap after each row is never read
              for (int64_t i = wp * W; i < ldx; ++i)
                x[static_cast<size_t>(h * ldx + i)] = std::numeric_limits<T>::quiet_NaN();
            const auto w = random<T>(k * k * W, 72), bias = random<T>(W, 73);
            const T lo = T(-0.5), hi = T(0.5);
            Guarded<T> y(oh * ow * W);
            y.snapshot();
            dr.depthwise_blocked({x.data(), ldx, w.data(), bias.data(), y.data(), oh, ow, k, k,
                                  stride, stride, dilation, dilation, clamp, lo, hi});
            Expected e(y.size());
            for (int64_t r = 0; r < oh; ++r)
              for (int64_t o = 0; o < ow; ++o)
                for (int64_t c = 0; c < W; ++c) {
                  double s = double(bias[static_cast<size_t>(c)]), scale = std::fabs(s);
                  for (int64_t i = 0; i < k; ++i)
                    for (int64_t j = 0; j < k; ++j) {
                      const double term =
                          double(w[static_cast<size_t>((i * k + j) * W + c)]) *
                          double(x[static_cast<size_t>((r * stride + i * dilation) * ldx +
                                                       (o * stride + j * dilation) * W + c)]);
                      s += term;
                      scale += std::fabs(term);
                    }
                  if (clamp) s = std::min(std::max(s, double(lo)), double(hi));
                  e.put((r * ow + o) * W + c, s, scale);
                }
            check_output(y, e, tolerance<T>(),
                         label(isa, "depthwise_blocked", bits<T>(), "kernel", k, "stride", stride,
                               "dilation", dilation, "ow", ow, clamp ? "clamp" : "no clamp"));
          }
}

// ---- channel-blocked direct convolution: tiles

struct BlockedCase {
  int64_t ncb, kh, kw;
  bool partial;  // the last input block holds fewer than W channels
};

template <typename T>
void run_blocked_tile(const std::string& isa, const fk::BlockedConvUkernel<T>& bk,
                      fk::BlockedConvFn<T> tile, int NB, int UR, int S, const BlockedCase& c) {
  const int64_t W = bk.w, ntaps = c.kh * c.kw;
  const int last_cin = c.partial ? static_cast<int>(W / 2 + 1) : 0;
  const int64_t row = (int64_t(UR - 1) * S + c.kw + 1) * W;  // elements per input row
  const int64_t x_block = c.kh * row + W;
  std::vector<int64_t> taps(static_cast<size_t>(ntaps));
  for (int64_t t = 0; t < ntaps; ++t) taps[static_cast<size_t>(t)] = (t / c.kw) * row + (t % c.kw) * W;
  auto x = random<T>(c.ncb * x_block, 81);
  const int64_t w_block = c.ncb * ntaps * W * W + W;  // a gap between output blocks' weights
  auto w = random<T>(NB * w_block, 82);
  if (last_cin > 0) {  // the lanes beyond last_cin are zero in x and w
    for (int64_t i = (c.ncb - 1) * x_block; i < c.ncb * x_block; ++i)
      if (i % W >= last_cin) x[static_cast<size_t>(i)] = T(0);
    for (int64_t b = 0; b < NB; ++b)
      for (int64_t t = 0; t < ntaps; ++t)
        for (int64_t ci = last_cin; ci < W; ++ci)
          for (int64_t ko = 0; ko < W; ++ko)
            w[static_cast<size_t>(b * w_block + ((c.ncb - 1) * ntaps + t) * W * W + ci * W + ko)] = T(0);
  }
  const int64_t y_block = UR * W + 5;
  Guarded<T> y(NB * y_block);
  y.snapshot();
  fk::BlockedConvArgs<T> a;
  a.x = x.data();
  a.x_block = x_block;
  a.taps = taps.data();
  a.ntaps = ntaps;
  a.ncb = c.ncb;
  a.last_cin = last_cin;
  a.w = w.data();
  a.w_block = w_block;
  a.y = y.data();
  a.y_block = y_block;
  tile(a);
  Expected e(y.size());
  for (int64_t b = 0; b < NB; ++b)
    for (int64_t r = 0; r < UR; ++r)
      for (int64_t ko = 0; ko < W; ++ko) {
        double s = 0, scale = 0;
        for (int64_t cb = 0; cb < c.ncb; ++cb)
          for (int64_t t = 0; t < ntaps; ++t)
            for (int64_t ci = 0; ci < (cb + 1 == c.ncb && last_cin ? last_cin : W); ++ci) {
              const double term =
                  double(x[static_cast<size_t>(cb * x_block + taps[static_cast<size_t>(t)] + r * S * W + ci)]) *
                  double(w[static_cast<size_t>(b * w_block + (cb * ntaps + t) * W * W + ci * W + ko)]);
              s += term;
              scale += std::fabs(term);
            }
        e.put(b * y_block + r * W + ko, s, scale);
      }
  check_output(y, e, tolerance<T>(),
               label(isa, "blocked tile", bits<T>(), "NB", NB, "UR", UR, "stride", S, "ncb", c.ncb,
                     "kernel", c.kh, "x", c.kw, "last_cin", last_cin));
  // The same reduction in two calls, [0, one register block) then the rest added: the same
  // bits as one call.
  const int64_t steps = c.ncb * ntaps;
  const int64_t per_block = std::max<int64_t>(1, fk::kBlockedReductionBlock / W);
  if (steps > per_block) {
    Guarded<T> y2(NB * y_block);
    a.y = y2.data();
    a.step_hi = per_block;
    tile(a);
    a.step_lo = per_block;
    a.step_hi = 0;
    a.accumulate = true;
    tile(a);
    bool same = true;
    for (int64_t i = 0; i < y.size(); ++i)
      same = same && std::memcmp(&y[i], &y2[i], sizeof(T)) == 0;
    check(same, label(isa, "blocked tile", bits<T>(), "NB", NB, "UR", UR, "stride", S, "ncb",
                      c.ncb, "kernel", c.kh, "x", c.kw, ": two calls of step ranges differ from one"));
  }
}

template <typename T>
void test_blocked_tiles(const std::string& isa, const fk::BlockedConvUkernel<T>& bk) {
  using K = fk::BlockedConvUkernel<T>;
  for (int NB : {1, 2, 4})
    for (int UR = 1; UR <= K::kMaxUr; ++UR)
      for (int S : {1, 2}) {
        const auto tile = bk.tile[K::nb_index(NB)][UR][S - 1];
        check((tile == nullptr) == (NB * UR > bk.max_acc),
              label(isa, "blocked tile", bits<T>(), "NB", NB, "UR", UR, "stride", S,
                    ": null exactly where NB x UR > max_acc"));
        if (!tile) continue;
        // 3 blocks x 25 taps: 75 steps, more than one register block of 256 terms for every W
        for (BlockedCase c : {BlockedCase{1, 1, 1, false}, BlockedCase{2, 1, 3, false},
                              BlockedCase{2, 1, 3, true}, BlockedCase{3, 5, 5, true}})
          run_blocked_tile(isa, bk, tile, NB, UR, S, c);
      }
}

// The narrow layout's tile (slot 2): `terms` (tap, channel) terms at scattered offsets, UR
// outputs x_step elements apart; the terms cross the 256-term register block when > 256.
template <typename T>
void run_narrow_tile(const std::string& isa, fk::BlockedConvFn<T> tile, int W, int NB, int UR,
                     int64_t terms, int64_t x_step) {
  std::vector<int64_t> taps(static_cast<size_t>(terms));
  for (int64_t t = 0; t < terms; ++t) taps[static_cast<size_t>(t)] = (t * 7) % (terms + 5) + t % 3;
  const int64_t x_size = terms + 8 + int64_t(UR) * x_step;
  auto x = random<T>(x_size, 83);
  const int64_t w_block = terms * W + W;  // a gap between output blocks' weights
  auto w = random<T>(NB * w_block, 84);
  const int64_t y_block = UR * W + 3;
  Guarded<T> y(NB * y_block);
  y.snapshot();
  fk::BlockedConvArgs<T> a;
  a.x = x.data();
  a.taps = taps.data();
  a.ntaps = terms;
  a.ncb = 1;
  a.w = w.data();
  a.w_block = w_block;
  a.y = y.data();
  a.y_block = y_block;
  a.x_step = x_step;
  tile(a);
  Expected e(y.size());
  for (int64_t b = 0; b < NB; ++b)
    for (int64_t r = 0; r < UR; ++r)
      for (int64_t ko = 0; ko < W; ++ko) {
        double s = 0, scale = 0;
        for (int64_t t = 0; t < terms; ++t) {
          const double term = double(x[static_cast<size_t>(taps[static_cast<size_t>(t)] + r * x_step)]) *
                              double(w[static_cast<size_t>(b * w_block + t * W + ko)]);
          s += term;
          scale += std::fabs(term);
        }
        e.put(b * y_block + r * W + ko, s, scale);
      }
  check_output(y, e, tolerance<T>(),
               label(isa, "narrow tile", bits<T>(), "NB", NB, "UR", UR, "terms", terms, "x_step",
                     x_step));
}

template <typename T>
void test_narrow_tiles(const std::string& isa, const fk::BlockedConvUkernel<T>& bk) {
  using K = fk::BlockedConvUkernel<T>;
  for (int NB : {1, 2, 4})
    for (int UR = 1; UR <= K::kMaxUr; ++UR) {
      const auto tile = bk.tile[K::nb_index(NB)][UR][2];
      check((tile == nullptr) == (NB * UR > bk.max_acc),
            label(isa, "narrow tile", bits<T>(), "NB", NB, "UR", UR,
                  ": null exactly where NB x UR > max_acc"));
      if (!tile) continue;
      for (int64_t terms : {int64_t(1), int64_t(27), int64_t(300), int64_t(513)})
        for (int64_t x_step : {int64_t(1), int64_t(3), int64_t(8)})
          run_narrow_tile(isa, tile, bk.w, NB, UR, terms, x_step);
    }
}

// ---- channel-blocked layouts: interleave / deinterleave

template <typename T>
void test_interleave(const std::string& isa, const fk::BlockedConvUkernel<T>& bk) {
  const int W = bk.w;
  for (int64_t n : {int64_t(1), int64_t(W - 1), int64_t(W), int64_t(2 * W + 3)}) {
    std::vector<std::vector<T>> rows(static_cast<size_t>(W));
    std::vector<const T*> in(static_cast<size_t>(W));
    for (int c = 0; c < W; ++c) {
      rows[static_cast<size_t>(c)] = random<T>(n, 91 + static_cast<uint32_t>(c));
      in[static_cast<size_t>(c)] = c % 3 == 2 ? nullptr : rows[static_cast<size_t>(c)].data();
    }
    Guarded<T> dst(n * W);
    dst.snapshot();
    bk.interleave(in.data(), n, dst.data());
    Expected e(dst.size());
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < W; ++c)
        e.put(i * W + c, in[static_cast<size_t>(c)] ? double(rows[static_cast<size_t>(c)][static_cast<size_t>(i)]) : 0.0, 0.0);
    check_output(dst, e, 0.0, label(isa, "blocked interleave", bits<T>(), "n", n));

    const auto src = random<T>(n * W, 95);
    for (int count : {W, W - 1, 1}) {
      std::vector<Guarded<T>> out;
      std::vector<T*> ptr;
      for (int c = 0; c < W; ++c) out.emplace_back(n);
      for (auto& o : out) {
        o.snapshot();
        ptr.push_back(o.data());
      }
      for (bool stream : {false, true}) {
        (stream ? bk.deinterleave_stream : bk.deinterleave)(src.data(), W, n, ptr.data(), count);
        if (stream) bk.store_fence();
        for (int c = 0; c < W; ++c) {
          Expected eo(n);
          if (c < count)
            for (int64_t i = 0; i < n; ++i) eo.put(i, double(src[static_cast<size_t>(i * W + c)]), 0.0);
          check_output(out[static_cast<size_t>(c)], eo, 0.0,
                       label(isa, "blocked deinterleave", bits<T>(), "n", n, "count", count, "row",
                             c, "stream", stream));
        }
      }
    }
  }
}

// ---- channel-blocked weight gradient

template <typename T>
void test_blocked_wgrad(const std::string& isa, const fk::BlockedConvUkernel<T>& bk) {
  const int64_t W = bk.w, UR = bk.wgrad_ur;
  for (int NB = 1; NB <= 3; ++NB)
    for (int S : {1, 2}) {
      const auto fn = bk.wgrad[NB][S - 1];
      check(fn != nullptr, label(isa, "blocked wgrad", bits<T>(), "NB", NB, "stride", S, ": present"));
      if (!fn) continue;
      for (int64_t rows : {1, 3})
        for (int64_t ow : {1, 5})
          for (bool first : {true, false}) {
            const int64_t dy_row = ow * W + 2, x_row = ((ow - 1) * S + 2) * W;
            const int64_t x_block = rows * x_row + W;
            const auto dy = random<T>((rows - 1) * dy_row + (ow - 1) * W + UR, 101);
            const auto x = random<T>((NB - 1) * x_block + (rows - 1) * x_row + ((ow - 1) * S + 1) * W, 102);
            Guarded<T> acc(UR * NB * W);
            acc.fill(random<T>(acc.size(), 103));  // ignored when first
            acc.snapshot();
            fn({x.data(), x_block, x_row, dy.data(), dy_row, rows, ow, acc.data(), first});
            Expected e(acc.size());
            for (int64_t r = 0; r < UR; ++r)
              for (int64_t b = 0; b < NB; ++b)
                for (int64_t ci = 0; ci < W; ++ci) {
                  const int64_t i = (r * NB + b) * W + ci;
                  double s = first ? 0.0 : double(acc.before()[static_cast<size_t>(acc.begin() + i)]);
                  double scale = std::fabs(s);
                  for (int64_t row = 0; row < rows; ++row)
                    for (int64_t o = 0; o < ow; ++o) {
                      const double term =
                          double(dy[static_cast<size_t>(row * dy_row + o * W + r)]) *
                          double(x[static_cast<size_t>(b * x_block + row * x_row + o * S * W + ci)]);
                      s += term;
                      scale += std::fabs(term);
                    }
                  e.put(i, s, scale);
                }
            check_output(acc, e, tolerance<T>(),
                         label(isa, "blocked wgrad", bits<T>(), "NB", NB, "stride", S, "rows", rows,
                               "ow", ow, first ? "first" : "accumulate"));
          }
    }
}

template <typename T>
void test_all(const std::string& isa, const fk::KernelSet<T>& ks) {
  test_direct_run(isa, ks.direct_row, false);
  test_direct_run(isa, ks.direct_row, true);
  test_direct_bwd_data(isa, ks.direct_row);
  test_direct_bwd_weights(isa, ks.direct_row);
  test_depthwise_plane(isa, ks.direct_row);
  test_depthwise_blocked(isa, ks.direct_row);
  test_blocked_tiles(isa, ks.blocked);
  test_narrow_tiles(isa, ks.blocked);
  test_interleave(isa, ks.blocked);
  test_blocked_wgrad(isa, ks.blocked);
}

}  // namespace

int main() {
  for_each_isa([](const std::string& isa, const fastconv::kernels::KernelTable& table) {
    test_all(isa, table.f32);
    test_all(isa, table.f64);
  });
  return finish();
}
