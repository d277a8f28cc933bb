"""Scheduler steps raced by the exactly-once tests; module-level so spawned processes import them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gates.operations import fire_due_events
from storage import Database
from storage.scheduling import SchedulerLease
from tests.gates.ops_pipeline import ops_pipeline

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
DUE_AT = START + timedelta(days=105)


def fire_in_own_database(url: str, rounds: int) -> list[str]:
    """Run the scheduler's step ``rounds`` times without the lease; the keys this process fired."""
    database = Database(url)
    try:
        pipeline = ops_pipeline()
        fired: list[str] = []
        for n in range(rounds):
            fired += [e.key for e in fire_due_events(pipeline, database.uow(), DUE_AT + timedelta(seconds=n))]
        return fired
    finally:
        database.dispose()


def tick_with_lease_in_own_database(url: str, holder: str) -> list[str]:
    """One scheduler tick as ``bot.scheduler.Scheduler`` does it: lease first, then the step."""
    database = Database(url)
    try:
        if not SchedulerLease(database).acquire(holder, DUE_AT, timedelta(minutes=3)):
            return []
        return [e.key for e in fire_due_events(ops_pipeline(), database.uow(), DUE_AT)]
    finally:
        database.dispose()
