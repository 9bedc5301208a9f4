"""Real-time and batch decisions: the service's side of the decision core.

Modules, each owning one thing:

* :mod:`.clock` - the decision time (``OFFERS_CLOCK``: wall, data, or fixed);
* :mod:`.engine` - program, offer and feature catalogs, candidate offers at a moment;
* :mod:`.members` - a member's context and cap counters from their history records;
* :mod:`.scoring` - features and propensities for members x candidates;
* :mod:`.modelholder` - the serving model: load after fork, warm, hot-swap, converge;
* :mod:`.runner` - one decision (or a chunk) from request to committed outcome;
* :mod:`.records` - feedback events as history records;
* :mod:`.materialize` - data directory -> online store, and score-cache warming;
* :mod:`.audience` - ``offers batch``: an audience's decisions to Parquet or CSV;
* :mod:`.schema`, :mod:`.render`, :mod:`.routes`, :mod:`.batch`, :mod:`.model_routes`,
  :mod:`.openapi_doc` - the HTTP endpoints;
* :mod:`.component` - wiring into the app and background loading.

docs/serving.md explains the whole flow.
"""
