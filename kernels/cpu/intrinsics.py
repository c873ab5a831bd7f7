"""LLVM intrinsics written as Numba intrinsics: a stack buffer for the micro-kernel's accumulators, two
masked-vector primitives that move at most one vector and touch nothing past their lanes, for rows shorter
than a vector: ``copy_lanes`` (a row of a gather, zeros where it runs into padding) and ``store_lanes`` (a
block's epilogue: bias, ReLU), and two transposes in registers: ``transpose_lanes``, a tile of V rows (dW's
delta laid out channel-fastest), and ``store_transposed``, the broadcast forward's epilogue (a block of
positions by output channels stored positions-fastest). These are the only hand-written IR in the kernels.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..config import cpu_kernel
from .blocks import MR, V


@intrinsic
def stack_alloc(typingctx, count, dtype):
    """A pointer to ``count`` (an integer literal) uninitialised elements of ``dtype`` on the stack frame of
    the function it is compiled into (the alloca is placed in its entry block, so loops do not grow it)."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    n = count.literal_value
    ety = dtype.dtype

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(ety), size=n)

    return types.CPointer(ety)(count, dtype), codegen


def _splat(builder, value, vty):
    """value in every lane of a vector of type vty."""
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), V), [0] * V))


def _lane_mask(context, builder, value, ty, op):
    """The V-lane mask (j op value) for lanes j = 0 .. V-1, value an integer of Numba type ty."""
    ivt = ir.VectorType(ir.IntType(64), V)
    splat = _splat(builder, context.cast(builder, value, ty, types.int64), ivt)
    return builder.icmp_signed(op, ir.Constant(ivt, list(range(V))), splat)


def _vector_at(context, builder, aty, arr, index):
    """A pointer to V elements of array arr (Numba type aty) from element index on."""
    vty = ir.VectorType(context.get_value_type(aty.dtype), V)
    return builder.bitcast(cgutils.gep(builder, context.make_array(aty)(context, builder, arr).data, index), vty.as_pointer())


def _masked_load_store(builder, dtype):
    """LLVM's masked vector load and store for V lanes of dtype, with the element alignment."""
    vty = ir.VectorType(ir.FloatType() if dtype == types.float32 else ir.DoubleType(), V)
    pty, mty, i32 = vty.as_pointer(), ir.VectorType(ir.IntType(1), V), ir.IntType(32)
    name = f"v{V}{'f32' if dtype == types.float32 else 'f64'}.p0"
    load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [pty, i32, mty, vty]), "llvm.masked.load." + name)
    store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vty, pty, i32, mty]), "llvm.masked.store." + name)
    align = ir.Constant(i32, dtype.bitwidth // 8)
    return (lambda p, mask: builder.call(load, [p, align, mask, ir.Constant(vty, None)]),
            lambda v, p, mask: builder.call(store, [v, p, align, mask]))


def _float_arrays(*arrays):
    return all(isinstance(a, types.Array) and a.dtype in (types.float32, types.float64) for a in arrays) and \
        len({a.dtype for a in arrays}) == 1


@intrinsic
def _masked_copy(typingctx, src, so, dst, do, lo, hi, n):
    """dst[do + j] = (src[so + j] if lo <= j < hi else 0) for j < n, for V lanes j: one masked vector load,
    which touches no element outside [so + lo, so + hi), and one masked store, which writes none past do + n.
    No bounds checks (``copy_lanes`` adds them under NUMBA_BOUNDSCHECK)."""
    if not _float_arrays(src, dst):
        return None

    def codegen(context, builder, sig, args):
        s, s0, d, d0, lo_, hi_, n_ = args
        take = builder.and_(_lane_mask(context, builder, lo_, sig.args[4], ">="),
                            _lane_mask(context, builder, hi_, sig.args[5], "<"))
        load, store = _masked_load_store(builder, sig.args[0].dtype)
        v = load(_vector_at(context, builder, sig.args[0], s, s0), take)
        store(v, _vector_at(context, builder, sig.args[2], d, d0), _lane_mask(context, builder, n_, sig.args[6], "<"))
        return context.get_dummy_value()

    return types.void(src, so, dst, do, lo, hi, n), codegen


@intrinsic
def _masked_epilogue(typingctx, acc, a, dst, d, n, b, relu):
    """dst[d + j] = acc[a + j] + b, clamped at zero if relu (NaN stays NaN), for j < n <= V: one masked load
    and one masked store, neither touching an element at or past n."""
    if not _float_arrays(acc, dst):
        return None

    def codegen(context, builder, sig, args):
        ac, a0, ds, d0, n_, b_, relu_ = args
        mask = _lane_mask(context, builder, n_, sig.args[4], "<")
        load, store = _masked_load_store(builder, sig.args[0].dtype)
        v = load(_vector_at(context, builder, sig.args[0], ac, a0), mask)
        vty = v.type
        v = builder.fadd(v, _splat(builder, context.cast(builder, b_, sig.args[5], sig.args[0].dtype), vty))
        clamp = builder.select(context.cast(builder, relu_, sig.args[6], types.boolean),  # lanes to zero
                               builder.fcmp_ordered("<", v, ir.Constant(vty, None)), ir.Constant(mask.type, None))
        store(builder.select(clamp, ir.Constant(vty, None), v), _vector_at(context, builder, sig.args[2], ds, d0), mask)
        return context.get_dummy_value()

    return types.void(acc, a, dst, d, n, b, relu), codegen


def _butterflies(builder, vecs):
    """Transposes in registers, in place: stage b (1, 2, 4, .. < len(vecs), a power of two at most V) swaps bit b
    of the row index with bit b of the lane index, so that after all stages lane (l // n)*n + r of vecs[l % n]
    holds what lane l of vecs[r] held (n = len(vecs); n = V is a whole V x V transpose)."""
    i32v = ir.VectorType(ir.IntType(32), V)
    b = 1
    while b < len(vecs):
        lo = ir.Constant(i32v, [c if c & b == 0 else V + c - b for c in range(V)])
        hi = ir.Constant(i32v, [c + b if c & b == 0 else V + c for c in range(V)])
        for r in range(len(vecs)):
            if r & b == 0:
                a, c = vecs[r], vecs[r + b]
                vecs[r], vecs[r + b] = builder.shuffle_vector(a, c, lo), builder.shuffle_vector(a, c, hi)
        b *= 2


@intrinsic
def _masked_transpose(typingctx, src, so, ss, dst, do, ds, nr, nc):
    """dst[do + c*ds + r] = (src[so + r*ss + c] if r < nr else 0) for r < V and c < nc: V rows of nc values
    (masked loads, which read nothing past nc lanes and no row at or past nr) transposed in registers (one
    butterfly stage per bit of the lane index: stage b swaps bit b of the row and column indices) and stored
    as nc whole vectors. No bounds checks (``transpose_lanes`` adds them under NUMBA_BOUNDSCHECK)."""
    if not _float_arrays(src, dst):
        return None

    def codegen(context, builder, sig, args):
        s, s0, sst, d, d0, dst_, nr_, nc_ = args
        i64 = ir.IntType(64)
        load, store = _masked_load_store(builder, sig.args[0].dtype)
        cols = _lane_mask(context, builder, nc_, sig.args[7], "<")
        rows = _lane_mask(context, builder, nr_, sig.args[6], "<")  # lane r: row r is read
        every, none = ir.Constant(cols.type, [1] * V), ir.Constant(cols.type, None)
        s0 = context.cast(builder, s0, sig.args[1], types.int64)
        sst = context.cast(builder, sst, sig.args[2], types.int64)
        vecs = []
        for r in range(V):
            on = builder.extract_element(rows, ir.Constant(ir.IntType(32), r))
            mask = builder.and_(cols, builder.select(on, every, none))
            at = builder.add(s0, builder.mul(sst, ir.Constant(i64, r)))
            vecs.append(load(_vector_at(context, builder, sig.args[0], s, at), mask))
        _butterflies(builder, vecs)
        d0 = context.cast(builder, d0, sig.args[4], types.int64)
        dst_ = context.cast(builder, dst_, sig.args[5], types.int64)
        for c in range(V):
            on = builder.extract_element(cols, ir.Constant(ir.IntType(32), c))
            mask = builder.select(on, every, none)
            at = builder.add(d0, builder.mul(dst_, ir.Constant(i64, c)))
            store(vecs[c], _vector_at(context, builder, sig.args[3], d, at), mask)
        return context.get_dummy_value()

    return types.void(src, so, ss, dst, do, ds, nr, nc), codegen


RB = 8  # rows of a block that _block_epilogue transposes: at least MR, a power of two, at most V


@intrinsic
def _block_epilogue(typingctx, src, so, ss, dst, do, ds, nr, nc, b, bo, relu):
    """dst[do + c*ds + r] = f(src[so + r*ss + c] + b[bo + c]) for r < nr <= MR and c < nc <= V, f clamping at
    zero if relu (NaN stays NaN), nothing else written: a broadcast forward's block (positions by output
    channels) stored with positions contiguous. The MR rows src[so + r*ss : + V] and b[bo : bo + V] are read
    whole (plain vector loads, which keep a stack block in registers), transposed in registers by three
    butterfly stages (bits 0-2 of the row index swapped with those of the lane; rows MR .. RB-1 are zeros),
    which leaves RB vectors of V/RB columns of RB lanes each, and each column is one masked store of its nr
    lanes. No bounds checks (``store_transposed`` adds them under NUMBA_BOUNDSCHECK)."""
    if not _float_arrays(src, dst, b):
        return None

    def codegen(context, builder, sig, args):
        s, s0, sst, d, d0, dst_, nr_, nc_, b_, b0, relu_ = args
        i64 = ir.IntType(64)
        _, store = _masked_load_store(builder, sig.args[0].dtype)
        mty = ir.VectorType(ir.IntType(1), V)
        none = ir.Constant(mty, None)
        nr_ = context.cast(builder, nr_, sig.args[6], types.int64)
        nc_ = context.cast(builder, nc_, sig.args[7], types.int64)
        s0 = context.cast(builder, s0, sig.args[1], types.int64)
        sst = context.cast(builder, sst, sig.args[2], types.int64)
        align = sig.args[0].dtype.bitwidth // 8
        vty = ir.VectorType(context.get_value_type(sig.args[0].dtype), V)
        bias = builder.load(_vector_at(context, builder, sig.args[8], b_, context.cast(builder, b0, sig.args[9], types.int64)),
                            align=align)
        relu_ = _splat(builder, context.cast(builder, relu_, sig.args[10], types.boolean), mty)
        vecs = []
        for r in range(RB):  # whole rows (a plain load keeps a stack block in registers), zeros past MR
            if r >= MR:
                vecs.append(ir.Constant(vty, None))
                continue
            at = builder.add(s0, builder.mul(sst, ir.Constant(i64, r)))
            v = builder.fadd(builder.load(_vector_at(context, builder, sig.args[0], s, at), align=align), bias)
            clamp = builder.and_(builder.fcmp_ordered("<", v, ir.Constant(vty, None)), relu_)
            vecs.append(builder.select(clamp, ir.Constant(vty, None), v))
        _butterflies(builder, vecs)
        # vecs[c % RB] lane (c // RB)*RB + r now holds src row r, column c
        d0 = context.cast(builder, d0, sig.args[4], types.int64)
        dst_ = context.cast(builder, dst_, sig.args[5], types.int64)
        for h in range(V // RB):
            rows = builder.and_(_lane_mask(context, builder, ir.Constant(i64, h * RB), types.int64, ">="),
                                _lane_mask(context, builder, builder.add(nr_, ir.Constant(i64, h * RB)), types.int64, "<"))
            for c0 in range(RB):
                c = h * RB + c0
                mask = builder.select(builder.icmp_signed(">", nc_, ir.Constant(i64, c)), rows, none)
                at = builder.add(d0, builder.sub(builder.mul(dst_, ir.Constant(i64, c)), ir.Constant(i64, h * RB)))
                store(vecs[c0], _vector_at(context, builder, sig.args[3], d, at), mask)
        return context.get_dummy_value()

    return types.void(src, so, ss, dst, do, ds, nr, nc, b, bo, relu), codegen


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
def store_lanes(acc, a, dst, d, n, b, relu):
    """dst[d + j] = acc[a + j] + b for 0 <= j < n <= V (a and d unsigned), clamped at zero if relu: a block's
    epilogue, one vector per call, with nothing read or written past n. Checked under NUMBA_BOUNDSCHECK."""
    if _BOUNDSCHECK:
        if n > V or a + np.uint64(n) > acc.size or d + np.uint64(n) > dst.size:
            raise IndexError("store_lanes: lanes outside the arrays")
    _masked_epilogue(acc, a, dst, d, n, b, relu)


@cpu_kernel(parallel=False, inline=True)
def transpose_lanes(src, so, ss, dst, do, ds, nr, nc):
    """dst[do + c*ds + r] = src[so + r*ss + c] for c < nc <= V, and zero for nr <= r < V (nr <= V): a V x nc
    tile of a matrix transposed in registers, its rows read with masked loads (nothing past nc, no row past
    nr), written as nc whole vectors of V. Checked under NUMBA_BOUNDSCHECK."""
    if _BOUNDSCHECK:
        if nr > V or nc > V or nc < 0 or nr < 0:
            raise IndexError("transpose_lanes: a tile larger than a vector")
        if nc > 0 and do + (nc - 1) * ds + V > dst.size:
            raise IndexError("transpose_lanes: a store past the end of dst")
        if nr > 0 and nc > 0 and so + (nr - 1) * ss + nc > src.size:
            raise IndexError("transpose_lanes: a load past the end of src")
    _masked_transpose(src, so, ss, dst, do, ds, nr, nc)


@cpu_kernel(parallel=False, inline=True)
def store_transposed(src, so, ss, dst, do, ds, nr, nc, b, bo, relu):
    """dst[do + c*ds + r] = src[so + r*ss + c] + b[bo + c] for r < nr <= MR and c < nc <= V, clamped at zero
    if relu: a block of MR rows of V (all read) stored transposed, nothing written outside its nr x nc
    elements. Checked under NUMBA_BOUNDSCHECK."""
    if _BOUNDSCHECK:
        if nr > MR or nc > V or nc < 0 or nr < 0:
            raise IndexError("store_transposed: a block larger than MR x V")
        if so + (MR - 1) * ss + V > src.size or bo + V > b.size:
            raise IndexError("store_transposed: a load past the end of src or b")
        if nr > 0 and nc > 0 and do + (nc - 1) * ds + nr > dst.size:
            raise IndexError("store_transposed: a store past the end of dst")
    _block_epilogue(src, so, ss, dst, do, ds, nr, nc, b, bo, relu)
