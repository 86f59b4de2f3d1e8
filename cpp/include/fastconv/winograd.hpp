// fastconv/winograd.hpp — the Winograd algorithm's transforms, for inspection and tests.
//
// The convolution entry points run Winograd F(m x m, 3 x 3) as algo "winograd_f2x3",
// "winograd_f4x3", "winograd_f6x3" or "winograd" (fastconv/conv.hpp); these functions expose
// the transform matrices it is built from and its transform kernels, one tile at a time.
#pragma once

#include <string>
#include <vector>

#include "fastconv/conv.hpp"

namespace fastconv {

/// The matrices of F(m, 3), m in {2, 4, 6}, as the library generates them from their
/// interpolation points (0, ±1, ±2, ±1/2 and infinity), row-major float64:
/// AT m x alpha, G alpha x 3, BT alpha x alpha, with alpha = m + 2; a 3-tap correlation of
/// alpha inputs d is y = AT ((G g) * (BT d)). Throws InvalidArgument for another m.
struct WinogradMatrices {
  int m = 0, alpha = 0;           ///< outputs per tile, inputs per tile (m + 2)
  std::vector<double> AT, G, BT;  ///< row-major, shapes as above
};
WinogradMatrices winograd_matrices(int m);

/// Vector lanes W of the transform kernels of `isa` ("scalar", "avx2", "avx512"; "" the
/// active one) for dtype: the channels one call transforms at once.
int winograd_lanes(const std::string& isa, DType dtype);

/// Runs one transform kernel of `isa` on one tile of W channels (lanes innermost), for
/// F(m, 3) in 2-D (axes "hw"), along W only ("w") or along H only ("h"); with (MH, MW) the
/// tile and (AH, AW) = tile + 2 along a 3-tap axis, (1, 1) along the other:
///   kind "input":  in AH x AW x W (a tile's inputs)   -> out AH x AW x W  = BT d B
///   kind "weight": in KH x KW x W (3 or 1 taps)       -> out AH x AW x W  = G g GT
///   kind "output": in AH x AW x W (transform domain)  -> out MH x MW x W  = AT M A
/// Throws InvalidArgument for an unknown isa, m, axes or kind, or an ISA this CPU lacks.
void winograd_transform(const std::string& isa, DType dtype, int m, const std::string& axes,
                        const std::string& kind, const void* in, void* out);

}  // namespace fastconv
