"""Coupons: codes (:mod:`.codes`), issuing them with a decision's reservations
(:mod:`.issuance`), and claiming them when redeemed (:mod:`.redemption`)."""
