"""An in-memory unit of work implementing ``gates.ports``, for tests of the use cases.

It behaves like a database session in the ways the use cases rely on:

- each ``with uow`` starts a transaction on a private copy of the committed state; nothing done
  inside it is visible afterwards unless ``commit()`` was called (``rollback()`` goes back to the
  last commit and the transaction goes on);
- repositories hand out copies, so a changed object that is never ``save``d is never stored;
- an initiative saved from a stale copy, or a review changed after someone else closed it,
  raises ``ConcurrentUpdate``, and a second open review raises ``ReviewAlreadyOpen``.

Audit entries and outbox messages are kept in plain lists (``audit_entries``, ``messages``) so a
test can assert on exactly what was recorded and queued.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from gates.errors import ConcurrentUpdate, ReviewAlreadyOpen, UnknownInitiative, UnknownReview
from gates.lifecycle import Initiative, Review, Status, format_ref
from gates.ports import (
    AnswerableState,
    AnswerVersion,
    EvidenceLink,
    InitiativeFilter,
    InitiativeState,
    OperationsReview,
    TimeBoxExtension,
    TimelineEntry,
)


@dataclass(frozen=True)
class AuditEntry:
    actor_id: str
    action: str
    target: str
    payload: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True)
class OutboxMessage:
    kind: str
    payload: Mapping[str, Any]
    at: datetime
    dedupe_key: str | None
    merge_key: str | None = None


@dataclass
class _State:
    initiatives: dict[str, Initiative] = field(default_factory=dict)
    answers: list[AnswerVersion] = field(default_factory=list)
    links: list[EvidenceLink] = field(default_factory=list)
    reviews: dict[int, Review] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    next_review_id: int = 1
    extensions: list[TimeBoxExtension] = field(default_factory=list)
    operations_reviews: list[OperationsReview] = field(default_factory=list)
    fired: dict[str, str] = field(default_factory=dict)
    fired_at: dict[str, datetime] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)


class _Part:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> _State:
        return self._uow.working_state()


class FakeInitiatives(_Part):
    def add(self, initiative: Initiative) -> None:
        if initiative.ref in self._state.initiatives:
            raise ValueError(f"duplicate initiative ref {initiative.ref}")
        self._state.initiatives[initiative.ref] = copy.deepcopy(initiative)

    def get(self, ref: str) -> Initiative:
        try:
            return copy.deepcopy(self._state.initiatives[ref])
        except KeyError:
            raise UnknownInitiative(ref) from None

    def get_many(self, refs: Iterable[str]) -> dict[str, Initiative]:
        return {ref: self.get(ref) for ref in set(refs) if ref in self._state.initiatives}

    def save(self, initiative: Initiative) -> None:
        stored = self._state.initiatives.get(initiative.ref)
        if stored is None:
            raise UnknownInitiative(initiative.ref)
        if stored.version != initiative.version:
            raise ConcurrentUpdate(f"{initiative.ref} was changed by someone else")
        # Like a version column: the caller's object moves on with the stored row.
        initiative.version += 1
        self._state.initiatives[initiative.ref] = copy.deepcopy(initiative)

    def touch(self, refs: Sequence[str]) -> None:
        for ref in refs:
            stored = self._state.initiatives.get(ref)
            if stored is not None:
                stored.version += 1

    def next_ref(self) -> str:
        return format_ref(len(self._state.initiatives) + 1)

    def list(self, query: InitiativeFilter) -> Sequence[Initiative]:
        found = []
        for ref in sorted(self._state.initiatives):
            item = self._state.initiatives[ref]
            if query.stage is not None and item.stage != query.stage:
                continue
            if query.status is not None and item.status is not query.status:
                continue
            if query.owner_id is not None and item.owner_id != query.owner_id:
                continue
            if query.stalled_before is not None:
                if item.status is not Status.ACTIVE:
                    continue
                cutoff = query.stalled_before.get(item.stage)
                entered = item.stage_entered_at or item.created_at
                if cutoff is None or entered >= cutoff:
                    continue
                extended = item.extended_until
                if (
                    query.extended_past is not None
                    and extended is not None
                    and extended >= query.extended_past
                ):
                    continue
            found.append(copy.deepcopy(item))
        return found[query.offset : query.offset + query.limit]


class FakeAnswers(_Part):
    def append(self, answer: AnswerVersion) -> None:
        if answer.initiative_ref not in self._state.initiatives:
            raise UnknownInitiative(answer.initiative_ref)
        self._state.answers.append(answer)

    def append_many(self, answers: Sequence[AnswerVersion]) -> None:
        for answer in answers:
            self.append(answer)

    def current(self, ref: str) -> dict[str, AnswerVersion]:
        latest: dict[str, AnswerVersion] = {}
        for version in self._state.answers:
            if version.initiative_ref == ref:
                latest[version.question_id] = version
        return latest

    def current_many(self, refs: Sequence[str]) -> dict[str, dict[str, AnswerVersion]]:
        return {ref: self.current(ref) for ref in refs}

    def as_of(self, ref: str, moment: datetime) -> dict[str, AnswerVersion]:
        latest: dict[str, AnswerVersion] = {}
        for version in self._state.answers:
            if version.initiative_ref == ref and version.answered_at <= moment:
                latest[version.question_id] = version
        return latest

    def history(self, ref: str) -> Sequence[AnswerVersion]:
        return [v for v in self._state.answers if v.initiative_ref == ref]

    def add_link(self, link: EvidenceLink) -> None:
        self._state.links.append(link)

    def links(self, ref: str, gate_id: str | None = None) -> Sequence[EvidenceLink]:
        return [
            link
            for link in self._state.links
            if link.initiative_ref == ref and (gate_id is None or link.gate_id == gate_id)
        ]


class FakeReviews(_Part):
    def add(self, review: Review) -> None:
        state = self._state
        if any(r.initiative_ref == review.initiative_ref and r.is_open for r in state.reviews.values()):
            raise ReviewAlreadyOpen(review.initiative_ref, review.gate_id)
        review.id = state.next_review_id
        state.next_review_id += 1
        state.reviews[review.id] = copy.deepcopy(review)

    def get(self, review_id: int) -> Review:
        try:
            return copy.deepcopy(self._state.reviews[review_id])
        except KeyError:
            raise UnknownReview(review_id) from None

    def get_many(self, review_ids: Iterable[int]) -> dict[int, Review]:
        return {i: self.get(i) for i in set(review_ids) if i in self._state.reviews}

    def open_for(self, ref: str) -> Review | None:
        return next(
            (copy.deepcopy(r) for r in self._state.reviews.values() if r.initiative_ref == ref and r.is_open),
            None,
        )

    def initiative_with_open_review(self, ref: str) -> tuple[Initiative, Review | None]:
        try:
            initiative = copy.deepcopy(self._state.initiatives[ref])
        except KeyError:
            raise UnknownInitiative(ref) from None
        return initiative, self.open_for(ref)

    def initiative_state(self, ref: str) -> InitiativeState:
        initiative, review = self.initiative_with_open_review(ref)
        return InitiativeState(initiative, review, self._uow.answers.current(ref), self._uow.roles.holders())

    def touch_and_read(self, refs: Sequence[str]) -> dict[str, AnswerableState]:
        self._uow.initiatives.touch(refs)
        return {
            ref: (*self.initiative_with_open_review(ref), self._uow.answers.current(ref))
            for ref in refs
            if ref in self._state.initiatives
        }

    def for_initiative(self, ref: str) -> Sequence[Review]:
        return [copy.deepcopy(r) for r in self._state.reviews.values() if r.initiative_ref == ref]

    def save(self, review: Review) -> None:
        if review.id is None or review.id not in self._state.reviews:
            raise UnknownReview(review.id)
        stored = self._state.reviews[review.id]
        # What the database enforces: decisions are append-only and unique per approver, and a
        # closed review never changes again.
        if review.decisions[: len(stored.decisions)] != stored.decisions:
            raise ConcurrentUpdate("The review's decisions changed meanwhile")
        approvers = [d.approver_id for d in review.decisions]
        if len(approvers) != len(set(approvers)):
            raise ConcurrentUpdate("That approver has already decided")
        if not stored.is_open and (
            review.status is not stored.status or len(review.decisions) != len(stored.decisions)
        ):
            raise ConcurrentUpdate("The review was closed meanwhile")
        self._state.reviews[review.id] = copy.deepcopy(review)

    def save_many(self, reviews: Sequence[Review]) -> None:
        for review in reviews:
            self.save(review)

    def pending_for(self, roles: Sequence[str]) -> Sequence[Review]:
        wanted = set(roles)
        return [
            copy.deepcopy(r)
            for r in self._state.reviews.values()
            if r.is_open and wanted & set(r.remaining())
        ]

    def all_reviews(self) -> Sequence[Review]:
        return [copy.deepcopy(r) for r in sorted(self._state.reviews.values(), key=lambda r: r.id or 0)]


class FakeRoles(_Part):
    def holders(self) -> dict[str, list[str]]:
        return {role: list(users) for role, users in self._state.roles.items()}

    def roles_of(self, user_id: str) -> set[str]:
        return {role for role, users in self._state.roles.items() if user_id in users}

    def set_holders(self, role: str, user_ids: Sequence[str]) -> list[str]:
        former = self._state.roles.get(role, [])
        self._state.roles[role] = list(user_ids)
        return list(former)


class FakeAudit(_Part):
    def append(
        self, actor_id: str, action: str, target: str, payload: Mapping[str, Any], at: datetime
    ) -> None:
        self._state.audit.append(AuditEntry(actor_id, action, target, copy.deepcopy(dict(payload)), at))

    def last_at(self, action: str, targets: Sequence[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for e in self._state.audit:
            if e.action == action and e.target in targets:
                found[e.target] = max(e.at, found.get(e.target, e.at))
        return found

    def timeline(self, target: str) -> Sequence[TimelineEntry]:
        return [
            TimelineEntry(e.at, e.actor_id, e.action, e.payload)
            for e in self._state.audit
            if e.target == target
        ]


class FakeOutbox(_Part):
    def put(
        self,
        kind: str,
        payload: Mapping[str, Any],
        at: datetime,
        dedupe_key: str | None = None,
        merge_key: str | None = None,
    ) -> None:
        # The fake never sends, so every message is still waiting: one per merge key.
        if merge_key is not None and any(m.merge_key == merge_key for m in self._state.outbox):
            return
        self._state.outbox.append(
            OutboxMessage(kind, copy.deepcopy(dict(payload)), at, dedupe_key, merge_key)
        )


class FakeOperations(_Part):
    def add_extension(self, extension: TimeBoxExtension) -> None:
        if extension.initiative_ref not in self._state.initiatives:
            raise UnknownInitiative(extension.initiative_ref)
        self._state.extensions.append(extension)

    def extensions(self, ref: str) -> Sequence[TimeBoxExtension]:
        return [e for e in self._state.extensions if e.initiative_ref == ref]

    def add_review(self, review: OperationsReview) -> None:
        if review.initiative_ref not in self._state.initiatives:
            raise UnknownInitiative(review.initiative_ref)
        self._state.operations_reviews.append(review)

    def reviews(self, ref: str) -> Sequence[OperationsReview]:
        return [r for r in self._state.operations_reviews if r.initiative_ref == ref]

    def latest_reviews(self) -> dict[str, OperationsReview]:
        return {r.initiative_ref: r for r in self._state.operations_reviews}


class FakeFired(_Part):
    def first_time(self, key: str, kind: str, at: datetime) -> bool:
        if key in self._state.fired:
            return False
        self._state.fired[key] = kind
        self._state.fired_at[key] = at
        return True

    def fired_at(self, key: str) -> datetime | None:
        return self._state.fired_at.get(key)


class FakeDeliveries(_Part):
    def first_time(self, key: str, at: datetime) -> bool:
        if key in self._state.claimed:
            return False
        self._state.claimed.add(key)
        return True


class FakeUnitOfWork:
    """Dict-backed unit of work; re-enterable, one transaction per ``with``.

    ``conflicts_to_raise`` makes the next N commits fail with ``ConcurrentUpdate`` (and discard
    the transaction), as when another writer got there first.
    """

    def __init__(self) -> None:
        self.initiatives = FakeInitiatives(self)
        self.answers = FakeAnswers(self)
        self.reviews = FakeReviews(self)
        self.roles = FakeRoles(self)
        self.audit = FakeAudit(self)
        self.outbox = FakeOutbox(self)
        self.operations = FakeOperations(self)
        self.fired = FakeFired(self)
        self.dedupe = FakeDeliveries(self)
        self.committed = _State()
        self.commits = 0
        self.transactions = 0
        self.conflicts_to_raise = 0
        self._working: _State | None = None

    def __enter__(self) -> Self:
        if self._working is not None:
            raise RuntimeError("the unit of work is already in a transaction")
        self._working = copy.deepcopy(self.committed)
        self.transactions += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._working = None

    def commit(self) -> None:
        state = self.working_state()
        if self.conflicts_to_raise > 0:
            self.conflicts_to_raise -= 1
            self._working = copy.deepcopy(self.committed)
            raise ConcurrentUpdate()
        self.committed = copy.deepcopy(state)
        self.commits += 1

    def rollback(self) -> None:
        self.working_state()
        self._working = copy.deepcopy(self.committed)

    def working_state(self) -> _State:
        if self._working is None:
            raise RuntimeError("repositories are only usable inside `with uow:`")
        return self._working

    # ------------------------------------------------------------ what tests assert on

    @property
    def audit_entries(self) -> list[AuditEntry]:
        return self.committed.audit

    @property
    def audit_actions(self) -> list[str]:
        return [entry.action for entry in self.committed.audit]

    @property
    def messages(self) -> list[OutboxMessage]:
        return self.committed.outbox

    @property
    def message_kinds(self) -> list[str]:
        return [message.kind for message in self.committed.outbox]

    def stored_initiative(self, ref: str) -> Initiative:
        return self.committed.initiatives[ref]

    def stored_review(self, review_id: int) -> Review:
        return self.committed.reviews[review_id]

    def stored_answers(self, ref: str) -> list[AnswerVersion]:
        return [v for v in self.committed.answers if v.initiative_ref == ref]
