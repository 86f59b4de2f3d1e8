// fastconv/tensor.hpp — the array-level C++ API: non-owning views of dense C-contiguous arrays in,
// outputs either caller-allocated (a MutableView whose dtype and shape must be the result's) or
// library-allocated (a returned Tensor). Each function derives the problem from the views' shapes
// (the spatial rank from the weight, or given for pooling), validates it as the make_*_problem
// functions do, and computes with the entry points of conv.hpp, plan.hpp, pool.hpp, norm.hpp,
// activation.hpp and linear.hpp. Throws the fastconv::Error classes; a view whose dtype differs
// from the others, or an output of the wrong shape, is DTypeError / InvalidArgument, and so is
// a view with elements but a null data pointer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fastconv/activation.hpp"
#include "fastconv/conv.hpp"
#include "fastconv/plan.hpp"
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

/// A ConvPlan (plan.hpp) for activation(conv(x, w) + b) on inputs of `input_shape`: w and b
/// are copied in the algorithm's layout once; run it with forward() below, many times.
/// `stores`: how a large output is written (OutputStores::cache for a network's layers).
ConvPlan conv_plan(const std::vector<int64_t>& input_shape, const View& w, const View* b,
                   const ConvOptions& options = {}, const std::string& algo = "auto",
                   Activation activation = Activation::none,
                   OutputStores stores = OutputStores::stream);

/// y = activation(conv(x, w) + b + residual) by `plan`; x of the plan's input shape and dtype,
/// residual (the output's shape) or null.
Tensor forward(const ConvPlan& plan, const View& x, const View* residual = nullptr);
void forward(const ConvPlan& plan, const View& x, const MutableView& y,
             const View* residual = nullptr);

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

/// Gradient of conv_transpose with respect to its input x (of `input_shape`), from w and dy.
Tensor conv_transpose_input_grad(const std::vector<int64_t>& input_shape, const View& w,
                                 const View& dy, const ConvTransposeOptions& options = {},
                                 const std::string& algo = "auto");
/// Gradient of conv_transpose with respect to w (of `weight_shape`), from x and dy.
Tensor conv_transpose_weight_grad(const View& x, const std::vector<int64_t>& weight_shape,
                                  const View& dy, const ConvTransposeOptions& options = {},
                                  const std::string& algo = "auto");

/// Max or average pooling of rank 1-3 (kind max or avg); with `indices` (int64, the output's
/// shape; max only) the flat argmax of every output within its plane.
Tensor pool(PoolKind kind, int rank, const View& x, const PoolOptions& options,
            int64_t* indices = nullptr);

/// Adaptive pooling of rank 1-3 (kind adaptive_max or adaptive_avg) to `output_size` (one
/// value or one per spatial dim; an empty optional keeps that extent); `indices` as for pool.
Tensor adaptive_pool(PoolKind kind, int rank, const View& x,
                     const std::vector<std::optional<int64_t>>& output_size,
                     int64_t* indices = nullptr);

/// Gradient of adaptive average pooling with respect to its input (of `input_shape`); the
/// output size is dy's. (Adaptive max pooling's gradient is max_pool_input_grad with its
/// indices.)
Tensor adaptive_avg_pool_input_grad(int rank, const std::vector<int64_t>& input_shape,
                                    const View& dy);

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

/// The statistics a normalisation used: a mean and a biased variance per statistic (float64).
struct NormStats {
  std::vector<double> mean, var;  ///< one per statistic; var biased
};

/// Batch normalisation in training mode: normalised with the statistics of x (N, C, *) itself,
/// per channel over N and the positions; weight / bias (C) or null. When `running_mean` and
/// `running_var` are given (C values each, either floating dtype, updated in place) they move as
/// PyTorch's do: r = (1 - momentum) r + momentum s, the variance unbiased (n / (n - 1)); a
/// cumulative average is momentum = 1 / (batches seen). When `stats` is not null it receives
/// the batch's mean and biased variance (C doubles each), as batch_norm_grad recomputes them.
/// Throws InvalidArgument when a channel has one value (PyTorch: "Expected more than 1 value
/// per channel when training").
Tensor batch_norm_train(const View& x, const View* weight, const View* bias, double eps = 1e-5,
                        double momentum = 0.1, const MutableView* running_mean = nullptr,
                        const MutableView* running_var = nullptr, NormStats* stats = nullptr);

/// Gradients of a normalisation with respect to its input (x's shape), weight and bias (the
/// parameters' shape, computed whether or not the forward had them).
struct NormGrads {
  Tensor input, weight, bias;
};

/// Gradients of batch_norm_train (running_mean / running_var null: statistics of x, the gradient
/// flowing through them) or of batch_norm in evaluation mode (running_mean / running_var given:
/// constants), from dy (x's shape); weight (C) or null (1).
NormGrads batch_norm_grad(const View& x, const View& dy, const View* weight, double eps = 1e-5,
                          const View* running_mean = nullptr, const View* running_var = nullptr);

/// Gradients of group_norm (instance normalisation: groups = C), from dy (x's shape).
NormGrads group_norm_grad(const View& x, const View& dy, int64_t groups, const View* weight,
                          double eps = 1e-5);

/// Gradients of layer_norm, from dy (x's shape).
NormGrads layer_norm_grad(const View& x, const View& dy,
                          const std::vector<int64_t>& normalized_shape, const View* weight,
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
