// kernels/generic/unroll.hpp — FASTCONV_UNROLL, put before a loop of compile-time count over a
// register tile's accumulators (clearing, storing, adding them to memory). A tile's
// accumulators stay in registers only if every loop that indexes them is unrolled whole; GCC
// leaves a loop of 24 iterations with a load, an add and a store in it rolled, and then keeps
// the whole tile in memory: a store and a reload of every accumulator on the stack around each
// call or run (the 12 x 32 GEMM tile, data in L1, 1 thread, the Intel Xeon: 151-163 -> 173-175
// GFLOP/s at 27 reduction steps, 180-186 -> 191-195 at 64, within noise at 256).
#pragma once

#define FASTCONV_UNROLL _Pragma("GCC unroll 64")
