"""Numba kernels of fastconv (shipped as ``fastconv.kernels``).

``cpu`` holds the parallel CPU kernels, ``cuda`` their twins for NVIDIA GPUs. Kernels do no checking:
the functional layer in ``fastconv.functional`` validates, allocates and dispatches. Nothing here imports
``fastconv``.
"""
