"""Decisions without Flask: from a member id to a committed outcome, for one member or many.

Modules, each owning one thing:

* :mod:`.clock` - the decision time (``OFFERS_CLOCK``: wall, data, or fixed);
* :mod:`.setup` - :class:`~.setup.DecisionSetup`: program, offer and feature catalogs,
  the clock, candidate offers at a moment;
* :mod:`.pipeline` - :class:`~.pipeline.DecisionPipeline`: the one decision path
  (``decide_many``: read -> features -> predict -> decide -> commit);
* :mod:`.outcome` - the request and outcome types; :mod:`.outcome_json` renders outcomes;
* :mod:`.limits` - what a decision reserves (caps, budgets, coupons) and what it may return
  when the store cannot be trusted;
* :mod:`.members` - a member's context and cap counters from their history records;
* :mod:`.scoring` - features and propensities for members x candidates;
* :mod:`.model_holder` - the serving model: load after fork, warm, hot-swap, converge;
  ``FixedModel`` pins one version for offline jobs;
* :mod:`.routing` - champion/challenger: which model decides for which member;
* :mod:`.catalog_change` - reading histories written under an earlier catalog;
* :mod:`.materialize` - data directory -> online store, and score-cache warming;
* :mod:`.audience` - ``offers batch``: an audience's decisions to Parquet or CSV.

docs/serving.md explains the whole flow.
"""
