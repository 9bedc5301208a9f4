"""LightGBM trees compiled to machine code (lleaves), cached on disk and verified before use.

``Booster.predict`` walks every tree through LightGBM's generic C++ code; lleaves turns the
same text model into one LLVM-compiled function, which scores the service's matrices 5-7x
faster (docs/performance.md). Compiling costs a second or more per few hundred trees, so
the object code is cached on disk under a key made of the model file's sha256, the
lleaves and llvmlite versions and the host CPU (code built for one CPU may use
instructions another lacks).

Nothing here is trusted blindly:

* a cache file is written to a temporary name and renamed into place, with a sha256
  sidecar that is checked before loading (lleaves itself loads whatever file it is
  given), and an exclusive lock makes the workers starting together compile once;
* a compiled forest is used only after it reproduced ``Booster.predict`` on a probe
  matrix built from the model's own split thresholds (each threshold and the floats just
  above and below it, category codes, missing values; :func:`probe_matrix`), so the
  comparisons the trees make are exercised on both sides.

When lleaves is not installed, or compiling or verifying fails, :func:`compile_forest`
raises :class:`CompileError` and the caller keeps ``Booster.predict``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from models.errors import CoreError

log = logging.getLogger(__name__)

#: Largest absolute difference from Booster.predict accepted on the probe (probability scale).
TOLERANCE = 1e-9
PROBE_ROWS = 512


class CompileError(CoreError):
    """The trees cannot be compiled or the compiled trees do not match LightGBM."""


class CompiledForest:
    """A compiled model: ``predict`` gives what ``Booster.predict`` gives, single-threaded."""

    def __init__(self, model: object, source: str):
        self._model = model
        self.source = source  # "compiled" or "cache": how this process obtained the code

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities for the rows of ``features`` on the calling thread (n_jobs=1)."""
        return np.asarray(self._model.predict(features, n_jobs=1), dtype=np.float64)  # type: ignore[attr-defined]


def default_cache_dir() -> Path:
    """``$OFFERS_MODEL_CACHE_DIR`` when set (so the CLI shares the service's cache), else
    ``$XDG_CACHE_HOME/loyalty-offers/compiled`` (``~/.cache`` when unset)."""
    if os.environ.get("OFFERS_MODEL_CACHE_DIR"):
        return Path(os.environ["OFFERS_MODEL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "loyalty-offers" / "compiled"


def _cache_key(model_sha256: str) -> str:
    """The model, the compiler versions and the host CPU the code is built for."""
    from importlib.metadata import version

    import llvmlite
    import llvmlite.binding as llvm

    cpu = f"{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"
    tools = f"lleaves {version('lleaves')}|llvmlite {llvmlite.__version__}|{platform.machine()}"
    return f"{model_sha256[:24]}-{hashlib.sha256(f'{tools}|{cpu}'.encode()).hexdigest()[:16]}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed) for the block's duration."""
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile(model_file: Path, model_sha256: str, cache_dir: Path | None) -> CompiledForest:
    """Compile ``model_file``, through the cache in ``cache_dir`` when it is usable.

    A cache directory that cannot be created, locked or written only costs the cache: the
    trees are then compiled in memory (and a warning says why).
    """
    import lleaves

    if cache_dir is not None:
        try:
            return _compile_cached(lleaves.Model(model_file=str(model_file)), model_sha256, cache_dir)
        except OSError as exc:
            log.warning("compiled-trees cache %s is unusable (%s); compiling in memory", cache_dir, exc)
    model = lleaves.Model(model_file=str(model_file))
    model.compile()
    return CompiledForest(model, "compiled")


def _compile_cached(model: Any, model_sha256: str, cache_dir: Path) -> CompiledForest:
    """Load the object code from the cache when it is intact, else compile it and cache it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(model_sha256)
    obj, sidecar = cache_dir / f"{key}.o", cache_dir / f"{key}.sha256"
    with _locked(cache_dir / f"{key}.lock"):
        if obj.is_file() and sidecar.is_file() and sidecar.read_text().strip() == _digest(obj):
            model.compile(cache=str(obj))
            return CompiledForest(model, "cache")
        tmp = cache_dir / f"{key}.{os.getpid()}.tmp.o"
        sidecar_tmp = cache_dir / f"{key}.{os.getpid()}.tmp.sha256"
        tmp.unlink(missing_ok=True)
        try:
            model.compile(cache=str(tmp))  # compiles, then writes the object code to tmp
            sidecar_tmp.write_text(_digest(tmp))
            os.replace(tmp, obj)
            os.replace(sidecar_tmp, sidecar)
        finally:
            tmp.unlink(missing_ok=True)
            sidecar_tmp.unlink(missing_ok=True)
        return CompiledForest(model, "compiled")


def probe_matrix(booster: lgb.Booster, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows whose values sit on and beside the model's split thresholds, and missing.

    Each feature's column cycles, in a shuffled order, through every threshold of that
    feature (the value itself, which goes left, and the float64 just above and below it),
    the codes of its categorical splits, NaN and 0, so every such value appears in at
    least one row; the matrix has ``rows`` rows or as many as the longest list of values.
    The columns are shuffled independently, so the rows reach many different nodes, though
    not every node is guaranteed to be reached with every value.
    """
    n = booster.num_feature()
    values: list[list[float]] = [[0.0, float("nan")] for _ in range(n)]
    stack = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        f, threshold = int(node["split_feature"]), node["threshold"]
        if isinstance(threshold, str):  # categorical: "1||4||7"
            codes = [int(c) for c in threshold.split("||")]
            values[f].extend([*map(float, codes), float(max(codes) + 1)])
        else:
            t = float(threshold)
            values[f].extend((t, float(np.nextafter(t, np.inf)), float(np.nextafter(t, -np.inf))))
        stack.extend((node["left_child"], node["right_child"]))
    distinct = [np.unique(np.asarray(v, dtype=np.float64)) for v in values]  # NaN kept once
    height = max([rows, *map(len, distinct)])
    rng = np.random.default_rng(seed)
    out = np.empty((height, n), dtype=np.float64)
    for f, vals in enumerate(distinct):
        out[:, f] = rng.permutation(np.resize(vals, height))
    return out


def compile_forest(booster: lgb.Booster, model_file: Path, model_sha256: str,
                   cache_dir: Path | None = None) -> CompiledForest:
    """Compile ``model_file`` (the text of ``booster``) and check it reproduces ``booster``.

    Raises :class:`CompileError` when lleaves is missing, compiling fails, or any probe
    row differs from ``Booster.predict`` by more than :data:`TOLERANCE`.
    """
    try:
        import lleaves  # noqa: F401
    except ImportError as exc:
        raise CompileError(f"lleaves is not installed ({exc})") from exc
    try:
        forest = _compile(model_file, model_sha256, cache_dir)
    except Exception as exc:  # compiler or cache failure: the caller keeps Booster.predict
        raise CompileError(f"compiling {model_file} failed: {type(exc).__name__}: {exc}") from exc
    probe = probe_matrix(booster)
    expected = np.asarray(booster.predict(probe, num_threads=1), dtype=np.float64)
    got = forest.predict(probe)
    worst = float(np.max(np.abs(got - expected))) if len(probe) else 0.0
    if not np.isfinite(got).all() or worst > TOLERANCE:
        raise CompileError(f"the compiled trees of {model_file} differ from LightGBM by {worst:.3g} "
                           f"on the probe (tolerance {TOLERANCE:g})")
    return forest
