"""A decision test environment shared by the decision tests: data, program, registry.

Built once per test process (it is cached here, so every test module's session fixture
gets the same one): a synthetic program of 1,000 members (``offers data synthetic
--members 1000 --seed 1``), the synthetic example program plus a budgeted, capped
``flash_bonus`` offer that tops every slate, and a registry holding

* ``v1``: a model trained on the data with :func:`training.train.train_propensity`
  (the champion),
* ``v2``: the same trees with another calibration (scores differ, so a swap shows),
* ``bad``: ``v2`` with a truncated model file (refused when loaded: checksum mismatch),
* ``broken``: ``v1`` with its model file cut to half its length and that half's sha256
  recorded in its metadata (the checksum passes; LightGBM itself aborts on it).

Versions are promoted here without the registry's check (:meth:`DecisionEnv.promote`),
as if a champion went bad after its promotion.

Right after it is built, a pristine copy (before any test promotes or routes anything) is
kept in ``pristine/`` beside it with a manifest of the versions. A child pytest run started
by a test of the same run (tests/test_fake_dates.py) is handed that directory in
:data:`PREBUILT` and copies it instead of generating and training again: the same
artifacts, built once per run, never cached across runs.

The service clock is fixed at :data:`CLOCK`, inside the data's campaigns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.service_helpers import ALL_KEYS, make_settings

ROOT = Path(__file__).resolve().parents[1]
CLOCK = "2025-11-12T12:00:00+00:00"
CHANNEL = "email"
FLASH = "flash_bonus"
FLASH_BUDGET = 10
FLASH_OFFER = f"""
  - id: {FLASH}
    kind: bonus_points
    title: Flash bonus
    value: 500
    cost: 2
    budget: {{count: {FLASH_BUDGET}}}
    caps: {{issues: 1}}
    lever: 50
    requires_coupon: true
"""


@dataclass(frozen=True)
class DecisionEnv:
    """Paths and versions of the shared environment."""

    data: Path
    program: Path
    registry: Path
    v1: str
    v2: str
    bad: str
    broken: str
    #: The environment as built, before any test changed its registry (see the module doc).
    pristine: Path

    def settings(self, tmp_path: Path, **overrides: Any) -> Any:
        values: dict[str, Any] = {"data": self.data, "program": self.program, "registry": self.registry,
                                  "clock": CLOCK, "api_keys": ALL_KEYS}
        values.update(overrides)
        return make_settings(tmp_path, **values)

    def promote(self, version: str) -> None:
        """Make ``version`` champion, even a bad one (without the registry's check)."""
        from models.registry import Registry

        Registry(self.registry).promote(version, check=False)


_BUILT: dict[str, DecisionEnv] = {}
#: Environment variable naming a pristine environment built by the outer run (see the module doc).
PREBUILT = "LOYALTY_TESTS_DECISIONS_ENV"
MANIFEST = "versions.json"
PARTS = ("data", "program.yaml", "registry")


def _copy_version(registry: Path, source: str, stamp: datetime, edit: Any) -> str:
    from models.registry import Registry

    reg = Registry(registry)
    with reg.staging() as staged:
        shutil.copytree(reg.path(source), staged, dirs_exist_ok=True)
        edit(staged)
        return reg.register(staged, now=stamp)


def _copy_parts(source: Path, target: Path) -> None:
    """Copy an environment's data, program and registry from ``source`` into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part)
        else:
            shutil.copy2(source / part, target / part)


def build(base: Path) -> DecisionEnv:
    """The environment (built under ``base`` the first time, then reused).

    With :data:`PREBUILT` set, the outer run's pristine copy is copied under ``base`` instead
    of being built again.
    """
    if "env" in _BUILT:
        return _BUILT["env"]
    prebuilt = os.environ.get(PREBUILT)
    if prebuilt:
        _copy_parts(Path(prebuilt), base)
        versions = json.loads((Path(prebuilt) / MANIFEST).read_text())
        _BUILT["env"] = DecisionEnv(data=base / "data", program=base / "program.yaml",
                                    registry=base / "registry", pristine=Path(prebuilt), **versions)
        return _BUILT["env"]
    data, program, registry = base / "data", base / "program.yaml", base / "registry"
    program.write_text((ROOT / "examples" / "programs" / "synthetic.yaml").read_text() + FLASH_OFFER)
    # Generate and train in a child process with one OpenMP thread: LightGBM's threads
    # spin-wait, which makes a small fit many times slower on a busy machine.
    script = ("import sys; from offerdata.synthetic import generate; from training.train import train_propensity; "
              "generate(sys.argv[1], n_members=1000, seed=1); "
              "print(train_propensity(sys.argv[1], sys.argv[2], config=sys.argv[3], bootstrap_reps=0, "
              "promote=True).version)")
    done = subprocess.run([sys.executable, "-c", script, str(data), str(registry), str(program)], cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=540)  # within pytest-timeout's 600 s
    assert done.returncode == 0, done.stderr[-3000:]
    v1 = done.stdout.strip().splitlines()[-1]

    def recalibrate(path: Path) -> None:
        meta = json.loads((path / "metadata.json").read_text())
        meta["calibration"] = {"method": "platt", "a": 0.8, "b": 0.4}
        (path / "metadata.json").write_text(json.dumps(meta))

    def truncate(path: Path) -> None:
        model = path / "model.txt"
        model.write_text(model.read_text()[: 2000])

    def halve(path: Path) -> None:
        model = path / "model.txt"
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
        meta = json.loads((path / "metadata.json").read_text())
        meta["model_sha256"] = hashlib.sha256(data[: len(data) // 2]).hexdigest()
        (path / "metadata.json").write_text(json.dumps(meta))

    v2 = _copy_version(registry, v1, datetime(2030, 1, 1, tzinfo=UTC), recalibrate)
    bad = _copy_version(registry, v2, datetime(2030, 1, 2, tzinfo=UTC), truncate)
    broken = _copy_version(registry, v1, datetime(2030, 1, 3, tzinfo=UTC), halve)
    versions = {"v1": v1, "v2": v2, "bad": bad, "broken": broken}
    pristine = base / "pristine"
    _copy_parts(base, pristine)
    (pristine / MANIFEST).write_text(json.dumps(versions))
    _BUILT["env"] = DecisionEnv(data=data, program=program, registry=registry, pristine=pristine, **versions)
    return _BUILT["env"]


# -- apps ------------------------------------------------------------------------------------
def start_app(settings: Any, materialize_redis: bool = True) -> Any:
    """A service app with decisions loaded (waits for the background loader).

    Embedded stores materialize the data at start-up by themselves; a Redis-backed app
    gets the data materialized here (as ``offers materialize`` would) unless told not to.
    """
    from runtime.decisions.materialize import load_members, materialize
    from service.app import create_app

    app = create_app(settings)
    state = app.extensions["offers"]
    service = state.decisions
    assert service.wait(300), "the decision engine did not finish loading"
    assert service.decider is not None, service.error
    if materialize_redis and state.store.kind == "redis":
        assert service.setup is not None
        materialize(state.store, service.setup, *load_members(service.setup, settings.data))
    return app


def close_app(app: Any) -> None:
    """Drop the app's Redis keys (their prefix is unique to the test) and close it."""
    state = app.extensions["offers"]
    store = state.store
    if store.kind == "redis":
        keys = list(store.client.scan_iter(match=store.keys.pattern(), count=1000))
        for i in range(0, len(keys), 1000):
            store.client.delete(*keys[i:i + 1000])
    state.close()


def offer_products(env: DecisionEnv) -> dict[str, list[str]]:
    """Offer id -> its product ids, from the environment's data."""
    import pandas as pd

    frame = pd.read_parquet(env.data / "offer_products.parquet")
    return {str(k): [str(p) for p in v] for k, v in frame.groupby("offer_id")["product_id"]}
