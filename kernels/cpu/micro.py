"""The register-blocked outer-product micro-kernel that every convolution product runs on.

``outer`` computes an MR x NR block of a matrix product, acc[i, j] = sum_k A[k, i] * X[offs[k] + t0 + j]: for
each step k of the reduction it broadcasts MR weights and multiplies them with NR contiguous values, so each
value loaded feeds MR FMAs and no horizontal sums are needed. Row k of the right operand is found through an
offset table, so the same kernel reads a packed panel (offs[k] = k*NR) or, for a stride-1 convolution, the
input planes themselves (offs[k] = the flat offset of tap (c, r, s)): no im2col at all.

The MR*NR accumulators live in a small stack buffer (``accumulators``). After inlining, LLVM vectorises the
loop over j, and with the buffer's address known and private it keeps the whole block in vector registers for
the entire reduction: on AVX-512, 16 ``zmm`` accumulators and 16 ``vfmadd231ps`` per k (check with
``inspect_asm``). A heap array (np.empty) would not do: its stores cannot be proven private and are kept.

Other block shapes use the same or fewer registers: MT x NT (half the rows and twice the columns) for products
onto 1-4 channels, MS x NR (six rows) onto 5-6 channels, and MR x NR/2 for the short tail of a run
(``blocks``).
"""
import numpy as np
from numba import carray

from ..config import cpu_kernel
from .blocks import ACC, MR, MS, NR
from .intrinsics import stack_alloc


@cpu_kernel(parallel=False, inline=True)
def accumulators(dtype):
    """An MR*NR stack buffer of ``dtype`` for ``outer``. Inlined (Numba IR), so the buffer belongs to the
    calling kernel's frame; call it once per parallel iteration body, outside the hot loops."""
    return carray(stack_alloc(ACC, dtype), ACC)


@cpu_kernel(parallel=False, inline=True)
def outer(A, X, offs, t0, kc, acc, mr, nc, ld):
    """acc[i*ld + j] = sum_{k < kc} A[k, i] * X[offs[k] + t0 + j] for i < mr, j < nc (acc is overwritten).

    The block shape comes from the module's constants, so that after inlining LLVM sees fixed trip counts:
    (MR, NR, NR) the full block, (MT, NT, NT) the thin one, (MS, NR, NR) the six-row one, (MR, NR // 2, NR) or
    (MS, NR // 2, NR) the half block for a run's short tail (its first NR/2 columns, laid out as the full
    block's). A is (kc, mr) C-contiguous; every X[offs[k] + t0 : ... + nc] must lie inside X.
    """
    for t in range(mr * ld):
        acc[t] = 0
    for k in range(kc):
        a = A[k]
        o = np.uint64(offs[k] + t0)  # unsigned: no negative-index fix-ups in the loop (see outer_acc)
        for j in range(nc):
            bj = X[o + np.uint64(j)]
            for i in range(mr):
                acc[i * ld + j] += a[i] * bj


@cpu_kernel(parallel=False, inline=True)
def outer_rows(A, X, offs, t0, kc, acc, six, half):
    """``outer`` on the MR-row block, or on the six-row one (``six``), over its NR columns or, for a run's
    short tail (``half``), its first NR/2: one call per shape, so that each keeps its fixed trip counts."""
    if six and half:
        outer(A, X, offs, t0, kc, acc, MS, NR // 2, NR)
    elif six:
        outer(A, X, offs, t0, kc, acc, MS, NR, NR)
    elif half:
        outer(A, X, offs, t0, kc, acc, MR, NR // 2, NR)
    else:
        outer(A, X, offs, t0, kc, acc, MR, NR, NR)


@cpu_kernel(parallel=False, inline=True)
def outer_acc(Xa, ao, ak, Xb, bo, sb, kc, acc):
    """acc[i*NR + j] += sum_{k < kc} Xa[ao[i] + ak[k]] * Xb[bo + k*sb + j] for i < MR, j < NR.

    The broadcast operand is read in place: element (k, i) of the block is at ao[i] + ak[k] (a row offset
    plus a step offset, e.g. a position plus a kernel tap), so it needs no packing; the vector operand is NR
    contiguous values per step. acc is added to, not overwritten. All offsets are unsigned (np.uint64):
    Numba then emits no negative-index wraparound fix-ups, which would otherwise cost five integer
    instructions per broadcast in the inner loop.
    """
    for k in range(kc):
        o = bo + np.uint64(k) * sb
        s = ak[k]
        for j in range(NR):
            bj = Xb[o + np.uint64(j)]
            for i in range(MR):
                acc[i * NR + j] += Xa[ao[i] + s] * bj


@cpu_kernel(parallel=False, inline=True)
def outer_acc_pairs(Xa, ao, ak, Xb, bo, kc, acc):
    """``outer_acc`` onto NR/2 columns, Xb's rows contiguous (NR/2 apart), two steps at a time:
    acc[i*NR + e*NR/2 + j] += sum over the steps k = e (mod 2) of Xa[ao[i] + ak[k]] * Xb[bo + k*NR/2 + j], for
    e < 2, i < MR, j < NR/2 (the caller adds the two halves of each row). For products onto at most NR/2
    columns (a 16-channel dW on AVX-512): the full block would leave half of every vector empty, and a block
    of 2*MR rows would need 2*MR row offsets, more than there are integer registers (the rest are reloaded
    from the stack every step); here two steps' rows are one row of NR, MR offsets serve both, and all
    MR*NR accumulators stay in use."""
    h = NR // 2
    for k2 in range(kc // 2):  # steps k and k + 1: their NR/2 columns are one row of NR
        k = 2 * k2
        o = bo + np.uint64(k * h)
        s0, s1 = ak[k], ak[k + 1]
        for j in range(NR):
            bj = Xb[o + np.uint64(j)]
            for i in range(MR):
                acc[i * NR + j] += Xa[ao[i] + (s0 if j < h else s1)] * bj
    if kc % 2:
        o = bo + np.uint64((kc - 1) * h)
        s0 = ak[kc - 1]
        for j in range(h):
            bj = Xb[o + np.uint64(j)]
            for i in range(MR):
                acc[i * NR + j] += Xa[ao[i] + s0] * bj
