"""Feedback events: the request schema, ingestion into the online state, the durable log
and the ``POST /v1/events`` endpoint."""
