"""A first load of a LightGBM model in a throw-away child process.

LightGBM aborts or segfaults the process that parses a malformed model, so a model text
that passed the structural check (:mod:`models.modelfile`) is loaded once more, by a
child, before any long-lived process (a gunicorn worker, the CLI) loads it:
:func:`probe_model` runs ``python -m models.model_probe`` with the text on its standard
input. The child talks to ``lib_lightgbm`` directly through ctypes (importing the
``lightgbm`` package costs about 1.5 s; this costs tens of milliseconds) and does what
the parent will do with the model: load it, read its parameters, dump it to JSON and
predict, normal and ``pred_contrib``, rows that sit on its split thresholds, at 0, NaN
and extremes. It prints one JSON line; a child killed by a signal, a timeout or a
LightGBM error is a refusal (:class:`ProbeFailed`), and the parent never loads the text.

Only the standard library is imported here: the child must start fast.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from models.errors import CoreError

#: Seconds a child may take to load and score a model.
PROBE_TIMEOUT = 120.0
PROBE_ROWS = 32
_FLOAT64, _PREDICT_NORMAL, _PREDICT_CONTRIB = 1, 0, 3


class ProbeFailed(CoreError):
    """The child process could not load or score the model (or died trying)."""


def probe_model(data: bytes, n_features: int, timeout: float = PROBE_TIMEOUT) -> int:
    """Load and score ``data`` in a child process; the number of trees it read.

    Raises :class:`ProbeFailed` naming what happened (a LightGBM error, the signal that
    killed the child, a timeout) when it is not loadable.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "models.model_probe", str(n_features)], input=data,
                              capture_output=True, timeout=timeout, env=env,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(f"loading the model in a child process took more than {timeout:g} s") from exc
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name if -done.returncode in signal.Signals._value2member_map_ else ""
        raise ProbeFailed(f"LightGBM crashed loading the model in a child process (signal {-done.returncode} {name})")
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    if done.returncode != 0 or not verdict.get("ok"):
        detail = verdict.get("error") or done.stderr.decode(errors="replace").strip()[-300:] or f"exit {done.returncode}"
        raise ProbeFailed(f"LightGBM cannot load the model: {detail}")
    if verdict.get("sha256") != hashlib.sha256(data).hexdigest():
        raise ProbeFailed("the child process read other bytes than it was given")
    return int(verdict["trees"])


# -- the child ------------------------------------------------------------------------------
def _library() -> ctypes.CDLL:
    """lib_lightgbm from the installed lightgbm package, without importing the package."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("the lightgbm package is not installed")
    lib = ctypes.cdll.LoadLibrary(os.path.join(next(iter(spec.submodule_search_locations)), "lib", "lib_lightgbm.so"))
    lib.LGBM_GetLastError.restype = ctypes.c_char_p
    return lib


def _call(lib: ctypes.CDLL, name: str, *args: object) -> None:
    if getattr(lib, name)(*args) != 0:
        raise RuntimeError(f"{name}: {lib.LGBM_GetLastError().decode(errors='replace')}")


def _text(lib: ctypes.CDLL, name: str, handle: ctypes.c_void_p, *args: object) -> str:
    """A string out of a LightGBM call that takes (buffer_len, out_len, out_str), sized in two calls."""
    out_len = ctypes.c_int64(0)
    _call(lib, name, handle, *args, ctypes.c_int64(0), ctypes.byref(out_len), None)
    buffer = ctypes.create_string_buffer(out_len.value)
    _call(lib, name, handle, *args, ctypes.c_int64(out_len.value), ctypes.byref(out_len), buffer)
    return buffer.value.decode()


def _rows(dump: dict, n_features: int) -> list[list[float]]:
    """Rows on each feature's split thresholds (cycled), plus 0, NaN and +-1e300 rows."""
    values: list[list[float]] = [[] for _ in range(n_features)]
    stack = [t["tree_structure"] for t in dump.get("tree_info", [])]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        threshold = node["threshold"]
        codes = ([float(c) for c in threshold.split("||")] if isinstance(threshold, str) else [float(threshold)])
        values[int(node["split_feature"])].extend(codes)
        stack.extend((node["left_child"], node["right_child"]))
    rows = [[0.0] * n_features, [float("nan")] * n_features, [1e300] * n_features, [-1e300] * n_features]
    for r in range(PROBE_ROWS):
        rows.append([v[r % len(v)] if v else float(r) for v in values])
    return rows


def _child(n_features: int) -> dict[str, object]:
    """Load the model text on stdin and use it as the service does; the verdict to print."""
    data = sys.stdin.buffer.read()
    lib = _library()
    handle, iterations = ctypes.c_void_p(), ctypes.c_int(0)
    _call(lib, "LGBM_BoosterLoadModelFromString", ctypes.c_char_p(data), ctypes.byref(iterations),
          ctypes.byref(handle))
    try:
        got = ctypes.c_int(0)
        _call(lib, "LGBM_BoosterGetNumFeature", handle, ctypes.byref(got))
        if got.value != n_features:
            raise RuntimeError(f"the model has {got.value} features, expected {n_features}")
        json.loads(_text(lib, "LGBM_BoosterGetLoadedParam", handle))
        dump = json.loads(_text(lib, "LGBM_BoosterDumpModel", handle, ctypes.c_int(0), ctypes.c_int(-1),
                                ctypes.c_int(0)))
        rows = _rows(dump, n_features)
        matrix = (ctypes.c_double * (len(rows) * n_features))(*[v for row in rows for v in row])
        for kind, width in ((_PREDICT_NORMAL, 1), (_PREDICT_CONTRIB, n_features + 1)):
            out = (ctypes.c_double * (len(rows) * width))()
            out_len = ctypes.c_int64(0)
            _call(lib, "LGBM_BoosterPredictForMat", handle, matrix, ctypes.c_int(_FLOAT64), ctypes.c_int32(len(rows)),
                  ctypes.c_int32(n_features), ctypes.c_int(1), ctypes.c_int(kind), ctypes.c_int(0), ctypes.c_int(-1),
                  ctypes.c_char_p(b"num_threads=1"), ctypes.byref(out_len), out)
            if out_len.value != len(rows) * width or any(v != v for v in out):  # NaN != NaN
                raise RuntimeError("predictions are missing or NaN")
    finally:
        lib.LGBM_BoosterFree(handle)
    return {"ok": True, "trees": iterations.value, "sha256": hashlib.sha256(data).hexdigest()}


if __name__ == "__main__":
    try:
        verdict = _child(int(sys.argv[1]))
    except Exception as exc:  # a LightGBM error (or a bad dump): reported, the parent refuses
        verdict = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(verdict), flush=True)
    sys.exit(0 if verdict["ok"] else 1)
