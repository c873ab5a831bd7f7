"""Reading files from strangers: every loader checks a file against its own declared sizes before it allocates
anything large, and turns the ways a hostile file can break a parser into a ``ValueError`` naming the file."""
import json
from contextlib import contextmanager

MAX_HEADER_BYTES = 1 << 26  # a JSON header (architecture, safetensors index) larger than 64 MiB is refused
MAX_EXPANSION = 32  # compressed data may expand at most this much (deflate allows about 1032; weights ~1.1)
EXPANSION_SLACK = 1 << 20  # ... plus this much, so small files full of zeros still load
MAX_DIMS = 8  # arrays of more dimensions are refused


@contextmanager
def reading(path, what):
    """Run a parse step; MemoryError and RecursionError from a hostile file come out as ValueError."""
    try:
        yield
    except MemoryError:
        raise ValueError(f"{what} {path} asks for more memory than this process has: refused") from None
    except RecursionError:
        raise ValueError(f"{what} {path} nests its contents too deeply: refused") from None


def parse_json(raw, path, what, entry="header"):
    """The JSON document in ``raw`` (bytes); ValueError on bad UTF-8, bad JSON, or nesting beyond the
    interpreter's recursion limit."""
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"{what} {path}: its {entry} is {len(raw)} bytes, the limit is {MAX_HEADER_BYTES}")
    with reading(path, what):
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{what} {path} has a damaged {entry}: {e}") from None


def check_expansion(path, what, entry, expanded, stored):
    """Refuse data that declares it expands far beyond what is stored (a decompression bomb)."""
    limit = MAX_EXPANSION * stored + EXPANSION_SLACK
    if expanded > limit:
        raise ValueError(f"{what} {path}: {entry} would expand to {expanded} bytes from {stored} stored, beyond the "
                         f"limit of {MAX_EXPANSION}x + {EXPANSION_SLACK} bytes: refused as a decompression bomb")


def check_shape(path, what, entry, shape):
    """A declared shape as a tuple of non-negative ints, at most MAX_DIMS of them."""
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_DIMS or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"{what} {path}: {entry} has shape {shape!r:.80}, needs at most {MAX_DIMS} "
                         "non-negative ints")
    return tuple(shape)


def n_elements(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n
