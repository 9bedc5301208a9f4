"""Import boundaries: models is the pure core; runtime decides without Flask; service is only HTTP.

The dependency direction is ``offers_cli -> (training | service -> runtime) -> models``, with
``offerdata`` beside ``models``. The CLI's offline jobs (batch, materialize, data, train...)
import the runtime, never the web package: only ``offers serve`` and ``offers demo`` start it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> top-level modules it must never import
FORBIDDEN = {
    "models": {"flask", "redis", "gunicorn", "training", "service", "offerdata", "offers_cli",
               "requests", "socket", "duckdb"},
    "offerdata": {"flask", "redis", "gunicorn", "training", "service", "offers_cli"},
    "training": {"flask", "redis", "gunicorn", "service", "offers_cli"},
    "runtime": {"flask", "werkzeug", "gunicorn", "training", "service", "offers_cli"},
    "service": {"training", "offers_cli"},
}

#: the CLI's offline jobs: they run the runtime, never the web package
OFFLINE_JOBS = ["batch.py", "materialize.py", "data.py", "train.py", "main.py", "lift.py"]


def imported_roots(path: Path) -> set[str]:
    """Top-level module names imported anywhere in ``path`` (including inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_boundary(package: str) -> None:
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_roots(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"{package} crosses its import boundary: {offenders}"


@pytest.mark.parametrize("job", OFFLINE_JOBS)
def test_offline_jobs_never_import_the_web_package(job: str) -> None:
    bad = imported_roots(ROOT / "offers_cli" / job) & {"service", "flask", "gunicorn"}
    assert not bad, f"offers_cli/{job} imports {sorted(bad)}"


def test_no_package_imports_another_modules_private_names() -> None:
    """``from x import _name`` across modules couples them to each other's internals."""
    offenders = []
    for package in ("models", "runtime", "service", "training", "offerdata", "offers_cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private:
                        offenders.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert not offenders, offenders


def test_the_checker_sees_nested_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import redis.client\n    from flask import Flask\n")
    assert imported_roots(probe) == {"redis", "flask"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports at run time, at module level or inside functions
    (a function-level import that closes a loop is still a cycle), but not under
    ``if TYPE_CHECKING`` (annotations only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in known:
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
    return found


def test_no_import_cycles_between_modules() -> None:
    """No two project modules import each other, directly or through others."""
    paths = [p for package in FORBIDDEN for p in (ROOT / package).rglob("*.py")] + \
        list((ROOT / "offers_cli").rglob("*.py"))
    known = {_module_name(p) for p in paths}
    # a module's own packages are initialised before it by Python itself (``from pkg import sub``
    # inside pkg is the usual re-export), so edges to a module's ancestors are not cycles
    graph = {}
    for p in paths:
        name = _module_name(p)
        parts = name.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = _runtime_imports(p, known) - ancestors
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, cycles


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """``offers --help`` and ``offers models list`` stay fast: importing the CLI (and the registry)
    loads neither LightGBM, scikit-learn, pandas nor pyarrow; each sub-command imports what it runs."""
    import subprocess
    import sys

    code = ("import sys, offers_cli.main, models.registry; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'lightgbm', 'sklearn', 'pandas', 'pyarrow'}); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
