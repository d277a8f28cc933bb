"""Reviews and their decisions in SQL, with "exactly once" enforced by the database.

- At most one open review per initiative: a partial unique index on ``reviews(initiative_id)
  WHERE status = 'open'``; the second of two simultaneous submissions gets ReviewAlreadyOpen.
- One decision per (review, approver): a unique constraint.
- A review's row version moves on with every recorded decision or status change, and ``save``
  is a conditional ``UPDATE ... WHERE version = :loaded AND status = :loaded``. Two approvers who
  each give "the last" approval from the same loaded state cannot both commit: the second gets
  ConcurrentUpdate, reloads, and then sees that its approval is the one that closes the review.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from gates.errors import ConcurrentUpdate, ReviewAlreadyOpen, UnknownInitiative, UnknownReview
from gates.lifecycle import Decision, DecisionKind, Initiative, Requirement, Review, ReviewStatus
from gates.ports import AnswerableState, InitiativeState
from storage.dialect import one_of
from storage.prepared import Prepared, together
from storage.repositories import (
    CURRENT_ANSWERS_OF_REF,
    HOLDERS,
    answers_by_question,
    current_answers_of_many,
    current_answers_of_refs,
    holders_by_role,
    initiative_from_row,
    initiative_id,
    touch_initiatives,
    touch_initiatives_statement,
)
from storage.sqlerrors import guarded, is_unique_violation
from storage.tables import decisions, initiatives, reviews


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What a review looked like when this unit of work read it."""

    version: int
    status: str
    approvers: frozenset[str]


class SqlReviewRepository:
    def __init__(self, session: Session, ids: dict[str, int] | None = None) -> None:
        self._session = session
        self._loaded: dict[int, _Loaded] = {}
        self._ids = {} if ids is None else ids  # shared with the unit of work's other repositories

    @guarded
    def add(self, review: Review) -> None:
        """Insert a new review and any decisions it already carries; sets ``review.id``.

        Raises:
            ReviewAlreadyOpen: the initiative already has an open review (perhaps opened by a
                simultaneous submission a moment ago).
            UnknownInitiative: no initiative with the review's ref.
        """
        owner = initiative_id(self._session, review.initiative_ref)
        try:
            with self._session.begin_nested():
                inserted = self._session.execute(
                    insert(reviews).values(initiative_id=owner, version=0, **_review_values(review))
                )
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            already = self.open_for(review.initiative_ref)
            raise ReviewAlreadyOpen(
                review.initiative_ref, already.gate_id if already else review.gate_id
            ) from None
        review.id = int(inserted.inserted_primary_key[0])  # type: ignore[attr-defined]
        self._insert_decisions([_decision_row(review.id, d) for d in review.decisions])
        self._remember(review, version=0)

    @guarded
    def get(self, review_id: int) -> Review:
        try:
            wanted = int(review_id)
        except (TypeError, ValueError):
            raise UnknownReview(review_id) from None
        found = self._load_joined(_GET, {"review_id": wanted})
        if not found:
            raise UnknownReview(review_id)
        return found[0]

    @guarded
    def get_many(self, review_ids: Iterable[int]) -> dict[int, Review]:
        """Two reads for any number of reviews (the worker's rounds of clicks), where ``get``
        costs one each; run on the driver (``storage.prepared``): through SQLAlchemy's execution
        and rows, these reads were a quarter of the worker's time per recorded decision."""
        wanted = sorted({int(i) for i in review_ids if str(i).isdigit()})
        if not wanted:
            return {}
        connection = self._session.connection()
        dialect = connection.dialect.name
        # Two reads, not one joined: a joined row repeats its review's columns for each decision,
        # and decoding them again per decision cost more than the second read.
        found = self._reviews_from(
            _reviews_of(dialect).all(connection, {"review_ids": wanted}),
            _decisions_of(dialect).all(connection, {"review_ids": wanted}),
        )
        return {review.id: review for review in found if review.id is not None}

    @guarded
    def open_for(self, ref: str) -> Review | None:
        found = self._load_joined(_OPEN_FOR, {"ref": ref})
        return found[0] if found else None

    @guarded
    def initiative_with_open_review(self, ref: str) -> tuple[Initiative, Review | None]:
        """The initiative and its open review (None if there is none), in one statement: a status
        reply or a questionnaire page needs both, and each statement costs a round trip.

        Raises:
            UnknownInitiative.
        """
        rows = _INITIATIVE_WITH_OPEN.all(self._session.connection(), {"ref": ref})
        if not rows:
            raise UnknownInitiative(ref)
        return self._with_open_review(ref, rows)

    @guarded
    def touch_and_read(self, refs: Sequence[str]) -> dict[str, AnswerableState]:
        """``gates.ports.ReviewRepository.touch_and_read``. On PostgreSQL the touch and both
        reads go to the server together (``storage.prepared.together``): one round trip where
        they took three, and the transaction's BEGIN rides with them. Under load a round trip
        costs far more than its statements: with 50 connections on 2 cores, the page writer
        spent about 16 ms of a 21 ms batch of 25 questionnaire pages waiting on its dozen round
        trips, and 5 ms running."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        connection = self._session.connection()
        dialect = connection.dialect.name
        if dialect == "postgresql":
            touched, rows, answer_rows = together(
                connection,
                [
                    (touch_initiatives_statement(), {"p_refs": wanted}),
                    (_initiatives_with_open(dialect), {"refs": wanted}),
                    (current_answers_of_refs(), {"p_refs": wanted}),
                ],
            )
            for row in touched:
                self._ids[row["ref"]] = row["id"]
        else:
            touch_initiatives(connection, wanted, self._ids)
            rows = _initiatives_with_open(dialect).all(connection, {"refs": wanted})
            owners = [self._ids[ref] for ref in wanted if ref in self._ids]
            answer_rows = (
                current_answers_of_many(dialect).all(connection, {"p_owners": owners}) if owners else []
            )
        by_ref: dict[str, list[Mapping[Any, Any]]] = {}
        for row in rows:
            by_ref.setdefault(row["i_ref"], []).append(row)
        refs_by_id = {found[0]["i_id"]: ref for ref, found in by_ref.items()}
        answers: dict[str, list[Mapping[Any, Any]]] = {ref: [] for ref in by_ref}
        for row in answer_rows:
            # Each statement reads its own snapshot: one registered between them is left out.
            ref = refs_by_id.get(row["initiative_id"])
            if ref is not None:
                answers[ref].append(row)
        return {
            ref: (*self._with_open_review(ref, found), answers_by_question(ref, answers[ref]))
            for ref, found in by_ref.items()
        }

    @guarded
    def initiative_state(self, ref: str) -> InitiativeState:
        """``initiative_with_open_review``, the current answers and the stored role holders: the
        three reads a status reply makes, sent together (``storage.prepared.together``). On
        PostgreSQL one round trip instead of three: in process, a status reply's reads went from
        686-824 to 492-516 µs of CPU and from 1.1-1.5 to 0.6-0.7 ms.

        Raises:
            UnknownInitiative.
        """
        found, answers, holders = together(
            self._session.connection(),
            [(_INITIATIVE_WITH_OPEN, {"ref": ref}), (CURRENT_ANSWERS_OF_REF, {"p_ref": ref}), (HOLDERS, {})],
        )
        if not found:
            raise UnknownInitiative(ref)
        initiative, review = self._with_open_review(ref, found)
        return InitiativeState(
            initiative, review, answers_by_question(ref, answers), holders_by_role(holders)
        )

    def _with_open_review(
        self, ref: str, rows: Sequence[Mapping[Any, Any]]
    ) -> tuple[Initiative, Review | None]:
        head = rows[0]
        self._ids[ref] = head["i_id"]
        initiative = initiative_from_row({name: head[f"i_{name}"] for name in _INITIATIVE_FIELDS})
        if head["id"] is None:  # the outer join found no open review
            return initiative, None
        return initiative, self._assemble(rows)[0]

    @guarded
    def for_initiative(self, ref: str) -> Sequence[Review]:
        """Every review of the initiative, oldest first."""
        initiative_id(self._session, ref)
        return self._load(
            _select_reviews().where(initiatives.c.ref == ref).order_by(reviews.c.submitted_at, reviews.c.id)
        )

    @guarded
    def pending_for(self, roles: Sequence[str]) -> Sequence[Review]:
        """Open reviews that still need an approval from any of ``roles``, oldest first."""
        wanted = set(roles)
        if not wanted:
            return []
        open_reviews = self._load(_select_reviews().where(_IS_OPEN).order_by(reviews.c.submitted_at))
        return [review for review in open_reviews if wanted & set(review.remaining())]

    @guarded
    def recently_decided_ids(self, person: str, limit: int) -> Sequence[int]:
        """The ids of the ``limit`` reviews of the initiatives ``person`` owns or sponsors (as
        App Home lists them) closed most recently after at least one decision (a review
        withdrawn before anyone decided is no decision), newest first: one query whatever the
        number of initiatives (App Home). Load them with ``get_many``."""
        decided = select(decisions.c.id).where(decisions.c.review_id == reviews.c.id).exists()
        statement = (
            select(reviews.c.id)
            .join(initiatives, initiatives.c.id == reviews.c.initiative_id)
            .where(
                or_(initiatives.c.owner_id == person, initiatives.c.sponsor_id == person),
                reviews.c.status != ReviewStatus.OPEN.value,
                decided,
            )
            .order_by(func.coalesce(reviews.c.closed_at, reviews.c.submitted_at).desc(), reviews.c.id.desc())
            .limit(limit)
        )
        return [int(review_id) for review_id in self._session.execute(statement).scalars()]

    @guarded
    def all_reviews(self) -> Sequence[Review]:
        """Every review with its decisions, oldest first: two queries whatever the count (no
        ``IN`` list, which would hit the databases' bound-parameter limits on a large portfolio)."""
        rows = list(
            self._session.execute(_select_reviews().order_by(reviews.c.submitted_at, reviews.c.id)).mappings()
        )
        by_review: dict[int, list[Decision]] = {row["id"]: [] for row in rows}
        for d in self._session.execute(
            select(decisions).order_by(decisions.c.decided_at, decisions.c.id)
        ).mappings():
            if d["review_id"] in by_review:
                by_review[d["review_id"]].append(_decision(d))
        return [_review(row, by_review[row["id"]]) for row in rows]

    def save(self, review: Review) -> None:
        """Persist decisions added since the review was loaded and its status.

        Raises:
            ConcurrentUpdate: the review changed since it was loaded (another decision, a
                withdrawal): nothing was written; reload and decide again.
        """
        self.save_many([review])

    @guarded
    def save_many(self, changed: Sequence[Review]) -> None:
        """``save`` of each review, in two statements whatever their number: a worker's round of
        clicks touches a review per click, and a statement each cost it a quarter of its time.

        Raises:
            ConcurrentUpdate: one of them changed since it was loaded; the caller's transaction
                must end, as nothing of it can be kept.
        """
        updates: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        saved: list[Review] = []
        for review in changed:
            if review.id is None:
                raise ValueError("save() needs a review that was added or loaded in this unit of work")
            loaded = self._loaded.get(review.id)
            if loaded is None:
                raise ValueError(
                    f"Review {review.id} was not loaded in this unit of work; load it before saving"
                )
            new = [d for d in review.decisions if d.approver_id not in loaded.approvers]
            status = ReviewStatus(review.status).value
            if not new and status == loaded.status:
                continue  # a repeated click: nothing to record
            updates.append(
                {
                    "p_id": review.id,
                    "p_version": loaded.version,
                    "p_status": loaded.status,
                    "p_new_status": status,
                    "p_closed_at": review.closed_at,
                    "p_exception_reason": review.exception_reason,
                    "p_tier": review.tier,
                }
            )
            rows.extend(_decision_row(review.id, d) for d in new)
            saved.append(review)
        if not updates:
            return
        # Both drivers report the rows an executemany changed in all (sqlite3; psycopg since 3.1).
        result = self._session.connection().execute(_SAVE, updates)
        if result.rowcount != len(updates):
            raise ConcurrentUpdate("Someone else decided on this review at the same moment")
        self._insert_decisions(rows)
        for review in saved:
            assert review.id is not None
            self._remember(review, version=self._loaded[review.id].version + 1)

    # -- internals --------------------------------------------------------------------------

    def _insert_decisions(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        # No savepoint: a violation here always ends the unit of work (the caller reloads and
        # retries in a fresh transaction), so there is nothing in this transaction to keep.
        try:
            self._session.connection().execute(_INSERT_DECISION, rows)
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            raise ConcurrentUpdate("That decision was already recorded a moment ago") from None

    def _load(self, statement: Select[Any]) -> list[Review]:
        rows = list(self._session.execute(statement).mappings())
        if not rows:
            return []
        decided = self._session.execute(
            select(decisions)
            .where(decisions.c.review_id.in_([row["id"] for row in rows]))
            .order_by(decisions.c.decided_at, decisions.c.id)
        ).mappings()
        return self._reviews_from(rows, decided)

    def _reviews_from(
        self, rows: Sequence[Mapping[Any, Any]], decided: Iterable[Mapping[Any, Any]]
    ) -> list[Review]:
        """Reviews from their rows (review columns and ``ref``) and their decisions' rows, in
        the order each review's decisions were made."""
        by_review: dict[int, list[Decision]] = {row["id"]: [] for row in rows}
        for d in decided:
            by_review[d["review_id"]].append(_decision(d))
        found = []
        for row in rows:
            review = _review(row, by_review[row["id"]])
            self._remember(review, version=row["version"])
            found.append(review)
        return found

    def _load_joined(self, statement: Select[Any], params: dict[str, Any]) -> list[Review]:
        """Reviews and their decisions from one statement built by ``_with_decisions``."""
        return self._assemble(self._session.connection().execute(statement, params).mappings().all())

    def _assemble(self, rows: Sequence[Mapping[Any, Any]]) -> list[Review]:
        """Reviews from rows of review columns, ``ref`` and ``d_*`` decision columns (NULL when
        the review has none), ordered by review."""
        heads: dict[int, Mapping[Any, Any]] = {}
        by_review: dict[int, list[Decision]] = {}
        for row in rows:
            review_id = row["id"]
            if review_id not in heads:
                heads[review_id] = row
                by_review[review_id] = []
            if row["d_id"] is not None:
                by_review[review_id].append(_decision(row, prefix="d_"))
        found = []
        for review_id, head in heads.items():
            review = _review(head, by_review[review_id])
            self._remember(review, version=head["version"])
            found.append(review)
        return found

    def _remember(self, review: Review, version: int) -> None:
        assert review.id is not None
        self._loaded[review.id] = _Loaded(
            version=version,
            status=ReviewStatus(review.status).value,
            approvers=frozenset(d.approver_id for d in review.decisions),
        )


def _decision_row(review_id: int, d: Decision) -> dict[str, Any]:
    return {
        "review_id": review_id,
        "approver_id": d.approver_id,
        "kind": DecisionKind(d.kind).value,
        "role": d.role,
        "reason": d.reason,
        "decided_at": d.decided_at,
        "roles": " ".join(d.roles) or None,
    }


def _decision(row: Mapping[Any, Any], prefix: str = "") -> Decision:
    """A decision from its row (``prefix``: its columns' prefix in a joined row)."""
    roles = row[f"{prefix}roles"]
    return Decision(
        row[f"{prefix}approver_id"],
        DecisionKind(row[f"{prefix}kind"]),
        row[f"{prefix}role"],
        row[f"{prefix}reason"],
        row[f"{prefix}decided_at"],
        tuple(roles.split()) if roles else (),
    )


def _select_reviews() -> Select[Any]:
    return select(reviews, initiatives.c.ref).join(initiatives, initiatives.c.id == reviews.c.initiative_id)


def _with_decisions() -> Select[Any]:
    """Reviews with their initiative's ref and their decisions, one row per decision (a review
    without decisions is one row whose ``d_*`` columns are NULL): a click reads all it needs in
    one round trip."""
    decided = [column.label(f"d_{column.name}") for column in decisions.c if column.name != "review_id"]
    return (
        select(reviews, initiatives.c.ref, *decided)
        .select_from(
            reviews.join(initiatives, initiatives.c.id == reviews.c.initiative_id).outerjoin(
                decisions, decisions.c.review_id == reviews.c.id
            )
        )
        .order_by(reviews.c.id, decisions.c.decided_at, decisions.c.id)
    )


# "The review is open", with 'open' written into the SQL rather than bound. It is the condition of
# the partial unique index uq_reviews_one_open; compared with a bound parameter, SQLite can only
# prove the index applies once it sees the value, so it prepares the statement again at every
# execution: the initiative and its open review took 42 us a read instead of 8.
_IS_OPEN = reviews.c.status == literal_column(f"'{ReviewStatus.OPEN.value}'")

# Built once: the hot paths (a click, a questionnaire save) skip statement construction and hit
# SQLAlchemy's compiled cache straight away.
_GET = _with_decisions().where(reviews.c.id == bindparam("review_id"))
_OPEN_FOR = _with_decisions().where(initiatives.c.ref == bindparam("ref"), _IS_OPEN)
# The initiative's columns as ``i_*``, beside what ``_with_decisions`` selects; its open review
# (the partial unique index allows one) and that review's decisions are outer-joined, so an
# initiative without one is a single row whose review and ``d_*`` columns are NULL.
_INITIATIVE_FIELDS = tuple(column.name for column in initiatives.c)
# Read on every status reply and questionnaire page (``storage.prepared``).
_WITH_OPEN_REVIEW = select(
    reviews,
    initiatives.c.ref,
    *(column.label(f"d_{column.name}") for column in decisions.c if column.name != "review_id"),
    *(column.label(f"i_{column.name}") for column in initiatives.c),
).select_from(
    initiatives.outerjoin(
        reviews,
        (reviews.c.initiative_id == initiatives.c.id) & _IS_OPEN,
    ).outerjoin(decisions, decisions.c.review_id == reviews.c.id)
)
"""Initiatives, each with its open review's columns and decisions (NULL where none is open)."""
_INITIATIVE_WITH_OPEN = Prepared(
    _WITH_OPEN_REVIEW.where(initiatives.c.ref == bindparam("ref")).order_by(
        decisions.c.decided_at, decisions.c.id
    )
)


@cache
def _reviews_of(dialect: str) -> Prepared:
    """Reviews with their initiative's ref, by id (``review_ids``, a list)."""
    return Prepared(_select_reviews().where(one_of(reviews.c.id, "review_ids", dialect)))


@cache
def _decisions_of(dialect: str) -> Prepared:
    """The decisions of reviews (``review_ids``, a list), in the order they were made."""
    return Prepared(
        select(decisions)
        .where(one_of(decisions.c.review_id, "review_ids", dialect))
        .order_by(decisions.c.decided_at, decisions.c.id)
    )


@cache
def _initiatives_with_open(dialect: str) -> Prepared:
    """``_INITIATIVE_WITH_OPEN`` of several refs (``refs``, a list), in id order."""
    return Prepared(
        _WITH_OPEN_REVIEW.where(one_of(initiatives.c.ref, "refs", dialect)).order_by(
            initiatives.c.id, decisions.c.decided_at, decisions.c.id
        )
    )


_SAVE = (
    update(reviews)
    .where(
        reviews.c.id == bindparam("p_id"),
        reviews.c.version == bindparam("p_version"),
        reviews.c.status == bindparam("p_status"),
    )
    .values(
        status=bindparam("p_new_status"),
        closed_at=bindparam("p_closed_at"),
        exception_reason=bindparam("p_exception_reason"),
        tier=bindparam("p_tier"),
        version=reviews.c.version + 1,
    )
)
_INSERT_DECISION = insert(decisions)


def _review_values(review: Review) -> dict[str, Any]:
    return {
        "gate_id": review.gate_id,
        "from_stage": review.from_stage,
        "to_stage": review.to_stage,
        "submitted_by": review.submitted_by,
        "owner_id": review.owner_id,
        "submitted_at": review.submitted_at,
        "pipeline_version": review.pipeline_version,
        "evidence_hash": review.evidence_hash,
        "requirements": [{"role": r.role, "min": r.min} for r in review.requirements],
        "tier": review.tier,
        "status": ReviewStatus(review.status).value,
        "closed_at": review.closed_at,
        "exception_reason": review.exception_reason,
    }


def _review(row: Mapping[Any, Any], decided: list[Decision]) -> Review:
    return Review(
        initiative_ref=row["ref"],
        gate_id=row["gate_id"],
        from_stage=row["from_stage"],
        to_stage=row["to_stage"],
        submitted_by=row["submitted_by"],
        owner_id=row["owner_id"],
        submitted_at=row["submitted_at"],
        pipeline_version=row["pipeline_version"],
        evidence_hash=row["evidence_hash"],
        requirements=tuple(Requirement(r["role"], int(r["min"])) for r in row["requirements"] or []),
        id=row["id"],
        status=ReviewStatus(row["status"]),
        decisions=decided,
        closed_at=row["closed_at"],
        exception_reason=row["exception_reason"],
        tier=row["tier"],
    )
