"""Point-in-time sums over event streams, for any number of (key, as_of) queries at once.

Events carry a group key (a member, a member x offer pair, ...) and a time. After one
sort by (key, time) and prefix sums, "the sum of a value over the key's events strictly
before t" is a difference of two prefix sums at positions found by a segmented binary
search. Queries never loop over distinct as_of values, so a million exposures at a
million different times cost one sort and one search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

DAY = 86_400
_SHIFT = np.int64(32)
_LOW = np.int64((1 << 32) - 1)


@dataclass
class Cut:
    """Where each query falls in the sorted events of its key."""

    start: np.ndarray   # index of the key's first event (== end of segment when the key has none)
    cut: np.ndarray     # index of the first event at or after the query time
    found: np.ndarray   # whether the key has any event at all


class PrefixIndex:
    """Events sorted by (key, time) with prefix sums of named values."""

    def __init__(self, keys: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray] | None = None):
        keys = np.asarray(keys, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        order = np.lexsort((times, keys))
        self.keys = keys[order]
        self.times = times[order]
        self.t0 = np.int64(self.times.min()) if len(self.times) else np.int64(0)
        self.uniq, gid = np.unique(self.keys, return_inverse=True)
        self.combined = (gid.astype(np.int64) << _SHIFT) | (self.times - self.t0)
        self.prefix = {name: np.concatenate([[0.0], np.cumsum(np.asarray(v, dtype=np.float64)[order])])
                       for name, v in (values or {}).items()}
        self.order = order

    def cut(self, keys: np.ndarray, times: np.ndarray) -> Cut:
        """Segment start and the position of the first event at or after ``times``, per query."""
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.uniq, keys)
        found = (pos < len(self.uniq)) & (self.uniq[np.minimum(pos, max(len(self.uniq) - 1, 0))] == keys) \
            if len(self.uniq) else np.zeros(len(keys), dtype=bool)
        gid = np.where(found, pos, 0).astype(np.int64)
        offset = np.clip(np.asarray(times, dtype=np.int64) - self.t0, 0, _LOW)
        start = np.searchsorted(self.combined, gid << _SHIFT, side="left")
        cut = np.searchsorted(self.combined, (gid << _SHIFT) | offset, side="left")
        start = np.where(found, start, 0)
        cut = np.where(found, cut, 0)
        return Cut(start, cut, found)

    def sum(self, name: str, c: Cut, since: Cut | None = None) -> np.ndarray:
        """Sum of ``name`` over the key's events before the query time (and at/after ``since``)."""
        lo = c.start if since is None else np.maximum(since.cut, c.start)
        return self.prefix[name][c.cut] - self.prefix[name][lo]

    def count(self, c: Cut, since: Cut | None = None) -> np.ndarray:
        lo = c.start if since is None else np.maximum(since.cut, c.start)
        return (c.cut - lo).astype(np.float64)

    def last_time(self, c: Cut) -> np.ndarray:
        """Time of the key's last event before the query time (int64 min when none)."""
        has = c.cut > c.start
        out = np.full(len(c.cut), np.iinfo(np.int64).min, dtype=np.int64)
        out[has] = self.times[c.cut[has] - 1]
        return out

    def first_time(self, c: Cut) -> np.ndarray:
        """Time of the key's first event before the query time (int64 min when none)."""
        has = c.cut > c.start
        out = np.full(len(c.cut), np.iinfo(np.int64).min, dtype=np.int64)
        out[has] = self.times[c.start[has]]
        return out


def expand(rows: np.ndarray, matrix: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """For each ``rows[i]``, every column of that matrix row: (index into rows, column)."""
    indptr, indices = matrix.indptr, matrix.indices
    rows = np.asarray(rows, dtype=np.int64)
    per = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), per)
    starts = np.repeat(indptr[rows], per)
    within = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    return owner, indices[starts + within].astype(np.int64)


def expansion_size(rows: np.ndarray, matrix: sparse.csr_matrix) -> int:
    """How many pairs :func:`expand` would produce."""
    rows = np.asarray(rows, dtype=np.int64)
    return int((matrix.indptr[rows + 1] - matrix.indptr[rows]).sum())
