"""Losses: ``loss = crit(output, target)`` returns a float; ``crit.backward()`` returns d loss / d output."""
import numpy as np

from .. import functional as F
from .._checks import float_array, is_device_array, to_host


class CrossEntropyLoss:
    """Softmax cross-entropy, averaged over the batch; targets are integer class labels (N,).

    The log-softmax subtracts each row's maximum first, so logits of any finite size give a finite loss and
    gradient.
    """

    def __call__(self, logits, target):
        self.loss, self._grad = F.softmax_cross_entropy(logits, target)
        return self.loss

    def backward(self):
        return self._grad

    def __repr__(self):
        return "CrossEntropyLoss()"


class MSELoss:
    """Squared error, ``mean((y - t)**2)`` or ``sum((y - t)**2)``.

    The derivation's E = 1/2 sum_p (t_p - y_p)^2 is ``0.5 * MSELoss(reduction="sum")(y, t)``.
    """

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, output, target):
        output = float_array("output", output)
        target = float_array("target", target)
        if tuple(output.shape) != tuple(target.shape):
            raise ValueError(f"target must have output's shape {tuple(output.shape)}, got {tuple(target.shape)}")
        on_device = is_device_array(output)
        output, target = to_host(output), to_host(target)
        diff = output - target.astype(output.dtype)
        scale = 1.0 / diff.size if self.reduction == "mean" else 1.0
        self._grad = (2.0 * scale * diff).astype(output.dtype)
        if on_device:  # the gradient goes back where the output came from
            from .. import cuda

            self._grad = cuda.to_device(self._grad)
        return float(np.sum(np.square(diff, dtype=np.float64)) * scale)

    def backward(self):
        return self._grad

    def __repr__(self):
        return f"MSELoss(reduction={self.reduction!r})"
