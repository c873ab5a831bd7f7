"""Targets: where an op's arrays live decides which kernels run. ``backend_for`` answers with the target's
plan module (``fastconv.kernels.cpu.plan`` or ``fastconv.kernels.cuda.plan``), whose op-level entry points
choose that target's kernels."""
import numpy as np

from ._checks import is_device_array
from .kernels.cpu import plan as _cpu_plan


def cpu():
    return _cpu_plan


def backend_for(*arrays):
    """The plan module of the given arrays' target (None entries ignored); CPU and CUDA arrays may not be
    mixed."""
    if all(type(a) is np.ndarray or a is None for a in arrays):  # the common case, checked cheaply
        return _cpu_plan
    present = [a for a in arrays if a is not None]
    on_device = [is_device_array(a) for a in present]
    if any(on_device):
        if not all(on_device):
            raise TypeError("arrays must all be on the CPU (numpy) or all on the GPU (CUDA arrays), got a mix")
        from . import cuda

        return cuda.backend()
    return _cpu_plan
