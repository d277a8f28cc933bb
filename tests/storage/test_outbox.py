"""The outbox: written with the change, delivered by workers with backoff, dead-lettered after
N attempts, and never delivered twice by several workers sharing it."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from storage import Database, OutboxMessage, OutboxWorker, PermanentFailure, Postponed, leasing, outbox_counts
from storage.slack_messages import PostInProgress
from storage.tables import outbox
from tests.storage.scenarios import START, FakeClock, run_processes, run_threads


class Recorder:
    """A sender that records what it was given and fails when told to."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.sent: list[OutboxMessage] = []
        self.fail_with = fail_with

    def __call__(self, message: OutboxMessage) -> None:
        self.sent.append(message)
        if self.fail_with is not None:
            raise self.fail_with


@pytest.fixture
def clock() -> FakeClock:
    """A clock at 2025-03-01 09:00 UTC."""
    return FakeClock()


def put(database: Database, n: int = 1, *, key: str | None = None, at: datetime = START) -> None:
    with database.uow() as uow:
        for i in range(n):
            uow.outbox.put("review.requested", {"review": i, "at": at}, at, dedupe_key=key)
        uow.commit()


def queue(database: Database, kind: str, payloads: list[dict[str, object]]) -> None:
    """Queue one message of ``kind`` per payload, in order, in one transaction."""
    with database.uow() as uow:
        for payload in payloads:
            uow.outbox.put(kind, payload, START)
        uow.commit()


def row(database: Database) -> dict[str, object]:
    with database.session(read_only=True) as session:
        return dict(session.execute(select(outbox)).mappings().one())


def test_a_message_is_delivered_once_with_its_id(database: Database, clock: FakeClock) -> None:
    put(database)
    sender = Recorder()
    worker = OutboxWorker(database, sender, clock)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    [message] = sender.sent
    assert (message.kind, message.payload, message.attempts) == (
        "review.requested",
        {"review": 0, "at": "2025-03-01T09:00:00.000000+00:00"},
        1,
    )
    stored = row(database)
    assert (stored["status"], stored["id"], stored["delivered_at"]) == ("delivered", message.id, START)


def test_a_message_from_a_rolled_back_change_never_exists(database: Database, clock: FakeClock) -> None:
    with database.uow() as uow:
        uow.outbox.put("review.requested", {}, START)
    assert OutboxWorker(database, Recorder(), clock).run_once() == 0


def test_a_repeated_dedupe_key_queues_one_message(database: Database, clock: FakeClock) -> None:
    put(database, 3, key="review-requested:7")
    sender = Recorder()
    OutboxWorker(database, sender, clock).run_once()
    assert len(sender.sent) == 1


def test_a_failure_is_retried_after_an_exponential_backoff(database: Database, clock: FakeClock) -> None:
    put(database)
    sender = Recorder(fail_with=ConnectionError("slack is down"))
    worker = OutboxWorker(database, sender, clock, base_delay=timedelta(seconds=2), rng=random.Random(7))
    waits = []
    for attempt in range(1, 5):
        assert worker.run_once() == 0
        stored = row(database)
        assert (stored["status"], stored["attempts"]) == ("pending", attempt)
        assert stored["last_error"] == "ConnectionError: slack is down"
        wait = stored["next_attempt_at"] - clock.now()  # type: ignore[operator]
        full = timedelta(seconds=2 * 2 ** (attempt - 1))
        assert full / 2 <= wait <= full
        waits.append(wait)
        clock.advance(seconds=wait.total_seconds() - 0.5)
        assert worker.run_once() == 0 and len(sender.sent) == attempt  # not due yet
        clock.advance(seconds=0.5)
    assert waits == sorted(waits)
    sender.fail_with = None
    assert worker.run_once() == 1
    assert row(database)["status"] == "delivered"


def test_backoff_is_capped(database: Database, clock: FakeClock) -> None:
    worker = OutboxWorker(database, Recorder(), clock, max_delay=timedelta(minutes=1))
    assert all(timedelta(seconds=30) <= worker.backoff(n) <= timedelta(minutes=1) for n in range(7, 40))


def test_a_message_is_dead_lettered_after_max_attempts(database: Database, clock: FakeClock) -> None:
    put(database)
    sender = Recorder(fail_with=RuntimeError("invalid_blocks"))
    worker = OutboxWorker(database, sender, clock, max_attempts=3)
    for _ in range(5):
        worker.run_once()
        clock.advance(hours=1)
    assert len(sender.sent) == 3
    stored = row(database)
    assert (stored["status"], stored["attempts"], stored["last_error"]) == (
        "dead",
        3,
        "RuntimeError: invalid_blocks",
    )
    assert outbox_counts(database) == {"dead": 1}


def test_a_permanent_failure_is_dead_lettered_at_once(database: Database, clock: FakeClock) -> None:
    put(database)
    sender = Recorder(fail_with=PermanentFailure("channel_not_found"))
    worker = OutboxWorker(database, sender, clock)
    worker.run_once()
    clock.advance(hours=1)
    worker.run_once()
    assert len(sender.sent) == 1
    assert row(database)["status"] == "dead"
    assert "channel_not_found" in str(row(database)["last_error"])


def test_a_claim_abandoned_by_a_crashed_worker_is_delivered_after_its_lease(
    database: Database, clock: FakeClock
) -> None:
    put(database)
    crashed = OutboxWorker(database, Recorder(), clock, lease=timedelta(minutes=2))
    assert len(crashed._claim(10)) == 1  # claimed, then the process died before sending
    sender = Recorder()
    survivor = OutboxWorker(database, sender, clock)
    assert survivor.run_once() == 0  # still leased
    clock.advance(minutes=2)
    assert survivor.run_once() == 1
    assert sender.sent[0].attempts == 2


def test_a_late_mark_from_an_expired_lease_does_not_overwrite(database: Database, clock: FakeClock) -> None:
    put(database)
    slow = OutboxWorker(database, Recorder(), clock, lease=timedelta(seconds=30))
    [(message, token)] = slow._claim(1)
    clock.advance(minutes=1)
    fast = OutboxWorker(database, Recorder(fail_with=ConnectionError("down")), clock)
    fast.run_once()  # re-claims and fails: pending again, with a retry time
    assert slow._finish(message, token, status="delivered") is False
    assert row(database)["status"] == "pending"


def deliver_with_workers(url: str, worker_count: int, rounds: int) -> list[int]:
    """Run one worker until the outbox is empty; returns the ids it delivered."""
    database = Database(url)
    delivered: list[int] = []
    clock = FakeClock()
    clock.advance(minutes=1)
    worker = OutboxWorker(database, lambda message: delivered.append(message.id), clock, batch_size=5)
    try:
        idle = 0
        while idle < 3:
            idle = idle + 1 if worker.run_once() == 0 else 0
        return delivered
    finally:
        database.dispose()


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_four_workers_deliver_every_message_exactly_once(database: Database, runner: object) -> None:
    put(database, 200)
    url = database.url.render_as_string(hide_password=False)
    results = runner(deliver_with_workers, [(url, 4, 0)] * 4)  # type: ignore[operator]
    delivered = [message_id for ids in results for message_id in ids]
    assert len(delivered) == 200 and len(set(delivered)) == 200
    assert outbox_counts(database) == {"delivered": 200}


def test_run_forever_stops_when_asked(database: Database, clock: FakeClock) -> None:
    put(database, 3)
    sender = Recorder()
    worker = OutboxWorker(database, sender, clock)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop, 0.01))
    thread.start()
    for _ in range(500):
        if len(sender.sent) == 3:
            break
        threading.Event().wait(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(sender.sent) == 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_stopping_worker_hands_back_what_it_has_not_started(
    database: Database, clock: FakeClock, concurrency: int
) -> None:
    """Slack is slow: the worker is asked to stop while sending the first of a claimed batch. It
    finishes that send, sends nothing more, and the rest are due again at once for the next worker,
    their attempt not counted."""
    put(database, 6)
    stop = threading.Event()
    started = threading.Event()
    sent: list[int] = []

    def slow_send(message: OutboxMessage) -> None:
        started.set()
        stop.wait(5)
        sent.append(message.id)

    worker = OutboxWorker(
        database, slow_send, clock, concurrency=concurrency, ordering_key=lambda message: 0, batch_size=6
    )
    thread = threading.Thread(target=worker.run_forever, args=(stop, 0.01))
    thread.start()
    assert started.wait(5)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(sent) == 1
    assert outbox_counts(database) == {"delivered": 1, "pending": 5}
    with database.session(read_only=True) as session:
        waiting = session.execute(select(outbox).where(outbox.c.status == "pending")).mappings().all()
    assert {(r["attempts"], r["claim_token"], r["next_attempt_at"]) for r in waiting} == {(0, None, START)}

    after = Recorder()
    assert OutboxWorker(database, after, clock).run_once(limit=10) == 5
    with database.session(read_only=True) as session:
        every = session.execute(select(outbox.c.id)).scalars().all()
    assert sorted(sent + [m.id for m in after.sent]) == sorted(every)  # each once


def test_a_message_postponed_alone_does_not_hold_back_the_rest_of_the_round(
    database: Database, clock: FakeClock
) -> None:
    queue(database, "ephemeral", [{"to": "elsewhere"}, {"to": "registry"}])
    sent: list[str] = []

    def send(message: OutboxMessage) -> None:
        if message.payload["to"] == "elsewhere":
            raise Postponed("that workspace uninstalled Shepherd", holds_round=False)
        sent.append(message.payload["to"])

    assert OutboxWorker(database, send, clock).run_once() == 1
    assert sent == ["registry"]
    assert outbox_counts(database) == {"pending": 1, "delivered": 1}


def test_a_postponed_message_waits_without_using_up_its_attempts(
    database: Database, clock: FakeClock
) -> None:
    put(database, 2)
    calls: list[int] = []

    def not_yet(message: OutboxMessage) -> None:
        calls.append(message.id)
        raise Postponed("nobody has installed the app yet", delay=timedelta(minutes=5))

    worker = OutboxWorker(database, not_yet, clock, max_attempts=3)
    for _ in range(10):  # far more rounds than max_attempts
        assert worker.run_once() == 0
        clock.advance(minutes=5)
    assert outbox_counts(database) == {"pending": 2}
    with database.session(read_only=True) as session:
        rows = session.execute(select(outbox)).mappings().all()
    assert {r["attempts"] for r in rows} == {0}
    assert {r["last_error"] for r in rows} == {"Postponed: nobody has installed the app yet"}
    assert len(calls) == 10  # one try a round; the rest of the batch waits with it

    assert worker.run_once() == 0
    clock.advance(minutes=4)
    worker.run_once()  # not due yet: postponed by five minutes
    assert len(calls) == 11


def redraws(later: OutboxMessage, earlier: OutboxMessage) -> bool:
    return later.kind == earlier.kind == "card.redraw" and later.payload["ref"] == earlier.payload["ref"]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_redraws_of_one_card_claimed_together_are_sent_once_with_the_latest(
    database: Database, clock: FakeClock, concurrency: int
) -> None:
    with database.uow() as uow:
        for page in range(5):
            uow.outbox.put("card.redraw", {"ref": "AI-0001", "page": page}, START)
        uow.outbox.put("review.requested", {"ref": "AI-0001"}, START)
        uow.outbox.put("card.redraw", {"ref": "AI-0001", "page": 5}, START)
        uow.outbox.put("card.redraw", {"ref": "AI-0002", "page": 0}, START)
        uow.commit()
    sender = Recorder()
    worker = OutboxWorker(
        database,
        sender,
        clock,
        concurrency=concurrency,
        ordering_key=lambda message: message.payload["ref"],
        supersedes=redraws,
    )
    assert worker.run_once() == 8
    sent = [(m.kind, m.payload["ref"], m.payload.get("page")) for m in sender.sent]
    assert sorted(sent) == [
        ("card.redraw", "AI-0001", 5),
        ("card.redraw", "AI-0002", 0),
        ("review.requested", "AI-0001", None),
    ]
    # The review notice still goes out before the last redraw of its initiative's card.
    ours = [entry for entry in sent if entry[1] == "AI-0001"]
    assert ours == [("review.requested", "AI-0001", None), ("card.redraw", "AI-0001", 5)]
    assert outbox_counts(database) == {"delivered": 8}
    assert worker.run_once() == 0


def test_a_redraw_is_not_dropped_for_one_that_is_not_yet_claimed(
    database: Database, clock: FakeClock
) -> None:
    queue(database, "card.redraw", [{"ref": "AI-0001", "page": page} for page in range(3)])
    sender = Recorder()
    worker = OutboxWorker(
        database, sender, clock, batch_size=2, ordering_key=lambda m: m.payload["ref"], supersedes=redraws
    )
    worker.run_once()
    worker.run_once()
    assert [m.payload["page"] for m in sender.sent] == [1, 2]


def test_a_round_claims_no_more_than_its_batch(database: Database, clock: FakeClock) -> None:
    put(database, 5)
    sender = Recorder()
    worker = OutboxWorker(database, sender, clock, batch_size=2)
    assert [worker.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [m.payload["review"] for m in sender.sent] == [0, 1, 2, 3, 4]


def test_messages_after_a_failed_one_wait_for_its_retry_without_using_attempts(
    database: Database, clock: FakeClock
) -> None:
    queue(database, "review.requested", [{"ref": "AI-0001", "step": step} for step in range(3)])
    failing = {0}
    sent: list[int] = []

    def sender(message: OutboxMessage) -> None:
        if message.payload["step"] in failing:
            raise ConnectionError("slack is down")
        sent.append(message.payload["step"])

    worker = OutboxWorker(database, sender, clock, max_attempts=2, ordering_key=lambda m: m.payload["ref"])
    assert worker.run_once() == 0
    assert sent == []
    with database.session(read_only=True) as session:
        rows = session.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
    assert [r["attempts"] for r in rows] == [1, 0, 0]
    assert len({r["next_attempt_at"] for r in rows}) == 1  # all due when the failed one is retried
    clock.advance(hours=1)
    failing.clear()
    assert worker.run_once() == 3
    assert sent == [0, 1, 2]


def test_a_dead_lettered_message_does_not_hold_back_the_ones_after_it(
    database: Database, clock: FakeClock
) -> None:
    queue(database, "review.requested", [{"ref": "AI-0001", "step": step} for step in range(3)])
    sent: list[int] = []

    def sender(message: OutboxMessage) -> None:
        if message.payload["step"] == 0:
            raise PermanentFailure("channel_not_found")
        sent.append(message.payload["step"])

    worker = OutboxWorker(database, sender, clock, ordering_key=lambda m: m.payload["ref"])
    assert worker.run_once() == 2
    assert sent == [1, 2]
    assert outbox_counts(database) == {"dead": 1, "delivered": 2}


# -- merge keys: a redraw still waiting covers the saves that follow ---------------------------------


def redraw(database: Database, step: int, at: datetime = START) -> None:
    with database.uow() as uow:
        uow.outbox.put("answers.recorded", {"ref": "AI-0001", "step": step}, at, merge_key="card:AI-0001")
        uow.commit()


def test_a_waiting_message_absorbs_later_ones_with_its_merge_key(
    database: Database, clock: FakeClock
) -> None:
    for step in range(3):
        redraw(database, step)
    with database.uow() as uow:  # another card's redraw is not absorbed
        uow.outbox.put("answers.recorded", {"ref": "AI-0002"}, START, merge_key="card:AI-0002")
        uow.commit()
    sender = Recorder()
    assert OutboxWorker(database, sender, clock).run_once() == 2
    assert [m.payload.get("step") for m in sender.sent] == [0, None]


def test_a_message_already_claimed_or_sent_absorbs_nothing(database: Database, clock: FakeClock) -> None:
    # A sender that has claimed the redraw may read the state before the next save commits: that
    # save must queue a redraw of its own, and so must one after the redraw was sent.
    redraw(database, 0)
    rows, _ = leasing.claim_due(database, outbox, START, 10, timedelta(minutes=2), ("id",))
    assert len(rows) == 1
    redraw(database, 1)
    sender = Recorder()
    worker = OutboxWorker(database, sender, clock)
    assert worker.run_once() == 1
    redraw(database, 2)
    assert worker.run_once() == 1
    assert [m.payload["step"] for m in sender.sent] == [1, 2]


def test_a_message_with_a_merge_key_waits_to_settle_and_others_do_not(
    database: Database, clock: FakeClock
) -> None:
    redraw(database, 0)
    put(database)
    sender = Recorder()
    worker = OutboxWorker(database, sender, clock, settle=timedelta(seconds=2))
    assert worker.run_once() == 1
    assert [m.kind for m in sender.sent] == ["review.requested"]
    clock.advance(seconds=1)
    redraw(database, 1)  # absorbed: the first is still waiting
    assert worker.run_once() == 0
    clock.advance(seconds=1)
    assert worker.run_once() == 1
    assert [m.payload.get("step") for m in sender.sent] == [None, 0]


def test_on_postgresql_a_redraw_absorbing_a_save_is_not_claimed_until_the_save_commits(
    postgres_database: Database,
) -> None:
    # The save locks the waiting row; a claim skips locked rows, so the sender reads the state
    # only once the save is committed.
    database = postgres_database
    redraw(database, 0)
    with database.uow() as uow:
        uow.outbox.put("answers.recorded", {"ref": "AI-0001", "step": 1}, START, merge_key="card:AI-0001")
        uow.outbox.flush()  # what commit does first: the merge check locks the waiting row
        assert leasing.claim_due(database, outbox, START, 10, timedelta(minutes=2), ("id",))[0] == []
        uow.commit()
    assert len(leasing.claim_due(database, outbox, START, 10, timedelta(minutes=2), ("id",))[0]) == 1


def test_messages_are_written_at_commit_each_merge_key_checked_once_for_the_transaction(
    database: Database, clock: FakeClock
) -> None:
    """A batch of questionnaire pages puts one redraw per page: the merge keys are checked in
    one statement when the transaction commits, and each card gets at most one new message."""
    redraw(database, 0)  # AI-0001's redraw is waiting
    with database.uow() as uow:
        for step in (1, 2):
            uow.outbox.put(
                "answers.recorded", {"ref": "AI-0001", "step": step}, START, merge_key="card:AI-0001"
            )
            uow.outbox.put(
                "answers.recorded", {"ref": "AI-0002", "step": step}, START, merge_key="card:AI-0002"
            )
        uow.outbox.put("review.requested", {"ref": "AI-0002"}, START)
        uow.outbox.put("review.requested", {"ref": "AI-0002"}, START, dedupe_key="once")
        uow.outbox.put("review.requested", {"ref": "AI-0002"}, START, dedupe_key="once")
        assert outbox_counts(database) == {"pending": 1}  # nothing written before the commit
        uow.commit()
    with database.uow() as uow:  # rolled back: nothing of it is written
        uow.outbox.put("answers.recorded", {"ref": "AI-0003"}, START, merge_key="card:AI-0003")
    sender = Recorder()
    assert OutboxWorker(database, sender, clock).run_once() == 4
    assert [(m.kind, m.payload["ref"], m.payload.get("step")) for m in sender.sent] == [
        ("answers.recorded", "AI-0001", 0),
        ("answers.recorded", "AI-0002", 1),
        ("review.requested", "AI-0002", None),
        ("review.requested", "AI-0002", None),
    ]


def test_a_round_that_outlasts_half_its_lease_hands_back_what_it_has_not_started(
    database: Database, clock: FakeClock
) -> None:
    """Slack so slow that the claim would run out mid-batch: the worker stops starting sends at
    half the lease and hands the rest back, due at once and their attempt not counted, rather
    than sending them while another worker, finding the claim expired, sends them too."""
    put(database, 3)
    sent: list[int] = []

    def slow_send(message: OutboxMessage) -> None:
        sent.append(message.id)
        clock.advance(seconds=61)  # a send that took a minute, with the client's retries

    worker = OutboxWorker(
        database, slow_send, clock, ordering_key=lambda message: 0, lease=timedelta(minutes=2)
    )
    assert worker.run_once(limit=3) == 1  # the second starts at 61 s: past half the lease
    assert outbox_counts(database) == {"delivered": 1, "pending": 2}
    with database.session(read_only=True) as session:
        waiting = session.execute(select(outbox).where(outbox.c.status == "pending")).mappings().all()
    assert {(r["attempts"], r["claim_token"]) for r in waiting} == {(0, None)}
    assert worker.run_once(limit=3) == 1
    assert worker.run_once(limit=3) == 1
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 3


def test_a_message_another_worker_is_posting_waits_alone(database: Database, clock: FakeClock) -> None:
    """One initiative's card is being posted by another worker: that message waits (uncounted),
    and the other initiatives' messages claimed with it go out now, unlike during an outage."""
    queue(database, "initiative.created", [{"ref": "AI-0001"}, {"ref": "AI-0002"}])
    sent: list[str] = []

    def send(message: OutboxMessage) -> None:
        if message.payload["ref"] == "AI-0001":
            raise PostInProgress("card for initiative:AI-0001 is being posted by another delivery")
        sent.append(str(message.payload["ref"]))

    worker = OutboxWorker(database, send, clock, ordering_key=lambda message: message.payload["ref"])
    assert worker.run_once() == 1
    assert sent == ["AI-0002"]
    with database.session(read_only=True) as session:
        waiting = session.execute(select(outbox).where(outbox.c.status == "pending")).mappings().one()
    assert waiting["attempts"] == 0 and waiting["next_attempt_at"] >= START + timedelta(seconds=2)


class Died(BaseException):
    """What ends a delivery worker's process mid-send (the OOM killer, a crash): nothing catches it."""


def test_a_message_that_kills_its_worker_is_sent_alone_and_ends_dead_without_stopping_the_others(
    database: Database, clock: FakeClock
) -> None:
    """The second of three messages kills the process sending it. Each time, the parent hands the
    dead worker's claims back (``WorkerChildren``); the next worker sends that message alone, so
    the third goes out, and after its attempts the message is dead with a reason, instead of
    killing every worker after it and holding up every notification for good."""
    put(database, 3)
    with database.session(read_only=True) as session:
        first, poison, third = session.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars()
    sent: list[int] = []

    def sender(message: OutboxMessage) -> None:
        if message.id == poison:
            raise Died()
        sent.append(message.id)

    for life in range(1, 20):
        worker = OutboxWorker(database, sender, clock, claimant=f"delivery-life{life}")
        try:
            worker.run_once()
        except Died:
            assert leasing.release_claims_of(database, outbox, f"delivery-life{life}") >= 1
        with database.session(read_only=True) as session:
            if "pending" not in session.execute(select(outbox.c.status)).scalars().all():
                break
    with database.session(read_only=True) as session:
        by_id = {r["id"]: r for r in session.execute(select(outbox)).mappings()}
    assert sent == [first, third]
    assert by_id[poison]["status"] == "dead"
    assert "8 attempts ended without a result" in by_id[poison]["last_error"]
    assert by_id[third]["status"] == "delivered"


def test_a_message_whose_attempts_all_stall_past_the_lease_ends_dead(
    database: Database, clock: FakeClock
) -> None:
    """No parent hands it back (``shepherd worker`` replicas): after its attempts it is dead
    rather than claimed again every two minutes forever."""
    put(database)

    def dies(message: OutboxMessage) -> None:
        raise Died()

    lease = timedelta(minutes=2)
    for _ in range(8):
        with pytest.raises(Died):
            OutboxWorker(database, dies, clock, lease=lease).run_once()
        clock.advance(seconds=lease.total_seconds())
    sender = Recorder()
    assert OutboxWorker(database, sender, clock, lease=lease).run_once() == 0
    assert (row(database)["status"], row(database)["attempts"], sender.sent) == ("dead", 9, [])
    assert str(row(database)["last_error"]).startswith("8 attempts ended without a result")
