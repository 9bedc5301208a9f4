"""Settings from OFFERS_* variables: defaults, aliases, and errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.apikeys import Keyring, parse_api_keys
from runtime.settings import SettingsError, load_settings, settings_for, unknown_variables
from service.app import create_app
from tests.service_helpers import make_settings


def test_defaults_need_no_environment() -> None:
    s = load_settings({})
    assert s.redis_url is None and s.embedded_stores
    assert s.api_keys == () and s.max_body_bytes == 1 << 20
    assert s.redis_timeout_ms <= 100 and s.redis_connect_timeout_ms <= 100
    assert 24 * 3600 <= s.idempotency_ttl_seconds <= 72 * 3600
    assert s.event_log.name == "events"


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    s = load_settings({"OFFERS_MAX_BODY_BYTES": "4096", "OFFERS_CACHE_TTL_SECONDS": "60",
                       "OFFERS_EVENT_LOG": str(tmp_path), "OFFERS_LOG_LEVEL": "debug",
                       "OFFERS_DATA": str(tmp_path), "OFFERS_WORKERS": "3",
                       "OFFERS_TIMEZONE": "Europe/London", "OFFERS_COMPILE_MODEL": "false",
                       "OFFERS_MODEL_CACHE_DIR": str(tmp_path / "trees")})
    assert s.compile_model is False and s.model_cache_dir == tmp_path / "trees"
    assert load_settings({}).compile_model is True
    assert s.max_body_bytes == 4096 and s.cache_ttl_seconds == 60
    assert s.event_log == tmp_path and s.data == tmp_path and s.log_level == "DEBUG"
    assert s.workers == 3 and s.zone.key == "Europe/London"


def test_redis_url_is_read_from_either_variable() -> None:
    assert load_settings({"REDIS_URL": "redis://a:6379/0"}).redis_url == "redis://a:6379/0"
    both = {"REDIS_URL": "redis://a/0", "OFFERS_REDIS_URL": "redis://b/0"}
    assert load_settings(both).redis_url == "redis://b/0"
    assert load_settings({"REDIS_URL": ""}).redis_url is None


@pytest.mark.parametrize("env, named", [
    ({"OFFERS_MAX_BODY_BYTES": "lots"}, "OFFERS_MAX_BODY_BYTES"),
    ({"OFFERS_MAX_BODY_BYTES": "10"}, "OFFERS_MAX_BODY_BYTES"),
    ({"OFFERS_REGISTRY": "/no/such/registry"}, "OFFERS_REGISTRY"),
    ({"OFFERS_PROGRAM": "/no/such/program.yaml"}, "OFFERS_PROGRAM"),
    ({"REDIS_URL": "http://redis"}, "REDIS_URL"),
    ({"OFFERS_REDIS_URL": "localhost:6379"}, "OFFERS_REDIS_URL"),
    ({"OFFERS_API_KEYS": "short:events"}, "OFFERS_API_KEYS"),
    ({"OFFERS_API_KEYS": "a-long-enough-key-123:superuser"}, "OFFERS_API_KEYS"),
    ({"OFFERS_IDEMPOTENCY_TTL_SECONDS": "3600"}, "OFFERS_IDEMPOTENCY_TTL_SECONDS"),
    ({"OFFERS_TIMEZONE": "Mars/Olympus"}, "OFFERS_TIMEZONE"),
    ({"OFFERS_LOG_LEVEL": "chatty"}, "OFFERS_LOG_LEVEL"),
    ({"OFFERS_EVENT_LOG_FSYNC": "sometimes"}, "OFFERS_EVENT_LOG_FSYNC"),
    ({"OFFERS_REDIS_TIMEOUT_MS": "0"}, "OFFERS_REDIS_TIMEOUT_MS"),
    ({"OFFERS_COMPILE_MODEL": "maybe"}, "OFFERS_COMPILE_MODEL"),
])
def test_bad_values_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert str(info.value).startswith(named + ":"), str(info.value)


def test_errors_never_repeat_secrets() -> None:
    for env in ({"OFFERS_API_KEYS": "tiny-secret:events"},
                {"REDIS_URL": "redis://user:hunter2@host:badport/0"}):
        with pytest.raises(SettingsError) as info:
            load_settings(env)
        assert "tiny-secret" not in str(info.value) and "hunter2" not in str(info.value)


def test_explicit_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("OFFERS_MAX_BODY_BYTES", "2048")
    assert settings_for().redis_url is None
    assert load_settings({}).max_body_bytes == 1 << 20
    assert load_settings().redis_url == "redis://elsewhere:6379/0"  # the real environment


def test_unknown_offers_variables_are_reported() -> None:
    env = {"OFFERS_MAX_BODY_BYTE": "1", "OFFERS_DATA": "x", "OFFERS_TEST_REDIS_URL": "y", "PATH": "/"}
    assert unknown_variables(env) == ["OFFERS_MAX_BODY_BYTE"]


def test_api_key_format() -> None:
    keys = parse_api_keys(" k1-0123456789abcdef : decisions, events ;\n k2-0123456789abcdef:admin; ")
    assert [sorted(k.scopes) for k in keys] == [["decisions", "events"], ["admin"]]
    assert "0123456789" not in repr(keys)  # keys are kept as digests only
    ring = Keyring(keys)
    assert ring.match("k2-0123456789abcdef") is keys[1]
    assert ring.match("k2-0123456789abcdeX") is None and ring.admin_enabled and not ring.open
    for bad in ("nokey", "k1-0123456789abcdef:", "k1-0123456789abcdef:events;k1-0123456789abcdef:admin",
                "with space 0123456789:events"):
        with pytest.raises(ValueError):
            parse_api_keys(bad)


def test_an_unwritable_event_log_fails_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match=r"^OFFERS_EVENT_LOG:"):
        create_app(make_settings(tmp_path, event_log=blocker / "events"))
