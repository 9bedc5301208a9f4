"""The ``budgets:`` and ``contact_policy:`` sections of a program config.

They live beside :mod:`models.program` (which includes them as :attr:`Program.budgets` and
:attr:`Program.contact_policy`) because they are schemas of their own:

* ``budgets:`` - shared budgets, each drawn on by every offer it selects: a list of offer ids
  (``offers``), a campaign (``campaign``), a funder (``funder``: the supplier's budget, shared
  by every offer it funds) or a kind (``kind``), from the data's catalog and the program's own
  offers alike. Periods and pacing are :mod:`models.budgets`'.
* ``contact_policy:`` - caps across offers per member (``max_offers`` offers, ``max_contacts``
  contacts per ``period``, for one ``channel`` or all) and quiet hours per channel.

**A contact** is one committed decision slate for a member on a channel with at least one
offer in it (the unit a member perceives: one e-mail, one app screen, one receipt); its
**offers** are the offers in that slate. Caps count both within calendar periods (day,
week, month) in the program's time zone. docs/program-config.md documents every key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from models.budgets import Pacing, Period
from models.data_contract import CHANNELS

PosInt = Annotated[int, Field(gt=0)]
Positive = Annotated[float, Field(gt=0.0)]
_ID = r"^[^\s:{}]{1,128}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharedBudget(_Strict):
    """A budget shared by the offers it selects (exactly one of offers, campaign, funder, kind)."""

    id: Annotated[str, Field(pattern=_ID)]
    offers: tuple[str, ...] | None = None
    campaign: str | None = None
    funder: str | None = None
    kind: str | None = None
    count: PosInt | None = None
    money: Positive | None = None
    period: Period = "total"
    pacing: Pacing = "none"

    def selects(self, offer_id: str, campaign_id: str | None, funder: str | None, kind: str) -> bool:
        """Whether an offer with these attributes draws on this budget."""
        if self.offers is not None:
            return offer_id in self.offers
        if self.campaign is not None:
            return campaign_id == self.campaign
        if self.funder is not None:
            return funder == self.funder
        return kind == self.kind


class ContactCap(_Strict):
    """At most ``max_offers`` offers and/or ``max_contacts`` contacts per member per ``period``,
    on ``channel`` (None: every channel together)."""

    channel: str | None = None
    period: Literal["day", "week", "month"]
    max_offers: PosInt | None = None
    max_contacts: PosInt | None = None

    @property
    def name(self) -> str:
        """The cap's name in the member's counters (``all.week``, ``email.day``)."""
        return f"{self.channel or 'all'}.{self.period}"


class QuietHours(_Strict):
    """No offer on ``channel`` (None: any channel) between ``start`` and ``end`` local time;
    ``end`` before ``start`` spans midnight (21:00 to 08:00)."""

    channel: str | None = None
    start: dt.time
    end: dt.time

    def covers(self, channel: str | None, local: pd.Timestamp) -> bool:
        """Whether a decision for ``channel`` at naive local ``local`` falls in these quiet hours."""
        if self.channel is not None and channel != self.channel:
            return False
        t = pd.Timestamp(local).time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class ContactPolicy(_Strict):
    """Caps across offers and quiet hours (module docstring)."""

    caps: tuple[ContactCap, ...] = ()
    quiet_hours: tuple[QuietHours, ...] = ()

    def caps_for(self, channel: str | None) -> tuple[ContactCap, ...]:
        """The caps a decision on ``channel`` counts against: the channel's and the all-channel ones."""
        return tuple(c for c in self.caps if c.channel is None or c.channel == channel)

    def quiet(self, channel: str | None, local: pd.Timestamp) -> bool:
        """Whether ``channel`` is in quiet hours at naive local ``local``."""
        return any(q.covers(channel, local) for q in self.quiet_hours)


def limits_problems(budgets: tuple[SharedBudget, ...], policy: ContactPolicy, offer_kinds: frozenset[str],
                    offer_budget_keys: frozenset[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field checks of ``budgets`` and ``contact_policy``, as (data path, message).

    ``offer_budget_keys`` are the keys of the offers' own budgets (a shared budget's id must
    not reuse one: the two would count into one counter with different limits).
    """
    out: list[tuple[tuple[str | int, ...], str]] = []
    seen: set[str] = set()
    for i, b in enumerate(budgets):
        chosen = [k for k in ("offers", "campaign", "funder", "kind") if getattr(b, k) is not None]
        if len(chosen) != 1:
            out.append((("budgets", i), "needs exactly one of offers, campaign, funder, kind"
                        + (f" (has {', '.join(chosen)})" if chosen else "")))
        if b.kind is not None and b.kind not in offer_kinds:
            out.append((("budgets", i, "kind"), f"unknown offer kind {b.kind!r}"))
        if b.count is None and b.money is None:
            out.append((("budgets", i), "a budget needs count and/or money"))
        if b.pacing != "none" and b.period == "total":
            out.append((("budgets", i, "pacing"), "pacing needs a day, week or month period"))
        if b.id in seen:
            out.append((("budgets", i, "id"), f"duplicate budget id {b.id!r}"))
        if b.id in offer_budget_keys:
            out.append((("budgets", i, "id"), f"{b.id!r} is already an offer's own budget key"))
        seen.add(b.id)
    names: set[str] = set()
    for i, cap in enumerate(policy.caps):
        if cap.channel is not None and cap.channel not in CHANNELS:
            out.append((("contact_policy", "caps", i, "channel"),
                        f"unknown channel {cap.channel!r}; one of {', '.join(CHANNELS)}"))
        if cap.max_offers is None and cap.max_contacts is None:
            out.append((("contact_policy", "caps", i), "a contact cap needs max_offers and/or max_contacts"))
        if cap.name in names:
            out.append((("contact_policy", "caps", i), f"a second cap for channel {cap.channel or 'all'} "
                                                      f"and period {cap.period}: merge them"))
        names.add(cap.name)
    for i, q in enumerate(policy.quiet_hours):
        if q.channel is not None and q.channel not in CHANNELS:
            out.append((("contact_policy", "quiet_hours", i, "channel"),
                        f"unknown channel {q.channel!r}; one of {', '.join(CHANNELS)}"))
        if q.start == q.end:
            out.append((("contact_policy", "quiet_hours", i, "end"), "must differ from start"))
    return out
