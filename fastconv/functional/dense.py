"""Dense, elementwise and loss ops: Linear and its gradients, activations, softmax cross-entropy, and the
in-place optimizer updates."""
import numpy as np

from .._backend import backend_for
from .._checks import float_array, is_device_array, same_dtype, to_host

__all__ = [
    "linear", "linear_backward_bias", "linear_backward_input", "linear_backward_weight", "relu", "relu_backward",
    "sigmoid", "sigmoid_backward", "softmax_cross_entropy", "tanh", "tanh_backward",
]


def relu(x):
    """``y = max(x, 0)`` elementwise, any shape (NaN stays NaN)."""
    x = float_array("x", x)
    be = backend_for(x)
    x = be.contiguous(x)
    y = be.empty(x.shape, x.dtype)
    be.relu_forward(be.flat(x), be.flat(y))
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
    be.relu_backward(be.flat(dy), be.flat(x), be.flat(dx))
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
    getattr(be, kernel)(*[be.flat(a) for a in arrays], be.flat(out))
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
    return be.linear_forward(be.contiguous(x), be.contiguous(weight), b, be.empty((N, O), dtype))


def linear_backward_input(dy, weight):
    """Gradient of :func:`linear` with respect to x: ``dx (N, I) = dy (N, O) @ weight (O, I)``."""
    dy = float_array("dy", dy, 2)
    weight = float_array("weight", weight, 2)
    if dy.shape[1] != weight.shape[0]:
        raise ValueError(f"dy must have {weight.shape[0]} columns (weight's O), got shape {tuple(dy.shape)}")
    dtype = same_dtype(("dy", "weight"), (dy, weight))
    be = backend_for(dy, weight)
    dx = be.empty((dy.shape[0], weight.shape[1]), dtype)
    return be.linear_backward_input(be.contiguous(dy), be.contiguous(weight), dx)


def linear_backward_weight(dy, x):
    """Gradient of :func:`linear` with respect to weight: ``dw (O, I) = dy (N, O).T @ x (N, I)``."""
    dy = float_array("dy", dy, 2)
    x = float_array("x", x, 2)
    if dy.shape[0] != x.shape[0]:
        raise ValueError(f"dy must have x's batch size {x.shape[0]}, got shape {tuple(dy.shape)}")
    dtype = same_dtype(("dy", "x"), (dy, x))
    be = backend_for(dy, x)
    dw = be.empty((dy.shape[1], x.shape[1]), dtype)
    return be.linear_backward_weight(be.contiguous(dy), be.contiguous(x), dw)


def linear_backward_bias(dy):
    """Gradient of :func:`linear` with respect to bias: ``db (O,) = dy.sum(axis=0)``."""
    dy = float_array("dy", dy, 2)
    be = backend_for(dy)
    return be.sum_rows(be.contiguous(dy), be.zeros((dy.shape[1],), dy.dtype))


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
    be.softmax_cross_entropy(be.contiguous(logits), labels, grad, losses)
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
    be.sgd_update(be.flat(param), be.flat(grad), be.flat(buf), lr, momentum, dampening, weight_decay, nesterov, first)
    return param


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One in-place Adam step of ``param`` (PyTorch's rule) at 1-based ``step``; m and v are updated."""
    be = backend_for(param, grad)
    be.adam_update(be.flat(param), be.flat(grad), be.flat(m), be.flat(v), lr, beta1, beta2, eps, weight_decay, step)
    return param


def _pair_of(a, b):
    """Two float arrays of one shape and dtype, checked, with their target."""
    a, b = float_array("a", a), float_array("b", b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    same_dtype(("a", "b"), (a, b))
    return backend_for(a, b), a, b


def mul(a, b):
    """Elementwise product of two arrays of one shape and dtype (Dropout's mask)."""
    be, a, b = _pair_of(a, b)
    return be.mul(a, b)


def add(a, b, relu=False):
    """a + b, a new array (a residual connection); a and b share one shape and dtype. With ``relu`` the sum
    is clamped at zero in the same pass (the ReLU that follows a residual block)."""
    be, a, b = _pair_of(a, b)
    return be.add(a, b, bool(relu))


def add_into(dst, src):
    """dst += src in place (gradient accumulation); returns dst."""
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"src must have dst's shape {tuple(dst.shape)}, got {tuple(src.shape)}")
    return backend_for(dst, src).add_into(dst, src)
