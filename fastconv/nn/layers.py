"""Layers: thin wrappers that keep what backward needs and call the functional ops."""
import numpy as np

from .. import functional as F
from ..functional.conv import conv2d_backward_weight_bias, conv2d_relu
from ..functional.pool import max_pool2d_backward_own, max_pool2d_own
from .._checks import conv_padding, groups_of, is_device_array, is_per_side, pair
from . import init
from .module import Module, Parameter


class Conv2D(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels / groups, kh, kw), bias
    (out_channels,). ``padding`` takes an int, an (h, w) pair, ((top, bottom), (left, right)), "valid" or
    "same"; ``groups`` splits the channels as in PyTorch (groups == in_channels: depthwise)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 *, dtype=np.float32, rng=None):
        super().__init__()
        kh, kw = pair("kernel_size", kernel_size, 1)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}")
        self.kernel_size = (kh, kw)
        self.stride = pair("stride", stride, 1)
        self.dilation = pair("dilation", dilation, 1)
        conv_padding(padding, self.kernel_size, self.dilation, self.stride)  # (checked now, kept as given)
        self.padding = padding if isinstance(padding, str) else _padding_tuple(padding)
        cg = self.in_channels // groups if isinstance(groups, int) and groups >= 1 else 0
        self.groups = groups_of(groups, self.in_channels, self.out_channels, (self.out_channels, cg), "in_channels")
        g = init.generator(rng)
        fan_in = cg * kh * kw
        self.weight = Parameter(init.uniform_fan_in(g, (self.out_channels, cg, kh, kw), fan_in, dtype))
        self.bias = Parameter(init.uniform_fan_in(g, (self.out_channels,), fan_in, dtype)) if bias else None
        self._x = None

    def _kw(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x, relu=False):
        """With ``relu``, the ReLU that follows is fused into the kernel's epilogue (Sequential does this)."""
        self._x = x
        return conv2d_relu(x, self.weight.data, None if self.bias is None else self.bias.data, **self._kw(), relu=relu)

    def forward_affine(self, x, scale, shift, relu=False):
        """``conv(x) * scale + shift`` per output channel in one convolution, scale folded into the weights and
        shift into the bias (a BatchNorm2D in eval mode after this layer); clamped at zero with ``relu``."""
        self._x = x
        w = self.weight.data
        b = shift if self.bias is None else self.bias.data * scale + shift
        return conv2d_relu(x, (w * scale.reshape(-1, 1, 1, 1)).astype(w.dtype), b.astype(w.dtype), **self._kw(),
                           relu=relu)

    def backward(self, dy):
        x = self._x
        if self.bias is None:
            self.weight.accumulate(F.conv2d_backward_weight(dy, x, self.weight.shape, **self._kw()))
        else:  # one pass over the delta for both
            dw, db = conv2d_backward_weight_bias(dy, x, self.weight.shape, **self._kw())
            self.weight.accumulate(dw)
            self.bias.accumulate(db)
        if not self.input_grad:
            return None
        return F.conv2d_backward_input(dy, self.weight.data, x.shape, **self._kw())

    def config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=self.kernel_size,
                    stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    bias=self.bias is not None)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


def _padding_tuple(padding):
    """An int or pair as (h, w); a per-side ((top, bottom), (left, right)) as a pair of pairs."""
    if is_per_side(padding):
        return (tuple(int(v) for v in padding[0]), tuple(int(v) for v in padding[1]))
    return pair("padding", padding, 0)


class Linear(Module):
    """Fully connected layer on (N, in_features); weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features} and {out_features}")
        g = init.generator(rng)
        self.weight = Parameter(init.uniform_fan_in(g, (self.out_features, self.in_features), self.in_features, dtype))
        self.bias = Parameter(init.uniform_fan_in(g, (self.out_features,), self.in_features, dtype)) if bias else None
        self._x = None

    def forward(self, x):
        self._x = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy):
        self.weight.accumulate(F.linear_backward_weight(dy, self._x))
        if self.bias is not None:
            self.bias.accumulate(F.linear_backward_bias(dy))
        if not self.input_grad:
            return None
        return F.linear_backward_input(dy, self.weight.data)

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias is not None)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else pair("stride", stride, 1)
        self.padding = _padding_tuple(padding)
        self.ceil_mode = bool(ceil_mode)
        self._x_shape = None

    def _kw(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode)

    def config(self):
        return self._kw()

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self._kw().items() if k != "ceil_mode" or v)


class MaxPool2D(_Pool):
    """Max pooling (PyTorch's options: per-side padding, dilation, ceil_mode); keeps the winners' indices
    for backward in training mode. In eval mode it computes none (the maxima alone are several times
    faster); a backward after an eval-mode forward finds them again from the input it kept."""

    output = None  # the last forward's result (a Sequential applies a preceding ReLU's mask to it)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = pair("dilation", dilation, 1)

    def _kw(self):
        return dict(super()._kw(), dilation=self.dilation)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self._kw().items() if (k != "ceil_mode" or v) and (k != "dilation" or v != (1, 1)))

    def forward(self, x):
        self._x_shape = tuple(x.shape)
        y, self._indices = max_pool2d_own(x, **self._kw(), indices=self.training)
        self._x = None if self.training else x
        self.output = y
        return y

    def backward(self, dy):
        if self._indices is None:  # after an eval-mode forward
            self._indices = max_pool2d_own(self._x, **self._kw())[1]
        return max_pool2d_backward_own(dy, self._indices, self._x_shape, window=self._kw())


class AvgPool2D(_Pool):
    """Average pooling (PyTorch's options: per-side padding, ceil_mode, count_include_pad, True by default)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _kw(self):
        return dict(super()._kw(), count_include_pad=self.count_include_pad)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self._kw().items() if (k != "ceil_mode" or v) and (k != "count_include_pad" or not v))

    def forward(self, x):
        self._x_shape = tuple(x.shape)
        return F.avg_pool2d(x, **self._kw())

    def backward(self, dy):
        return F.avg_pool2d_backward(dy, self._x_shape, **self._kw())


class ReLU(Module):
    def forward(self, x):
        self._x = x
        return F.relu(x)

    def keep_for_backward(self, y):
        """Take the ReLU's output, computed elsewhere (fused into a conv), as what backward needs."""
        self._x = y

    def backward(self, dy):
        return F.relu_backward(dy, self._x)


class Tanh(Module):
    def forward(self, x):
        self._y = F.tanh(x)
        return self._y

    def backward(self, dy):
        return F.tanh_backward(dy, self._y)


class Sigmoid(Module):
    def forward(self, x):
        self._y = F.sigmoid(x)
        return self._y

    def backward(self, dy):
        return F.sigmoid_backward(dy, self._y)


class Flatten(Module):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x):
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, dy):
        return dy.reshape(self._shape)


class Dropout(Module):
    """Zeroes each input with probability p in training and scales the rest by 1/(1-p); identity in eval."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = float(p)
        self._rng = init.generator(rng)
        self._mask = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if is_device_array(x):
            from .. import cuda

            self._mask = cuda.dropout_mask(self, x)
        else:
            keep = self._rng.random(x.shape) >= self.p
            self._mask = (keep / (1.0 - self.p)).astype(x.dtype)
        return F.mul(x, self._mask)

    def backward(self, dy):
        return dy if self._mask is None else F.mul(dy, self._mask)

    def config(self):
        return dict(p=self.p)

    def extra_repr(self):
        return f"p={self.p}"
