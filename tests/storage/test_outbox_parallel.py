"""Several senders at once: different initiatives in parallel, one initiative in order."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from storage import Database, OutboxMessage, OutboxWorker
from storage.tables import outbox
from tests.storage.test_outbox import START, FakeClock


def queue(database: Database, refs: list[str]) -> None:
    with database.uow() as uow:
        for index, ref in enumerate(refs):
            uow.outbox.put("note", {"ref": ref, "n": index}, START)
        uow.commit()


def by_ref(message: OutboxMessage) -> object:
    return message.payload["ref"]


def test_slow_sends_to_different_initiatives_overlap(database: Database) -> None:
    queue(database, ["AI-0001", "AI-0002", "AI-0003", "AI-0004"])
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(message: OutboxMessage) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1

    worker = OutboxWorker(database, slow, FakeClock(), concurrency=4, ordering_key=by_ref)
    assert worker.run_once() == 4
    assert peak >= 2


def test_a_failed_message_holds_back_the_later_ones_of_the_same_initiative(database: Database) -> None:
    queue(database, ["AI-0001", "AI-0001", "AI-0001", "AI-0002"])
    sent: list[tuple[str, int]] = []
    fail_once = {"armed": True}

    def sender(message: OutboxMessage) -> None:
        ref, n = message.payload["ref"], message.payload["n"]
        if ref == "AI-0001" and n == 0 and fail_once["armed"]:
            fail_once["armed"] = False
            raise RuntimeError("Slack is down")
        sent.append((ref, n))

    clock = FakeClock()
    worker = OutboxWorker(database, sender, clock, concurrency=4, ordering_key=by_ref)
    assert worker.run_once() == 1
    assert sent == [("AI-0002", 3)]
    clock.advance(minutes=10)
    assert worker.run_once() == 3
    assert [n for ref, n in sent if ref == "AI-0001"] == [0, 1, 2]
    with database.session() as session:
        assert set(session.scalars(select(outbox.c.status))) == {"delivered"}
    assert timedelta(minutes=10) > worker.backoff(1)
