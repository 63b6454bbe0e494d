"""Actors of the `analytics` queue: recompute an hour on request (backfills, late corrections)."""

from __future__ import annotations

from herald.analytics.rollup import rollup, truncate_hour
from herald.contracts import ROLLUP_HOUR, RollupHour
from herald.queue import actor


@actor(ROLLUP_HOUR, max_retries=5)
def rollup_hour(payload: RollupHour) -> None:
    """Replace one hour's analytics rows; safe to run twice (delete-and-rewrite in one transaction)."""
    rollup(hours=[truncate_hour(payload.hour)])
