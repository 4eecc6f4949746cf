"""Ingestion of the raw logs (data-layer §3.1-3.3): ``validation`` decides each record of a
batch (``fields`` holds the per-field rules it applies), ``storage`` writes the valid ones
idempotently. Callers import from the module they need; this package re-exports nothing."""
