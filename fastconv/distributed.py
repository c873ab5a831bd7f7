"""Data-parallel training over MPI (mpi4py over an MPI library; ``pip install "fastconv[mpi]"`` brings mpi4py
and the MPICH wheel, whose ``mpiexec`` lands in the virtual environment).

Every rank holds the whole model and takes its share of each global batch; after the backward pass one
allreduce over a flat buffer averages the gradients, so every rank takes the same optimizer step. BatchNorm
normalises with the statistics of the global batch (its sums are reduced over the ranks), so N ranks with
global batch B compute the same training as one process with batch B, up to the order of floating-point
sums, and the running statistics agree on every rank by construction.

Importing fastconv never imports mpi4py; ``init()`` does.
"""
import os

import numpy as np

from ._checks import is_device_array, to_host

_state = {"comm": None, "buffer": None}

INSTALL_HINT = ("distributed training needs mpi4py and an MPI library: pip install 'fastconv[mpi]' (mpi4py and "
                "the mpich wheel, which brings mpiexec), then run: mpiexec -n N fastconv train --distributed")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
    return MPI


def init(comm=None):
    """Start data-parallel work on ``comm`` (default MPI.COMM_WORLD); returns the communicator. BatchNorm then
    uses the global batch's statistics."""
    MPI = _mpi()
    from .functional import norm

    _state["comm"] = comm if comm is not None else MPI.COMM_WORLD
    _state["buffer"] = None
    norm.set_rank_reducer(allreduce_sum if _state["comm"].Get_size() > 1 else None)
    return _state["comm"]


def comm():
    if _state["comm"] is None:
        raise RuntimeError("fastconv.distributed.init() has not been called")
    return _state["comm"]


def rank():
    """This process's rank (0 before ``init``)."""
    return 0 if _state["comm"] is None else _state["comm"].Get_rank()


def world_size():
    """The number of ranks (1 before ``init``)."""
    return 1 if _state["comm"] is None else _state["comm"].Get_size()


def ranks_per_node():
    """How many ranks share this rank's machine (its shared-memory group). A collective: every rank calls it."""
    MPI = _mpi()
    node = comm().Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


def default_threads():
    """CPU threads per rank so that the ranks of a machine do not oversubscribe its cores: cores / ranks on
    this machine, at least 1. A collective: every rank calls it."""
    return max(1, (os.cpu_count() or 1) // ranks_per_node())


def allreduce_sum(a):
    """The sum of a host array over all ranks (a new float64 array, the same on every rank)."""
    MPI = _mpi()
    out = np.ascontiguousarray(a, np.float64).copy()
    comm().Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    return out


def any_rank(flag):
    """True on every rank when ``flag`` is true on any (one small allreduce)."""
    return bool(allreduce_sum(np.array([1.0 if flag else 0.0]))[0] > 0)


def _entries(model):
    """Every parameter and buffer of the model (state-dict order): (owner, name, is_buffer)."""
    return [(owner, name, is_buffer) for _, owner, name, is_buffer in model._state()]


def broadcast_parameters(model, root=0):
    """Copy rank ``root``'s parameters and buffers (BatchNorm's running statistics, counters) to every rank."""
    c = comm()
    for owner, name, is_buffer in _entries(model):
        a = owner._buffers[name] if is_buffer else owner._params[name].data
        host = np.ascontiguousarray(to_host(a))  # (a itself for a contiguous host array)
        c.Bcast(host, root=root)
        if is_device_array(a):
            a.copy_to_device(host)
        elif host is not a:
            a[...] = host


def allreduce_gradients(model):
    """Average every parameter's gradient over the ranks, with one allreduce over a flat buffer (reused from
    step to step). A parameter without a gradient counts as zeros."""
    MPI = _mpi()
    params = model.parameters()
    sizes = [p.data.size for p in params]
    dtype = np.result_type(*[p.dtype for p in params])
    buf = _state["buffer"]
    if buf is None or buf.size != sum(sizes) or buf.dtype != dtype:
        buf = _state["buffer"] = np.empty(sum(sizes), dtype)
    o = 0
    for p, n in zip(params, sizes):
        buf[o : o + n] = 0 if p.grad is None else to_host(p.grad).reshape(-1)
        o += n
    comm().Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    buf /= world_size()
    o = 0
    for p, n in zip(params, sizes):
        g = buf[o : o + n].reshape(p.shape).astype(p.dtype)
        if p.grad is not None and is_device_array(p.grad):
            p.grad.copy_to_device(np.ascontiguousarray(g))
        elif p.grad is not None:
            p.grad[...] = g
        else:
            from . import cuda

            p.grad = cuda.to_device(g) if is_device_array(p.data) else g.copy()
        o += n


def shard(n_items, seed, epoch):
    """This rank's indices of the permutation of ``n_items`` that every rank draws for (seed, epoch): every
    world_size-th one, starting at this rank. Cut into consecutive pieces of batch / world_size, they are
    this rank's share of each global batch of the one-process permutation."""
    perm = np.random.default_rng([seed, epoch]).permutation(n_items)
    return perm[rank() :: world_size()]


def abort(message, code=1):
    """Report an error from this rank and end the whole job (no rank is left waiting in a collective)."""
    import sys
    import time

    print(f"fastconv: rank {rank()} of {world_size()}: {message}", file=sys.stderr, flush=True)
    # mpiexec forwards each rank's stderr on its own schedule and Abort ends the forwarding with the job: on a
    # loaded machine the message was lost. The other ranks wait in a collective meanwhile.
    time.sleep(1.0)
    comm().Abort(code)
