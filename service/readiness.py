"""Readiness: named checks that must all pass before ``/readyz`` answers 200.

The app registers ``stores`` (Redis answers a PING, or the stores are embedded). Other
parts add their own, typically the model loader::

    flag = state.readiness.flag("model", detail="loading model v3")
    ...load and warm up the model...
    flag.set(True, "model v3 warm")

or a live check: ``state.readiness.register("catalog", lambda: catalog.loaded)``. A
check returns True when ready, False (or raises) when not; its exception message becomes
the reported detail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

Check = Callable[[], bool]


@dataclass
class ReadinessFlag:
    """A readiness check whose answer is set by its owner."""

    name: str
    ready: bool = False
    detail: str = ""

    def set(self, ready: bool, detail: str = "") -> None:
        self.ready = ready
        self.detail = detail

    def __call__(self) -> bool:
        if not self.ready:
            raise RuntimeError(self.detail or "not ready")
        return True


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""


class Readiness:
    """Named readiness checks; ready when there is at least one and all pass."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: Check) -> None:
        """Add (or replace) the check called ``name``."""
        with self._lock:
            self._checks[name] = check

    def unregister(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def flag(self, name: str, ready: bool = False, detail: str = "") -> ReadinessFlag:
        """Register and return a :class:`ReadinessFlag` its owner flips when ready."""
        f = ReadinessFlag(name, ready, detail)
        self.register(name, f)
        return f

    @property
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._checks)

    def evaluate(self) -> tuple[bool, dict[str, CheckResult]]:
        """Run every check; (all passed, per-check results)."""
        with self._lock:
            checks = dict(self._checks)
        results: dict[str, CheckResult] = {}
        for name, check in sorted(checks.items()):
            try:
                ok = bool(check())
                results[name] = CheckResult(ok, "" if ok else "check returned false")
            except Exception as exc:  # a failing check means "not ready", never a 500
                results[name] = CheckResult(False, str(exc) or type(exc).__name__)
        return bool(results) and all(r.ok for r in results.values()), results
