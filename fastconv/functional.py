"""The functional API: validate, allocate, pick the target, call the kernel.

Shapes use NCHW: x (N, C, H, W), weight (K, C, R, S), y (N, K, P, Q). The output size of a convolution is
``P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1`` (likewise Q); pooling uses the same formula with
dilation 1 and the window (kh, kw) for (R, S).
"""
import numpy as np

from ._backend import backend_for
from ._checks import conv_out_hw, float_array, grad_shape, is_device_array, pair, same_dtype, shape4, to_host


__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_bias",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "linear",
    "linear_backward_bias",
    "linear_backward_input",
    "linear_backward_weight",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax_cross_entropy",
    "tanh",
    "tanh_backward",
]


def _conv_args(stride, padding, dilation):
    return pair("stride", stride, 1), pair("padding", padding, 0), pair("dilation", dilation, 1)


def _check_channels(x_name, x_shape, weight_shape, w_name="weight"):
    if x_shape[1] != weight_shape[1]:
        raise ValueError(
            f"{x_name} has {x_shape[1]} channels (shape {tuple(x_shape)}) but {w_name} expects {weight_shape[1]} "
            f"(shape {tuple(weight_shape)}, which needs (K, C, R, S) with C = {x_name}.shape[1])"
        )


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, _relu=False):
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
    x = float_array("x", x, 4)
    weight = float_array("weight", weight, 4)
    _check_channels("x", x.shape, weight.shape)
    K = weight.shape[0]
    if bias is not None:
        bias = float_array("bias", bias)
        if tuple(bias.shape) != (K,):
            raise ValueError(f"bias must have shape ({K},) (one per output channel), got {tuple(bias.shape)}")
    dtype = same_dtype(("x", "weight", "bias"), [a for a in (x, weight, bias) if a is not None])
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight.shape, (sh, sw), (ph, pw), (dh, dw))
    be = backend_for(x, weight, bias)
    b = be.zeros((K,), dtype) if bias is None else be.contiguous(bias)
    N, C, R, S = x.shape[0], x.shape[1], weight.shape[2], weight.shape[3]
    y = be.empty((N, K, P, Q), dtype)
    if (sh, sw) != (1, 1) and be.use_phased_forward(C, K, sh, sw):
        # padded straight into its stride phases, which hold P + (R-1)*dh // sh rows and likewise columns
        xs = be.empty((N, C * sh * sw, P + (R - 1) * dh // sh, Q + (S - 1) * dw // sw), dtype)
        be.k.pad_phases(be.contiguous(x), xs, ph, pw, sh, sw)
        return be.k.conv2d_forward_phased(xs, be.contiguous(weight), b, y, sh, sw, dh, dw, bool(_relu))
    if (sh, sw) == (1, 1) and be.use_unfolded_forward(x.shape, weight.shape, ph, pw, Q, x.itemsize):
        # short rows: the input is copied into kernel-column shifts (padding included), so no junk columns
        return be.k.conv2d_forward_unfolded(be.contiguous(x), be.contiguous(weight), b, y, ph, pw, dh, dw, bool(_relu))
    xp = be.pad(be.contiguous(x), ph, pw)
    return _forward(be, xp, weight, b, y, (sh, sw), (dh, dw), bool(_relu))


def _forward(be, xp, weight, b, y, stride, dilation, relu, flip=False):
    """Run the forward kernel that suits the shape: the unpacked one for stride 1 (on the GPU only for few
    output channels, where packing would cost more than the arithmetic), the strided one otherwise."""
    K = weight.shape[1] if flip else weight.shape[0]
    R, S = weight.shape[2:]
    if stride == (1, 1) and K < be.direct_max_channels:
        w = be.flipped(weight) if flip else be.contiguous(weight)
        return be.k.conv2d_forward_direct(xp, w, b, y, dilation[0], dilation[1], relu)
    return be.k.conv2d_forward(xp, be.weight_matrix(weight, flip), b, y, R, S, *stride, *dilation, relu)


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
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x_shape, weight.shape, (sh, sw), (ph, pw), (dh, dw), what="input (x_shape)")
    N, C, H, W = x_shape
    K, _, R, S = weight.shape
    grad_shape("dy", dy, (N, K, P, Q))
    be = backend_for(dy, weight)
    if be.phased_dx:
        dx = be.empty((N, C, H, W), dtype)
        return be.k.conv2d_backward_input_phased(be.contiguous(dy), be.contiguous(weight), dx, sh, sw, dh, dw, ph, pw)
    eh, ew = dh * (R - 1), dw * (S - 1)  # extent of the dilated kernel, less one
    if (sh, sw) == (1, 1) and eh >= ph and ew >= pw:  # nothing to spread or crop: a plain zero border
        z = be.pad(be.contiguous(dy), eh - ph, ew - pw)
    else:
        z = be.zeros((N, K, H + eh, W + ew), dtype)
        be.k.dilate_pad(be.contiguous(dy), z, sh, sw, eh - ph, ew - pw)
    dx = be.empty((N, C, H, W), dtype)
    return _forward(be, z, weight, be.zeros((C,), dtype), dx, (1, 1), (dh, dw), False, flip=True)


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, *, _with_bias=False):
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
        (With the private ``_with_bias=True``, used by ``nn.Conv2D``: ``(dw, db)``, the bias gradient summed
        while the kernel reads the delta anyway, saving a pass over it.)
    """
    dy = float_array("dy", dy, 4)
    x = float_array("x", x, 4)
    weight_shape = shape4("weight_shape", weight_shape)
    dtype = same_dtype(("dy", "x"), (dy, x))
    _check_channels("x", x.shape, weight_shape, "weight_shape")
    (sh, sw), (ph, pw), (dh, dw) = _conv_args(stride, padding, dilation)
    P, Q = conv_out_hw(x.shape, weight_shape, (sh, sw), (ph, pw), (dh, dw))
    grad_shape("dy", dy, (x.shape[0], weight_shape[0], P, Q))
    be = backend_for(dy, x)
    xp = be.pad(be.contiguous(x), ph, pw)
    K, C, R, S = weight_shape
    db = be.zeros((K if _with_bias else 0,), dtype)
    # The backend picks: its stride-1 kernel (unpacked) or the packed one, which suits any stride.
    if (sh, sw) == (1, 1) and be.use_direct_dw(xp, K):
        dwt = be.k.conv2d_backward_weight_direct(xp, be.contiguous(dy), be.zeros(weight_shape, dtype), dh, dw, db)
    else:
        dw2 = be.zeros((K, C * R * S), dtype)
        be.k.conv2d_backward_weight(xp, be.contiguous(dy), dw2, R, S, sh, sw, dh, dw, db)
        dwt = dw2.reshape(weight_shape)
    return (dwt, db) if _with_bias else dwt


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
    be.k.conv2d_backward_bias(be.contiguous(dy), db)
    return db


def _pool_args(x_shape, kernel_size, stride, padding):
    kh, kw = pair("kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else pair("stride", stride, 1)
    ph, pw = pair("padding", padding, 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding {(ph, pw)} must be at most half of kernel_size {(kh, kw)}: "
            "a window of padding alone has no input to pool"
        )
    P, Q = conv_out_hw(x_shape, (0, 0, kh, kw), (sh, sw), (ph, pw), (1, 1))
    return (kh, kw), (sh, sw), (ph, pw), (P, Q)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D max pooling (padding counts as -inf); returns the maxima and the winners' indices.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int or (ph, pw), at most half of kernel_size

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - kh) // sh + 1`` and likewise Q
    indices : int64 array (N, C, P, Q), the flat index ``h*W + w`` of each winner in its (n, c) plane.
        A NaN in a window wins it (as in PyTorch).
    """
    x = float_array("x", x, 4)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x.shape, kernel_size, stride, padding)
    be = backend_for(x)
    N, C = x.shape[:2]
    y = be.empty((N, C, P, Q), x.dtype)
    idx = be.empty((N, C, P, Q), np.int64)
    be.k.max_pool2d_forward(be.contiguous(x), y, idx, kh, kw, sh, sw, ph, pw)
    return y, idx


def max_pool2d_backward(dy, indices, x_shape, *, _trusted=False):
    """Gradient of max pooling: each ``dy`` entry goes to the input that won its window (overlapping windows
    accumulate).

    Parameters
    ----------
    dy : array (N, C, P, Q)
    indices : int64 array (N, C, P, Q) from :func:`max_pool2d`
    x_shape : (N, C, H, W) of the forward input

    Returns
    -------
    dx : array (N, C, H, W)
    """
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    N, C, H, W = x_shape
    if not (isinstance(indices, np.ndarray) or is_device_array(indices)):
        raise TypeError(f"indices must be an int64 array from max_pool2d, got {type(indices).__name__}")
    if np.dtype(indices.dtype) != np.int64:
        raise TypeError(f"indices must have dtype int64, got {indices.dtype}")
    if tuple(indices.shape) != tuple(dy.shape):
        raise ValueError(f"indices must have dy's shape {tuple(dy.shape)}, got {tuple(indices.shape)}")
    if tuple(dy.shape[:2]) != (N, C):
        raise ValueError(f"dy must have (N, C) = {(N, C)} from x_shape {x_shape}, got shape {tuple(dy.shape)}")
    be = backend_for(dy, indices)
    if indices.size and not _trusted:  # (a layer passing back its own forward's indices skips this pass)
        lo, hi = be.minmax(indices)
        if lo < 0 or hi >= H * W:
            raise ValueError(
                f"indices must lie in [0, {H * W}) (flat positions in an {H}x{W} plane), got values in [{lo}, {hi}]"
            )
    dx = be.empty((N, C, H * W), dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.k.max_pool2d_backward(be.contiguous(dy), be.contiguous(indices), dx)
    return dx.reshape(x_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D average pooling; padded zeros count in the divisor (``count_include_pad=True``).

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw), default kernel_size
    padding : int or (ph, pw), at most half of kernel_size

    Returns
    -------
    y : array (N, C, P, Q), ``P = (H + 2*ph - kh) // sh + 1`` and likewise Q
    """
    x = float_array("x", x, 4)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x.shape, kernel_size, stride, padding)
    be = backend_for(x)
    y = be.empty((x.shape[0], x.shape[1], P, Q), x.dtype)
    be.k.avg_pool2d_forward(be.contiguous(x), y, kh, kw, sh, sw, ph, pw)
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of average pooling: each ``dy`` entry is spread evenly, ``/ (kh*kw)``, over its window.

    Parameters
    ----------
    dy : array (N, C, P, Q)
    x_shape : (N, C, H, W) of the forward input
    kernel_size, stride, padding : as in :func:`avg_pool2d`

    Returns
    -------
    dx : array (N, C, H, W)
    """
    dy = float_array("dy", dy, 4)
    x_shape = shape4("x_shape", x_shape)
    (kh, kw), (sh, sw), (ph, pw), (P, Q) = _pool_args(x_shape, kernel_size, stride, padding)
    grad_shape("dy", dy, (x_shape[0], x_shape[1], P, Q))
    be = backend_for(dy)
    dx = be.empty(x_shape, dy.dtype)  # (each plane is zeroed by the kernel iteration that owns it)
    be.k.avg_pool2d_backward(be.contiguous(dy), dx, kh, kw, sh, sw, ph, pw)
    return dx


def relu(x):
    """``y = max(x, 0)`` elementwise, any shape (NaN stays NaN)."""
    x = float_array("x", x)
    be = backend_for(x)
    x = be.contiguous(x)
    y = be.empty(x.shape, x.dtype)
    be.k.relu_forward(be.flat(x), be.flat(y))
    return y


def relu_backward(dy, x):
    """Gradient of ReLU: ``dx = dy`` where ``x > 0``, else 0. ``dy`` and ``x`` share one shape."""
    dy = float_array("dy", dy)
    x = float_array("x", x)
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have x's shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    same_dtype(("dy", "x"), (dy, x))
    be = backend_for(dy, x)
    dy, x = be.contiguous(dy), be.contiguous(x)
    dx = be.empty(x.shape, x.dtype)
    be.k.relu_backward(be.flat(dy), be.flat(x), be.flat(dx))
    return dx


def _elementwise(name, kernel, *arrays):
    """Run a flat elementwise kernel over arrays of one shape and dtype; return the new output."""
    ref = arrays[-1]
    for n, a in zip(name, arrays):
        float_array(n, a)
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(f"{n} must have {name[-1]}'s shape {tuple(ref.shape)}, got {tuple(a.shape)}")
    same_dtype(name, arrays)
    be = backend_for(*arrays)
    arrays = [be.contiguous(a) for a in arrays]
    out = be.empty(ref.shape, ref.dtype)
    getattr(be.k, kernel)(*[be.flat(a) for a in arrays], be.flat(out))
    return out


def tanh(x):
    """``y = tanh(x)`` elementwise."""
    return _elementwise(("x",), "tanh_forward", x)


def tanh_backward(dy, y):
    """Gradient of tanh from its output: ``dx = dy * (1 - y**2)``."""
    return _elementwise(("dy", "y"), "tanh_backward", dy, y)


def sigmoid(x):
    """``y = 1 / (1 + exp(-x))`` elementwise, finite for any finite x."""
    return _elementwise(("x",), "sigmoid_forward", x)


def sigmoid_backward(dy, y):
    """Gradient of the sigmoid from its output: ``dx = dy * y * (1 - y)``."""
    return _elementwise(("dy", "y"), "sigmoid_backward", dy, y)


def linear(x, weight, bias=None):
    """Fully connected layer, ``y = x @ weight.T + bias``.

    Parameters
    ----------
    x : array (N, I)
    weight : array (O, I)
    bias : array (O,) or None

    Returns
    -------
    y : array (N, O)
    """
    x = float_array("x", x, 2)
    weight = float_array("weight", weight, 2)
    N, I = x.shape
    O = weight.shape[0]
    if weight.shape[1] != I:
        raise ValueError(f"x has {I} features (shape {tuple(x.shape)}) but weight (O, I) expects {weight.shape[1]} (shape {tuple(weight.shape)})")
    if bias is not None:
        bias = float_array("bias", bias)
        if tuple(bias.shape) != (O,):
            raise ValueError(f"bias must have shape ({O},) (one per output feature), got {tuple(bias.shape)}")
    dtype = same_dtype(("x", "weight", "bias"), [a for a in (x, weight, bias) if a is not None])
    be = backend_for(x, weight, bias)
    b = be.zeros((O,), dtype) if bias is None else be.contiguous(bias)
    return be.k.linear_forward(be.contiguous(x), be.contiguous(weight), b, be.empty((N, O), dtype))


def linear_backward_input(dy, weight):
    """Gradient of :func:`linear` with respect to x: ``dx (N, I) = dy (N, O) @ weight (O, I)``."""
    dy = float_array("dy", dy, 2)
    weight = float_array("weight", weight, 2)
    if dy.shape[1] != weight.shape[0]:
        raise ValueError(f"dy must have {weight.shape[0]} columns (weight's O), got shape {tuple(dy.shape)}")
    dtype = same_dtype(("dy", "weight"), (dy, weight))
    be = backend_for(dy, weight)
    dx = be.empty((dy.shape[0], weight.shape[1]), dtype)
    return be.k.linear_backward_input(be.contiguous(dy), be.contiguous(weight), dx)


def linear_backward_weight(dy, x):
    """Gradient of :func:`linear` with respect to weight: ``dw (O, I) = dy (N, O).T @ x (N, I)``."""
    dy = float_array("dy", dy, 2)
    x = float_array("x", x, 2)
    if dy.shape[0] != x.shape[0]:
        raise ValueError(f"dy must have x's batch size {x.shape[0]}, got shape {tuple(dy.shape)}")
    dtype = same_dtype(("dy", "x"), (dy, x))
    be = backend_for(dy, x)
    dw = be.empty((dy.shape[1], x.shape[1]), dtype)
    return be.k.linear_backward_weight(be.contiguous(dy), be.contiguous(x), dw)


def linear_backward_bias(dy):
    """Gradient of :func:`linear` with respect to bias: ``db (O,) = dy.sum(axis=0)``."""
    dy = float_array("dy", dy, 2)
    be = backend_for(dy)
    return be.k.sum_rows(be.contiguous(dy), be.zeros((dy.shape[1],), dy.dtype))


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy over the batch and its gradient with respect to the logits.

    Parameters
    ----------
    logits : array (N, C)
    labels : integer array (N,), each in [0, C)

    Returns
    -------
    loss : float
    grad : array (N, C), ``(softmax(logits) - onehot(labels)) / N``
    """
    logits = float_array("logits", logits, 2)
    N, C = logits.shape
    labels = _labels(labels, N, C)
    be = backend_for(logits)
    labels = be.asarray(labels)
    grad = be.empty((N, C), logits.dtype)
    losses = be.empty((N,), np.float64)
    be.k.softmax_cross_entropy(be.contiguous(logits), labels, grad, losses)
    return be.mean(losses), grad


def _labels(labels, N, C):
    """Integer class labels (N,) in [0, C); integral floats are accepted, NaN or fractions are not."""
    if is_device_array(labels):  # labels on the GPU are checked on the host
        labels = to_host(labels)
    if not isinstance(labels, (np.ndarray, list, tuple)):
        raise TypeError(f"labels must be an array of integer class indices, got {type(labels).__name__}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iuf" or labels.dtype == np.bool_:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) (one per row of logits), got {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("labels must be whole class indices, got NaN, Inf or fractional values")
    labels = labels.astype(np.int64)
    if N and (labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"labels must lie in [0, {C}) for {C} classes, got values in [{labels.min()}, {labels.max()}]")
    return labels


def sgd_update(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, first=True):
    """One in-place SGD step of ``param`` (PyTorch's rule); ``buf`` is the momentum buffer (any shape when
    momentum is 0)."""
    be = backend_for(param, grad)
    be.k.sgd_update(be.flat(param), be.flat(grad), be.flat(buf), lr, momentum, dampening, weight_decay, nesterov, first)
    return param


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place Adam step of ``param`` (PyTorch's rule) at 1-based ``step``; m and v are updated."""
    be = backend_for(param, grad)
    be.k.adam_update(be.flat(param), be.flat(grad), be.flat(m), be.flat(v), lr, beta1, beta2, eps, weight_decay, step)
    return param


def mul(a, b):
    """Elementwise product of two arrays of one shape and dtype (Dropout's mask)."""
    float_array("a", a)
    float_array("b", b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    same_dtype(("a", "b"), (a, b))
    return backend_for(a, b).mul(a, b)


def add_into(dst, src):
    """dst += src in place (gradient accumulation); returns dst."""
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"src must have dst's shape {tuple(dst.shape)}, got {tuple(src.shape)}")
    return backend_for(dst, src).add_into(dst, src)
