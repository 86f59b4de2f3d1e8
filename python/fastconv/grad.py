"""Gradients of the convolution ops, with ``torch.nn.grad``'s signatures plus fastconv's keywords.

For ``y = conv2d(x, w, b, ...)`` and an upstream gradient ``g = dL/dy``:

- ``conv2d_input(x.shape, w, g, ...)`` is ``dL/dx`` (gradients through reflect / replicate /
  circular padding are folded back into it);
- ``conv2d_weight(x, w.shape, g, ...)`` is ``dL/dw`` — deterministic: the reduction over the batch
  has a fixed order, so repeated calls give the same bits for any thread count;
- ``conv2d_bias(g)`` is ``dL/db``.

``conv_transpose2d_input`` / ``conv_transpose2d_weight`` are the same for
``y = conv_transpose2d(x, w, ...)``. The convolution gradients take the forward call's
parameters and accept ``algo=`` (see :func:`fastconv.algorithms` with a direction).

Pooling: ``max_pool2d_input(grad_output, indices, input_shape)`` and
``adaptive_max_pool2d_input`` scatter through the indices the forward returned;
``avg_pool2d_input(grad_output, input_shape, kernel_size, ...)`` and
``adaptive_avg_pool2d_input(grad_output, input_shape)`` spread each gradient over its window.
Overlapping windows accumulate.

Normalisations: ``batch_norm_backward(grad_output, input, running_mean, running_var, weight,
training, eps)`` and its group / instance / layer siblings return ``(grad_input, grad_weight,
grad_bias)``, recomputing the statistics from the input. Activations: ``relu_input(grad_output,
input)`` and so on, with the forward's parameters; ``softmax_input(grad_output, output, dim)``
from the forward's output. ``linear_input / linear_weight / linear_bias``,
``dropout_input(grad_output, mask, p)`` and ``cross_entropy_input(grad_output, input, target,
...)`` complete the set.
"""

from ._ops.conv import (
    conv1d_bias, conv1d_input, conv1d_weight, conv2d_bias, conv2d_input, conv2d_weight,
    conv3d_bias, conv3d_input, conv3d_weight,
    conv_transpose1d_input, conv_transpose1d_weight, conv_transpose2d_input,
    conv_transpose2d_weight, conv_transpose3d_input, conv_transpose3d_weight,
)
from ._ops.activation import (
    elu_input, gelu_input, hardsigmoid_input, hardswish_input, hardtanh_input, leaky_relu_input,
    log_softmax_input, relu6_input, relu_input, sigmoid_input, silu_input, softmax_input,
    tanh_input,
)
from ._ops.linear import dropout_input, linear_bias, linear_input, linear_weight
from ._ops.loss import cross_entropy_input, nll_loss_input
from ._ops.norm import (
    batch_norm_backward, group_norm_backward, instance_norm_backward, layer_norm_backward,
)
from ._ops.pool import (
    adaptive_avg_pool1d_input, adaptive_avg_pool2d_input, adaptive_avg_pool3d_input,
    adaptive_max_pool1d_input, adaptive_max_pool2d_input, adaptive_max_pool3d_input,
    avg_pool1d_input, avg_pool2d_input, avg_pool3d_input,
    max_pool1d_input, max_pool2d_input, max_pool3d_input,
)

__all__ = [name for name in dir()
           if name[0] != "_" and name.endswith(("_input", "_weight", "_bias", "_backward"))]
