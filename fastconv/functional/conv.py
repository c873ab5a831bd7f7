"""Convolution: conv2d and its three gradients.

Shapes use NCHW: x (N, C, H, W), weight (K, C, R, S), y (N, K, P, Q), with
``P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1`` (likewise Q).
"""
from .._backend import backend_for
from .._checks import conv_out_sides, conv_padding, float_array, grad_shape, groups_of, pair, same_dtype, shape4

__all__ = ["conv2d", "conv2d_backward_bias", "conv2d_backward_input", "conv2d_backward_weight"]


class _Geometry:
    """The checked stride, padding, dilation and groups of one convolution, and its output size. Symmetric
    padding goes to the kernels as (ph, pw); other padding is applied to the input first (``pad_sides``),
    and the kernels see none."""

    def __init__(self, x_shape, weight_shape, stride, padding, dilation, groups, x_name="x", w_name="weight"):
        self.stride, self.dilation = pair("stride", stride, 1), pair("dilation", dilation, 1)
        self.sides = conv_padding(padding, weight_shape[2:], self.dilation, self.stride)
        C, K = x_shape[1], weight_shape[0]
        if groups == 1 and C != weight_shape[1]:
            raise ValueError(
                f"{x_name} has {C} channels (shape {tuple(x_shape)}) but {w_name} expects {weight_shape[1]} "
                f"(shape {tuple(weight_shape)}, which needs (K, C, R, S) with C = {x_name}.shape[1])"
            )
        self.groups = groups_of(groups, C, K, weight_shape, x_name)
        top, bottom, left, right = self.sides
        self.symmetric = top == bottom and left == right
        self.padding = (top, left) if self.symmetric else (0, 0)
        what = "input (x_shape)" if x_name == "x_shape" else "input"
        self.out_hw = conv_out_sides(x_shape, weight_shape, self.stride, self.sides, self.dilation, what)

    def padded_shape(self, x_shape):
        top, bottom, left, right = self.sides
        return (x_shape[0], x_shape[1], x_shape[2] + top + bottom, x_shape[3] + left + right)

    def args(self):
        return self.stride, self.padding, self.dilation


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, as in every deep-learning library.

    ``y[n,k,p,q] = bias[k] + sum_{c,r,s} weight[k,c,r,s] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``
    with zeros outside the input.

    Parameters
    ----------
    x : array (N, C, H, W), float32 or float64
    weight : array (K, C/groups, R, S), same dtype
    bias : array (K,) or None
    stride, dilation : int or (h, w) pair, >= 1
    padding : int, (h, w) pair, ((top, bottom), (left, right)), "valid" or "same" (stride 1; the odd pixel
        of an even kernel's padding goes at the end, as in PyTorch); zeros, >= 0.
    groups : int >= 1 dividing C and K: output channel k reads only the C/groups input channels of its
        group, k // (K/groups). groups == C is a depthwise convolution.

    Returns
    -------
    y : array (N, K, P, Q) with ``P = (H + 2*ph - dh*(R-1) - 1) // sh + 1`` and likewise Q (with per-side
        padding, top + bottom for 2*ph).
    """
    return conv2d_relu(x, weight, bias, stride, padding, dilation, groups, relu=False)


def conv2d_relu(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=True):
    """:func:`conv2d`, with ``relu`` clamping at zero in the kernel's epilogue (``nn.Sequential`` fuses a
    Conv2D and the ReLU after it so)."""
    x = float_array("x", x, 4)
    weight = float_array("weight", weight, 4)
    geo = _Geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    K = weight.shape[0]
    if bias is not None:
        bias = float_array("bias", bias)
        if tuple(bias.shape) != (K,):
            raise ValueError(f"bias must have shape ({K},) (one per output channel), got {tuple(bias.shape)}")
    dtype = same_dtype(("x", "weight", "bias"), [a for a in (x, weight, bias) if a is not None])
    be = backend_for(x, weight, bias)
    b = be.zeros((K,), dtype) if bias is None else be.contiguous(bias)
    y = be.empty((x.shape[0], K, *geo.out_hw), dtype)
    if not geo.symmetric:
        x = be.pad_sides(x, *geo.sides)
    return be.conv2d_forward(x, weight, b, y, *geo.args(), bool(relu), geo.groups)


def conv2d_backward_input(dy, weight, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to its input: the full convolution of the delta with the kernel
    flipped 180 degrees, ``dx[n,c,i,j] = sum_{k,r,s} dy[n,k,(i+ph-r*dh)/sh,(j+pw-s*dw)/sw] * weight[k,c,r,s]``
    (terms with a non-integer or out-of-range index are zero).

    Parameters
    ----------
    dy : array (N, K, P, Q), the delta of the forward output
    weight : array (K, C/groups, R, S)
    x_shape : (N, C, H, W) of the forward input
    stride, padding, dilation, groups : as in :func:`conv2d`

    Returns
    -------
    dx : array (N, C, H, W)

    Notes
    -----
    On the CPU, each stride phase of dx (the inputs ``i = rho + stride*m``) is a stride-1 correlation of the
    zero-bordered delta with the kernel taps that reach that phase, so no spread-out zeros are multiplied.
    On the GPU each dx element gathers the delta entries whose windows hold it (the divisions above exact and
    inside dy), tile by tile through shared memory, with nothing spread out or flipped in memory.
    """
    dy = float_array("dy", dy, 4)
    weight = float_array("weight", weight, 4)
    x_shape = shape4("x_shape", x_shape)
    dtype = same_dtype(("dy", "weight"), (dy, weight))
    geo = _Geometry(x_shape, weight.shape, stride, padding, dilation, groups, x_name="x_shape")
    grad_shape("dy", dy, (x_shape[0], weight.shape[0], *geo.out_hw))
    be = backend_for(dy, weight)
    if geo.symmetric:
        return be.conv2d_backward_input(dy, weight, be.empty(x_shape, dtype), *geo.args(), geo.groups)
    # the gradient of the explicitly padded input, cropped to the real one
    dxp = be.conv2d_backward_input(dy, weight, be.empty(geo.padded_shape(x_shape), dtype), *geo.args(), geo.groups)
    top, _, left, _ = geo.sides
    return be.contiguous(dxp[:, :, top : top + x_shape[2], left : left + x_shape[3]])


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to its weight: the input cross-correlated with the delta,
    ``dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw]``.

    Parameters
    ----------
    dy : array (N, K, P, Q)
    x : array (N, C, H, W), the forward input
    weight_shape : (K, C/groups, R, S)
    stride, padding, dilation, groups : as in :func:`conv2d`

    Returns
    -------
    dw : array (K, C/groups, R, S), summed over the batch
    """
    return _weight_grad(dy, x, weight_shape, stride, padding, dilation, groups, with_bias=False)[0]


def conv2d_backward_weight_bias(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """``(dw, db)``: :func:`conv2d_backward_weight` and :func:`conv2d_backward_bias` in one pass over the
    delta (``nn.Conv2D`` with a bias uses it)."""
    return _weight_grad(dy, x, weight_shape, stride, padding, dilation, groups, with_bias=True)


def _weight_grad(dy, x, weight_shape, stride, padding, dilation, groups, with_bias):
    dy = float_array("dy", dy, 4)
    x = float_array("x", x, 4)
    weight_shape = shape4("weight_shape", weight_shape)
    dtype = same_dtype(("dy", "x"), (dy, x))
    geo = _Geometry(x.shape, weight_shape, stride, padding, dilation, groups, w_name="weight_shape")
    grad_shape("dy", dy, (x.shape[0], weight_shape[0], *geo.out_hw))
    be = backend_for(dy, x)
    dw = be.zeros(weight_shape, dtype)
    db = be.zeros((weight_shape[0] if with_bias else 0,), dtype)
    if not geo.symmetric:
        x = be.pad_sides(x, *geo.sides)
    return be.conv2d_backward_weight(dy, x, dw, db, *geo.args(), geo.groups), db


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
