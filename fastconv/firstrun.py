"""Whether this CPU's kernels are already compiled, so that a first run can say why it is slow.

The CPU kernels are compiled by Numba on their first call and kept in its on-disk cache, keyed by the CPU.
A first run on a machine (or after an upgrade) compiles for 30-40 s before its first batch finishes.
"""
NOTICE = "compiling kernels for this CPU, first run only, about 30-40 s"


def kernels_cached():
    """True when the on-disk cache holds the float32 unpacked product (the largest kernel, compiled with
    the others on a first run) for this CPU; True also when that cannot be told (caching off, an unknown
    Numba layout), so that no notice is printed in error."""
    try:
        from .kernels import config
        from .kernels.cpu.product import unpacked_product as probe

        if not config.CACHE or probe._cache is None:
            return True
        magic = probe.targetctx.codegen().magic_tuple()
        index = probe._cache._cache_file._load_index()
        return any(key[1] == magic and "float32" in str(key[0]) for key in index)
    except Exception:  # a Numba without these internals: say nothing rather than guess
        return True


def notice(log=print):
    """Log one line if the kernels will compile now; returns whether it did."""
    if kernels_cached():
        return False
    log(NOTICE)
    return True
