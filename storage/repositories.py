"""Initiatives, answers, evidence links and role holders in SQL.

Each repository works inside the session of its unit of work and never commits. Races are
settled by the database: a row version on initiatives, a unique version number per answered
question, a unique (role, user) pair, and on PostgreSQL a lock per role that makes replacements
of its holders take turns. A lost race surfaces as ``ConcurrentUpdate``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    column,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from gates.errors import ConcurrentUpdate, UnknownInitiative
from gates.lifecycle import Initiative, Status, format_ref
from gates.ports import AnswerVersion, EvidenceLink, InitiativeFilter
from storage.dialect import one_of
from storage.prepared import Prepared
from storage.sqlerrors import guarded, is_unique_violation
from storage.tables import (
    INITIATIVE_REF_COUNTER,
    answer_versions,
    counters,
    evidence_links,
    initiatives,
    role_holders,
)

# Each failed try means another writer's version of the same answer committed first, so this
# bounds how many people may answer one question at the same instant, not how long we wait.
_ANSWER_RETRIES = 50


def initiative_id(session: Session, ref: str) -> int:
    """The row id behind ``ref``; raises UnknownInitiative."""
    found = session.connection().execute(_ID_OF, {"p_ref": ref}).scalar()
    if found is None:
        raise UnknownInitiative(ref)
    return int(found)


def bump_counter(session: Session, name: str) -> int:
    """Add one to a named counter and return the new value, atomically.

    The UPDATE takes the row's write lock, so concurrent callers queue and each sees its own
    value; the row is created (at 1) the first time it is needed.
    """
    bumped = session.execute(
        update(counters)
        .where(counters.c.name == name)
        .values(value=counters.c.value + 1)
        .returning(counters.c.value)
    ).scalar()
    if bumped is not None:
        return int(bumped)
    try:
        with session.begin_nested():
            session.execute(insert(counters).values(name=name, value=1))
    except IntegrityError as error:
        if not is_unique_violation(error):
            raise
        return bump_counter(session, name)
    return 1


class SqlInitiativeRepository:
    def __init__(self, session: Session, ref_prefix: str = "AI", ids: dict[str, int] | None = None) -> None:
        self._session = session
        self._ref_prefix = ref_prefix
        self._ids = {} if ids is None else ids

    @guarded
    def add(self, initiative: Initiative) -> None:
        """Insert a new initiative; a ref already in use raises ConcurrentUpdate."""
        try:
            with self._session.begin_nested():
                self._session.execute(insert(initiatives).values(**_initiative_values(initiative), version=0))
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            raise ConcurrentUpdate(
                f"{initiative.ref} was registered by someone else at the same moment"
            ) from None
        initiative.version = 0

    @guarded
    def get(self, ref: str) -> Initiative:
        row = self._session.connection().execute(_GET_INITIATIVE, {"p_ref": ref}).mappings().first()
        if row is None:
            raise UnknownInitiative(ref)
        self._ids[ref] = row["id"]
        return initiative_from_row(row)

    @guarded
    def get_many(self, refs: Iterable[str]) -> dict[str, Initiative]:
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        rows = self._session.connection().execute(select(initiatives).where(initiatives.c.ref.in_(wanted)))
        found = {}
        for row in rows.mappings():
            self._ids[row["ref"]] = row["id"]  # as ``get`` does
            found[row["ref"]] = initiative_from_row(row)
        return found

    @guarded
    def save(self, initiative: Initiative) -> None:
        """Write the initiative back if nobody changed it since it was loaded.

        Raises:
            ConcurrentUpdate: its row version moved on (someone else saved it meanwhile).
            UnknownInitiative: it does not exist.
        """
        result = self._session.connection().execute(
            _SAVE_INITIATIVE,
            {**_initiative_values(initiative), "p_ref": initiative.ref, "p_version": initiative.version},
        )
        if result.rowcount != 1:
            initiative_id(self._session, initiative.ref)
            raise ConcurrentUpdate(f"{initiative.ref} was changed by someone else at the same moment")
        initiative.version += 1

    @guarded
    def touch(self, refs: Sequence[str]) -> None:
        """Move on the row version of each of ``refs`` that exists, holding its row lock until
        commit (``gates.ports.InitiativeRepository.touch``).

        A questionnaire page checks that its gate is not under review and the initiative not
        retired, then writes answers but not the initiative's row, which is all a submission or
        a retirement checks (its version). On PostgreSQL at READ COMMITTED the two then never
        met: a review opened on "no personal data", sponsor only, while a page saving "yes" was
        on its way into the gate it froze. Touched first, the row makes the later of the two
        wait for the earlier: a page reads the review or the retirement once committed, and a
        submission or retirement that read before the page fails its save and is tried again.
        """
        touch_initiatives(self._session.connection(), refs, self._ids)

    @guarded
    def next_ref(self) -> str:
        """A ref never handed out before (the counter rolls back with the transaction)."""
        return format_ref(bump_counter(self._session, INITIATIVE_REF_COUNTER), self._ref_prefix)

    @guarded
    def list(self, query: InitiativeFilter) -> Sequence[Initiative]:
        statement = select(initiatives).where(*_matching(query)).order_by(initiatives.c.id)
        statement = statement.limit(query.limit).offset(query.offset)
        return [initiative_from_row(row) for row in self._session.execute(statement).mappings()]

    @guarded
    def count(self, query: InitiativeFilter) -> int:
        """How many initiatives ``list`` finds when its limit and offset are left aside: App Home
        shows the true count and pages through all of them while reading one page."""
        statement = select(func.count()).select_from(initiatives).where(*_matching(query))
        return int(self._session.execute(statement).scalar_one())


class SqlAnswerRepository:
    def __init__(self, session: Session, ids: dict[str, int] | None = None) -> None:
        self._session = session
        self._ids = {} if ids is None else ids

    def _id_of(self, ref: str) -> int:
        """``initiative_id``, asked once per unit of work (a row's id never changes)."""
        found = self._ids.get(ref)
        if found is None:
            found = self._ids[ref] = initiative_id(self._session, ref)
        return found

    def append(self, answer: AnswerVersion) -> None:
        """Record a new version of one answer; earlier versions are never touched.

        The version number is the next one for (initiative, question); two people answering
        the same question at once both get recorded, one after the other.
        """
        self.append_many([answer])

    @guarded
    def append_many(self, answers: Sequence[AnswerVersion]) -> None:
        """``append`` of each, in order; on PostgreSQL in one statement (``_append_answers``)."""
        connection = self._session.connection()
        append: _AppendAnswers | _AppendOneByOne = (
            _AppendAnswers(_append_answers())
            if connection.dialect.name == "postgresql"
            else _AppendOneByOne(_append_answer(connection.dialect.name))
        )
        # A question answered twice here (two pages of one initiative in a batch) is recorded
        # in two rounds, so that a lost race on the first never puts it after the second.
        rounds: list[list[dict[str, Any]]] = []
        seen: Counter[tuple[int, str]] = Counter()
        for answer in answers:
            owner = self._id_of(answer.initiative_ref)
            key = (owner, answer.question_id)
            if seen[key] == len(rounds):
                rounds.append([])
            rounds[seen[key]].append(
                {
                    "p_initiative_id": owner,
                    "p_gate_id": answer.gate_id,
                    "p_question_id": answer.question_id,
                    "p_value": answer.value,
                    "p_author_id": answer.author_id,
                    "p_answered_at": answer.answered_at,
                }
            )
            seen[key] += 1
        for todo in rounds:
            for _ in range(_ANSWER_RETRIES):
                # The INSERT numbers the version itself; if another writer took that number
                # first it inserts nothing (ON CONFLICT DO NOTHING keeps the transaction usable,
                # no savepoint needed) and the next try, with a fresh snapshot, takes the next.
                todo = append.unwritten(connection, todo)
                if not todo:
                    break
            else:
                raise ConcurrentUpdate(
                    f"{todo[0]['p_question_id']} was answered by others at the same moment"
                )

    @guarded
    def current(self, ref: str) -> dict[str, AnswerVersion]:
        """The latest version of every answered question, keyed by question id."""
        owner = self._id_of(ref)
        return answers_by_question(ref, _CURRENT_ANSWERS.all(self._session.connection(), {"p_owner": owner}))

    @guarded
    def current_many(self, refs: Sequence[str]) -> dict[str, dict[str, AnswerVersion]]:
        """``current`` of several initiatives in one statement."""
        owners = {self._id_of(ref): ref for ref in refs}
        found: dict[str, dict[str, AnswerVersion]] = {ref: {} for ref in refs}
        if not owners:
            return found
        connection = self._session.connection()
        rows = current_answers_of_many(connection.dialect.name).all(connection, {"p_owners": list(owners)})
        for row in rows:
            ref = owners[row["initiative_id"]]
            found[ref][row["question_id"]] = _answer(ref, row)
        return found

    @guarded
    def as_of(self, ref: str, moment: datetime) -> dict[str, AnswerVersion]:
        """The latest version of every question answered at or before ``moment``, keyed by
        question id (``current`` then)."""
        owner = self._id_of(ref)
        rows = self._session.execute(
            select(answer_versions)
            .where(answer_versions.c.initiative_id == owner, answer_versions.c.answered_at <= moment)
            .order_by(answer_versions.c.version)
        ).mappings()
        # Versions ascend per question, so each question's highest version is the one left.
        return {row["question_id"]: _answer(ref, row) for row in rows}

    @guarded
    def history(self, ref: str) -> Sequence[AnswerVersion]:
        """Every version of every answer, question by question, each question's oldest first."""
        owner = initiative_id(self._session, ref)
        # By version, as ``current`` and ``as_of`` go, not by ``answered_at``: two saves that
        # commit in the opposite order to their timestamps (two processes, clock skew) would
        # otherwise end a question's history on a version that is not its current one.
        rows = self._session.execute(
            select(answer_versions)
            .where(answer_versions.c.initiative_id == owner)
            .order_by(answer_versions.c.question_id, answer_versions.c.version)
        ).mappings()
        return [_answer(ref, row) for row in rows]

    @guarded
    def add_link(self, link: EvidenceLink) -> None:
        owner = initiative_id(self._session, link.initiative_ref)
        self._session.execute(
            insert(evidence_links).values(
                initiative_id=owner,
                gate_id=link.gate_id,
                url=link.url,
                title=link.title,
                author_id=link.author_id,
                added_at=link.added_at,
            )
        )

    @guarded
    def links(self, ref: str, gate_id: str | None = None) -> Sequence[EvidenceLink]:
        owner = initiative_id(self._session, ref)
        statement = select(evidence_links).where(evidence_links.c.initiative_id == owner)
        if gate_id is not None:
            statement = statement.where(evidence_links.c.gate_id == gate_id)
        rows = self._session.execute(
            statement.order_by(evidence_links.c.added_at, evidence_links.c.id)
        ).mappings()
        return [
            EvidenceLink(ref, row["gate_id"], row["url"], row["title"], row["author_id"], row["added_at"])
            for row in rows
        ]


class SqlRoleRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    @guarded
    def holders(self) -> dict[str, list[str]]:
        """role -> user ids, in the order they were set."""
        return holders_by_role(HOLDERS.all(self._session.connection()))

    @guarded
    def roles_of(self, user_id: str) -> set[str]:
        rows = self._session.connection().execute(_ROLES_OF, {"p_user": user_id})
        return {role for (role,) in rows}

    @guarded
    def set_holders(self, role: str, user_ids: Sequence[str]) -> list[str]:
        """Replace the holders of ``role`` (an empty list removes them all); returns the holders
        replaced.

        Replacements of one role take turns: on PostgreSQL at READ COMMITTED, a second DELETE
        does not see the first replacement's uncommitted INSERT, so both sets of holders would
        stay. The second waits for the first to commit and then replaces its holders. (SQLite
        already lets one writer in at a time.) The holders replaced are read once it is this
        replacement's turn, so they are the first replacement's, not those before it.
        """
        connection = self._session.connection()
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends; keyed on the role, so other roles never wait.
            connection.execute(_LOCK_ROLE, {"p_key": _role_lock_key(role)})
        former = self.holders().get(role, [])
        self._session.execute(delete(role_holders).where(role_holders.c.role == role))
        unique = list(dict.fromkeys(user_id.strip() for user_id in user_ids if user_id.strip()))
        if not unique:
            return former
        try:
            with self._session.begin_nested():
                self._session.execute(insert(role_holders), [{"role": role, "user_id": u} for u in unique])
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            raise ConcurrentUpdate(f"The holders of {role} were changed at the same moment") from None
        return former


_LOCK_ROLE = select(func.pg_advisory_xact_lock(bindparam("p_key", type_=BigInteger)))


def _role_lock_key(role: str) -> int:
    """The advisory lock key of ``role``'s holders: a stable signed 64-bit number (PostgreSQL's
    ``hashtext`` is undocumented and may change between versions)."""
    digest = hashlib.sha256(f"shepherd.role_holders:{role}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Built once: the statements of every click and questionnaire save skip construction and go
# straight to SQLAlchemy's compiled cache.
_ID_OF = select(initiatives.c.id).where(initiatives.c.ref == bindparam("p_ref"))
_GET_INITIATIVE = select(initiatives).where(initiatives.c.ref == bindparam("p_ref"))
_SAVE_INITIATIVE = (
    update(initiatives)
    .where(initiatives.c.ref == bindparam("p_ref"), initiatives.c.version == bindparam("p_version"))
    .values(version=initiatives.c.version + 1)
)
_TOUCH_INITIATIVE = Prepared(
    update(initiatives)
    .where(initiatives.c.ref == bindparam("p_ref"))
    .values(version=initiatives.c.version + 1)
    .returning(initiatives.c.id)
)


def touch_initiatives(connection: Connection, refs: Sequence[str], ids: dict[str, int]) -> None:
    """``InitiativeRepository.touch`` of ``refs``, noting each found initiative's row id in
    ``ids``. In ref order: writers touching the same initiatives lock them in one order, so one
    waits for the other instead of deadlocking."""
    wanted = sorted(set(refs))
    if not wanted:
        return
    if connection.dialect.name == "postgresql":
        for row in touch_initiatives_statement().all(connection, {"p_refs": wanted}):
            ids[row["ref"]] = row["id"]
        return
    # SQLite: one statement per initiative (a statement costs no round trip there).
    touched = _TOUCH_INITIATIVE.all_many(connection, [{"p_ref": ref} for ref in wanted])
    for ref, rows in zip(wanted, touched, strict=True):
        if rows:
            ids[ref] = rows[0]["id"]


@cache
def touch_initiatives_statement() -> Prepared:
    """``_TOUCH_INITIATIVE`` of several refs (``p_refs``, a list) in one PostgreSQL statement.

    One UPDATE per initiative, even pipelined, cost a batch of 25 questionnaire pages 25
    statements sent and polled for one by one. Here the rows are locked first, in ref order
    (``ORDER BY ... FOR UPDATE`` in a CTE, which PostgreSQL never folds into the UPDATE: the
    plan is LockRows over Sort), then moved on together, so writers still lock shared
    initiatives in one order.
    """
    locked = (
        select(initiatives.c.id)
        .where(one_of(initiatives.c.ref, "p_refs", "postgresql"))
        .order_by(initiatives.c.ref)
        .with_for_update()
        .cte("locked")
    )
    return Prepared(
        update(initiatives)
        .where(initiatives.c.id == locked.c.id)
        .values(version=initiatives.c.version + 1)
        .returning(initiatives.c.id, initiatives.c.ref)
    )


# Read on every status reply and Submit for review (``storage.prepared``).
HOLDERS = Prepared(
    select(role_holders.c.role, role_holders.c.user_id).order_by(role_holders.c.role, role_holders.c.id)
)
_ROLES_OF = select(role_holders.c.role).where(role_holders.c.user_id == bindparam("p_user"))


# The newest version of each question, found in one pass over the initiative's entries of the
# (initiative_id, question_id, version) index, then each of those rows fetched. A correlated
# "version = (SELECT max(version) ...)" did an index probe per stored version instead: its cost
# grew with the history (on PostgreSQL, 32 ms against 1 ms for 2,000 versions), and every status
# reply, questionnaire page and card redraw reads the current answers (``storage.prepared``).
def _current_answers(owner: ColumnElement[Any]) -> Prepared:
    latest = (
        select(answer_versions.c.question_id, func.max(answer_versions.c.version).label("version"))
        .where(answer_versions.c.initiative_id == owner)
        .group_by(answer_versions.c.question_id)
        .subquery("latest")
    )
    return Prepared(
        select(answer_versions)
        .join(
            latest,
            and_(
                answer_versions.c.question_id == latest.c.question_id,
                answer_versions.c.version == latest.c.version,
            ),
        )
        .where(answer_versions.c.initiative_id == owner)
    )


_CURRENT_ANSWERS = _current_answers(bindparam("p_owner"))
# The same by ref (``p_ref``), for a read sent together with the initiative's, before its id is known.
CURRENT_ANSWERS_OF_REF = _current_answers(
    select(initiatives.c.id).where(initiatives.c.ref == bindparam("p_ref")).scalar_subquery()
)


@cache
def current_answers_of_many(dialect: str) -> Prepared:
    """``_CURRENT_ANSWERS`` of several initiatives (``p_owners``, a list of row ids).

    Not one builder for both: grouping the single initiative's query by ``initiative_id`` too
    makes PostgreSQL estimate one group per stored version (95 against 4 for a 97-version
    history) and hash-join the whole history twice, where the query above probes the index once
    per question (checked with EXPLAIN).

    The outer rows are filtered to the same initiatives as well, though the join implies it:
    without that, PostgreSQL joined the latest versions against a sequential scan of the whole
    table, every history of every initiative, once per batch of pages (EXPLAIN ANALYZE at
    377,000 stored versions: 47.8 ms; with the filter, 1.9 ms, reading only these initiatives'
    rows through the index)."""
    return _current_answers_of(one_of(answer_versions.c.initiative_id, "p_owners", dialect))


@cache
def current_answers_of_refs() -> Prepared:
    """``current_answers_of_many`` by ref (``p_refs``, a list), on PostgreSQL: for a read sent
    together with the touch that finds the initiatives' ids (``SqlReviewRepository.touch_and_read``).

    The ids go in as an array built first (``= ANY(ARRAY(SELECT ...))``, an InitPlan), so the
    answers are found through the index as by ids. With ``IN (SELECT ...)`` PostgreSQL
    hash-joined a sequential scan of every stored version instead (EXPLAIN ANALYZE, 25
    initiatives among 1,000 with 50,000 versions: 14.7 ms; by ids 1.7 ms; this way 2.6 ms)."""
    of_refs = select(initiatives.c.id).where(one_of(initiatives.c.ref, "p_refs", "postgresql"))
    return _current_answers_of(answer_versions.c.initiative_id == any_(func.ARRAY(of_refs.scalar_subquery())))


def _current_answers_of(owners: ColumnElement[bool]) -> Prepared:
    latest = (
        select(
            answer_versions.c.initiative_id,
            answer_versions.c.question_id,
            func.max(answer_versions.c.version).label("version"),
        )
        .where(owners)
        .group_by(answer_versions.c.initiative_id, answer_versions.c.question_id)
        .subquery("latest")
    )
    return Prepared(
        select(answer_versions)
        .join(
            latest,
            and_(
                answer_versions.c.initiative_id == latest.c.initiative_id,
                answer_versions.c.question_id == latest.c.question_id,
                answer_versions.c.version == latest.c.version,
            ),
        )
        .where(owners)
    )


class _AppendAnswers:
    """The PostgreSQL statement of ``_append_answers`` run on one round of ``append_many``."""

    def __init__(self, statement: Prepared) -> None:
        self._statement = statement

    def unwritten(self, connection: Connection, todo: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``todo`` (one row per (initiative, question)); returns those another writer's
        version number got in the way of."""
        columns = ("p_initiative_id", "p_gate_id", "p_question_id", "p_author_id", "p_answered_at")
        arrays: dict[str, list[Any]] = {f"{name}s": [params[name] for params in todo] for name in columns}
        # As the JSON column's own bind would send it; None is SQL NULL (``none_as_null``).
        arrays["p_values"] = [
            None if params["p_value"] is None else json.dumps(params["p_value"]) for params in todo
        ]
        inserted = {
            (row["initiative_id"], row["question_id"]) for row in self._statement.all(connection, arrays)
        }
        return [
            params for params in todo if (params["p_initiative_id"], params["p_question_id"]) not in inserted
        ]


@cache
def _append_answers() -> Prepared:
    """``_append_answer`` of many answers in one PostgreSQL statement: the rows come in as
    arrays (``unnest``, one statement text whatever their number) and are inserted in their
    order. One INSERT per answer, even pipelined, cost a batch of questionnaire pages a
    statement sent and polled for per answer. Each row's version is numbered from the
    statement's snapshot; a number another writer took meanwhile is skipped (``ON CONFLICT DO
    NOTHING``) and the row is left out of RETURNING, for the caller to try again."""
    c = answer_versions.c
    given = (
        func.unnest(
            bindparam("p_initiative_ids", type_=ARRAY(c.initiative_id.type)),
            bindparam("p_gate_ids", type_=ARRAY(c.gate_id.type)),
            bindparam("p_question_ids", type_=ARRAY(c.question_id.type)),
            bindparam("p_values", type_=ARRAY(Text)),
            bindparam("p_author_ids", type_=ARRAY(c.author_id.type)),
            bindparam("p_answered_ats", type_=ARRAY(c.answered_at.type)),
        )
        .table_valued(
            column("initiative_id", c.initiative_id.type),
            column("gate_id", c.gate_id.type),
            column("question_id", c.question_id.type),
            column("value", Text),
            column("author_id", c.author_id.type),
            column("answered_at", c.answered_at.type),
        )
        .render_derived(name="given")
    )
    prior = answer_versions.alias("prior")
    version = (
        select(func.coalesce(func.max(prior.c.version), 0) + 1)
        .where(prior.c.initiative_id == given.c.initiative_id, prior.c.question_id == given.c.question_id)
        .scalar_subquery()
    )
    rows = select(
        given.c.initiative_id,
        given.c.gate_id,
        given.c.question_id,
        version,
        cast(given.c.value, c.value.type),
        given.c.author_id,
        given.c.answered_at,
    )
    names = ["initiative_id", "gate_id", "question_id", "version", "value", "author_id", "answered_at"]
    return Prepared(
        pg_insert(answer_versions)
        .from_select(names, rows)
        .on_conflict_do_nothing()
        .returning(c.initiative_id, c.question_id)
    )


class _AppendOneByOne:
    """``_append_answer`` run once per row of a round (SQLite, where a statement costs no round
    trip)."""

    def __init__(self, statement: Prepared) -> None:
        self._statement = statement

    def unwritten(self, connection: Connection, todo: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inserted = self._statement.all_many(connection, todo)
        return [params for params, rows in zip(todo, inserted, strict=True) if not rows]


@cache
def _append_answer(dialect: str) -> Prepared:
    """``INSERT ... SELECT`` of the next version of one answer, ``ON CONFLICT DO NOTHING
    RETURNING id``: one statement records an answer."""
    columns = answer_versions.c
    next_version = select(
        bindparam("p_initiative_id", type_=columns.initiative_id.type),
        bindparam("p_gate_id", type_=columns.gate_id.type),
        bindparam("p_question_id", type_=columns.question_id.type),
        func.coalesce(func.max(columns.version), 0) + 1,
        bindparam("p_value", type_=columns.value.type),
        bindparam("p_author_id", type_=columns.author_id.type),
        bindparam("p_answered_at", type_=columns.answered_at.type),
    ).where(  # a WHERE clause also keeps SQLite's parser from reading ON CONFLICT as a join
        columns.initiative_id == bindparam("p_initiative_id"),
        columns.question_id == bindparam("p_question_id"),
    )
    names = ["initiative_id", "gate_id", "question_id", "version", "value", "author_id", "answered_at"]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return Prepared(
            pg_insert(answer_versions)
            .from_select(names, next_version)
            .on_conflict_do_nothing()
            .returning(columns.id)
        )
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return Prepared(
            sqlite_insert(answer_versions)
            .from_select(names, next_version)
            .on_conflict_do_nothing()
            .returning(columns.id)
        )
    raise NotImplementedError(f"Shepherd supports SQLite and PostgreSQL, not {dialect}")


def _matching(query: InitiativeFilter) -> list[ColumnElement[bool]]:
    """The conditions of ``query`` (all must hold), its limit and offset aside."""
    conditions: list[ColumnElement[bool]] = []
    if query.stage is not None:
        conditions.append(initiatives.c.stage == query.stage)
    if query.status is not None:
        conditions.append(initiatives.c.status == Status(query.status).value)
    if query.owner_id is not None:
        conditions.append(initiatives.c.owner_id == query.owner_id)
    if query.involving is not None:
        conditions.append(
            or_(initiatives.c.owner_id == query.involving, initiatives.c.sponsor_id == query.involving)
        )
    if query.stalled_before is not None:
        # As is_stalled: only an active initiative is stalled (the STALLED marker agrees).
        conditions.append(initiatives.c.status == Status.ACTIVE.value)
        stalled = [
            and_(initiatives.c.stage == stage, initiatives.c.stage_entered_at < cutoff)
            for stage, cutoff in query.stalled_before.items()
        ]
        conditions.append(or_(*stalled) if stalled else false())
        if query.extended_past is not None:
            conditions.append(
                or_(
                    initiatives.c.extended_until.is_(None),
                    initiatives.c.extended_until < query.extended_past,
                )
            )
    return conditions


def _initiative_values(initiative: Initiative) -> dict[str, Any]:
    return {
        "ref": initiative.ref,
        "name": initiative.name,
        "owner_id": initiative.owner_id,
        "sponsor_id": initiative.sponsor_id,
        "stage": initiative.stage,
        "status": Status(initiative.status).value,
        "status_reason": initiative.status_reason,
        "created_at": initiative.created_at,
        "stage_entered_at": initiative.stage_entered_at,
        "updated_at": initiative.updated_at,
        "extended_until": initiative.extended_until,
    }


def initiative_from_row(row: Mapping[Any, Any]) -> Initiative:  # a RowMapping or a dict
    return Initiative(
        ref=row["ref"],
        name=row["name"],
        owner_id=row["owner_id"],
        stage=row["stage"],
        created_at=row["created_at"],
        sponsor_id=row["sponsor_id"],
        status=Status(row["status"]),
        stage_entered_at=row["stage_entered_at"],
        updated_at=row["updated_at"],
        status_reason=row["status_reason"],
        version=row["version"],
        extended_until=row["extended_until"],
    )


def answers_by_question(ref: str, rows: Iterable[Mapping[Any, Any]]) -> dict[str, AnswerVersion]:
    return {row["question_id"]: _answer(ref, row) for row in rows}


def holders_by_role(rows: Iterable[Mapping[Any, Any]]) -> dict[str, list[str]]:
    """role -> user ids, in the order they were set (``HOLDERS``' rows)."""
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["role"], []).append(row["user_id"])
    return found


def _answer(ref: str, row: Mapping[Any, Any]) -> AnswerVersion:
    return AnswerVersion(
        initiative_ref=ref,
        gate_id=row["gate_id"],
        question_id=row["question_id"],
        value=row["value"],
        author_id=row["author_id"],
        answered_at=row["answered_at"],
        version=row["version"],
    )
