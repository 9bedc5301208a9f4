"""The member x campaign model's coupon-habit features and its tree/linear blend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features import History
from training.campaign_model import DAY, CouponLines, _blend, coupon_habits

T0 = 1_500_000_000  # the data's first purchase line


def _history(lines: list[tuple[int, int, int, float]]) -> History:
    """Two members; ``lines`` are (member, seconds, basket, coupon discount)."""
    member, when, basket, coupon = (np.array(c) for c in zip(*lines, strict=True))
    n = len(lines)
    empty_i32, empty_i64 = np.array([], dtype=np.int32), np.array([], dtype=np.int64)
    return History(member_ids=np.array(["a", "b"], dtype=object), joined_at=np.full(2, np.iinfo(np.int64).min),
                   line_member=member.astype(np.int32), line_time=when.astype(np.int64),
                   line_basket=basket.astype(np.int64), line_product=np.zeros(n, dtype=np.int32),
                   line_amount=np.full(n, 100.0), line_coupon=coupon.astype(np.float64),
                   line_discount=coupon.astype(np.float64), exp_member=empty_i32, exp_time=empty_i64,
                   exp_offer=empty_i32, red_member=empty_i32, red_time=empty_i64, red_offer=empty_i32)


def test_coupon_habits_are_point_in_time_and_count_baskets_once() -> None:
    as_of = T0 + 200 * DAY
    history = _history([
        (0, T0, 1, 0.0),                        # first line of the data, no coupon
        (0, as_of - 100 * DAY, 2, 50.0),        # coupon basket outside 90 days, inside 365
        (0, as_of - 10 * DAY, 3, 20.0),         # one basket with two coupon lines
        (0, as_of - 10 * DAY, 3, 30.0),
        (0, as_of - 10 * DAY, 3, 0.0),
        (0, as_of, 4, 99.0),                    # at as_of: not before it, never read
        (0, as_of + DAY, 5, 99.0),              # after as_of
        (1, as_of - 5 * DAY, 6, 10.0),          # another member's coupon
    ])
    frame = pd.DataFrame({"m": [0, 1], "as_of": [as_of, as_of], "tenure_days": [200.0, 3.0],
                          "baskets_365d": [3.0, 1.0], "product_spend__sum": [600.0, 0.0],
                          "category_spend__sum": [900.0, 70.0]})
    out = coupon_habits(frame, CouponLines.of_history(history))
    # member a: two coupon baskets of three in 365 days; two coupon lines in 90 days over 90 observed days
    assert out.loc[0, "coupon_basket_share_365d"] == 2 / (3 + 1)
    assert out.loc[0, "coupon_lines_90d_rate"] == 2 / 90 * 30
    assert out.loc[0, "product_spend__sum_rate"] == 600 / 200 * 30
    # member b: observed history is its tenure, floored at 7 days
    assert out.loc[1, "coupon_basket_share_365d"] == 1 / 2
    assert out.loc[1, "coupon_lines_90d_rate"] == 1 / 7 * 30
    assert out.loc[1, "category_spend__sum_rate"] == 70 / 7 * 30


def test_coupon_habits_use_only_the_history_before_the_data_start_cap() -> None:
    history = _history([(0, T0, 1, 10.0), (1, T0 + 20 * DAY, 2, 10.0)])
    as_of = T0 + 14 * DAY  # two weeks of data: a long tenure is capped at 14 observed days
    frame = pd.DataFrame({"m": [0, 1], "as_of": [as_of, as_of], "tenure_days": [400.0, np.nan],
                          "baskets_365d": [1.0, 0.0], "product_spend__sum": [140.0, 0.0],
                          "category_spend__sum": [0.0, 0.0]})
    out = coupon_habits(frame, CouponLines.of_history(history))
    assert out.loc[0, "coupon_lines_90d_rate"] == 1 / 14 * 30
    assert out.loc[0, "product_spend__sum_rate"] == 140 / 14 * 30
    assert out.loc[1, "coupon_lines_90d_rate"] == 0.0  # its only coupon line is after as_of


def test_blend_is_the_mean_logit_and_keeps_agreeing_orders() -> None:
    p = np.array([0.01, 0.2, 0.5, 0.9])
    assert np.allclose(_blend(p, p), p)
    assert np.isclose(_blend(np.array([0.2]), np.array([0.8]))[0], 0.5)
    assert np.all(np.diff(_blend(p, p ** 0.5)) > 0)
