// kernels/generic/unroll.hpp — FASTCONV_UNROLL, put before a loop of compile-time count over a
// register tile's accumulators (clearing, storing, adding them to memory). A tile's
// accumulators stay in registers only if every loop that indexes them is unrolled whole; GCC
// leaves a loop of 24 iterations with a load, an add and a store in it rolled, and then keeps
// the whole tile in memory: a store and a reload of every accumulator on the stack around each
// call or run (measured on the 12 x 32 GEMM tile, data in L1, 1 thread: 194 -> 216 GFLOP/s at
// 256 reduction steps, 150 -> 193 at 27).
#pragma once

#define FASTCONV_UNROLL _Pragma("GCC unroll 64")
