"""The retention pass: old bookkeeping rows go, young ones, protected ones and the evidence stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, insert, select

from gates.lifecycle import Status
from gates.ports import AnswerVersion
from storage import Database
from storage.asked_answers import AskedAnswers
from storage.outbox import requeue_dead
from storage.retention import TABLES, asked_answers, oauth_states, prune, slack_messages
from storage.scheduling import fired_events
from storage.slack_messages import MessageRefs, Reservation, outbox_target
from storage.tables import inbox, outbox, processed_events
from tests.storage.test_repositories import a_review, add_initiative, reject

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
RETENTION = timedelta(days=90)
OLD_AGE, YOUNG_AGE = timedelta(days=100), timedelta(days=10)
OLD = NOW - OLD_AGE
EVIDENCE = (
    "initiatives",
    "answer_versions",
    "reviews",
    "decisions",
    "audit_log",
    "counters",
    "role_holders",
)


def add_row(database: Database, table: Table, **values: Any) -> None:
    with database.session() as session:
        session.execute(insert(table).values(**values))
        session.commit()


def work_row(table: Table, status: str, at: datetime, done: str) -> dict[str, Any]:
    """An outbox or inbox row in ``status``, due and (unless pending) finished at ``at``."""
    received = "created_at" if table is outbox else "received_at"
    finished = {done: at} if status != "pending" else {}
    return {"kind": "k", "payload": {}, "status": status, received: at, "next_attempt_at": at, **finished}


def seed(database: Database, now: datetime = NOW) -> dict[str, Any]:
    """One of each kind of row, 100 days old and 10 days old (as of ``now``), prunable and
    protected; returns the names used."""
    old, young = now - OLD_AGE, now - YOUNG_AGE
    live = add_initiative(database, "Live")
    retired = add_initiative(database, "Retired", status=Status.RETIRED)
    with database.uow() as uow:
        open_review, closed_review = a_review(live.ref), a_review(retired.ref)
        uow.reviews.add(open_review)
        uow.reviews.add(closed_review)
        uow.answers.append(AnswerVersion(live.ref, "intake", "problem", "old answer", "UOWNER", old))
        uow.audit.append("UOWNER", "initiative.registered", live.ref, {}, old)
        uow.roles.set_holders("risk", ["URISK1"])
        uow.commit()
    assert open_review.id is not None and closed_review.id is not None
    reject(database, closed_review.id)
    add_row(database, oauth_states, state="expired", expire_at=old.replace(tzinfo=None))
    add_row(
        database, oauth_states, state="valid", expire_at=(now + timedelta(minutes=5)).replace(tzinfo=None)
    )

    for key in ("event:Ev1", "feedback:ask-1:U1:0", "opsform:V1", "asked:C1:1.1", "greeted:U1", "custom:x"):
        assert database.claim(key, old)
    assert database.claim("event:Ev2", young)
    for status, at in (("delivered", old), ("delivered", young), ("pending", old), ("dead", old)):
        add_row(database, outbox, **work_row(outbox, status, at, "delivered_at"))
    for status, at in (("applied", old), ("applied", young), ("pending", old), ("dead", old)):
        add_row(database, inbox, **work_row(inbox, status, at, "done_at"))
    AskedAnswers(database).keep("ask-old", "q?", "a.", [], old)
    refs = MessageRefs(database)
    refs.remember(outbox_target(1), "ephemeral", "C1", "1.1", old)  # a private message: goes
    refs.remember(outbox_target(2), "ephemeral", "C1", "2.2", young)
    refs.remember(f"initiative:{live.ref}", "card", "C1", "0.1", old)  # read for ever: stays
    AskedAnswers(database).keep("ask-young", "q?", "a.", [], young)

    closed, still_open = closed_review.id, open_review.id
    fired = {
        f"remind:{closed}:1": old,  # a closed review is never reminded again: goes
        f"escalate:{closed}": old,
        f"opsreview:{retired.ref}:2025-01-01": old,  # a retired initiative is never chased: goes
        f"remind:{closed}:2": young,  # young: stays
        f"remind:{still_open}:1": old,  # an open review: stays
        f"stalled:{live.ref}:poc:20250101T090000Z": old,  # stalled while nobody acts: stays
        "remind:999:1": old,  # a review that is not there: stays
        "custom:x": old,  # a kind this Shepherd does not know: stays
    }
    with database.uow() as uow:
        for key, at in fired.items():
            assert uow.fired.first_time(key, "k", at)
        uow.commit()
    return {"closed": closed, "open": still_open, "live": live.ref}


def keys(database: Database, table: Table, column: str) -> list[Any]:
    with database.session(read_only=True) as session:
        return sorted(session.scalars(select(table.c[column])))


def statuses(database: Database, table: Table) -> list[tuple[str, bool]]:
    """(status, young?) of every row."""
    with database.session(read_only=True) as session:
        rows = session.execute(select(table.c.status, table.c.next_attempt_at)).all()
    return sorted((status, at > NOW - RETENTION) for status, at in rows)


def row_counts(database: Database, tables: tuple[str, ...]) -> dict[str, int]:
    with database.engine.connect() as connection:
        return {
            name: connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one() for name in tables
        }


def test_old_rows_no_longer_needed_go_and_everything_else_stays(database: Database) -> None:
    seeded = seed(database)
    evidence = row_counts(database, EVIDENCE)
    assert evidence["decisions"] == 1 and evidence["audit_log"] == 1

    pruned = prune(database, NOW, RETENTION)

    assert pruned == {
        "processed_events": 4,
        "outbox": 1,
        "inbox": 1,
        "asked_answers": 1,
        "slack_oauth_states": 1,
        "slack_messages": 1,
        "fired_events": 3,
    }
    assert list(pruned) == list(TABLES)
    # Permanent markers (the greeting) and kinds it does not know are kept, as are young keys.
    assert keys(database, processed_events, "key") == ["custom:x", "event:Ev2", "greeted:U1"]
    assert statuses(database, outbox) == [("dead", False), ("delivered", True), ("pending", False)]
    assert statuses(database, inbox) == [("applied", True), ("dead", False), ("pending", False)]
    assert keys(database, asked_answers, "key") == ["ask-young"]
    assert keys(database, oauth_states, "state") == ["valid"]
    assert keys(database, slack_messages, "target") == [f"initiative:{seeded['live']}", outbox_target(2)]
    assert keys(database, fired_events, "key") == sorted(
        [
            f"remind:{seeded['closed']}:2",
            f"remind:{seeded['open']}:1",
            f"stalled:{seeded['live']}:poc:20250101T090000Z",
            "remind:999:1",
            "custom:x",
        ]
    )
    assert row_counts(database, EVIDENCE) == evidence
    # A second pass finds nothing more.
    assert set(prune(database, NOW, RETENTION).values()) == {0}


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(database: Database) -> None:
    seed(database)
    everything = row_counts(database, (*TABLES, *EVIDENCE))
    counted = prune(database, NOW, RETENTION, dry_run=True)
    assert row_counts(database, (*TABLES, *EVIDENCE)) == everything
    assert counted == prune(database, NOW, RETENTION)
    assert sum(counted.values()) == 12


def test_small_batches_delete_the_same_rows_one_short_transaction_at_a_time(database: Database) -> None:
    seed(database)
    for n in range(5):
        assert database.claim(f"event:Old{n}", OLD)
    pruned = prune(database, NOW, RETENTION, batch_size=2, pause=0)
    assert pruned["processed_events"] == 9 and pruned["fired_events"] == 3
    assert keys(database, processed_events, "key") == ["custom:x", "event:Ev2", "greeted:U1"]


def test_a_retention_shorter_than_a_week_is_refused(database: Database) -> None:
    assert database.claim("event:Ev1", OLD)
    with pytest.raises(ValueError, match="at least 7 days"):
        prune(database, NOW, timedelta(days=6))
    with database.session(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(processed_events)) == 1


def test_a_dead_private_message_keeps_the_record_that_it_was_sent(database: Database) -> None:
    """A private message whose every attempt ended without a result (its worker stalled past the
    lease after sending it, the last time) is dead though it was sent. Its record is what stops
    `shepherd outbox retry`, which an operator may run months later, from sending it twice: it
    stays as long as the dead message does, old or not; a delivered one's still goes."""
    add_row(database, outbox, **work_row(outbox, "dead", OLD, "delivered_at"))
    add_row(database, outbox, **work_row(outbox, "delivered", OLD, "delivered_at"))
    dead, delivered = keys(database, outbox, "id")
    refs = MessageRefs(database)
    refs.remember(outbox_target(dead), "ephemeral", "D1", "1.1", OLD)
    refs.remember(outbox_target(delivered), "ephemeral", "D1", "2.2", OLD)

    assert prune(database, NOW, RETENTION)["slack_messages"] == 1
    assert keys(database, slack_messages, "target") == [outbox_target(dead)]
    requeue_dead(database, [dead])
    assert refs.reserve(outbox_target(dead), "ephemeral", NOW, take_over=False) is Reservation.POSTED
