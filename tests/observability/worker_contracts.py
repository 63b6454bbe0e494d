"""Contracts of the observability test actors: importing this creates no broker."""

from __future__ import annotations

from herald.contracts import Contract, Payload, Queue


class Work(Payload):
    n: int
    pause_seconds: float = 0.0


TRACKED = Contract("observability_test.tracked", Queue.ANALYTICS, Work)
EXPLODES = Contract("observability_test.explodes", Queue.ANALYTICS, Work)

# Which process handled each message, so tests can check the work was really shared.
PIDS_KEY = "observability_test:pids"
