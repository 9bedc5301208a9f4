"""One error tree: every project exception descends from OffersError; the HTTP layer maps a
store outage to 503 in one handler; the CLI turns any project error into a message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from models.errors import OffersError
from offers_cli.main import OffersGroup
from runtime.settings import settings_for
from service.app import create_app
from tests.service_helpers import ADMIN_KEY, ALL_KEYS

PACKAGES = ("models", "offerdata", "training", "runtime", "service", "offers_cli")
#: modules whose import changes the process (they define no exception class): the WSGI entry
#: point builds an app from the environment; gunicorn's config sets PROMETHEUS_MULTIPROC_DIR
SIDE_EFFECTS = {"service.wsgi", "service.gunicorn_conf"}
#: project exception classes that may not descend from OffersError, and why
OUTSIDE_THE_TREE: dict[str, str] = {}


def project_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in the project's modules, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name in SIDE_EFFECTS:
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                    found[f"{info.name}.{name}"] = obj
    return found


def test_every_project_exception_descends_from_the_root() -> None:
    found = project_exceptions()
    assert len(found) >= 30  # the walk sees the whole tree
    strays = sorted(name for name, cls in found.items()
                    if not issubclass(cls, OffersError) and name not in OUTSIDE_THE_TREE)
    assert strays == []


def test_one_validation_failed_class() -> None:
    names = [name for name in project_exceptions() if name.endswith(".ValidationFailed")]
    assert names == ["service.errors.ValidationFailed"]


def test_the_cli_turns_any_project_error_into_a_message_and_exit_1() -> None:
    @click.group(cls=OffersGroup)
    def group() -> None:
        """A group like ``offers``."""

    @group.command()
    def fails() -> None:
        from runtime.settings import SettingsError

        raise SettingsError("OFFERS_REDIS_URL: must start with redis://")

    result = CliRunner().invoke(group, ["fails"])
    assert result.exit_code == 1
    assert "Error: OFFERS_REDIS_URL: must start with redis://" in result.output
    assert "Traceback" not in result.output


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", ["/v1/admin/members/M1/state", "coupon"])
def test_a_store_outage_is_a_503_problem_from_the_one_handler(tmp_path: Path, path: str) -> None:
    from runtime.coupons.codes import generate

    path = f"/v1/admin/coupons/{generate()}" if path == "coupon" else path
    settings = settings_for(event_log=tmp_path / "events", api_keys=ALL_KEYS,
                            redis_url=f"redis://127.0.0.1:{_closed_port()}/0", redis_timeout_ms=200,
                            redis_connect_timeout_ms=200)
    app = create_app(settings)
    try:
        resp = app.test_client().get(path, headers={"X-API-Key": ADMIN_KEY})
        assert resp.status_code == 503 and resp.mimetype == "application/problem+json"
        body = resp.get_json()
        assert body["detail"] == "the online store is unavailable; retry shortly" and body["status"] == 503
        assert resp.headers["Retry-After"] == "1"
    finally:
        app.extensions["offers"].close()
