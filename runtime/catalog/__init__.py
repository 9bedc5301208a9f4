"""The live catalog: offers created, changed, paused and retired while the service runs.

* :mod:`.changelog` - the durable, append-only change log (one NDJSON file, writers locked);
* :mod:`.live` - the start-up catalog with the log applied: the catalog decisions use;
* :mod:`.edits` - one request as one validated change (create, replace, update, pause, retire);
* :mod:`.follower` - each worker's view, re-read when the log changes (no restart).

docs/catalog.md describes the API, the store and the guarantees.
"""
