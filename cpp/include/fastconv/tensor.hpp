// fastconv/tensor.hpp — the array-level C++ API: non-owning views of dense C-contiguous arrays in,
// outputs either caller-allocated (a MutableView whose dtype and shape must be the result's) or
// library-allocated (a returned Tensor). Each function derives the problem from the views' shapes
// (the spatial rank from the weight, or given for pooling), validates it as the make_*_problem
// functions do, and computes with the entry points of conv.hpp, pool.hpp, norm.hpp,
// activation.hpp and linear.hpp. Throws the fastconv::Error classes; a view whose dtype differs
// from the others, or an output of the wrong shape, is DTypeError / InvalidArgument.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastconv/activation.hpp"
#include "fastconv/conv.hpp"
#include "fastconv/pool.hpp"

namespace fastconv {

/// A read-only view of a dense, C-contiguous array of `shape` (elements of dtype at data).
struct View {
  const void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
};

/// A writable view, for outputs.
struct MutableView {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  operator View() const { return View{data, dtype, shape}; }  ///< the same array, read-only
};

/// An owning dense array (64-byte aligned; from 4 MiB on, on transparent huge pages). Copies
/// share the memory.
class Tensor {
 public:
  Tensor() = default;
  /// Uninitialised storage for `shape` (every extent >= 0); throws OverflowError, OutOfMemory.
  Tensor(DType dtype, std::vector<int64_t> shape);
  void* data() { return mem_.get(); }
  const void* data() const { return mem_.get(); }
  template <typename T>
  T* as() { return static_cast<T*>(mem_.get()); }  ///< the elements as T (float or double)
  template <typename T>
  const T* as() const { return static_cast<const T*>(mem_.get()); }  ///< read-only elements
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;  ///< product of the extents
  View view() const { return View{mem_.get(), dtype_, shape_}; }
  MutableView mutable_view() { return MutableView{mem_.get(), dtype_, shape_}; }

 private:
  std::shared_ptr<void> mem_;
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
};

/// Convolution y = conv(x, w) + b, torch.nn.functional.conv<rank>d with rank = w's dims - 2:
/// x (N, C, *spatial) or (C, *spatial), w (K, C / groups, *kernel), b (K) or null.
Tensor conv(const View& x, const View& w, const View* b, const ConvOptions& options = {},
            const std::string& algo = "auto");
void conv(const View& x, const View& w, const View* b, const MutableView& y,
          const ConvOptions& options = {}, const std::string& algo = "auto");

/// Gradient of conv with respect to x (of `input_shape`), from w and dy.
Tensor conv_input_grad(const std::vector<int64_t>& input_shape, const View& w, const View& dy,
                       const ConvOptions& options = {}, const std::string& algo = "auto");
/// Gradient of conv with respect to w (of `weight_shape`), from x and dy; deterministic.
Tensor conv_weight_grad(const View& x, const std::vector<int64_t>& weight_shape, const View& dy,
                        const ConvOptions& options = {}, const std::string& algo = "auto");

/// Transposed convolution, torch.nn.functional.conv_transpose<rank>d: w (C_in, C_out / groups,
/// *kernel), b (C_out) or null.
Tensor conv_transpose(const View& x, const View& w, const View* b,
                      const ConvTransposeOptions& options = {}, const std::string& algo = "auto");

/// Max or average pooling of rank 1-3 (kind max or avg); with `indices` (int64, the output's
/// shape; max only) the flat argmax of every output within its plane.
Tensor pool(PoolKind kind, int rank, const View& x, const PoolOptions& options,
            int64_t* indices = nullptr);

/// Layer normalisation over the trailing `normalized_shape` dims; weight / bias of that shape or
/// null.
Tensor layer_norm(const View& x, const std::vector<int64_t>& normalized_shape, const View* weight,
                  const View* bias, double eps = 1e-5);

/// Batch normalisation with running statistics (evaluation mode): running_mean / running_var
/// (C values, either floating dtype), weight / bias (C) or null; x (N, C, *).
Tensor batch_norm(const View& x, const View& running_mean, const View& running_var,
                  const View* weight, const View* bias, double eps = 1e-5);

/// Group normalisation of x (N, C, *) in `groups` groups; weight / bias (C) or null.
Tensor group_norm(const View& x, int64_t groups, const View* weight, const View* bias,
                  double eps = 1e-5);

/// An elementwise activation (alpha, beta: its parameters, see activation.hpp).
Tensor activation(Activation act, const View& x, double alpha = 0, double beta = 0);

/// Gradient of an activation with respect to its input x, from dy.
Tensor activation_input_grad(Activation act, const View& x, const View& dy, double alpha = 0,
                             double beta = 0);

/// Softmax (log-softmax with `log`) along `dim` (negative: from the end).
Tensor softmax(const View& x, int64_t dim, bool log = false);

/// Gradient of softmax (log-softmax) with respect to its input, from its output y and dy.
Tensor softmax_input_grad(const View& y, const View& dy, int64_t dim, bool log = false);

/// y = x W^T + b over the last dim: x (*, in_features), w (out_features, in_features).
Tensor linear(const View& x, const View& w, const View* b);

/// Gradient of linear with respect to x: dy W, shaped (*, in_features).
Tensor linear_input_grad(const View& w, const View& dy);

/// Gradient of linear with respect to w (out_features, in_features), and when `bias_grad` is not
/// null, with respect to the bias (written there: a Tensor of out_features).
Tensor linear_weight_grad(const View& x, const View& dy, Tensor* bias_grad = nullptr);

/// Gradient of max pooling with respect to its input (of `input_shape`), through the indices
/// the forward returned (int64, dy's shape).
Tensor max_pool_input_grad(int rank, const std::vector<int64_t>& input_shape, const View& dy,
                           const int64_t* indices);

/// Gradient of average pooling with respect to its input (of `input_shape`).
Tensor avg_pool_input_grad(int rank, const std::vector<int64_t>& input_shape, const View& dy,
                           const PoolOptions& options);

}  // namespace fastconv
