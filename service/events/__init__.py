"""The events endpoint: ``POST /v1/events`` (:mod:`.routes`) and its request bodies
(:mod:`.bodies`); ingestion and the durable log are :mod:`runtime.events`."""
