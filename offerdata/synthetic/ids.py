"""Fixed-width string ids assembled from byte tables, millions per second.

Formatting ids with Python f-strings or Arrow's cast/pad/join kernels costs
hundreds of milliseconds per million rows; every synthetic id has a fixed width,
so instead each id is a row of a ``uint8`` matrix: digits come from a lookup table
of ``0000``-``9999``, row gathers go through a ``void`` view (one memcpy per row),
and the finished matrix becomes an Arrow string array without copying.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_GROUP = 4
_DIGITS4 = np.array([list(f"{i:04d}".encode()) for i in range(10 ** _GROUP)], dtype=np.uint8)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ``values`` as an (n, width) byte matrix."""
    if width % _GROUP:
        raise ValueError(f"width must be a multiple of {_GROUP}, got {width}")
    rest = np.asarray(values, dtype=np.int64)
    groups = []
    for _ in range(width // _GROUP):
        rest, low = np.divmod(rest, 10 ** _GROUP)
        groups.append(gather(_DIGITS4, low))
    if np.any(rest):
        raise ValueError(f"a value does not fit in {width} digits")
    return np.concatenate(groups[::-1], axis=1)


def literal(text: str, n: int) -> np.ndarray:
    """``text`` repeated on ``n`` rows, as an (n, len(text)) byte matrix (a broadcast view)."""
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text)))


def concat(*pieces: np.ndarray) -> np.ndarray:
    """Join byte matrices with the same number of rows side by side."""
    return np.concatenate(pieces, axis=1)


def gather(matrix: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of a byte matrix, copying each row as one block."""
    rows, width = matrix.shape
    blocks = np.ascontiguousarray(matrix).view(f"V{width}").reshape(rows)
    return blocks[index].view(np.uint8).reshape(len(index), width)


def to_arrow(matrix: np.ndarray) -> pa.Array:
    """An Arrow string array with one string per row of the byte matrix."""
    data = np.ascontiguousarray(matrix, dtype=np.uint8)
    n, width = data.shape
    if (n + 1) * width >= 2**31:  # more bytes than 32-bit offsets address
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def from_arrow(strings: pa.Array) -> np.ndarray:
    """The byte matrix of an Arrow string array whose strings all have the same width."""
    values = [s.encode() for s in strings.to_pylist()]
    if len({len(v) for v in values}) > 1:
        raise ValueError("strings differ in width")
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1)
