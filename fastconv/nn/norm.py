"""BatchNorm2D and GlobalAvgPool2D, with PyTorch's semantics and state-dict names."""
import numpy as np

from .._checks import is_device_array, to_host
from ..functional import norm as FN
from .module import Module, Parameter


def _blend(buf, new, m):
    """buf = (1 - m) * buf + m * new, in place, in buf's dtype (on the host or the device)."""
    out = ((1.0 - m) * to_host(buf).astype(np.float64) + m * new).astype(buf.dtype)
    if is_device_array(buf):
        buf.copy_to_device(out)
    else:
        buf[...] = out


class BatchNorm2D(Module):
    """Batch normalisation per channel of NCHW input, as ``torch.nn.BatchNorm2d``.

    Training mode normalises with the batch's mean and biased variance and updates the running statistics,
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased variance
    (``var * M / (M - 1)``, M = N*H*W); eval mode normalises with the running statistics. Parameters
    ``weight`` (ones) and ``bias`` (zeros); buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (int64, kept on the host), in that order in ``state_dict()``. ``momentum`` is a
    float (PyTorch's ``momentum=None``, a cumulative average, is not offered).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        super().__init__()
        self.num_features = int(num_features)
        if self.num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not float(eps) > 0.0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps, self.momentum = float(eps), float(momentum)
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype))
        self.bias = Parameter(np.zeros(C, dtype))
        self.register_buffer("running_mean", np.zeros(C, dtype))
        self.register_buffer("running_var", np.ones(C, dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        self._x = self._cache = None

    def _check_input(self, x):
        if len(x.shape) != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2D({self.num_features}) needs input (N, {self.num_features}, H, W), got "
                             f"shape {tuple(x.shape)}")

    def forward(self, x, relu=False):
        """With ``relu``, the ReLU that follows is fused (Sequential does this): its mask is applied here,
        forward and backward."""
        self._check_input(x)
        if self.training:
            y, cache = FN.batch_norm2d(x, self.weight.data, self.bias.data, self.eps, relu)
            self._update_running(cache, cache.n_values)
        else:
            y, cache = FN.batch_norm2d_inference(x, self.running_mean, self.running_var, self.weight.data,
                                                 self.bias.data, self.eps, relu)
        self._x, self._cache = x, cache
        return y

    def affine(self):
        """(scale, shift) of eval mode's ``y = x * scale + shift`` per channel, from the running statistics."""
        scale = np.asarray(self.weight.data, np.float64) / np.sqrt(np.asarray(self.running_var, np.float64) + self.eps)
        shift = np.asarray(self.bias.data, np.float64) - np.asarray(self.running_mean, np.float64) * scale
        return scale.astype(self.weight.dtype), shift.astype(self.weight.dtype)

    def _update_running(self, cache, M):
        _blend(self.running_mean, cache.mean, self.momentum)
        _blend(self.running_var, cache.var * (M / (M - 1)), self.momentum)
        self.num_batches_tracked += 1  # (a 0-d int64 array on the host, updated in place)

    def backward(self, dy):
        dx, dw, db = FN.batch_norm2d_backward(dy, self._x, self.weight.data, self._cache)
        self.weight.accumulate(dw)
        self.bias.accumulate(db)
        return dx

    def config(self):
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class GlobalAvgPool2D(Module):
    """(N, C, H, W) -> (N, C, 1, 1), the mean of each plane (PyTorch's ``AdaptiveAvgPool2d(1)``)."""

    def forward(self, x):
        self._x_shape = tuple(x.shape)
        return FN.global_avg_pool2d(x)

    def backward(self, dy):
        return FN.global_avg_pool2d_backward(dy, self._x_shape)
