"""LightGBM fits follow OMP_NUM_THREADS (training/threads.py)."""

from __future__ import annotations

import os

import pytest

from training.threads import fit_threads


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), (" 2 ", 2)])
def test_a_positive_thread_limit_reaches_lightgbm(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert fit_threads() == expected


@pytest.mark.parametrize("value", [None, "", "0", "-1", "two", "1.5"])
def test_without_a_usable_limit_every_core_is_used(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert fit_threads() == (os.cpu_count() or 1)
