// conv/im2col.hpp — implicit im2col: packs blocks of the im2col matrix of one group straight
// into the GEMM's B panels (gemm/gemm.hpp), so the full matrix never exists.
//
// For a padded input x of one group (Cg x Dp x Hp x Wp), row r = ((c*KD + kd)*KH + kh)*KW + kw
// and column p = (od*OH + oh)*OW + ow of the im2col matrix hold
//   x[c][od*sd + kd*dd][oh*sh + kh*dh][ow*sw + kw*dw].
// Row r's element at column p is x[row_offset(r) + col_offset(p)], so a block is a gather with
// separable offsets; columns whose offsets are consecutive (stride 1 along a row) are copied as
// runs.
#pragma once

#include <cstdint>
#include <cstring>

#include "fastconv/conv.hpp"
#include "gemm/gemm.hpp"

namespace fastconv::conv {

template <typename T>
class Im2colPacker {
 public:
  // p: the unpadded view (in = padded extents); x: channel 0 of the group; nr: B panel width.
  Im2colPacker(const ConvProblem& p, const T* x, int nr) : p_(p), x_(x), nr_(nr) {}

  void operator()(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    const auto& in = p_.in;
    const int64_t HW = in[1] * in[2], DHW = in[0] * HW;
    int64_t col[gemm::kNC];  // column offsets of this block
    {
      int64_t od = n0 / (p_.out[1] * p_.out[2]), oh = n0 / p_.out[2] % p_.out[1],
              ow = n0 % p_.out[2];
      for (int64_t j = 0; j < nc; ++j) {
        col[j] = od * p_.stride[0] * HW + oh * p_.stride[1] * in[2] + ow * p_.stride[2];
        if (++ow == p_.out[2]) {
          ow = 0;
          if (++oh == p_.out[1]) oh = 0, ++od;
        }
      }
    }
    const auto& K = p_.kernel;
    int64_t kw = k0 % K[2], kh = k0 / K[2] % K[1], kd = k0 / (K[1] * K[2]) % K[0],
            c = k0 / (K[0] * K[1] * K[2]);
    for (int64_t kk = 0; kk < kc; ++kk) {
      const T* src = x_ + c * DHW + kd * p_.dilation[0] * HW + kh * p_.dilation[1] * in[2] +
                     kw * p_.dilation[2];
      for (int64_t j0 = 0; j0 < nc; j0 += nr_) {
        T* d = dst + (j0 / nr_) * kc * nr_ + kk * nr_;
        const int64_t n = nc - j0 < nr_ ? nc - j0 : nr_;
        int64_t j = 0;
        while (j < n) {  // copy maximal runs of consecutive offsets
          int64_t e = j + 1;
          while (e < n && col[j0 + e] == col[j0 + e - 1] + 1) ++e;
          if (e - j == 1) {
            d[j] = src[col[j0 + j]];
          } else {
            std::memcpy(d + j, src + col[j0 + j], static_cast<size_t>(e - j) * sizeof(T));
          }
          j = e;
        }
        for (; j < nr_; ++j) d[j] = T(0);
      }
      if (++kw == K[2]) {
        kw = 0;
        if (++kh == K[1]) {
          kh = 0;
          if (++kd == K[0]) kd = 0, ++c;
        }
      }
    }
  }

 private:
  const ConvProblem& p_;
  const T* x_;
  int nr_;
};

}  // namespace fastconv::conv
