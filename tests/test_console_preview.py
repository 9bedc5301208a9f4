"""The console's campaign preview through Flask's test client: a segment sample or an uploaded
audience decided by the live pipeline, budgets binding across the audience, nothing written,
and every bad field named."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.decisions_env import (
    CHANNEL,
    FLASH,
    FLASH_BUDGET,
    DecisionEnv,
    build,
    close_app,
    start_app,
)
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY, all_store_keys
from tests.test_console import KEYS, SUPPORT_KEY, sign_in, token


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, api_keys=KEYS))
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_in(client, SUPPORT_KEY)  # a read-only session may preview: nothing is written
    return client


def counts(html: str) -> dict[str, int]:
    """Offer id -> members, from the page's offer table."""
    table = html.split('id="offer-counts"', 1)[1].split("</table>", 1)[0]
    return {o: int(n) for o, n in re.findall(r'data-offer-id="([^"]+)">.*?<td class="count">(\d+)</td>', table, re.S)}


def sample_members(html: str) -> list[str]:
    """Member ids of the sample table, in order."""
    table = html.split('id="sample"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-member-id="([^"]+)"', table)


def budget_row(html: str, key: str) -> str:
    """The projection table's row of budget ``key``."""
    return html.split(f'data-budget="{key}"', 1)[1].split("</tr>", 1)[0]


def segment_of(env: DecisionEnv) -> tuple[str, list[str]]:
    """The largest segment of the test data and its members."""
    members = pd.read_parquet(env.data / "members.parquet", columns=["member_id", "segment"])
    segment = str(members["segment"].value_counts().index[0])
    return segment, members.loc[members["segment"] == segment, "member_id"].astype(str).tolist()


def test_a_segment_preview_decides_with_budgets_binding_and_writes_nothing(app: Flask, client: FlaskClient,
                                                                           env: DecisionEnv) -> None:
    store = app.extensions["offers"].store
    form = client.get("/console/preview")
    assert form.status_code == 200 and 'id="segment-form"' in form.text and 'id="result"' not in form.text
    segment, members = segment_of(env)
    assert f'<option value="{segment}">' in form.text
    before = set(all_store_keys(store)), store.budget_usage([(FLASH, "total")])
    url = f"/console/preview?audience=segment&segment={segment}&size=200&channel={CHANNEL}&seed=3"
    page = client.get(url)
    assert page.status_code == 200, page.text
    shown = counts(page.text)
    total = int(re.search(r"([\d,]+) members sampled of ([\d,]+)", page.text).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert total == min(200, len(members))
    # the flash bonus tops every greedy slate, but its budget of 10 binds across the audience:
    # exactly 10 members get it and the projection shows the budget full
    assert shown[FLASH] == FLASH_BUDGET
    row = budget_row(page.text, FLASH)
    assert f'<td class="add-count">{FLASH_BUDGET}</td>' in row and f'<td class="limit-count">{FLASH_BUDGET}</td>' in row
    sample = sample_members(page.text)
    assert sample and set(sample) <= set(members)
    assert (set(all_store_keys(store)), store.budget_usage([(FLASH, "total")])) == before  # nothing written
    again = client.get(url)
    assert sample_members(again.text) == sample and counts(again.text) == shown  # same seed, same people
    other = client.get(url.replace("seed=3", "seed=4"))
    assert sample_members(other.text) != sample


def test_the_preview_sees_what_real_decisions_already_spent(app: Flask, client: FlaskClient, env: DecisionEnv) -> None:
    segment, members = segment_of(env)
    spent = 0
    for member in members[-40:]:  # real decisions reserve the flash budget
        answer = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                             headers={"X-API-Key": DECISIONS_KEY}).get_json()
        spent += any(o["offer_id"] == FLASH for o in answer["offers"])
        if spent == 4:
            break
    assert spent == 4
    page = client.get(f"/console/preview?audience=segment&segment={segment}&size=100&channel={CHANNEL}")
    assert counts(page.text)[FLASH] == FLASH_BUDGET - spent
    row = budget_row(page.text, FLASH)
    assert f"<td>{spent}</td>" in row and f'<td class="add-count">{FLASH_BUDGET - spent}</td>' in row


def test_an_uploaded_audience_is_previewed(client: FlaskClient, env: DecisionEnv) -> None:
    _, members = segment_of(env)
    page = client.get("/console/preview")
    csv = "member_id,note\n" + "".join(f"{m},x\n" for m in members[:7]) + f"{members[0]},duplicate\n"
    answer = client.post("/console/preview", content_type="multipart/form-data", data={
        "csrf_token": token(page.text), "channel": CHANNEL, "n": "2",
        "members_file": (io.BytesIO(csv.encode()), "audience.csv")})
    assert answer.status_code == 200, answer.text
    assert "Preview: audience.csv" in answer.text and sample_members(answer.text) == members[:7]
    assert sum(counts(answer.text).values()) <= 14  # at most 2 offers for each of the 7
    pasted = client.post("/console/preview", data={"csrf_token": token(page.text), "channel": CHANNEL,
                                                   "members_text": f"{members[0]}\n{members[1]}, {members[2]}"})
    assert pasted.status_code == 200 and sample_members(pasted.text) == members[:3]


@pytest.mark.parametrize(("fields", "named"), [
    ({"members_text": "M1 not/an/id M2"}, "not member ids"),
    ({"members_text": "  "}, "paste some ids"),
    ({"members_text": " ".join(f"M{i}" for i in range(5001))}, "at most 5,000"),
    ({"members_text": "M1", "channel": "fax"}, "channel"),
    ({"members_text": "M1", "n": "0"}, "n: 0 is outside"),
    ({"members_text": "M1", "seed": "x"}, "seed"),
])
def test_a_bad_upload_is_named(client: FlaskClient, fields: dict[str, str], named: str) -> None:
    page = client.get("/console/preview")
    answer = client.post("/console/preview", data={"csrf_token": token(page.text), **fields})
    assert answer.status_code == 422 and named in answer.text and 'role="alert"' in answer.text


def test_an_upload_that_is_not_text_is_named(client: FlaskClient) -> None:
    page = client.get("/console/preview")
    answer = client.post("/console/preview", content_type="multipart/form-data", data={
        "csrf_token": token(page.text), "members_file": (io.BytesIO(b"\xff\xfe\x00\x81"), "ids.bin")})
    assert answer.status_code == 422 and "ids.bin is not UTF-8" in answer.text


@pytest.mark.parametrize(("query", "named"), [
    ("segment=no-such-segment", "no member is in segment"),
    ("size=0", "size: 0 is outside"),
    ("size=5001", "size: 5001 is outside"),
    ("channel=fax", "channel"),
])
def test_bad_segment_fields_are_named(client: FlaskClient, query: str, named: str) -> None:
    answer = client.get(f"/console/preview?audience=segment&{query}")
    assert answer.status_code == 422 and named in answer.text


def test_the_preview_needs_a_session_and_its_upload_a_token(app: Flask) -> None:
    anonymous = app.test_client()
    answer = anonymous.get("/console/preview?audience=segment")
    assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]
    assert anonymous.post("/console/preview", data={"members_text": "M1"}).status_code == 401
    admin = app.test_client()
    sign_in(admin, ADMIN_KEY)
    refused = admin.post("/console/preview", data={"members_text": "M1"})
    assert refused.status_code == 403 and "security token" in refused.text
