"""The training client holds no copy it does not need (issue 18: its peak set by the capped
design, not by members).

Two copies used to be held: the partitions' feature blocks beside the assembled design, and the
feature matrix copied for every refit on the whole sample. Both are checked here on small
arrays, by what is referenced and by what numpy allocates (``tracemalloc`` sees numpy's buffers).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES
from training import train
from training.cluster_design import _assemble


def test_assembly_consumes_the_partitions_blocks_as_it_places_them() -> None:
    width = len(FEATURE_NAMES)
    frames = [pd.DataFrame({"exposed_at": pd.to_datetime(["2025-01-03", "2025-01-01"]), "file_row": [5, 9]}),
              pd.DataFrame({"exposed_at": pd.to_datetime(["2025-01-02", "2025-01-02"]), "file_row": [7, 2]})]
    blocks = [np.repeat(np.array([[10.0], [11.0]], dtype=np.float32), width, axis=1),
              np.repeat(np.array([[20.0], [21.0]], dtype=np.float32), width, axis=1)]
    rows, X = _assemble(frames, blocks)
    # in the in-process order: exposure time, then position in the exposures file; features moved along
    assert X[:, 0].tolist() == [11.0, 21.0, 20.0, 10.0]
    assert rows["exposed_at"].tolist() == list(pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-02", "2025-01-03"]))
    assert "file_row" not in rows
    # the caller's references are gone: nothing keeps a partition's copy alive beside the design
    assert frames == [] and all(len(b) == 0 for b in blocks)


def test_a_refit_on_every_row_does_not_copy_the_feature_matrix() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    X = rng.random((n, len(FEATURE_NAMES)), dtype=np.float32)
    y = (rng.random(n) < 0.1).astype(np.float64)
    w = np.ones(n)

    def allocated(mask: np.ndarray) -> int:
        tracemalloc.start()
        try:
            train._train(X, y, w, mask, None, 5, None, 1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    every = np.ones(n, dtype=bool)
    all_but_one = every.copy()
    all_but_one[0] = False
    assert allocated(every) < X.nbytes // 4  # the matrix itself is binned, not a copy of it
    assert allocated(all_but_one) > X.nbytes  # a real subset is still selected by copying
