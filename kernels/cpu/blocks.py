"""Register-block shapes of the CPU micro-kernels, chosen for the CPU the kernels are compiled for.

MR rows (broadcast weights) by NR columns (two float32 vectors): 8 x 32 uses 16 of AVX-512's 32 zmm registers;
6 x 16 uses 12 of AVX2's 16 ymm registers. The other blocks use the same or fewer registers: MT x NT (half the
rows, twice the columns) for products onto 1-4 channels, MS x NR (six rows) onto 5-6 channels.
"""
import numba
from llvmlite import binding as _llvm


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
# The six-row block, for products onto 5-6 channels (LeNet's first layer forward and its second layer's dX),
# where the MR-row block would leave a quarter of its rows empty: 6 x NR, 12 of the 16 registers. On AVX2
# (MR = 6) it is the full block.
MS = 6 if MR > 6 else MR
V = NR // 2  # float32 lanes in a vector
