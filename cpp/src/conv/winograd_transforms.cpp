// conv/winograd_transforms.cpp — fastconv/winograd.hpp: the Winograd matrices and one-tile
// runs of the transform kernels, so tests can hold each kernel to its explicit matrix product.
#include "fastconv/winograd.hpp"

#include <string>

#include "fastconv/errors.hpp"
#include "kernels/generic/winograd_matrices.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv {

namespace {

namespace wk = kernels::winograd;

void check_tile(int m, const char* op) {
  if (m != 2 && m != 4 && m != 6) {
    throw InvalidArgument(std::string(op) + ": expected m in {2, 4, 6}, got " + std::to_string(m));
  }
}

const kernels::KernelTable& table(const std::string& isa) {
  return isa.empty() ? kernels::active_kernels() : kernels::kernels_for(isa);
}

template <typename T>
void run(const kernels::WinogradKernels<T>& k, int m, int axes, const std::string& kind,
         const T* in, T* out) {
  const int v = wk::variant_index(m), W = k.w;
  const int aw = axes == 2 ? 1 : m + 2, mw = axes == 2 ? 1 : m;  // (axes 2: along H only)
  if (kind == "input") {
    k.input[v][axes](in, aw * W, 1, out, W);
  } else if (kind == "weight") {
    k.weight[v][axes](in, out, W, false);
  } else if (kind == "output") {
    k.output[v][axes](in, W, 1, kernels::TileStore<T>{}, out, mw * W);
  } else {
    throw InvalidArgument("winograd_transform: expected kind 'input', 'weight' or 'output', got '" +
                          kind + "'");
  }
}

}  // namespace

WinogradMatrices winograd_matrices(int m) {
  check_tile(m, "winograd_matrices");
  const wk::Matrices& t = wk::matrices_for(m);
  WinogradMatrices r;
  r.m = t.m;
  r.alpha = t.alpha;
  for (int i = 0; i < t.m; ++i)
    for (int j = 0; j < t.alpha; ++j) r.AT.push_back(t.AT[i][j]);
  for (int i = 0; i < t.alpha; ++i)
    for (int j = 0; j < wk::kTaps; ++j) r.G.push_back(t.G[i][j]);
  for (int i = 0; i < t.alpha; ++i)
    for (int j = 0; j < t.alpha; ++j) r.BT.push_back(t.BT[i][j]);
  return r;
}

int winograd_lanes(const std::string& isa, DType dtype) {
  const kernels::KernelTable& k = table(isa);
  return dtype == DType::f32 ? k.f32.winograd.w : k.f64.winograd.w;
}

void winograd_transform(const std::string& isa, DType dtype, int m, const std::string& axes,
                        const std::string& kind, const void* in, void* out) {
  check_tile(m, "winograd_transform");
  const int a = axes == "hw" ? 0 : axes == "w" ? 1 : axes == "h" ? 2 : -1;
  if (a < 0) {
    throw InvalidArgument("winograd_transform: expected axes 'hw', 'w' or 'h', got '" + axes + "'");
  }
  const kernels::KernelTable& k = table(isa);
  if (dtype == DType::f32) {
    run(k.f32.winograd, m, a, kind, static_cast<const float*>(in), static_cast<float*>(out));
  } else {
    run(k.f64.winograd, m, a, kind, static_cast<const double*>(in), static_cast<double*>(out));
  }
}

}  // namespace fastconv
