"""Slack unavailable (``storage.Unavailable``): the outbox and the inbox wait it out with backoff,
without using up attempts, for at most ``OUTAGE_LIMIT`` from the first such failure; an ordinary
failure keeps its attempts. Dead messages can be sent again (``requeue_dead``).

Every test runs on SQLite and on PostgreSQL (the ``database`` fixture)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from storage import Database, OutboxMessage, OutboxWorker, Postponed, Unavailable, outbox_counts
from storage.inbox import InboxItem, InboxProcessor, InboxWriter, UnitOfWorkFactory, inbox_counts
from storage.leasing import OUTAGE_LIMIT
from storage.outbox import dead_messages, outbox_statuses, requeue_dead
from storage.tables import inbox, outbox
from tests.storage.scenarios import START, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Slack:
    """A sender (or inbox handler) that raises ``fail_with`` while set and records what went out."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.tries: list[Any] = []
        self.sent: list[Any] = []

    def __call__(self, message: OutboxMessage) -> None:
        self.tries.append(message.payload["step"])
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message.payload["step"])


def queue(database: Database, payloads: list[dict[str, object]]) -> None:
    with database.uow() as uow:
        for payload in payloads:
            uow.outbox.put("review.requested", payload, START)
        uow.commit()


def outbox_rows(database: Database) -> list[dict[str, Any]]:
    with database.session(read_only=True) as session:
        return [dict(r) for r in session.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def poll(worker: OutboxWorker | InboxProcessor, clock: FakeClock, minutes: float, every: float) -> None:
    """Run ``worker`` every ``every`` seconds of the fake clock for ``minutes``."""
    for _ in range(int(minutes * 60 / every)):
        worker.run_once()
        clock.advance(seconds=every)


# -- the outbox ------------------------------------------------------------------------------------


def test_a_message_waits_out_a_30_minute_outage_with_growing_waits_and_no_attempt_used(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": "AI-0001", "step": 0}])
    slack = Slack(Unavailable("Slack answered HTTP 500 (internal_error) to chat.postMessage"))
    worker = OutboxWorker(database, slack, clock, rng=random.Random(3))
    waits: list[timedelta] = []
    for _ in range(int(30 * 60 / 5)):  # the worker polls every 5 s for 30 minutes
        if worker.run_once() == 0 and len(slack.tries) > len(waits):
            [row] = outbox_rows(database)
            waits.append(row["next_attempt_at"] - clock.now())
        clock.advance(seconds=5)
    [row] = outbox_rows(database)
    assert (row["status"], row["attempts"], row["unavailable_since"]) == ("pending", 0, START)
    assert row["last_error"] == "Unavailable: Slack answered HTTP 500 (internal_error) to chat.postMessage"
    # Tried far fewer than once a poll: each wait about as long again as the outage so far, to 15 min.
    assert 8 <= len(slack.tries) <= 20, len(slack.tries)
    assert waits[0] <= timedelta(seconds=2) and max(waits) <= timedelta(minutes=15)
    assert waits[-1] >= timedelta(minutes=5)
    slack.fail_with = None  # Slack is back
    clock.advance(minutes=15)
    assert worker.run_once() == 1
    assert slack.sent == [0]
    assert outbox_counts(database) == {"delivered": 1}


def test_the_rest_of_the_round_waits_with_it_and_goes_out_in_order(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": ref, "step": step} for step, ref in enumerate(["AI-1", "AI-1", "AI-2"])])
    slack = Slack(Unavailable("Slack could not be reached"))
    worker = OutboxWorker(database, slack, clock, ordering_key=lambda m: m.payload["ref"])
    assert worker.run_once() == 0
    assert slack.tries == [0]  # one try: the others would only fail the same way
    rows = outbox_rows(database)
    assert [r["attempts"] for r in rows] == [0, 0, 0]
    assert [r["unavailable_since"] for r in rows] == [START, None, None]  # only the one tried
    assert rows[0]["next_attempt_at"] > START and all(r["next_attempt_at"] > START for r in rows)
    slack.fail_with = None
    clock.advance(minutes=1)
    assert worker.run_once() == 3
    assert slack.sent == [0, 1, 2]


def test_slacks_retry_after_is_honoured_when_longer_than_the_backoff(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": "AI-0001", "step": 0}])
    slack = Slack(Unavailable("rate limited", retry_after=timedelta(seconds=90)))
    worker = OutboxWorker(database, slack, clock)
    worker.run_once()
    assert outbox_rows(database)[0]["next_attempt_at"] == START + timedelta(seconds=90)
    clock.advance(seconds=89)
    worker.run_once()
    assert len(slack.tries) == 1  # not before Slack said
    clock.advance(seconds=1)
    slack.fail_with = None
    assert worker.run_once() == 1


def test_a_message_slack_keeps_refusing_as_unavailable_is_dead_after_the_limit(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": "AI-0001", "step": 0}])
    slack = Slack(Unavailable("Slack answered HTTP 503"))
    worker = OutboxWorker(database, slack, clock, rng=random.Random(5))
    poll(worker, clock, minutes=(OUTAGE_LIMIT - timedelta(minutes=20)).total_seconds() / 60, every=60)
    [row] = outbox_rows(database)
    assert (row["status"], row["attempts"]) == ("pending", 0)  # still waiting, 23 h 40 in
    poll(worker, clock, minutes=40, every=60)
    [row] = outbox_rows(database)
    assert row["status"] == "dead"
    assert row["last_error"] == (
        "Slack unavailable since 2025-03-01T09:00:00+00:00: Unavailable: Slack answered HTTP 503"
    )
    assert 96 <= len(slack.tries) <= 200  # every 7.5 to 15 minutes for a day


def test_an_ordinary_failure_still_uses_up_attempts_after_an_outage(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": "AI-0001", "step": 0}])
    slack = Slack(Unavailable("Slack answered HTTP 500"))
    worker = OutboxWorker(database, slack, clock, max_attempts=3)
    poll(worker, clock, minutes=10, every=30)
    slack.fail_with = RuntimeError("a bug in the notifier")
    poll(worker, clock, minutes=120, every=60)
    [row] = outbox_rows(database)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "dead",
        3,
        "RuntimeError: a bug in the notifier",
    )


def test_a_message_that_waited_days_for_a_reinstall_is_not_dead_lettered_at_its_next_rate_limit(
    database: Database, clock: FakeClock
) -> None:
    """Slack rate limited a message, then refused the token (Shepherd uninstalled): it waited two
    days for the reinstall. Slack's first 429 after it begins a new outage, instead of counting the
    days spent waiting for the reinstall as Slack unavailable and dead-lettering it at once."""
    queue(database, [{"ref": "AI-0001", "step": 0}, {"ref": "AI-0002", "step": 1}])
    slack = Slack(Unavailable("Slack answered HTTP 429"))
    worker = OutboxWorker(database, slack, clock)
    poll(worker, clock, minutes=10, every=30)
    assert outbox_rows(database)[0]["unavailable_since"] == START
    slack.fail_with = Postponed("Slack refused the token: reinstall Shepherd")
    poll(worker, clock, minutes=2 * 24 * 60, every=300)
    slack.fail_with = Unavailable("Slack answered HTTP 429")
    poll(worker, clock, minutes=10, every=30)
    assert outbox_counts(database) == {"pending": 2}
    slack.fail_with = None
    poll(worker, clock, minutes=30, every=30)
    assert slack.sent == [0, 1]


def test_dead_messages_are_listed_and_requeued_with_fresh_attempts(
    database: Database, clock: FakeClock
) -> None:
    queue(database, [{"ref": "AI-0001", "step": step} for step in range(3)])
    slack = Slack(RuntimeError("invalid_auth"))
    worker = OutboxWorker(database, slack, clock, max_attempts=1)
    worker.run_once()
    assert [(m.id, m.kind, m.ref, m.attempts) for m in dead_messages(database)] == [
        (row["id"], "review.requested", "AI-0001", 1) for row in outbox_rows(database)
    ]
    first, second, third = (row["id"] for row in outbox_rows(database))
    assert requeue_dead(database, [first, 999]) == [first]
    assert outbox_statuses(database, [first, second, 999]) == {first: "pending", second: "dead"}
    slack.fail_with = None
    assert worker.run_once() == 1 and slack.sent == [0]  # due at once, with fresh attempts
    assert requeue_dead(database) == [second, third]
    assert worker.run_once() == 2 and slack.sent == [0, 1, 2]
    assert requeue_dead(database) == []
    assert outbox_counts(database) == {"delivered": 3}


# -- the inbox -------------------------------------------------------------------------------------


@pytest.fixture
def writer(database: Database, clock: FakeClock) -> Iterator[InboxWriter]:
    writer = InboxWriter(database, clock, timeout=10)
    yield writer
    writer.close()


def inbox_rows(database: Database) -> list[dict[str, Any]]:
    with database.session(read_only=True) as session:
        return [dict(r) for r in session.execute(select(inbox).order_by(inbox.c.id)).mappings()]


class Clicks:
    """A decision handler, batch and single, that waits on Slack while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.batches: list[list[int]] = []
        self.singles: list[int] = []

    def batch(self, items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        self.batches.append([item.id for item in items])
        self._apply(items, uows)

    def single(self, item: InboxItem, uows: UnitOfWorkFactory) -> None:
        self.singles.append(item.id)
        self._apply([item], uows)

    def _apply(self, items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        if self.down:
            raise Unavailable("Slack could not list the members of user group S0SPONSORS")
        with uows() as uow:
            for item in items:
                uow.outbox.put("effect", {"item": item.id}, START)
            uow.commit()


def test_clicks_waiting_on_slack_stay_pending_through_an_outage_and_are_applied_after(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    for n in range(3):
        writer.accept("decision", {"n": n})
    clicks = Clicks()
    told: list[int] = []
    processor = InboxProcessor(
        database,
        {"decision": clicks.single},
        clock,
        batch_handlers={"decision": clicks.batch},
        on_dead=lambda item, why: told.append(item.id),
    )
    poll(processor, clock, minutes=30, every=2)
    rows = inbox_rows(database)
    assert [(r["status"], r["attempts"], r["unavailable_since"]) for r in rows] == [("pending", 0, START)] * 3
    assert clicks.singles == []  # the batch waited whole: one at a time would only wait the same way
    assert 8 <= len(clicks.batches) <= 25, len(clicks.batches)
    assert max(r["next_attempt_at"] for r in rows) - clock.now() <= timedelta(minutes=5)
    clicks.down = False
    clock.advance(minutes=5)
    assert processor.drain() == 3
    assert inbox_counts(database) == {"applied": 3}
    assert told == []


def test_a_click_waiting_on_slack_for_longer_than_the_limit_is_dead_and_its_clicker_told(
    database: Database, writer: InboxWriter, clock: FakeClock
) -> None:
    writer.accept("decision", {"n": 0})
    clicks = Clicks()
    told: list[str] = []
    processor = InboxProcessor(
        database, {"decision": clicks.single}, clock, on_dead=lambda item, why: told.append(why)
    )
    poll(processor, clock, minutes=(OUTAGE_LIMIT - timedelta(minutes=10)).total_seconds() / 60, every=60)
    assert [(r["status"], r["attempts"]) for r in inbox_rows(database)] == [("pending", 0)]
    assert told == []
    poll(processor, clock, minutes=20, every=60)
    [row] = inbox_rows(database)
    assert row["status"] == "dead"
    assert told == [row["last_error"]]
    assert told[0].startswith("Slack unavailable since 2025-03-01T09:00:00+00:00: Unavailable: ")
