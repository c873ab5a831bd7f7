"""Numba kernels of fastconv (shipped as ``fastconv.kernels``).

``cpu`` holds the parallel CPU kernels, ``cuda`` their twins for NVIDIA GPUs. Kernels do no checking:
the functional layer in ``fastconv.functional`` validates, allocates and dispatches. Nothing here imports
``fastconv``.
"""

# The op-level entry points that every target's plan module (cpu/plan.py, cuda/plan.py) offers, with the same
# arguments: fastconv.functional calls these and nothing else of a target.
ENTRY_POINTS = (
    "adam_update", "add", "add_into", "asarray", "avg_pool2d_backward", "avg_pool2d_forward", "batch_norm_apply",
    "batch_norm_backward", "batch_norm_backward_dx", "batch_norm_backward_sums", "batch_norm_stats", "contiguous",
    "conv2d_backward_bias", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_forward", "empty", "flat",
    "global_avg_pool_backward", "global_avg_pool_forward", "linear_backward_input", "linear_backward_weight",
    "linear_forward", "max_pool2d_backward", "pad_sides", "max_pool2d_forward", "mean", "minmax", "mul",
    "relu_backward", "relu_forward", "sgd_update", "sigmoid_backward", "sigmoid_forward", "softmax_cross_entropy",
    "sum_rows", "tanh_backward", "tanh_forward", "zeros",
)
