"""Fuzz: 240 random mutations of a real model file never crash the process that loads them.

Each mutation (a truncation, a byte flip, a digit changed inside a number, a deleted line)
is written as an artifact whose metadata records the mutated file's sha256, as if the
damage had been done before the checksum was taken, so the checksum cannot be what saves
the process. This test process then loads it with :meth:`PropensityModel.load` and, when
accepted, scores with it as a worker does. LightGBM aborts the process on many of these
files: that this test finishes is the proof of zero crashes. The tally is printed
(``pytest -s``) and is the figure quoted in the issue's closing note.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.compiled import probe_matrix
from models.model import ArtifactError, PropensityModel, sha256_file
from tests.decisions_env import DecisionEnv, build

MUTATIONS_PER_KIND = 60
KINDS = ("truncate", "flip_byte", "change_digit", "delete_line")


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """One random mutation of ``data`` of the given kind."""
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flip_byte":
        at = rng.randrange(len(data))
        return data[:at] + bytes([data[at] ^ rng.randrange(1, 256)]) + data[at + 1:]
    if kind == "change_digit":  # stays a number: only LightGBM's own reading can judge it
        at = rng.choice([m.start() for m in re.finditer(rb"[0-9]", data)])
        return data[:at] + str(rng.choice([d for d in range(10) if d != data[at] - 48])).encode() + data[at + 1:]
    lines = data.split(b"\n")
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def classify(reason: str) -> str:
    """The check that refused a mutation, from the ArtifactError's message."""
    if "crashed" in reason:
        return "child process killed by LightGBM"
    if "LightGBM cannot load" in reason or "took more than" in reason:
        return "child process: LightGBM error"
    if "not a loadable LightGBM model" in reason:
        return "structural check"
    return "other: " + reason[:80]


@pytest.mark.slow
def test_random_mutations_of_a_real_model_never_crash_the_loading_process(env: DecisionEnv, tmp_path: Path) -> None:
    source = env.registry / "versions" / env.v1
    original = (source / "model.txt").read_bytes()
    rng = random.Random(20251112)
    artifact = tmp_path / "artifact"
    shutil.copytree(source, artifact)
    meta = json.loads((artifact / "metadata.json").read_text())
    tally: Counter[str] = Counter()
    accepted_by_kind: Counter[str] = Counter()
    for kind in KINDS:
        for _ in range(MUTATIONS_PER_KIND):
            mutated = mutate(original, kind, rng)
            if mutated == original:
                continue
            (artifact / "model.txt").write_bytes(mutated)
            meta["model_sha256"] = sha256_file(artifact / "model.txt")
            (artifact / "metadata.json").write_text(json.dumps(meta))
            tally["tried"] += 1
            try:
                model = PropensityModel.load(artifact)
            except ArtifactError as exc:
                tally["refused"] += 1
                tally["refused by " + classify(str(exc))] += 1
                continue
            # accepted: harmless to load; it must also score as a worker scores (in this process)
            X = probe_matrix(model.booster, rows=64)
            assert np.isfinite(model.predict(X)).all()
            assert np.isfinite(model.contributions(X[:8])).all()
            tally["accepted"] += 1
            accepted_by_kind[kind] += 1
    print("\nmodel mutations:", dict(tally), "accepted by kind:", dict(accepted_by_kind))
    assert tally["tried"] >= 200
    assert tally["refused"] + tally["accepted"] == tally["tried"]  # and the process is still here: 0 crashes
    assert not any(k.startswith("refused by other") for k in tally), tally
    # the mutations reach every line of defence
    assert tally["refused by structural check"] > 0 and tally["accepted"] > 0
    assert accepted_by_kind["truncate"] == 0
