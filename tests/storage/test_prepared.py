"""Hot reads on the driver's cursor give exactly what SQLAlchemy's path gives, errors included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError

from gates.errors import UnknownInitiative
from gates.lifecycle import DecisionKind
from gates.ports import AnswerVersion, InitiativeState
from storage import Database
from storage.outbox import _waiting
from storage.prepared import Prepared, together
from storage.repositories import (
    _CURRENT_ANSWERS,
    CURRENT_ANSWERS_OF_REF,
    HOLDERS,
    _append_answer,
    initiative_id,
)
from storage.reviews import _INITIATIVE_WITH_OPEN
from storage.tables import counters
from tests.storage.test_repositories import NOW, a_review, add_initiative


def through_sqlalchemy(database: Database, read: Prepared, params: dict[str, Any]) -> list[dict[str, Any]]:
    with database.uow(read_only=True) as uow:
        return [dict(row) for row in uow.session.connection().execute(read.statement, params).mappings()]


def prepared(database: Database, read: Prepared, params: dict[str, Any]) -> list[dict[str, Any]]:
    with database.uow(read_only=True) as uow:
        return read.all(uow.session.connection(), params)


def test_each_prepared_read_matches_sqlalchemys_rows_value_for_value(database: Database) -> None:
    ref = add_initiative(database, status_reason="waiting for the DPO").ref
    bare = add_initiative(database, "No review yet").ref
    with database.uow() as uow:
        uow.roles.set_holders("risk", ["URISK1", "URISK2"])
        uow.roles.set_holders("sponsor", ["USPONSOR"])
        for n, value in enumerate(["first", "second", {"nested": [1, 2.5, None]}, ["a", "b"], 12.5, None]):
            uow.answers.append(
                AnswerVersion(ref, "intake", f"q{n % 3}", value, "U1", NOW + timedelta(minutes=n))
            )
        review = a_review(ref)
        uow.reviews.add(review)
        uow.outbox.put("answers.recorded", {"ref": ref}, NOW, merge_key=f"card:{ref}")
        uow.commit()
    assert review.id is not None
    with database.uow() as uow:
        loaded = uow.reviews.get(review.id)
        loaded.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW)
        loaded.decide("URISK2", {"risk"}, DecisionKind.APPROVE, None, NOW + timedelta(seconds=1))
        uow.reviews.save(loaded)
        uow.commit()
    with database.uow(read_only=True) as uow:
        owner = initiative_id(uow.session, ref)
    waiting = _waiting(database.engine.dialect.name)

    cases = [
        (_INITIATIVE_WITH_OPEN, {"ref": ref}, 2),  # one row per decision
        (_INITIATIVE_WITH_OPEN, {"ref": bare}, 1),  # the outer join: review columns NULL
        (_INITIATIVE_WITH_OPEN, {"ref": "AI-9999"}, 0),
        (_CURRENT_ANSWERS, {"p_owner": owner}, 3),
        (CURRENT_ANSWERS_OF_REF, {"p_ref": ref}, 3),
        (CURRENT_ANSWERS_OF_REF, {"p_ref": "AI-9999"}, 0),
        (HOLDERS, {}, 3),
        # Values the statement itself carries (the status, LIMIT 1) are bound as SQLAlchemy would.
        (waiting, {"p_keys": [f"card:{ref}", "card:AI-9999"]}, 1),
        (waiting, {"p_keys": ["card:AI-9999"]}, 0),
    ]
    for read, params, count in cases:
        expected = through_sqlalchemy(database, read, params)
        got = prepared(database, read, params)
        assert len(got) == count
        assert got == expected
        # Same values and the same Python types: aware datetimes, decoded JSON, ints.
        for mine, theirs in zip(got, expected, strict=True):
            assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}
    rows = prepared(database, _INITIATIVE_WITH_OPEN, {"ref": ref})
    assert rows[0]["i_created_at"] == NOW and rows[0]["i_created_at"].tzinfo is not None
    assert [row["d_approver_id"] for row in rows] == ["URISK1", "URISK2"]
    current = {
        row["question_id"]: row["value"] for row in prepared(database, _CURRENT_ANSWERS, {"p_owner": owner})
    }
    assert current == {"q0": ["a", "b"], "q1": 12.5, "q2": None}


def test_the_repositories_read_through_them(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 10, "U1", NOW))
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 20, "U2", NOW + timedelta(hours=1)))
        uow.roles.set_holders("risk", ["URISK1"])
        uow.commit()
    with database.uow(read_only=True) as uow:
        initiative, open_review = uow.reviews.initiative_with_open_review(ref)
        current = uow.answers.current(ref)
        holders = uow.roles.holders()
        state = uow.reviews.initiative_state(ref)
        with pytest.raises(UnknownInitiative):
            uow.reviews.initiative_with_open_review("AI-0404")
        with pytest.raises(UnknownInitiative):
            uow.reviews.initiative_state("AI-0404")
    assert state == InitiativeState(initiative, None, current, holders)
    assert (initiative.ref, open_review) == (ref, None)
    assert current["budget"].value == 20 and current["budget"].author_id == "U2"
    assert current["budget"].answered_at == NOW + timedelta(hours=1)
    assert holders == {"risk": ["URISK1"]}


def test_writes_run_in_the_callers_transaction_with_or_without_returning(database: Database) -> None:
    add_initiative(database)  # numbered by the "initiative_ref" counter
    counter = select(counters.c.value).where(counters.c.name == "initiative_ref")
    with database.uow() as uow:
        before = uow.session.connection().execute(counter).scalar_one()
    bump = Prepared(
        update(counters)
        .where(counters.c.name == "initiative_ref")  # a value the statement carries
        .values(value=counters.c.value + bindparam("p_count"))
    )
    with database.uow() as uow:
        assert bump.all(uow.session.connection(), {"p_count": 5}) == []  # no RETURNING, no rows
        # Not committed: the unit of work rolls it back.
    with database.uow() as uow:
        assert uow.session.connection().execute(counter).scalar_one() == before
        assert bump.all(uow.session.connection(), {"p_count": 5}) == []
        uow.commit()
    with database.uow(read_only=True) as uow:
        assert uow.session.connection().execute(counter).scalar_one() == before + 5


def test_a_statement_run_for_several_parameter_sets_sees_the_earlier_ones_writes(database: Database) -> None:
    """``all_many`` (one round trip on PostgreSQL): each set gets its own rows back, in order,
    and each statement sees what the ones before it wrote in the transaction."""
    ref = add_initiative(database).ref
    with database.uow(read_only=True) as uow:
        owner = initiative_id(uow.session, ref)
    append = _append_answer(database.engine.dialect.name)
    version = {"p_initiative_id": owner, "p_gate_id": "intake", "p_author_id": "U1", "p_answered_at": NOW}
    with database.uow() as uow:
        results = append.all_many(
            uow.session.connection(),
            [
                {**version, "p_question_id": "budget", "p_value": 10},
                {**version, "p_question_id": "team", "p_value": "four people"},
                {**version, "p_question_id": "budget", "p_value": 20},  # numbered after the first
            ],
        )
        uow.commit()
    assert [len(rows) for rows in results] == [1, 1, 1]
    assert len({rows[0]["id"] for rows in results}) == 3
    with database.uow(read_only=True) as uow:
        history = [(v.question_id, v.value) for v in uow.answers.history(ref)]
        current = uow.answers.current(ref)
    assert sorted(history) == [("budget", 10), ("budget", 20), ("team", "four people")]
    assert (current["budget"].value, current["team"].value) == (20, "four people")


def test_a_driver_error_leaves_as_sqlalchemy_would_raise_it(database: Database) -> None:
    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    read = Prepared(select(missing.c.id))
    with database.uow(read_only=True) as uow, pytest.raises(DBAPIError) as raised:
        read.all(uow.session.connection())
    assert "no_such_table" in str(raised.value)
    assert raised.value.connection_invalidated is False
    # The connection is still good for the next unit of work.
    assert prepared(database, HOLDERS, {}) == []


def reads_of(ref: str) -> list[tuple[Prepared, dict[str, Any]]]:
    return [(_INITIATIVE_WITH_OPEN, {"ref": ref}), (CURRENT_ANSWERS_OF_REF, {"p_ref": ref}), (HOLDERS, {})]


def test_reads_sent_together_give_what_each_gives_alone(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 10, "U1", NOW))
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 20, "U2", NOW + timedelta(hours=1)))
        uow.roles.set_holders("risk", ["URISK1", "URISK2"])
        uow.reviews.add(a_review(ref))
        uow.commit()
    for uow in (database.uow(read_only=True), database.uow()):  # autocommit reads, and in a transaction
        with uow:
            connection = uow.session.connection()
            alone = [read.all(connection, params) for read, params in reads_of(ref)]
            assert together(connection, reads_of(ref)) == alone
            assert [len(rows) for rows in alone] == [1, 1, 2]
            assert together(connection, reads_of("AI-9999"))[:2] == [[], []]
            assert together(connection, []) == []


def test_a_driver_error_in_reads_sent_together_leaves_as_sqlalchemy_would_raise_it(
    database: Database,
) -> None:
    missing = Prepared(select(Table("no_such_table", MetaData(), Column("id", Integer)).c.id))
    with database.uow(read_only=True) as uow, pytest.raises(DBAPIError) as raised:
        together(uow.session.connection(), [(HOLDERS, {}), (missing, {}), (HOLDERS, {})])
    assert "no_such_table" in str(raised.value)
    assert raised.value.connection_invalidated is False
    assert prepared(database, HOLDERS, {}) == []  # and the pool's connection still works


def test_on_postgresql_reads_sent_together_take_one_round_trip(
    postgres_database: Database, tmp_path: Path
) -> None:
    """Counted in libpq's own protocol trace: each round trip ends with one Sync message."""
    ref = add_initiative(postgres_database).ref
    trace = tmp_path / "libpq.trace"

    def syncs_while(read: Callable[[Any], object]) -> int:
        with postgres_database.uow(read_only=True) as uow:
            connection = uow.session.connection()
            pgconn = connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
            with trace.open("w") as out:
                pgconn.trace(out.fileno())
                try:
                    read(connection)
                finally:
                    pgconn.untrace()
        sent = [line.split("\t") for line in trace.read_text().splitlines()]
        return sum(fields[1:2] == ["F"] and fields[3:4] == ["Sync"] for fields in sent)

    for _ in range(6):  # past psycopg's prepare threshold: the statements are prepared by now
        syncs_while(lambda connection: [r.all(connection, p) for r, p in reads_of(ref)])
    assert syncs_while(lambda connection: [r.all(connection, p) for r, p in reads_of(ref)]) == 3
    assert syncs_while(lambda connection: together(connection, reads_of(ref))) == 1
    # And the server keeps them prepared, as when they are sent one by one.
    with postgres_database.uow(read_only=True) as uow:
        connection = uow.session.connection()
        for _ in range(6):
            together(connection, reads_of(ref))
        prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
    ours = ("SELECT reviews.", "SELECT answer_versions.", "SELECT role_holders.")
    assert len([statement for statement in prepared if statement.startswith(ours)]) == 3
