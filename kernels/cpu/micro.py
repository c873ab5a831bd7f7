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

Two other block shapes use the same registers: MT x NT (half the rows and twice the columns) for products onto
1-4 channels, and MR x NR/2 for the short tail of a run.
"""
import numba
import numpy as np
from llvmlite import binding as _llvm
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..config import cpu_kernel


def _has_avx512():
    if numba.config.CPU_NAME:  # compiling for a named (possibly generic) CPU: assume AVX2-sized registers
        return False
    return bool(_llvm.get_host_cpu_features().get("avx512f", False))


# Block shape: MR rows (broadcast weights) by NR columns (two float32 vectors). 8 x 32 uses 16 of AVX-512's 32
# zmm registers; 6 x 16 uses 12 of AVX2's 16 ymm registers.
if _has_avx512():
    MR, NR = 8, 32
else:
    MR, NR = 6, 16
ACC = MR * NR
# The thin block for products with few rows (an input gradient onto 1-4 input channels): half the rows, twice
# the columns, the same registers. 4 x 64 on AVX-512, 3 x 32 on AVX2.
MT, NT = MR // 2, 2 * NR
V = NR // 2  # float32 lanes in a vector


@intrinsic
def _stack_alloc(typingctx, count, dtype):
    """A pointer to ``count`` (an integer literal) uninitialised elements of ``dtype`` on the stack frame of
    the function it is compiled into (the alloca is placed in its entry block, so loops do not grow it)."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    n = count.literal_value
    ety = dtype.dtype

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(ety), size=n)

    return types.CPointer(ety)(count, dtype), codegen


@cpu_kernel(parallel=False, inline=True)
def accumulators(dtype):
    """An MR*NR stack buffer of ``dtype`` for ``outer``. Inlined (Numba IR), so the buffer belongs to the
    calling kernel's frame; call it once per parallel iteration body, outside the hot loops."""
    return carray(_stack_alloc(ACC, dtype), ACC)


@cpu_kernel(parallel=False, inline=True)
def outer(A, X, offs, t0, kc, acc, mr, nc, ld):
    """acc[i*ld + j] = sum_{k < kc} A[k, i] * X[offs[k] + t0 + j] for i < mr, j < nc (acc is overwritten).

    The block shape comes from the module's constants, so that after inlining LLVM sees fixed trip counts:
    (MR, NR, NR) the full block, (MT, NT, NT) the thin one, (MR, NR // 2, NR) the half block for a run's short
    tail (its first NR/2 columns, laid out as the full block's). A is (kc, mr) C-contiguous; every
    X[offs[k] + t0 : ... + nc] must lie inside X.
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
