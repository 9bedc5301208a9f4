"""History bytes of the online store: a compressed base plus appended tail records, read
back into exactly the History they were written from."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.features.history import History, basket_codes_of
from models.features.online import (
    BASE_MAGIC,
    EXPOSURE,
    LINE,
    NO_TIME,
    RECORD,
    REDEMPTION,
    basket_code,
    compact,
    encode,
    history_from_records,
    member_records,
    records_from_history,
)

COLUMNS = ("line_time", "line_basket", "line_product", "line_amount", "line_coupon", "line_discount",
           "exp_time", "exp_offer", "red_time", "red_offer")


def two_members() -> History:
    """Member 0 with awkward values (fractional money, huge basket hashes, NO_TIME), member 1 plain."""
    rng = np.random.default_rng(3)
    n = 40
    line_member = np.array([0] * 25 + [1] * 15, dtype=np.int32)
    amount = np.round(rng.random(n) * 5000)
    amount[:3] = [2.99, -0.0, 1e9]  # not whole minor units, negative zero, beyond int32 minor units
    return History(
        member_ids=np.array(["a", "b"], dtype=object), joined_at=np.array([0, 0], dtype=np.int64),
        line_member=line_member, line_time=np.sort(rng.integers(1_700_000_000, 1_730_000_000, n)).astype(np.int64),
        line_basket=rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64) // 7 * 7,
        line_product=rng.integers(-1, 90_000, n).astype(np.int32),
        line_amount=amount, line_coupon=np.zeros(n), line_discount=np.round(rng.random(n) * 50),
        exp_member=np.array([0, 0, 1], dtype=np.int32), exp_time=np.array([NO_TIME, 5, 1_700_000_000]),
        exp_offer=np.array([3, 300, 7], dtype=np.int32),
        red_member=np.array([0], dtype=np.int32), red_time=np.array([1_700_000_100]),
        red_offer=np.array([3], dtype=np.int32))


def assert_same(got: History, want: History, member: int) -> None:
    """Every column of ``got`` equals ``want``'s for ``member``, bit for bit (float32-rounded money)."""
    for name in COLUMNS:
        kind = name.split("_")[0]
        expected = getattr(want, name)[getattr(want, f"{kind}_member") == member]
        if name.startswith("line_") and name[5:] in ("amount", "coupon", "discount"):
            expected = expected.astype(np.float32).astype(np.float64)  # what a record always held
        value = getattr(got, name)
        assert value.dtype == expected.dtype or name.endswith(("product", "offer")), name
        assert value.astype(expected.dtype).tobytes() == expected.tobytes(), name


def test_a_base_reads_back_exactly_and_is_small() -> None:
    hist = two_members()
    blobs = member_records(hist)
    for m in (0, 1):
        assert blobs[m] == records_from_history(hist, m) and blobs[m][0] == BASE_MAGIC
        assert_same(history_from_records(str(m), blobs[m]), hist, m)
    assert len(blobs[1]) < 15 * 36  # even with a random 64-bit basket hash per line


def test_events_append_tail_records_that_read_after_the_base() -> None:
    hist = two_members()
    base = records_from_history(hist, 1)
    line = encode(LINE, np.array([1_800_000_000]), np.array([4]), np.array([12.5]), np.array([1.0]),
                  np.array([2.0]), np.array([-5]))
    seen = encode(EXPOSURE, np.array([1_800_000_001]), np.array([9]))
    assert len(line) == len(seen) == RECORD.itemsize
    got = history_from_records("b", base + line + seen)
    assert got.line_time[-1] == 1_800_000_000 and got.line_basket[-1] == -5 and got.line_amount[-1] == 12.5
    assert got.exp_offer.tolist() == [7, 9] and len(got.line_time) == 16
    alone = history_from_records("new", line + seen)  # a history that events started (no base)
    assert alone.line_product.tolist() == [4] and alone.exp_time.tolist() == [1_800_000_001]
    folded = compact("b", base + line + seen)
    assert folded[0] == BASE_MAGIC and len(folded) < len(base) + len(line) + len(seen)
    again = history_from_records("b", folded)
    for name in COLUMNS:
        assert getattr(again, name).tobytes() == getattr(got, name).tobytes(), name


def test_no_history_is_empty_bytes() -> None:
    hist = two_members()
    empty = History(member_ids=np.array(["z"], dtype=object), joined_at=np.array([0]),
                    **{f"{k}_member": np.zeros(0, dtype=np.int32) for k in ("line", "exp", "red")},
                    **{c: np.zeros(0, dtype=getattr(hist, c).dtype) for c in COLUMNS})
    assert records_from_history(empty, 0) == b"" and member_records(empty) == [b""]
    assert len(history_from_records("z", b"").line_time) == 0 and len(history_from_records("z", None).exp_time) == 0


@pytest.mark.parametrize("blob", [b"\x07" * 33, b"x" * 36, bytes([BASE_MAGIC, 9, 0, 0, 0]) + b"notzlib!!",
                                  encode(REDEMPTION, np.array([1]), np.array([1]))[:-1]])
def test_bytes_of_another_layout_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        history_from_records("m", blob)


@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=20))
def test_an_online_basket_code_is_the_offline_one(basket_ids: list[str]) -> None:
    """Events hash one basket id at a time; training hashes whole columns (with repeats)."""
    bulk = basket_codes_of(np.array(basket_ids + basket_ids, dtype=object))
    assert [basket_code(b) for b in basket_ids + basket_ids] == bulk.tolist()
