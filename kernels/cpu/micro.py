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
from llvmlite import ir
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


@intrinsic
def _masked_copy(typingctx, src, so, dst, do, lo, hi, n):
    """dst[do + j] = (src[so + j] if lo <= j < hi else 0) for j < n, for V lanes j: one masked vector load,
    which touches no element outside [so + lo, so + hi), and one masked store, which writes none past do + n.
    No bounds checks (``copy_lanes`` adds them under NUMBA_BOUNDSCHECK)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.dtype == dst.dtype):
        return None

    def codegen(context, builder, sig, args):
        s, s0, d, d0, lo_, hi_, n_ = args
        ety = context.get_value_type(sig.args[0].dtype)
        vty, pty = ir.VectorType(ety, V), ir.VectorType(ety, V).as_pointer()
        ivt = ir.VectorType(ir.IntType(64), V)
        lane = ir.Constant(ivt, list(range(V)))

        def splat(value, ty):
            value = context.cast(builder, value, ty, types.int64)
            one = builder.insert_element(ir.Constant(ivt, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, ir.Constant(ivt, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), V), [0] * V))

        take = builder.and_(builder.icmp_signed(">=", lane, splat(lo_, sig.args[4])),
                            builder.icmp_signed("<", lane, splat(hi_, sig.args[5])))
        put = builder.icmp_signed("<", lane, splat(n_, sig.args[6]))
        sp = builder.bitcast(cgutils.gep(builder, context.make_array(sig.args[0])(context, builder, s).data, s0), pty)
        dp = builder.bitcast(cgutils.gep(builder, context.make_array(sig.args[2])(context, builder, d).data, d0), pty)
        mty = ir.VectorType(ir.IntType(1), V)
        i32 = ir.IntType(32)
        name = f"v{V}{'f32' if sig.args[0].dtype == types.float32 else 'f64'}.p0"
        load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [pty, i32, mty, vty]), "llvm.masked.load." + name)
        store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vty, pty, i32, mty]), "llvm.masked.store." + name)
        align = ir.Constant(i32, sig.args[0].dtype.bitwidth // 8)
        builder.call(store, [builder.call(load, [sp, align, take, ir.Constant(vty, None)]), dp, align, put])
        return context.get_dummy_value()

    return types.void(src, so, dst, do, lo, hi, n), codegen


_BOUNDSCHECK = bool(numba.config.BOUNDSCHECK)


@cpu_kernel(parallel=False, inline=True)
def copy_lanes(src, so, dst, do, lo, hi, n):
    """dst[do + j] = (src[so + j] if lo <= j < hi else 0) for 0 <= j < n <= V (so and do unsigned): one vector
    row of a gather, with zeros where the row runs outside its source (padding) and nothing written past its
    end, so rows may sit side by side in any order. Under NUMBA_BOUNDSCHECK both ranges are checked."""
    if _BOUNDSCHECK:
        j0, j1 = max(lo, 0), min(hi, V)  # the lanes read
        if n > V or do + np.uint64(n) > dst.size:
            raise IndexError("copy_lanes: a store past the end of dst")
        if j0 < j1 and (so + np.uint64(j0) >= src.size or so + np.uint64(j1) > src.size):
            raise IndexError("copy_lanes: a load outside src")
    _masked_copy(src, so, dst, do, lo, hi, n)


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
