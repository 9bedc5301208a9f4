"""The campaign preview page: pick a segment or upload an audience, see what the live service
would decide for it now, issuing nothing (:mod:`runtime.decisions.preview`).

* ``GET /console/preview`` shows the form; with ``audience=segment`` it previews a sample of a
  segment of the data directory's members (or of all members). A GET, so a preview is a link
  a marketer can share; it changes nothing.
* ``POST /console/preview`` previews an uploaded file or pasted ids (a form with CSRF, like
  every POST of the console). Every id is checked; the first bad ones are named.

Support and admin sessions may both preview: nothing is written.
"""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request
from werkzeug.datastructures import MultiDict

from models.data_contract import CHANNELS
from models.errors import OffersError
from runtime.decisions.audience import AudienceError
from runtime.decisions.outcome_json import outcome_json
from runtime.decisions.preview import (
    ALL_MEMBERS,
    MAX_AUDIENCE,
    Preview,
    preview,
    sample_audience,
    segments,
    uploaded_audience,
)
from runtime.errors import NotReady
from service.console.blueprint import bp
from service.console.charts import bar_chart
from service.console.session import signed_in
from service.state import current_decisions
from service.validation import describe, is_valid

DEFAULT_SIZE = 500
#: Largest upload read (bytes): generous for MAX_AUDIENCE ids, small enough for one request.
MAX_UPLOAD = 1 << 20
_SHOWN_BAD_IDS = 5


class FormError(OffersError, ValueError):
    """A field of the preview form is invalid; the message names it."""


def _int_field(form: MultiDict[str, str], name: str, default: int | None, lo: int, hi: int) -> int | None:
    """An optional whole-number field within [lo, hi], or :class:`FormError` naming it."""
    text = form.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise FormError(f"{name}: {text!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise FormError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def _options(form: MultiDict[str, str]) -> dict[str, Any]:
    """Channel, slate size, seed and sample size from the form, checked."""
    channel = form.get("channel", "app")
    if channel not in CHANNELS:
        raise FormError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    return {"channel": channel, "n": _int_field(form, "n", None, 1, 50),
            "seed": _int_field(form, "seed", 0, 0, 2**31 - 1),
            "size": _int_field(form, "size", DEFAULT_SIZE, 1, MAX_AUDIENCE)}


def _checked_ids(ids: list[str]) -> list[str]:
    """``ids`` when each is a valid member id, else :class:`FormError` naming the first bad ones."""
    bad = [m for m in ids if not is_valid("member_id", m)]
    if bad:
        shown = ", ".join(repr(m[:40]) for m in bad[:_SHOWN_BAD_IDS])
        raise FormError(f"{len(bad)} of the {len(ids)} ids are not member ids ({describe('member_id')}): {shown}"
                        + (" ..." if len(bad) > _SHOWN_BAD_IDS else ""))
    return ids


def _upload() -> tuple[list[str], str]:
    """The posted audience (a file, else the pasted text) and a label for it."""
    upload = request.files.get("members_file")
    if upload is not None and upload.filename:
        raw = upload.stream.read(MAX_UPLOAD + 1)
        label = upload.filename
    else:
        raw = request.form.get("members_text", "").encode("utf-8")
        label = "the pasted ids"
    if len(raw) > MAX_UPLOAD:
        raise FormError(f"{label} is larger than {MAX_UPLOAD // 1024} KiB")
    if not raw.strip():
        raise FormError("choose a file of member ids or paste some ids")
    return _checked_ids(uploaded_audience(raw, label)), label


def _view(result: Preview, program: Any) -> dict[str, Any]:
    """What the template shows: offer counts and chart, budget projections and chart, sample rows."""
    side = result.result
    minor = program.currency.minor_units
    offers = [{"offer_id": o, "title": side.titles.get(o, ""), "count": c,
               "share": c / side.members if side.members else 0.0} for o, c in side.issued.most_common()]
    offer_chart = bar_chart("Members who would get each offer",
                            [(o, float(c), f"{c:,}") for o, c in side.issued.most_common()]) if offers else None
    budgets = [{"key": p.burn.key, "period": p.burn.period, "pacing": p.burn.pacing, "unknown": p.unknown,
                "used_count": p.used_count, "add_count": p.burn.count, "after_count": p.after_count,
                "limit_count": p.burn.limit_count, "used_money": p.used_minor / minor,
                "add_money": p.burn.minor / minor, "after_money": p.after_minor / minor,
                "limit_money": None if p.burn.limit_minor is None else p.burn.limit_minor / minor,
                "share": p.share_after()} for p in result.budgets]
    budget_chart = bar_chart("Share of each budget's limit reserved once this audience is sent",
                             [(b["key"], b["share"], f"{b['share']:.0%}") for b in budgets
                              if b["share"] is not None and not b["unknown"]], maximum=1.0) if budgets else None
    sample = [outcome_json(program, o, include_excluded=False) for o in result.sample]
    return {"offers": offers, "offer_chart": offer_chart, "budgets": budgets, "budget_chart": budget_chart,
            "sample": sample, "reasons": side.excluded.most_common(), "tiers": sorted(result.tiers.items()),
            "side": side, "model_version": result.model_version, "unknown_members": result.unknown_members}


@bp.route("/preview", methods=["GET", "POST"])
@signed_in()
def campaign_preview() -> tuple[str, int] | str:
    """The form; with an audience (a segment in the query, or a posted upload), its preview."""
    decider = current_decisions().require()
    setup = decider.setup
    form = request.form if request.method == "POST" else request.args
    known = segments(setup.data_dir) if setup.data_dir is not None else []
    page: dict[str, Any] = {"session": g.console, "channels": CHANNELS, "segments": known, "form": form,
                            "all_members": ALL_MEMBERS, "max_audience": MAX_AUDIENCE, "default_size": DEFAULT_SIZE,
                            "moment": setup.moment().utc}
    wants = request.method == "POST" or form.get("audience") == "segment"
    if not wants:
        return render_template("console/preview.html", **page)
    try:
        opts = _options(form)
        if request.method == "POST":
            ids, label = _upload()
            audience = {"label": label, "size": len(ids), "pool": len(ids)}
        else:
            if setup.data_dir is None:
                raise FormError("the service has no data directory (OFFERS_DATA) to draw a segment from; upload ids")
            segment = form.get("segment", ALL_MEMBERS)
            ids, pool = sample_audience(setup.data_dir, segment, opts["size"], opts["seed"])
            audience = {"label": f"segment {segment}" if segment else "all members", "size": len(ids), "pool": pool}
        result = preview(decider, ids, opts["channel"], opts["n"], opts["seed"])
    except (FormError, AudienceError) as exc:
        return render_template("console/preview.html", **page, error=str(exc)), 422
    except NotReady as exc:
        return render_template("console/preview.html", **page, error=f"{exc}; retry shortly"), 503
    return render_template("console/preview.html", **page, audience=audience, opts=opts,
                           **_view(result, setup.program))
