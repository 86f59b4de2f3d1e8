// conv/polyphase.hpp — a strided convolution as a stride-1 convolution of its polyphase
// components (the polyphase identity of multirate filtering: Vaidyanathan, "Multirate Systems
// and Filter Banks", 1993, ch. 4; used for Winograd on strided layers by Yepez & Ko, "Stride 2
// 1-D, 2-D, and 3-D Winograd for convolutional neural networks", IEEE TVLSI 28(4), 2020).
// Along an axis of stride s > 1 and k taps (dilation 1):
//
//   y[o] = sum_{j < k} w[j] x[s o + j - lo]  =  sum_{r < S} sum_{a < k'} w_r[a] x_r[o + a]
//   x_r[i] = x[s i + r - lo]   (zero outside the input)       S  = min(s, k) phases
//   w_r[a] = w[s a + r]        (zero where s a + r >= k)      k' = ceil(k / s) taps
//
// so the phases become input channels and the problem a stride-1 one without padding:
//
//   x  N x C x in (padding lo / hi)  ->  xq  N x (C S) x in'     in' = out + k' - 1
//   w  K x C/groups x k              ->  wq  K x (C/groups S) x k'
//
// channel (c, r) at c S + r, the phases of the three axes in row-major order (r0, r1, r2); an
// axis of stride 1 keeps its extent, taps, dilation and padding (S = 1). The multiply-adds grow
// by (k' s / k) per strided axis where k is not a multiple of s (the zero taps): 11 taps of
// stride 4 give 3 x 3 kernels on 16 phases, (12 / 11)^2 = 1.19 times the products. Limits:
// zero padding only (other modes arrive already padded), dilation 1 along strided axes.
#pragma once

#include <array>
#include <cstdint>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv {

/// Whether p has a stride above 1 (the polyphase problem differs from p).
bool is_strided(const ConvProblem& p);

/// Phases per axis (D, H, W): min(stride, kernel) where the stride is above 1, else 1.
std::array<int64_t, 3> polyphase_phases(const ConvProblem& p);

/// The stride-1 problem of p's polyphase components (p itself when not strided): N images of
/// C S channels (groups kept), kernel ceil(k / s), stride and padding dropped along strided axes.
ConvProblem polyphase_problem(const ConvProblem& p);

/// xq (N x q.C x q.in, q = polyphase_problem(p)) from x (N x p.C x p.in), the rows copied by
/// the kernels' GEMM packer.
template <typename T>
void polyphase_input(const ConvProblem& p, const kernels::KernelSet<T>& ks, const T* x, T* xq,
                     int threads);

/// wq (K x q.C/groups x q.kernel) from w (K x p.C/groups x p.kernel).
template <typename T>
void polyphase_weights(const ConvProblem& p, const T* w, T* wq, int threads);

}  // namespace fastconv::conv
