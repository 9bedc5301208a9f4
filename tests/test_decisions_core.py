"""The decision side without HTTP: clock, candidates, member inputs, records, scoring, runner."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from models.features import channel_codes, compute_features
from models.features.online import (
    EXPOSURE,
    LINE,
    RECORD,
    history_from_records,
    member_records,
    records_from_history,
)
from models.model import PropensityModel
from models.registry import Registry
from runtime.decisions.clock import ClockError, ServiceClock
from runtime.decisions.materialize import load_members, materialize
from runtime.decisions.members import member_inputs
from runtime.decisions.model_holder import ModelHolder, ModelRejected
from runtime.decisions.outcome import DecisionRequest
from runtime.decisions.pipeline import DecisionPipeline
from runtime.decisions.scoring import feature_rows, predict, stack
from runtime.decisions.setup import DecisionSetup
from runtime.events.history_records import HistoryRecorder, local_seconds
from runtime.stores.memory import MemoryStore
from service.events.bodies import Event
from tests.decisions_env import CHANNEL, CLOCK, FLASH, DecisionEnv, build


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="module")
def setup(env: DecisionEnv) -> DecisionSetup:
    return DecisionSetup.load(env.data, env.program, CLOCK)


@pytest.fixture(scope="module")
def loaded(setup: DecisionSetup, env: DecisionEnv) -> tuple:
    return load_members(setup, env.data)


@pytest.fixture
def decider(setup: DecisionSetup, env: DecisionEnv, loaded: tuple) -> Iterator[DecisionPipeline]:
    store = MemoryStore()
    materialize(store, setup, *loaded)
    holder = ModelHolder(env.registry, warm=lambda m: None)
    env.promote(env.v1)
    holder.load()
    yield DecisionPipeline(setup, store, holder)


def test_the_clock_is_wall_fixed_or_the_data() -> None:
    zone = ZoneInfo("America/Chicago")
    assert ServiceClock("wall", zone, wall=lambda: 1_700_000_000.0).now() == datetime.fromtimestamp(1_700_000_000, UTC)
    fixed = ServiceClock("2017-10-30T09:00:00", zone)  # naive: local program time
    assert fixed.now() == datetime(2017, 10, 30, 14, tzinfo=UTC) and fixed.mode == "fixed"
    latest = datetime(2018, 1, 1, 10, 1, 20, tzinfo=UTC)
    assert ServiceClock("data", zone, latest).now() == datetime(2018, 1, 1, 10, 1, 21, tzinfo=UTC)
    with pytest.raises(ClockError, match="OFFERS_CLOCK"):
        ServiceClock("yesterday", zone)
    with pytest.raises(ClockError, match="needs transactions"):
        ServiceClock("data", zone, None)


def test_candidates_are_the_offers_valid_at_the_time(setup: DecisionSetup) -> None:
    as_of = setup.moment().local
    universe = setup.universe(as_of)
    for offer_id in universe.offer_ids:
        offer = setup.catalog[offer_id]
        assert offer.starts_at is None or offer.starts_at <= as_of <= offer.ends_at
    assert FLASH in universe.offer_ids and len(universe.scorable) == sum(
        1 for o in universe.offer_ids if setup.catalog[o].source == "contract")
    assert setup.universe(as_of + pd.Timedelta(seconds=1)) is universe  # memoised by the set
    assert setup.universe(pd.Timestamp("2031-01-01")).digest != universe.digest


def test_member_records_in_one_pass_equal_the_per_member_encoding(loaded: tuple) -> None:
    hist, _ = loaded
    records = member_records(hist)
    for m in range(0, hist.n_members, 37):
        assert records[m] == records_from_history(hist, m)


def test_a_member_gets_the_same_inputs_alone_or_in_a_batch(setup: DecisionSetup, loaded: tuple) -> None:
    hist, profiles = loaded
    as_of = setup.moment().local
    together = member_inputs(setup, hist, as_of, profiles)
    for m in range(0, hist.n_members, 53):
        single = history_from_records(str(hist.member_ids[m]), records_from_history(hist, m), int(hist.joined_at[m]))
        assert member_inputs(setup, single, as_of, [profiles[m]])[0] == together[m]
    restacked = stack([history_from_records(str(hist.member_ids[m]), records_from_history(hist, m),
                                            int(hist.joined_at[m])) for m in range(10)])
    assert member_inputs(setup, restacked, as_of, profiles[:10]) == together[:10]


def test_online_scores_equal_offline_scores(setup: DecisionSetup, env: DecisionEnv, loaded: tuple) -> None:
    hist, _ = loaded
    model = PropensityModel.load(Registry(env.registry).path(env.v1))
    as_of = setup.moment().local
    universe = setup.universe(as_of)
    members = np.arange(0, 40)
    offline = predict(model, feature_rows(setup, hist, members, universe, as_of, CHANNEL, model.program), 40)
    for m in members[::7]:
        single = history_from_records(str(hist.member_ids[m]), records_from_history(hist, int(m)),
                                      int(hist.joined_at[m]))
        online = predict(model, feature_rows(setup, single, np.zeros(1, dtype=np.int64), universe, as_of,
                                             CHANNEL, model.program), 1)
        np.testing.assert_allclose(online[0], offline[m], rtol=1e-6)
    # and the same as training's own feature call
    offers = universe.feature_index[universe.scorable]
    direct = compute_features(hist, setup.features, np.zeros(len(offers), dtype=np.int64), offers,
                              np.full(len(offers), setup.seconds(as_of)), channel_codes([CHANNEL] * len(offers)),
                              model.program)
    np.testing.assert_allclose(model.predict(direct), offline[0], rtol=1e-6)


def test_events_become_records_features_read(setup: DecisionSetup) -> None:
    recorder = HistoryRecorder(setup.features, setup.fingerprint, setup.zone)
    product = str(setup.features.product_ids[3])
    offer = str(setup.features.offer_ids[5])
    ts_text = "2025-11-01T15:00:00Z"
    ts = datetime(2025, 11, 1, 15, tzinfo=UTC)
    line = Event(event_id="t1", member_id="m", type="transaction", ts=ts_text, amount_minor=1234, product_id=product,
                 basket_id="b1", discount_minor=100, coupon_discount_minor=50)
    rec = np.frombuffer(recorder.record(line, 2), dtype=RECORD)[0]
    assert (rec["kind"], rec["index"], rec["amount"], rec["discount"], rec["coupon"]) == (LINE, 3, 1234, 100, 50)
    assert rec["time"] == local_seconds(ts, setup.zone)
    seen = np.frombuffer(recorder.record(Event(event_id="i1", member_id="m", type="impression", ts=ts_text,
                                               offer_id=offer), 2), dtype=RECORD)[0]
    assert (seen["kind"], seen["index"]) == (EXPOSURE, 5)
    assert recorder.record(Event(event_id="c1", member_id="m", type="click", ts=ts_text, offer_id=offer), 2) == b""
    assert recorder.record(Event(event_id="r1", member_id="m", type="redeem", ts=ts_text, offer_id=FLASH), 2) == b""
    unknown = Event(event_id="t2", member_id="m", type="transaction", ts=ts_text, amount_minor=5)
    assert np.frombuffer(recorder.record(unknown, 2), dtype=RECORD)[0]["index"] == -1


def test_a_decision_reads_history_scores_caches_and_issues(decider: DecisionPipeline, loaded: tuple) -> None:
    hist, _ = loaded
    member = str(hist.member_ids[1])
    first = decider.decide(DecisionRequest(member, CHANNEL), "d-1")
    assert first.history == "ok" and first.scores == "computed" and first.decision.policy in ("personalised", "holdout")
    assert first.offers and all(o.coupon is not None for o in first.offers if o.offer.requires_coupon)
    again = decider.decide(DecisionRequest(member, CHANNEL), "d-2")
    assert again.scores == "cache"
    cached = {o.offer.offer_id: o.offer.propensity for o in again.offers}
    assert {o.offer.offer_id: o.offer.propensity for o in first.offers if o.offer.offer_id in cached} == \
        pytest.approx({k: v for k, v in cached.items() if k in {o.offer.offer_id for o in first.offers}}, rel=1e-6)
    # the flash bonus is capped at one issue per member
    assert any(e == (FLASH, "MEMBER_CAP_REACHED") for e in again.excluded)
    replay = decider.decide(DecisionRequest(member, CHANNEL, as_of=datetime(2025, 11, 20, tzinfo=UTC)), "d-3")
    assert replay.scores == "computed" and replay.as_of == datetime(2025, 11, 20, tzinfo=UTC)


def test_unknown_members_get_a_cold_start_decision(decider: DecisionPipeline) -> None:
    out = decider.decide(DecisionRequest("never-seen-" + uuid.uuid4().hex[:6], CHANNEL), "d-4")
    assert out.decision.policy in ("cold_start", "holdout") and out.history == "none" and out.scores == "none"
    assert out.offers


def test_a_chunk_decides_like_single_decisions(decider: DecisionPipeline, loaded: tuple) -> None:
    hist, _ = loaded
    ids = [str(m) for m in hist.member_ids[100:140]]
    req = DecisionRequest("", CHANNEL, exclude=(FLASH,))  # no budget in play: order does not matter
    chunk = decider.decide_chunk(ids, req, [f"b.{i}" for i in range(len(ids))])
    for out in chunk[::5]:
        alone = decider.decide(DecisionRequest(out.member_id, CHANNEL, exclude=(FLASH,)), "x")
        assert [o.offer.offer_id for o in alone.offers] == [o.offer.offer_id for o in out.offers]


def test_a_bad_champion_is_refused_and_the_old_model_keeps_serving(env: DecisionEnv) -> None:
    holder = ModelHolder(env.registry, warm=lambda m: None, check_interval=0.0)
    env.promote(env.v1)
    assert holder.load().serving.version == env.v1
    env.promote(env.bad)
    try:
        with pytest.raises(ModelRejected, match="checksum"):
            holder.load()
        assert holder.serving is not None and holder.serving.version == env.v1
        holder.poll()  # a rejected version is not retried in the background
        assert holder.wait_idle() and holder.serving.version == env.v1
        env.promote(env.v2)
        holder.poll()  # the alias changed: swapped in the background
        assert holder.wait_idle() and holder.serving.version == env.v2
    finally:
        env.promote(env.v1)


def test_the_registry_path_is_checked(tmp_path: Path) -> None:
    holder = ModelHolder(tmp_path / "nowhere", warm=lambda m: None)
    with pytest.raises(ModelRejected, match="does not exist"):
        holder.load()
    assert holder.current() is None


def test_clock_and_worker_timeout_settings_are_validated_naming_the_variable() -> None:
    from runtime.settings import SettingsError, load_settings

    assert load_settings({"OFFERS_CLOCK": " Data "}).clock == "data"
    assert load_settings({"OFFERS_CLOCK": "2017-10-30T09:00:00-05:00"}).clock == "2017-10-30T09:00:00-05:00"
    assert load_settings({}).clock == "wall" and load_settings({}).worker_timeout == 120
    with pytest.raises(SettingsError, match="OFFERS_CLOCK: must be 'wall', 'data' or an ISO 8601"):
        load_settings({"OFFERS_CLOCK": "tomorrow"})
    with pytest.raises(SettingsError, match="OFFERS_WORKER_TIMEOUT"):
        load_settings({"OFFERS_WORKER_TIMEOUT": "1"})


def test_typical_basket_is_the_mean_basket_total_per_member_in_the_window() -> None:
    """Baskets are per member (the same basket code for two members is two baskets), and
    lines outside the window do not count."""
    from runtime.decisions.members import _typical_basket

    mem = np.array([0, 0, 0, 1, 1])
    baskets = np.array([7, 7, 9, 7, 3])
    amounts = np.array([100.0, 50.0, 30.0, 20.0, 40.0])
    window = np.array([True, True, True, True, False])
    got = _typical_basket(3, mem, baskets, amounts, window)
    np.testing.assert_array_equal(got[:2], [90.0, 20.0])  # (150 + 30) / 2 baskets; 20 / 1
    assert np.isnan(got[2])


def test_offer_values_carry_their_unit() -> None:
    from models.program import load_program
    from runtime.decisions.outcome_json import value_display, value_unit

    program = load_program(Path(__file__).parents[1] / "examples" / "programs" / "starbucks.yaml")
    assert (value_unit("amount_off"), value_display(program, "amount_off", 150.0)) == ("currency_minor", "$1.50")
    assert (value_unit("percent_off"), value_display(program, "percent_off", 20.0)) == ("percent", "20%")
    assert (value_unit("points_multiplier"), value_display(program, "points_multiplier", 2.0)) == ("multiplier", "2x")
    assert value_unit("bonus_points") == "points"
    assert value_display(program, "bonus_points", 1500.0) == f"1,500 {program.currency.name}"
    assert value_display(program, "amount_off", 0.0) is None  # a coupon without a known face value
