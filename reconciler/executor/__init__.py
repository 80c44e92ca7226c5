"""Executor: observes clouds, applies Plans (DAG waves, rate limits, retries, journal)."""
