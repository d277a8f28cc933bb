"""The inbox: requests are durable before Slack is answered (group commit), and the processor
applies each one exactly once, retrying failures with backoff and reclaiming abandoned claims.

Every test runs on SQLite and on PostgreSQL (the ``database`` fixture)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from storage import Database, DatabaseUnavailable
from storage.inbox import (
    InboxItem,
    InboxProcessor,
    InboxWriter,
    UnitOfWorkFactory,
    inbox_counts,
)
from storage.leasing import release_claims_of
from storage.models import InboxRow
from storage.tables import inbox, outbox
from tests.storage.scenarios import START, FakeClock, run_threads


class Died(BaseException):
    """What a worker process being killed looks like from inside: not an ``Exception``, so
    nothing in the processor catches it and the claim is left behind."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def writer(database: Database, clock: FakeClock) -> Iterator[InboxWriter]:
    writer = InboxWriter(database, clock, timeout=10)
    yield writer
    writer.close()


def rows(database: Database) -> list[dict[str, Any]]:
    with database.session(read_only=True) as session:
        return [dict(r) for r in session.execute(select(inbox).order_by(inbox.c.id)).mappings()]


def effects(database: Database) -> list[int]:
    """The item ids the handlers' committed effects name, in the order they were written."""
    with database.session(read_only=True) as session:
        found = session.execute(
            select(outbox.c.payload).where(outbox.c.kind == "effect").order_by(outbox.c.id)
        )
        return [payload["item"] for (payload,) in found]


def write_effect(item: InboxItem, uows: UnitOfWorkFactory) -> None:
    """A handler's effect: one outbox row naming the item, committed through the factory."""
    with uows() as uow:
        uow.outbox.put("effect", {"item": item.id}, START)
        uow.commit()


class Handler:
    """A single-item handler that records the ids it was given and fails while told to."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls: list[int] = []
        self.fail_with = fail_with

    def __call__(self, item: InboxItem, uows: UnitOfWorkFactory) -> None:
        self.calls.append(item.id)
        if self.fail_with is not None:
            raise self.fail_with
        write_effect(item, uows)


def accept_all(database: Database, writer: InboxWriter, kind: str, n: int) -> list[int]:
    """Accept ``n`` requests of ``kind``; returns their row ids in arrival order."""
    for i in range(n):
        writer.accept(kind, {"n": i})
    return [r["id"] for r in rows(database)]


# -- accepting -----------------------------------------------------------------------------------


def test_concurrent_accepts_share_commits_and_store_exactly_what_was_sent(
    database: Database, writer: InboxWriter
) -> None:
    sent = [(f"kind-{i % 3}", {"n": i, "user": f"U{i:04d}", "nested": {"list": [i, "x"]}}) for i in range(40)]
    results = run_threads(writer.accept, sent)
    assert results == [None] * 40, [r for r in results if r is not None]
    stored = rows(database)
    assert len(stored) == 40
    by_n = {r["payload"]["n"]: r for r in stored}
    for kind, payload in sent:
        row = by_n[payload["n"]]
        assert (row["kind"], row["payload"], row["status"], row["attempts"]) == (kind, payload, "pending", 0)
        assert row["received_at"] == START
    # 40 threads released together queue while the first commit is in flight: far fewer commits.
    assert writer.accepted == 40
    assert writer.commits < 40


def test_accept_reports_a_missing_table_as_unavailable_and_recovers(
    database: Database, writer: InboxWriter
) -> None:
    writer.accept("decision", {"n": 0})
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE inbox"))
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as raised:
        writer.accept("decision", {"n": 1})
    # The failure itself is reported, promptly, not the writer's own timeout.
    assert time.monotonic() - started < writer.timeout / 2
    assert "within" not in str(raised.value)
    inbox.create(database.engine)
    writer.accept("decision", {"n": 2})  # the writer thread survived the failure
    assert [r["payload"] for r in rows(database)] == [{"n": 2}]


def test_accept_on_an_unreachable_database_raises_unavailable_promptly() -> None:
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    writer = InboxWriter(database, FakeClock(), timeout=20)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            writer.accept("decision", {"n": 0})
        assert time.monotonic() - started < 10
        # Every waiter hears about the failure, not only the first.
        futures = [writer.submit("decision", {"n": i}) for i in range(5)]
        for future in futures:
            with pytest.raises(DatabaseUnavailable):
                writer.wait(future)
    finally:
        writer.close()
        database.dispose()


# -- applying ------------------------------------------------------------------------------------


def test_each_item_is_applied_exactly_once(database: Database, writer: InboxWriter, clock: FakeClock) -> None:
    ids = accept_all(database, writer, "effect", 3)
    handler = Handler()
    processor = InboxProcessor(database, {"effect": handler}, clock)
    assert processor.drain() == 3
    assert handler.calls == ids
    assert effects(database) == ids
    assert [(r["status"], r["done_at"], r["claim_token"]) for r in rows(database)] == [
        ("applied", START, None)
    ] * 3
    assert processor.drain() == 0
    clock.advance(hours=1)  # nothing becomes due again later either
    assert processor.drain() == 0
    assert handler.calls == ids and effects(database) == ids
    assert inbox_counts(database) == {"applied": 3}


def test_a_processor_steps_aside_after_each_write_and_not_when_idle(
    database: Database, writer: InboxWriter, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its claim and after each round it pauses, so that another process waiting for
    SQLite's write lock (an ack storing a click) gets it; with nothing to do it just polls."""
    pauses: list[float] = []
    monkeypatch.setattr("storage.inbox._pause", pauses.append)
    accept_all(database, writer, "effect", 2)
    stop = threading.Event()

    class FourRounds(InboxProcessor):
        rounds = 0

        def run_once(self, limit: int | None = None) -> int:
            self.rounds += 1
            if self.rounds == 4:
                stop.set()
            return super().run_once(limit)

    processor = FourRounds(database, {"effect": Handler()}, clock, batch_size=1, step_aside=0.003)
    processor.run_forever(stop, poll_interval=0)
    # Two busy rounds: a pause after each claim and after each round; the idle rounds none.
    assert pauses == [0.003] * 4
    assert effects(database) == sorted(effects(database)) and len(effects(database)) == 2


def test_the_handler_sees_what_was_accepted(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    writer.accept("decision", {"review": 7, "user": "U1", "reason": None})
    seen: list[InboxItem] = []
    InboxProcessor(database, {"decision": lambda item, uows: seen.append(item)}, clock).drain()
    [item] = seen
    assert (item.kind, dict(item.payload), item.attempts, item.received_at) == (
        "decision",
        {"review": 7, "user": "U1", "reason": None},
        1,
        START,
    )
    # A handler that committed nothing (a duplicate click) still leaves the item applied.
    assert rows(database)[0]["status"] == "applied"


def test_a_failing_item_is_retried_after_backoff_then_applied(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    [item_id] = accept_all(database, writer, "effect", 1)
    handler = Handler(fail_with=RuntimeError("database busy"))
    processor = InboxProcessor(
        database, {"effect": handler}, clock, base_delay=timedelta(seconds=2), rng=random.Random(7)
    )
    for attempt in (1, 2):
        assert processor.run_once() == 0
        [row] = rows(database)
        assert (row["status"], row["attempts"], row["last_error"]) == (
            "pending",
            attempt,
            "RuntimeError: database busy",
        )
        assert row["claim_token"] is None and row["locked_until"] is None
        wait = row["next_attempt_at"] - clock.now()
        full = timedelta(seconds=2 * 2 ** (attempt - 1))
        assert full / 2 <= wait <= full
        clock.advance(seconds=wait.total_seconds() - 0.5)
        assert processor.drain() == 0 and len(handler.calls) == attempt  # not due yet
        clock.advance(seconds=0.5)
    handler.fail_with = None
    assert processor.run_once() == 1
    assert effects(database) == [item_id]
    assert rows(database)[0]["status"] == "applied"


def test_an_item_that_keeps_failing_ends_dead_with_its_error(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    accept_all(database, writer, "effect", 1)
    handler = Handler(fail_with=ValueError("bad payload"))
    told: list[tuple[int, str]] = []
    processor = InboxProcessor(
        database,
        {"effect": handler},
        clock,
        max_attempts=3,
        on_dead=lambda item, why: told.append((item.id, why)),
    )
    for _ in range(10):
        processor.run_once()
        clock.advance(hours=1)
    [row] = rows(database)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 3, "ValueError: bad payload")
    assert row["done_at"] is not None
    assert len(handler.calls) == 3
    assert effects(database) == []
    assert inbox_counts(database) == {"dead": 1}
    assert told == [(row["id"], "ValueError: bad payload")]  # once, when it died


def test_a_failed_batch_is_applied_one_item_at_a_time_in_order(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    ids = accept_all(database, writer, "effect", 4)
    batches: list[list[int]] = []

    def failing_batch(items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        batches.append([item.id for item in items])
        with uows() as uow:  # written, then the batch fails before committing
            for item in items:
                uow.outbox.put("effect", {"item": item.id}, START)
            raise RuntimeError("one of them is bad")

    single = Handler()
    processor = InboxProcessor(database, {"effect": single}, clock, batch_handlers={"effect": failing_batch})
    assert processor.run_once() == 4
    assert batches == [ids]
    assert single.calls == ids
    assert effects(database) == ids
    assert [r["status"] for r in rows(database)] == ["applied"] * 4


def test_a_batch_applies_its_items_together(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    ids = accept_all(database, writer, "effect", 3)

    def batch(items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        with uows() as uow:
            for item in items:
                uow.outbox.put("effect", {"item": item.id}, START)
            uow.commit()

    single = Handler()
    processor = InboxProcessor(database, {"effect": single}, clock, batch_handlers={"effect": batch})
    assert processor.drain() == 3
    assert single.calls == []
    assert effects(database) == ids
    assert [r["status"] for r in rows(database)] == ["applied"] * 3


def test_a_batch_that_committed_before_failing_is_not_applied_again(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """Its commit marked every item applied with the effect; the one-at-a-time fallback must not
    apply them a second time."""
    ids = accept_all(database, writer, "effect", 2)

    def batch(items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        with uows() as uow:
            for item in items:
                uow.outbox.put("effect", {"item": item.id}, START)
            uow.commit()
        raise RuntimeError("the follow-up failed")

    processor = InboxProcessor(database, {"effect": Handler()}, clock, batch_handlers={"effect": batch})
    processor.drain()
    assert [r["status"] for r in rows(database)] == ["applied"] * 2
    assert effects(database) == ids


def test_an_unknown_kind_is_dead_and_does_not_hold_up_the_others(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    writer.accept("effect", {"n": 0})
    writer.accept("mystery", {"n": 1})
    writer.accept("effect", {"n": 2})
    writer.accept("effect", {"n": 3})
    first, unknown, *rest = [r["id"] for r in rows(database)]
    single = Handler()
    processor = InboxProcessor(database, {"effect": single}, clock, batch_handlers={})
    assert processor.run_once() == 3
    assert effects(database) == [first, *rest]
    by_id = {r["id"]: r for r in rows(database)}
    assert by_id[unknown]["status"] == "dead"
    assert "mystery" in by_id[unknown]["last_error"] and "handler" in by_id[unknown]["last_error"]
    assert [by_id[i]["status"] for i in (first, *rest)] == ["applied"] * 3
    assert processor.drain() == 0
    assert inbox_counts(database) == {"applied": 3, "dead": 1}


# -- atomicity of the effect and the mark ---------------------------------------------------------


def test_a_handler_failing_before_commit_stores_neither_effect_nor_mark(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    [item_id] = accept_all(database, writer, "effect", 1)
    fail = [True]

    def handler(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        with uows() as uow:
            uow.outbox.put("effect", {"item": item.id}, START)
            if fail[0]:
                raise RuntimeError("crashed before commit")
            uow.commit()

    processor = InboxProcessor(database, {"effect": handler}, clock)
    assert processor.run_once() == 0
    assert effects(database) == []
    [row] = rows(database)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    fail[0] = False
    clock.advance(minutes=1)
    assert processor.drain() == 1
    assert effects(database) == [item_id]
    assert rows(database)[0]["status"] == "applied"


def test_a_commit_failing_after_the_mark_was_written_rolls_back_both(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """The mark is written by the commit hook, before the session's flush: a flush that fails
    (here, a duplicate primary key) must take the mark down with the effect."""
    [item_id] = accept_all(database, writer, "effect", 1)
    fail = [True]

    def handler(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        with uows() as uow:
            uow.outbox.put("effect", {"item": item.id}, START)
            if fail[0]:
                # Flushed only by session.commit(), i.e. after the hook marked the item.
                uow.session.add(
                    InboxRow(id=item.id, kind="x", payload={}, received_at=START, next_attempt_at=START)
                )
            uow.commit()

    processor = InboxProcessor(database, {"effect": handler}, clock)
    assert processor.run_once() == 0
    assert effects(database) == []
    [row] = rows(database)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "IntegrityError" in row["last_error"]
    fail[0] = False
    clock.advance(minutes=1)
    assert processor.drain() == 1
    assert effects(database) == [item_id]
    assert rows(database)[0]["status"] == "applied"


# -- leases --------------------------------------------------------------------------------------


def test_an_item_left_claimed_by_a_dead_processor_is_reclaimed_after_the_lease(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    [item_id] = accept_all(database, writer, "effect", 1)

    def dies(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        raise Died()

    lease = timedelta(minutes=2)
    with pytest.raises(Died):
        InboxProcessor(database, {"effect": dies}, clock, lease=lease).run_once()
    [row] = rows(database)
    assert (row["status"], row["attempts"], row["locked_until"]) == ("pending", 1, START + lease)

    survivor = InboxProcessor(database, {"effect": Handler()}, clock, lease=lease)
    clock.advance(seconds=lease.total_seconds() - 1)
    assert survivor.run_once() == 0  # still hidden by the dead processor's lease
    clock.advance(seconds=1)
    assert survivor.run_once() == 1
    assert effects(database) == [item_id]
    [row] = rows(database)
    assert (row["status"], row["attempts"]) == ("applied", 2)


def test_the_claims_of_a_processor_known_dead_are_handed_back_at_once(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """Its parent saw the worker process exit: what it held is due again without waiting for
    the lease, with the attempt still counted; other processors' claims and finished items stay."""
    first, second, third = accept_all(database, writer, "effect", 3)

    def dies(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        raise Died()

    lease = timedelta(minutes=2)
    with pytest.raises(Died):
        InboxProcessor(
            database, {"effect": dies}, clock, lease=lease, batch_size=1, claimant="inbox-a1"
        ).run_once()
    InboxProcessor(database, {"effect": Handler()}, clock, batch_size=1, claimant="inbox-b2").run_once()
    alive = InboxProcessor(database, {"effect": dies}, clock, lease=lease, batch_size=1, claimant="inbox-c3")
    with pytest.raises(Died):
        alive.run_once()
    assert [
        (r["id"], r["status"], r["claim_token"].split(":")[0] if r["claim_token"] else None)
        for r in rows(database)
    ] == [
        (first, "pending", "inbox-a1"),
        (second, "applied", None),
        (third, "pending", "inbox-c3"),
    ]

    assert release_claims_of(database, inbox, "inbox-a1") == 1
    assert release_claims_of(database, inbox, "inbox-a1") == 0
    survivor = InboxProcessor(database, {"effect": Handler()}, clock, lease=lease)
    assert survivor.run_once() == 1  # the released one, at once; the live claim stays hidden
    assert effects(database) == [second, first]
    assert [(r["status"], r["attempts"]) for r in rows(database)] == [
        ("applied", 2),
        ("applied", 1),
        ("pending", 1),
    ]
    with pytest.raises(ValueError):
        release_claims_of(database, inbox, "")


def test_an_item_that_kills_its_worker_is_tried_alone_and_ends_dead_without_taking_others(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """The second of three items kills the process applying it (here: an exception nothing
    catches, leaving the claim held, as a crash would). Each time, the parent hands the dead
    worker's claims back; the next worker tries that item alone, so the third is not held with
    it, and after its attempts the item is dead with a reason. The others are applied once."""
    first, poison, third = accept_all(database, writer, "effect", 3)
    healthy = Handler()

    def handler(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        if item.id == poison:
            raise Died()
        healthy(item, uows)

    for life in range(1, 20):
        worker = InboxProcessor(database, {"effect": handler}, clock, claimant=f"inbox-life{life}")
        try:
            worker.run_once()
        except Died:
            assert release_claims_of(database, inbox, f"inbox-life{life}") >= 1
        if all(r["status"] != "pending" for r in rows(database)):
            break
    by_id = {r["id"]: r for r in rows(database)}
    assert effects(database) == [first, third]
    assert by_id[poison]["status"] == "dead"
    assert "5 attempts ended without a result" in by_id[poison]["last_error"]
    assert (by_id[third]["status"], by_id[third]["attempts"]) == ("applied", 2)
    assert healthy.calls == [first, third]


def test_an_item_whose_attempts_all_stall_past_the_lease_ends_dead(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """No parent hands it back (``shepherd worker`` replicas): after its attempts it is dead
    rather than claimed again every two minutes forever."""
    [item_id] = accept_all(database, writer, "effect", 1)

    def dies(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        raise Died()

    lease = timedelta(minutes=2)
    for _ in range(5):
        with pytest.raises(Died):
            InboxProcessor(database, {"effect": dies}, clock, lease=lease).run_once()
        clock.advance(seconds=lease.total_seconds())
    handler = Handler()
    assert InboxProcessor(database, {"effect": handler}, clock, lease=lease).run_once() == 0
    [row] = rows(database)
    assert (row["status"], row["attempts"], handler.calls) == ("dead", 6, [])
    assert row["last_error"].startswith("5 attempts ended without a result")
    assert item_id == row["id"]


def test_a_processor_whose_lease_expired_cannot_apply_the_item_a_second_time(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    """A slow processor (a long GC pause, a stalled connection) outlives its lease; another one
    reclaims and applies the item. The slow one's late commit must not apply it again: its mark
    finds the claim gone, so its effect should be rolled back with it."""
    [item_id] = accept_all(database, writer, "effect", 1)
    claimed, go = threading.Event(), threading.Event()

    def slow(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        claimed.set()
        assert go.wait(30)
        write_effect(item, uows)

    errors: list[BaseException] = []

    def run_slow() -> None:
        try:
            InboxProcessor(database, {"effect": slow}, clock, max_attempts=1).run_once()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=run_slow)
    thread.start()
    try:
        assert claimed.wait(30)
        clock.advance(minutes=3)
        assert InboxProcessor(database, {"effect": Handler()}, clock).run_once() == 1
    finally:
        go.set()
        thread.join(30)
    assert not errors
    assert rows(database)[0]["status"] == "applied"
    assert effects(database) == [item_id]
