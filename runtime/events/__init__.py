"""Feedback events: what the runtime reads of one (:mod:`.event`), the durable append-only
log (:mod:`.log`), ingestion into the log and the store (:mod:`.ingest`), and the history
records that make an event visible to the next decision (:mod:`.history_records`)."""
