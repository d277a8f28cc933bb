"""Scheduled events fire exactly once across processes; extensions, periodic reviews and the
scheduler lease persist as the domain expects, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from gates import operations, usecases
from gates.lifecycle import DecisionKind
from gates.ports import InitiativeFilter
from gates.schedule import due_events
from storage import Database
from storage.scheduling import SchedulerLease, fired_keys
from storage.tables import initiatives, outbox
from tests.gates.ops_pipeline import OPS, OWNER, SPONSOR, ops_pipeline
from tests.storage.scenarios import run_processes
from tests.storage.schedule_racers import (
    DUE_AT,
    START,
    fire_in_own_database,
    tick_with_lease_in_own_database,
)

PIPELINE = ops_pipeline()


def register(database: Database, name: str) -> str:
    return usecases.register(
        PIPELINE,
        database.uow(),
        name=name,
        owner_id=OWNER,
        answers={"problem": "stock-outs"},
        actor_id=OWNER,
        now=START,
        sponsor_id=SPONSOR,
    ).ref


def move_to_operations(database: Database, ref: str) -> None:
    with database.session() as session:
        session.execute(
            update(initiatives)
            .where(initiatives.c.ref == ref)
            .values(stage="operations", stage_entered_at=START)
        )
        session.commit()


def seed(database: Database) -> list[str]:
    """Stalled initiatives, open reviews and systems due for review; returns the due keys."""
    for n in range(6):
        register(database, f"Stalled {n}")
    for n in range(4):
        ref = register(database, f"Reviewed {n}")
        usecases.submit(PIPELINE, database.uow(), ref, OWNER, START)
    for n in range(3):
        move_to_operations(database, register(database, f"System {n}"))
    with database.uow(read_only=True) as uow:
        found = list(uow.initiatives.list(InitiativeFilter(limit=1000)))
        reviews = list(uow.reviews.pending_for(sorted(PIPELINE.model.roles)))
        latest = uow.operations.latest_reviews()
    return [e.key for e in due_events(PIPELINE, found, reviews, latest, DUE_AT)]


def outbox_keys(database: Database) -> Counter[str]:
    with database.session(read_only=True) as session:
        return Counter(
            k for (k,) in session.execute(select(outbox.c.dedupe_key).where(outbox.c.kind.like("schedule.%")))
        )


def test_two_scheduler_processes_fire_each_due_event_exactly_once(database: Database) -> None:
    expected = seed(database)
    kinds = {key.split(":")[0] for key in expected}
    assert kinds == {"stalled", "remind", "escalate", "opsreview", "opsoverdue"}
    url = database.url.render_as_string(hide_password=False)
    first, second = run_processes(fire_in_own_database, [(url, 3), (url, 3)])
    assert sorted(first + second) == sorted(expected), "a key fired twice or not at all"
    assert outbox_keys(database) == Counter(expected)
    assert fired_keys(database) == sorted(expected)


def test_with_the_lease_only_one_process_does_the_work(database: Database) -> None:
    expected = seed(database)
    url = database.url.render_as_string(hide_password=False)
    results = run_processes(tick_with_lease_in_own_database, [(url, "replica-a"), (url, "replica-b")])
    assert sorted(len(r) for r in results) == [0, len(expected)]
    assert outbox_keys(database) == Counter(expected)


def test_the_lease_is_renewed_by_its_holder_and_taken_over_when_it_runs_out(database: Database) -> None:
    lease = SchedulerLease(database)
    ttl = timedelta(minutes=3)
    assert lease.acquire("a", START, ttl)
    assert not lease.acquire("b", START + timedelta(minutes=1), ttl)
    assert lease.acquire("a", START + timedelta(minutes=2), ttl)
    assert not lease.acquire("b", START + timedelta(minutes=4), ttl)
    assert lease.acquire("b", START + timedelta(minutes=5), ttl)
    assert lease.holder() == ("b", START + timedelta(minutes=8))
    lease.release("b", START + timedelta(minutes=6))
    assert lease.acquire("a", START + timedelta(minutes=6), ttl)


def test_an_extension_is_stored_and_honoured_by_the_stalled_listing(database: Database) -> None:
    ref = register(database, "Forecast")
    later = START + timedelta(days=40)
    assert [i.ref for i in usecases.list_initiatives(PIPELINE, database.uow(), later, stalled=True)] == [ref]
    operations.extend_time_box(
        PIPELINE, database.uow(), ref, (later + timedelta(days=10)).date(), "vendor late", OWNER, later
    )
    assert usecases.list_initiatives(PIPELINE, database.uow(), later, stalled=True) == []
    much_later = later + timedelta(days=11, hours=3)  # the picked day has ended everywhere (UTC-12)
    assert [i.ref for i in usecases.list_initiatives(PIPELINE, database.uow(), much_later, stalled=True)] == [
        ref
    ]
    with database.uow(read_only=True) as uow:
        [record] = uow.operations.extensions(ref)
        stored = uow.initiatives.get(ref)
    assert record.reason == "vendor late" and record.previous_end == START + timedelta(days=30)
    assert stored.extended_until == record.new_end


def test_advancing_clears_the_stored_extension(database: Database) -> None:
    ref = register(database, "Forecast")
    operations.extend_time_box(
        PIPELINE, database.uow(), ref, (START + timedelta(days=60)).date(), "why", OWNER, START
    )
    review = usecases.submit(PIPELINE, database.uow(), ref, OWNER, START)
    assert review.id is not None
    usecases.decide(PIPELINE, database.uow(), review.id, SPONSOR, DecisionKind.APPROVE, None, START)
    usecases.decide(PIPELINE, database.uow(), review.id, "URISK", DecisionKind.APPROVE, None, START)
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).extended_until is None


def test_periodic_reviews_are_stored_and_the_latest_one_counts(database: Database) -> None:
    ref = register(database, "System")
    move_to_operations(database, ref)
    other = register(database, "Other system")
    move_to_operations(database, other)
    answers = {"value": "yes", "incidents": "0"}
    operations.record_operations_review(
        PIPELINE, database.uow(), ref, answers, OPS, START + timedelta(days=90)
    )
    operations.record_operations_review(
        PIPELINE, database.uow(), ref, answers, OWNER, START + timedelta(days=180)
    )
    with database.uow(read_only=True) as uow:
        history = uow.operations.reviews(ref)
        latest = uow.operations.latest_reviews()
    assert [r.reviewer_id for r in history] == [OPS, OWNER]
    assert set(latest) == {ref}
    assert latest[ref].next_due == START + timedelta(days=270)
    assert latest[ref].answers == {"value": "yes", "incidents": 0}


@pytest.mark.parametrize("rounds", [2])
def test_firing_again_in_one_process_adds_nothing(database: Database, rounds: int) -> None:
    expected = seed(database)
    for _ in range(rounds):
        operations.fire_due_events(PIPELINE, database.uow(), DUE_AT)
    with database.session(read_only=True) as session:
        assert session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.kind.like("schedule.%"))
        ).scalar() == len(expected)


def test_a_box_extended_to_the_day_it_ran_out_is_noticed_again_once_that_day_is_over(
    database: Database,
) -> None:
    ref = register(database, "Forecast")
    ends = START + timedelta(days=30)  # 31 January, 09:00
    # What an older Shepherd left behind: that end noticed at 09:05 under the day's key.
    with database.uow() as uow:
        assert uow.fired.first_time(
            f"stalled:{ref}:idea:2026-01-31", "schedule.stalled", ends + timedelta(minutes=5)
        )
        uow.commit()
    # After the upgrade, that end is not told again...
    assert operations.fire_due_events(PIPELINE, database.uow(), ends + timedelta(minutes=10)) == []
    assert f"stalled:{ref}:idea:20260131T090000Z" in fired_keys(database)
    # ...but the end of the same day the owner then asks for is, once.
    operations.extend_time_box(
        PIPELINE, database.uow(), ref, ends.date(), "demo at 5pm", OWNER, ends + timedelta(minutes=10)
    )
    night = datetime(2026, 2, 1, 12, 5, tzinfo=UTC)  # 31 January has ended everywhere
    evening = f"stalled:{ref}:idea:20260201T115959Z"
    assert [e.key for e in operations.fire_due_events(PIPELINE, database.uow(), night)] == [evening]
    assert operations.fire_due_events(PIPELINE, database.uow(), night + timedelta(hours=1)) == []
    assert outbox_keys(database) == Counter([evening])
