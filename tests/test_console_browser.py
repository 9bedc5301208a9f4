"""The operator console in a real browser: Debian's chromium driven by Playwright.

The service runs in a werkzeug server thread on a free port (decisions loaded, fixed clock).
The tests sign in, look a member up, check that the offers shown are the ones
``POST /v1/decisions`` returns for the same member and moment, that nothing is reachable
without signing in, that no page logs a browser console error, and that the keyboard
reaches the content. Every page is saved as a screenshot under ``OFFERS_TEST_ARTIFACTS``
(when set) or the test's temporary directory.

Skipped when chromium or Playwright is missing, except under CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from tests.decisions_env import (
    CHANNEL,
    FLASH,
    FLASH_BUDGET,
    DecisionEnv,
    build,
    close_app,
    start_app,
)
from tests.service_helpers import ADMIN_KEY, ALL_KEYS, DECISIONS_KEY

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("OFFERS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync"]
SUPPORT_KEY = "support-key-0123456789"
MEMBER = "M00000002"


def _missing(reason: str) -> None:
    """Fail under CI, skip elsewhere: a laptop without chromium still runs the rest."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (needed under CI: .ci/run installs Debian's chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"no chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip extra [test])")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def server(env: DecisionEnv, tmp_path: Path) -> Iterator[str]:
    """The service app behind a real HTTP server on a free port; yields its base URL."""
    env.promote(env.v1)
    app: Flask = start_app(env.settings(tmp_path, api_keys=f"{ALL_KEYS};{SUPPORT_KEY}:support"))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()
    close_app(app)
    env.promote(env.v1)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: OFFERS_TEST_ARTIFACTS when set, else the test's directory."""
    base = Path(os.environ.get("OFFERS_TEST_ARTIFACTS") or tmp_path) / "console"
    base.mkdir(parents=True, exist_ok=True)
    return base


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page that records console errors and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def nav(page: Any, name: str) -> Any:
    """A link of the console's navigation bar."""
    return page.get_by_role("navigation", name="Console pages").get_by_role("link", name=name)


def open_page(page: Any, name: str) -> None:
    """Follow a navigation-bar link and wait until the new page has loaded.

    A click returns once it is dispatched, not once the page it leads to is there, so a check
    made straight after it can read the old page (CI once counted the offers page's chart on
    the member page). Waiting for the navigation's load event removes that race.
    """
    click_and_load(page, nav(page, name))


def click_and_load(page: Any, target: Any) -> None:
    """Click a link or a form's button and wait for the page it loads (every console form is a
    plain HTML form, so each submission is a navigation)."""
    with page.expect_navigation(wait_until="load"):
        target.click()


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/console/")
    assert "/console/login" in page.url
    page.get_by_label("API key").fill(key)
    click_and_load(page, page.get_by_role("button", name="Sign in"))
    page.wait_for_url(f"{base}/console/")


def test_nothing_is_reachable_without_signing_in(page: Any, server: str) -> None:
    for path in ["/console/", f"/console/members?q={MEMBER}", "/console/offers", "/console/models",
                 "/console/lift", "/console/preview?audience=segment"]:
        page.goto(server + path)
        assert "/console/login" in page.url, path
        assert page.get_by_label("API key").is_visible()
    assert page.errors == []


def test_signed_in_pages_match_the_api_and_are_saved(page: Any, server: str, artifacts: Path) -> None:
    page.goto(f"{server}/console/login")
    page.screenshot(path=str(artifacts / "login.png"), full_page=True)
    sign_in(page, server, ADMIN_KEY)
    page.screenshot(path=str(artifacts / "home.png"), full_page=True)

    open_page(page, "Members")
    page.get_by_label("Member id or coupon code").fill(MEMBER)
    page.get_by_label("Channel").select_option(CHANNEL)
    click_and_load(page, page.get_by_role("button", name="Look up"))
    page.wait_for_selector("#decision-offers")
    shown = page.locator("#decision-offers tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.offerId)")
    page.screenshot(path=str(artifacts / "member.png"), full_page=True)

    answer = requests.post(f"{server}/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY}, timeout=30).json()
    assert shown, "the member page shows no offer"
    preview_explored = "(explored)" in page.locator("#decision-offers").inner_text()
    if not answer["explored"] and not preview_explored:  # an exploring decision is random by design
        assert [o["offer_id"] for o in answer["offers"]] == shown

    open_page(page, "Offers")
    assert page.locator("svg.chart").count() == 1
    page.screenshot(path=str(artifacts / "offers.png"), full_page=True)
    open_page(page, "Models")
    assert page.get_by_role("heading", name="Feature importance (champion)").is_visible()
    page.screenshot(path=str(artifacts / "models.png"), full_page=True)
    open_page(page, "Lift")
    assert page.get_by_role("heading", name="What the offers earned").is_visible()
    page.screenshot(path=str(artifacts / "lift.png"), full_page=True)
    assert page.errors == []
    assert {"home.png", "lift.png", "login.png", "member.png", "models.png", "offers.png"} <= {
        p.name for p in artifacts.iterdir()}


def test_support_cannot_promote_and_the_keyboard_reaches_the_content(page: Any, server: str) -> None:
    sign_in(page, server, SUPPORT_KEY)
    page.goto(f"{server}/console/models")
    assert page.get_by_role("link", name="promote").count() == 0
    assert page.errors == [], page.errors
    refused = page.goto(f"{server}/console/models/confirm?action=rollback")
    assert refused.status == 403 and "needs an admin key" in page.content()
    page.errors.clear()  # the browser logs the expected 403
    page.goto(f"{server}/console/members")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    # following an in-page link updates the URL asynchronously: wait for the event, not a clock
    page.wait_for_function("location.hash === '#main'")
    assert page.url.endswith("#main")
    assert page.errors == [], page.errors


def test_admin_pauses_an_offer_and_the_page_and_a_decision_show_it(page: Any, server: str, artifacts: Path) -> None:
    """The offers page's pause form (a real click, CSRF token included) reaches the live catalog:
    the page then shows the offer paused with a resume button, and a decision leaves it out."""
    sign_in(page, server, ADMIN_KEY)
    open_page(page, "Offers")
    row = page.locator(f'#catalog tr[data-offer-id="{FLASH}"]')
    assert row.locator("td.live-active").inner_text() == "active"
    click_and_load(page, row.get_by_role("button", name=f"Pause {FLASH}"))
    page.wait_for_selector("p.notice")
    assert f"{FLASH} paused" in page.locator("p.notice").inner_text()
    row = page.locator(f'#catalog tr[data-offer-id="{FLASH}"]')
    assert row.locator("td.live-paused").inner_text() == "paused"
    assert row.get_by_role("button", name=f"Resume {FLASH}").is_visible()
    page.screenshot(path=str(artifacts / "offers-paused.png"), full_page=True)
    answer = requests.post(f"{server}/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY}, timeout=30).json()
    assert FLASH not in [o["offer_id"] for o in answer["offers"]]
    assert {"offer_id": FLASH, "reason": "OFFER_PAUSED"} in answer["excluded"]
    open_page(page, "Members")
    page.get_by_label("Member id or coupon code").fill(MEMBER)
    page.get_by_label("Channel").select_option(CHANNEL)
    click_and_load(page, page.get_by_role("button", name="Look up"))
    page.wait_for_selector("#decision-offers")
    shown = page.locator("#decision-offers tbody tr").evaluate_all("rows => rows.map(r => r.dataset.offerId)")
    assert FLASH not in shown
    assert page.errors == [], page.errors


def test_support_sees_no_pause_or_edit_form(page: Any, server: str) -> None:
    sign_in(page, server, SUPPORT_KEY)
    page.goto(f"{server}/console/offers")
    assert page.get_by_role("button", name=f"Pause {FLASH}").count() == 0
    assert page.get_by_role("link", name=f"Edit {FLASH}").count() == 0
    assert page.errors == [], page.errors


def test_a_campaign_preview_of_a_segment_and_of_an_upload(page: Any, server: str, artifacts: Path,
                                                          tmp_path: Path) -> None:
    """Support previews a segment sample through the form (the flash bonus's budget of 10 binds
    across the audience), then an uploaded file; neither issues anything, so a real decision for a
    previewed member still gets the budgeted bonus."""
    sign_in(page, server, SUPPORT_KEY)
    open_page(page, "Campaign preview")
    form = page.locator("#segment-form")
    form.get_by_label("Sample size").fill("150")
    form.get_by_label("Channel").select_option(CHANNEL)
    click_and_load(page, form.get_by_role("button", name="Preview segment"))
    page.wait_for_selector("#result")
    counts = dict(page.locator("#offer-counts tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.offerId, Number(r.querySelector('td.count').textContent)])"))
    assert counts[FLASH] == FLASH_BUDGET
    assert page.locator(f'#budget-projection tr[data-budget="{FLASH}"] td.add-count').inner_text() == str(FLASH_BUDGET)
    assert page.locator("svg.chart").count() == 2  # offers and budget burn
    page.screenshot(path=str(artifacts / "preview.png"), full_page=True)

    audience = tmp_path / "audience.csv"
    audience.write_text(f"member_id\n{MEMBER}\nM00000004\nM00000007\n")
    upload = page.locator("#upload-form")
    upload.get_by_label("File (CSV with a member_id column, or one id per line)").set_input_files(str(audience))
    upload.get_by_label("Channel").select_option(CHANNEL)
    click_and_load(page, upload.get_by_role("button", name="Preview upload"))
    page.wait_for_selector("#result")
    assert "Preview: audience.csv" in page.locator("#result-h").inner_text()
    shown = page.locator("#sample tbody tr").evaluate_all("rows => rows.map(r => r.dataset.memberId)")
    assert shown == [MEMBER, "M00000004", "M00000007"]
    answer = requests.post(f"{server}/v1/decisions", json={"member_id": MEMBER, "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY}, timeout=30).json()
    if not answer["explored"]:  # nothing was reserved by either preview: the budget is whole
        assert FLASH in [o["offer_id"] for o in answer["offers"]]
    assert page.errors == [], page.errors
