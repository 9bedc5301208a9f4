"""Campaign preview: what the live service would decide for an audience now, issuing nothing.

A marketer about to send a campaign (an e-mail blast, an app push) wants to see, before it
goes out, who would get which offer and how much of each budget it would burn. The operator
console's preview page (:mod:`service.console.preview_page`) asks this module.

Unlike ``offers simulate`` (:mod:`runtime.decisions.simulation`, two configs on a copy of the
data), the preview runs the service's own :class:`~runtime.decisions.pipeline.DecisionPipeline`
with the live catalog, champion and online store, through
:meth:`~runtime.decisions.pipeline.DecisionPipeline.decide_many` with ``commit_it=False``:

* every member's state (caps, tier, points) is read from the online store as a real decision
  would read it; nothing is written: no cap or budget counter moves, no coupon is issued, no
  score is cached, no decision is logged;
* the whole audience is decided in one call, and the decision core consumes each budget
  member after member from the use the store reports for the current period, so a budget the
  audience would exhaust shows as exhausted (later members get their next offer, or none),
  exactly as the live batch would allocate it;
* what the preview cannot see: contact caps and quiet hours are enforced when a decision is
  committed, so a member the contact policy would stop still shows an offer here.

The audience is a segment of the data directory's members table (``segment`` column), a
sample of all members, or a list of member ids the user uploads. :data:`MAX_AUDIENCE` bounds
it so one page view stays fast.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from models.policy import seed_for
from offerdata.tables import read_table
from runtime.decisions import campaign_limits
from runtime.decisions.audience import AudienceError
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.decisions.pipeline import DecisionPipeline
from runtime.decisions.simulation import BudgetBurn, SideResult, budget_limits, tally
from runtime.stores import StoreUnavailable

#: The most members one preview decides (one page view).
MAX_AUDIENCE = 5000
#: How many members' decisions the preview lists in full.
SAMPLE_ROWS = 25
#: The segment choice meaning "every member, sampled".
ALL_MEMBERS = ""


@dataclass
class BudgetProjection:
    """One budget in its current period: what the store says is reserved, what the audience
    would add, and its limits."""

    burn: BudgetBurn
    used_count: int = 0
    used_minor: int = 0
    #: the store could not be read: the use so far is unknown
    unknown: bool = False

    @property
    def after_count(self) -> int:
        """Issues reserved once the audience is sent."""
        return self.used_count + self.burn.count

    @property
    def after_minor(self) -> int:
        """Money (minor units) reserved once the audience is sent."""
        return self.used_minor + self.burn.minor

    def share_after(self) -> float | None:
        """The largest share of a limit reserved once the audience is sent (None: no limit)."""
        shares = [self.after_count / self.burn.limit_count if self.burn.limit_count else None,
                  self.after_minor / self.burn.limit_minor if self.burn.limit_minor else None]
        return max((s for s in shares if s is not None), default=None)


@dataclass
class Preview:
    """The preview of one audience: the tally (reach, issues per offer, exclusion reasons),
    each budget's projection, tiers reached and the first members' decisions in full."""

    result: SideResult
    budgets: list[BudgetProjection]
    sample: list[Outcome]
    tiers: Counter[str] = field(default_factory=Counter)
    model_version: str | None = None
    unknown_members: int = 0


@lru_cache(maxsize=4)
def _members_frame(data_dir: str, stamp: float) -> pd.DataFrame:
    """The members table's ids and segments (cached while the file is unchanged: ``stamp``)."""
    del stamp  # part of the cache key only
    frame = read_table(data_dir, "members", columns=["member_id", "segment"])
    return pd.DataFrame({"member_id": frame["member_id"].astype(str).to_numpy(),
                         "segment": frame["segment"].astype("string").to_numpy()})


def members_table(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """``member_id`` and ``segment`` of every member of the data directory."""
    path = Path(data_dir)
    stamps = [p.stat().st_mtime for p in path.glob("members.*")] or [0.0]
    return _members_frame(str(path), max(stamps))


def segments(data_dir: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """The segments of the members table with their member counts, largest first."""
    counts = members_table(data_dir)["segment"].dropna().value_counts()
    return [(str(s), int(n)) for s, n in counts.items()]


def sample_audience(data_dir: str | os.PathLike[str], segment: str, size: int, seed: int) -> tuple[list[str], int]:
    """(Up to ``size`` member ids of ``segment`` drawn at random with ``seed``, the segment's
    size). :data:`ALL_MEMBERS` samples every member. The draw is the same for the same seed,
    so a marketer can re-run a preview on the same people after changing an offer."""
    if not 1 <= size <= MAX_AUDIENCE:
        raise AudienceError(f"the sample size must be between 1 and {MAX_AUDIENCE} (got {size})")
    table = members_table(data_dir)
    pool = table if segment == ALL_MEMBERS else table[table["segment"] == segment]
    if pool.empty:
        known = ", ".join(s for s, _ in segments(data_dir)) or "none"
        raise AudienceError(f"no member is in segment {segment!r} (segments: {known})")
    ids = pool["member_id"].to_numpy()
    if len(ids) > size:
        pick = np.random.default_rng(seed).choice(len(ids), size=size, replace=False)
        ids = ids[np.sort(pick)]
    return [str(m) for m in ids], len(pool)


def uploaded_audience(raw: bytes, filename: str = "") -> list[str]:
    """Member ids from an uploaded file or pasted text: a CSV with a ``member_id`` column, or
    one id per line (commas and whitespace also separate ids). Duplicates keep their first
    place. Raises :class:`AudienceError` for an unreadable, empty or too large audience."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AudienceError(f"{filename or 'the upload'} is not UTF-8 text (byte {exc.start}); "
                            "upload a CSV with a member_id column or one member id per line") from exc
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if "member_id" in [c.strip().strip('"') for c in first.split(",")]:
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str)
        except (ValueError, pd.errors.ParserError) as exc:
            raise AudienceError(f"{filename or 'the upload'} is not a readable CSV: {exc}") from exc
        ids = [m.strip() for m in frame["member_id"].dropna()]
    else:
        ids = text.replace(",", " ").split()
    ids = list(dict.fromkeys(m for m in ids if m))
    if not ids:
        raise AudienceError(f"{filename or 'the upload'} names no member")
    if len(ids) > MAX_AUDIENCE:
        raise AudienceError(f"{filename or 'the upload'} names {len(ids):,} members; a preview takes at most "
                            f"{MAX_AUDIENCE:,} (use offers batch or offers simulate for a whole audience)")
    return ids


def preview(pipeline: DecisionPipeline, member_ids: Sequence[str], channel: str, n: int | None = None,
            seed: int = 0) -> Preview:
    """Decide for ``member_ids`` now with the live pipeline, writing nothing (module docstring).

    Seeds are derived from ``seed`` and each member id, so the same audience and seed give the
    same exploration draws. The budget use so far is read from the store once (one round
    trip); when it cannot be read, the projections say so instead of showing zero.
    """
    if not member_ids:
        raise AudienceError("the audience is empty")
    if len(member_ids) > MAX_AUDIENCE:
        raise AudienceError(f"a preview takes at most {MAX_AUDIENCE:,} members (got {len(member_ids):,})")
    setup = pipeline.setup
    when = setup.clock.now()
    req = DecisionRequest(member_id="", channel=channel, n=n, placement="console preview", as_of=None,
                          source="console_preview")
    ids = list(member_ids)
    outcomes = pipeline.decide_many(ids, req, [f"preview-{i}" for i in range(len(ids))],
                                    [seed_for(seed, m) for m in ids], commit_it=False)
    local = setup.local(when)
    side = SideResult("preview", "live", budgets=budget_limits(setup.catalog, local))
    tally(side, setup.catalog, outcomes)
    tiers: Counter[str] = Counter(o.member.tier.tier if o.member.tier is not None else "(none)" for o in outcomes)
    unknown = sum(not o.member.known_history for o in outcomes)
    version = next((o.model_version for o in outcomes if o.model_version), None)
    return Preview(side, _projections(pipeline, side, local), outcomes[:SAMPLE_ROWS], tiers, version, unknown)


def _projections(pipeline: DecisionPipeline, side: SideResult, local: pd.Timestamp) -> list[BudgetProjection]:
    """Each budget's projection: the store's use in the current period plus the audience's burn."""
    refs = campaign_limits.budget_refs(pipeline.setup.catalog, local)
    out = [BudgetProjection(side.budgets[rule.key]) for rule in pipeline.setup.catalog.budget_rules]
    try:
        usage = pipeline.store.budget_usage(refs)
    except StoreUnavailable:  # the use so far is unknown; the preview still shows the audience's burn
        for p in out:
            p.unknown = True
        return out
    by_key = {p.burn.key: p for p in out}
    for (key, _), used in usage.items():
        by_key[key].used_count, by_key[key].used_minor = used.count, used.minor
    return out
