"""Convolution: conv2d and its three gradients.

Shapes use NCHW: x (N, C, H, W), weight (K, C, R, S), y (N, K, P, Q), with
``P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1`` (likewise Q).
"""
from .._backend import backend_for
from .._checks import conv_out_hw, float_array, grad_shape, pair, same_dtype, shape4

__all__ = ["conv2d", "conv2d_backward_bias", "conv2d_backward_input", "conv2d_backward_weight"]


def _conv_args(stride, padding, dilation):
    return pair("stride", stride, 1), pair("padding", padding, 0), pair("dilation", dilation, 1)


def _check_channels(x_name, x_shape, weight_shape, w_name="weight"):
    if x_shape[1] != weight_shape[1]:
        raise ValueError(
            f"{x_name} has {x_shape[1]} channels (shape {tuple(x_shape)}) but {w_name} expects {weight_shape[1]} "
            f"(shape {tuple(weight_shape)}, which needs (K, C, R, S) with C = {x_name}.shape[1])"
        )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation, as in every deep-learning library.

    ``y[n,k,p,q] = bias[k] + sum_{c,r,s} weight[k,c,r,s] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``
    with zeros outside the input.

    Parameters
    ----------
    x : array (N, C, H, W), float32 or float64
    weight : array (K, C, R, S), same dtype
    bias : array (K,) or None
    stride, padding, dilation : int or (h, w) pair
        stride >= 1, padding >= 0 (zeros), dilation >= 1.

    Returns
    -------
    y : array (N, K, P, Q) with ``P = (H + 2*ph - dh*(R-1) - 1) // sh + 1`` and likewise Q.
    """
    return conv2d_relu(x, weight, bias, stride, padding, dilation, relu=False)


def conv2d_relu(x, weight, bias=None, stride=1, padding=0, dilation=1, relu=True):
    """:func:`conv2d`, with ``relu`` clamping at zero in the kernel's epilogue (``nn.Sequential`` fuses a
    Conv2D and the ReLU after it so)."""
    x = float_array("x", x, 4)
    weight = float_array("weight", weight, 4)
    _check_channels("x", x.shape, weight.shape)
    K = weight.shape[0]
    if bias is not None:
        bias = float_array("bias", bias)
        if tuple(bias.shape) != (K,):
            raise ValueError(f"bias must have shape ({K},) (one per output channel), got {tuple(bias.shape)}")
    dtype = same_dtype(("x", "weight", "bias"), [a for a in (x, weight, bias) if a is not None])
    stride, padding, dilation = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight.shape, stride, padding, dilation)
    be = backend_for(x, weight, bias)
    b = be.zeros((K,), dtype) if bias is None else be.contiguous(bias)
    y = be.empty((x.shape[0], K, P, Q), dtype)
    return be.conv2d_forward(x, weight, b, y, stride, padding, dilation, bool(relu))


def conv2d_backward_input(dy, weight, x_shape, stride=1, padding=0, dilation=1):
    """Gradient of conv2d with respect to its input: the full convolution of the delta with the kernel
    flipped 180 degrees, ``dx[n,c,i,j] = sum_{k,r,s} dy[n,k,(i+ph-r*dh)/sh,(j+pw-s*dw)/sw] * weight[k,c,r,s]``
    (terms with a non-integer or out-of-range index are zero).

    Parameters
    ----------
    dy : array (N, K, P, Q), the delta of the forward output
    weight : array (K, C, R, S)
    x_shape : (N, C, H, W) of the forward input
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    dx : array (N, C, H, W)

    Notes
    -----
    On the CPU, each stride phase of dx (the inputs ``i = rho + stride*m``) is a stride-1 correlation of the
    zero-bordered delta with the kernel taps that reach that phase, so no spread-out zeros are multiplied.
    On the GPU the delta is spread apart by the stride into a zero buffer padded by ``dil*(k-1) - pad`` on
    each side, and correlated with the flipped, channel-transposed kernel by the forward kernel.
    """
    dy = float_array("dy", dy, 4)
    weight = float_array("weight", weight, 4)
    x_shape = shape4("x_shape", x_shape)
    dtype = same_dtype(("dy", "weight"), (dy, weight))
    _check_channels("x_shape", x_shape, weight.shape)
    stride, padding, dilation = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x_shape, weight.shape, stride, padding, dilation, what="input (x_shape)")
    grad_shape("dy", dy, (x_shape[0], weight.shape[0], P, Q))
    be = backend_for(dy, weight)
    dx = be.empty(x_shape, dtype)
    return be.conv2d_backward_input(dy, weight, dx, stride, padding, dilation)


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1):
    """Gradient of conv2d with respect to its weight: the input cross-correlated with the delta,
    ``dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``.

    Parameters
    ----------
    dy : array (N, K, P, Q)
    x : array (N, C, H, W), the forward input
    weight_shape : (K, C, R, S)
    stride, padding, dilation : as in :func:`conv2d`

    Returns
    -------
    dw : array (K, C, R, S), summed over the batch
    """
    return _weight_grad(dy, x, weight_shape, stride, padding, dilation, with_bias=False)[0]


def conv2d_backward_weight_bias(dy, x, weight_shape, stride=1, padding=0, dilation=1):
    """``(dw, db)``: :func:`conv2d_backward_weight` and :func:`conv2d_backward_bias` in one pass over the
    delta (``nn.Conv2D`` with a bias uses it)."""
    return _weight_grad(dy, x, weight_shape, stride, padding, dilation, with_bias=True)


def _weight_grad(dy, x, weight_shape, stride, padding, dilation, with_bias):
    dy = float_array("dy", dy, 4)
    x = float_array("x", x, 4)
    weight_shape = shape4("weight_shape", weight_shape)
    dtype = same_dtype(("dy", "x"), (dy, x))
    _check_channels("x", x.shape, weight_shape, "weight_shape")
    stride, padding, dilation = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight_shape, stride, padding, dilation)
    grad_shape("dy", dy, (x.shape[0], weight_shape[0], P, Q))
    be = backend_for(dy, x)
    dw = be.zeros(weight_shape, dtype)
    db = be.zeros((weight_shape[0] if with_bias else 0,), dtype)
    return be.conv2d_backward_weight(dy, x, dw, db, stride, padding, dilation), db


def conv2d_backward_bias(dy):
    """Gradient of conv2d with respect to its bias, ``db[k] = sum_{n,p,q} dy[n,k,p,q]``.

    Parameters
    ----------
    dy : array (N, K, P, Q)

    Returns
    -------
    db : array (K,)
    """
    dy = float_array("dy", dy, 4)
    be = backend_for(dy)
    db = be.zeros((dy.shape[1],), dy.dtype)
    return be.conv2d_backward_bias(be.contiguous(dy), db)
