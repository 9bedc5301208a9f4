"""The decision runtime: everything that decides, reads and writes member state, issues and
redeems coupons, ingests events and scores audiences. No Flask: the web service
(``service``), the CLI's offline jobs (``offers batch``, ``offers materialize``) and, later,
distributed workers all import it; it never imports them.

* :mod:`runtime.decisions` - the decision setup, the one decision pipeline, models, audiences;
* :mod:`runtime.coupons` - coupon codes, issuance with reservations, redemption claims;
* :mod:`runtime.events` - the durable event log, ingestion and history records;
* :mod:`runtime.stores` - the online store interfaces, Redis and in-process;
* :mod:`runtime.settings` - every ``OFFERS_*`` setting; :mod:`runtime.metrics` - Prometheus metrics.

Dependency direction: ``service`` and ``offers_cli`` -> ``runtime`` -> ``models``.
"""
