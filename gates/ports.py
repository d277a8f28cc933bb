"""What the gates domain needs from the outside world, named as Protocols.

``storage`` implements these with SQLAlchemy; tests implement them with in-memory fakes; ``bot``
wires an implementation in. Nothing here knows about SQL or Slack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from gates.answers import AnswerValue
from gates.lifecycle import Initiative, Review, Status


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class AnswerVersion:
    """One recorded answer: append-only, the latest per question is the current one."""

    initiative_ref: str
    gate_id: str
    question_id: str
    value: AnswerValue | None
    author_id: str
    answered_at: datetime
    version: int = 0


@dataclass(frozen=True, slots=True)
class EvidenceLink:
    initiative_ref: str
    gate_id: str
    url: str
    title: str
    author_id: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class InitiativeFilter:
    stage: str | None = None
    status: Status | None = None
    owner_id: str | None = None
    involving: str | None = None
    """A person: initiatives they own or sponsor."""
    stalled_before: Mapping[str, datetime] | None = None
    """stage -> entered-before cutoff; an active initiative that entered its stage earlier is
    stalled."""
    extended_past: datetime | None = None
    """With ``stalled_before``: leave out initiatives whose time box was extended beyond this."""
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    actor_id: str
    action: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class InitiativeRepository(Protocol):
    def add(self, initiative: Initiative) -> None: ...
    def get(self, ref: str) -> Initiative:
        """Raises UnknownInitiative."""
        ...

    def get_many(self, refs: Iterable[str]) -> dict[str, Initiative]:
        """Those of ``refs`` that exist, by ref, in one read."""
        ...

    def save(self, initiative: Initiative) -> None:
        """Persist changes; raises ConcurrentUpdate when someone else changed it meanwhile."""
        ...

    def touch(self, refs: Sequence[str]) -> None:
        """Move on the row version of each of ``refs`` that exists, holding it until commit.

        Called before reading an initiative to change what belongs to it (its answers, its
        links): a ``save`` of that initiative from an earlier read (a submission, a retirement)
        then raises ConcurrentUpdate, and a touch that comes after such a save waits for its
        commit, so the reads that follow see it.
        """
        ...

    def next_ref(self) -> str: ...
    def list(self, query: InitiativeFilter) -> Sequence[Initiative]: ...


class AnswerRepository(Protocol):
    def append(self, answer: AnswerVersion) -> None: ...
    def append_many(self, answers: Sequence[AnswerVersion]) -> None:
        """``append`` of each, in order (a batch of questionnaire pages, in one round trip)."""
        ...

    def current(self, ref: str) -> dict[str, AnswerVersion]:
        """Latest version of every answered question of the initiative, all gates."""
        ...

    def current_many(self, refs: Sequence[str]) -> dict[str, dict[str, AnswerVersion]]:
        """``current`` of each of ``refs`` (initiatives this unit of work has read), in one read."""
        ...

    def as_of(self, ref: str, moment: datetime) -> dict[str, AnswerVersion]:
        """``current`` as it stood at ``moment``: the latest version of every question answered
        then or earlier (the answers a review submitted at ``moment`` was decided on)."""
        ...

    def history(self, ref: str) -> Sequence[AnswerVersion]:
        """Every version of every answer of the initiative, each question's in version order
        (its last is its ``current``)."""
        ...

    def add_link(self, link: EvidenceLink) -> None: ...
    def links(self, ref: str, gate_id: str | None = None) -> Sequence[EvidenceLink]: ...


@dataclass(frozen=True, slots=True)
class InitiativeState:
    """An initiative with what a reply about its readiness needs, read together."""

    initiative: Initiative
    open_review: Review | None
    answers: dict[str, AnswerVersion]  # the current ones, by question id
    stored_holders: dict[str, list[str]]  # ``RoleRepository.holders()``

    @property
    def values(self) -> dict[str, AnswerValue | None]:
        """The current answers' values, by question id."""
        return {qid: version.value for qid, version in self.answers.items()}


AnswerableState = tuple[Initiative, Review | None, dict[str, AnswerVersion]]
"""An initiative, its open review and its current answers (by question id): what a page of
answers is checked against and builds on (``ReviewRepository.touch_and_read``)."""


class ReviewRepository(Protocol):
    def add(self, review: Review) -> None:
        """Sets ``review.id``; raises ReviewAlreadyOpen if one is open for the same gate."""
        ...

    def get(self, review_id: int) -> Review:
        """Raises UnknownReview."""
        ...

    def get_many(self, review_ids: Iterable[int]) -> dict[int, Review]:
        """Those of ``review_ids`` that exist, by id, with their decisions, in one read."""
        ...

    def open_for(self, ref: str) -> Review | None: ...
    def initiative_with_open_review(self, ref: str) -> tuple[Initiative, Review | None]:
        """``(initiatives.get(ref), open_for(ref))`` in one read; raises UnknownInitiative."""
        ...

    def touch_and_read(self, refs: Sequence[str]) -> dict[str, AnswerableState]:
        """``InitiativeRepository.touch(refs)``, then, for each of ``refs`` that exists, its
        ``initiative_with_open_review`` and ``AnswerRepository.current`` answers, read after
        the touch: what a batch of questionnaire pages checks and builds on, in one round trip."""
        ...

    def initiative_state(self, ref: str) -> InitiativeState:
        """``initiative_with_open_review`` with ``answers.current(ref)`` and ``roles.holders()``,
        in one round trip; raises UnknownInitiative."""
        ...

    def for_initiative(self, ref: str) -> Sequence[Review]: ...
    def save(self, review: Review) -> None:
        """Persist new decisions and status; a second decision by the same approver or a
        status change that lost a race raises ConcurrentUpdate."""
        ...

    def save_many(self, reviews: Sequence[Review]) -> None:
        """``save`` of each, at once; ConcurrentUpdate if any of them lost a race."""
        ...

    def pending_for(self, roles: Sequence[str]) -> Sequence[Review]: ...
    def all_reviews(self) -> Sequence[Review]:
        """Every review of every initiative with its decisions, oldest first (the portfolio)."""
        ...


class RoleRepository(Protocol):
    def holders(self) -> dict[str, list[str]]: ...
    def roles_of(self, user_id: str) -> set[str]: ...
    def set_holders(self, role: str, user_ids: Sequence[str]) -> list[str]:
        """Replace the holders of ``role``; returns those it replaced, read once no other
        replacement of the role is under way."""
        ...


class AuditLog(Protocol):
    def append(
        self, actor_id: str, action: str, target: str, payload: Mapping[str, Any], at: datetime
    ) -> None: ...
    def timeline(self, target: str) -> Sequence[TimelineEntry]: ...
    def last_at(self, action: str, targets: Sequence[str]) -> dict[str, datetime]:
        """When each of ``targets`` last had an entry ``action``; those without one left out."""
        ...


class Outbox(Protocol):
    def put(
        self,
        kind: str,
        payload: Mapping[str, Any],
        at: datetime,
        dedupe_key: str | None = None,
        merge_key: str | None = None,
    ) -> None:
        """Queue a notification in the same transaction as the change that caused it.

        ``dedupe_key``: a message with this key is only ever queued once. ``merge_key``: while a
        message with this key waits to be sent (no sender has picked it up yet), it already says
        what this one would, so this one is not queued (a card redrawn from the current state).
        """
        ...


class UnitOfWork(Protocol):
    # Read-only members, so an implementation may hold its own subtypes (SqlAnswerRepository).
    @property
    def initiatives(self) -> InitiativeRepository: ...
    @property
    def answers(self) -> AnswerRepository: ...
    @property
    def reviews(self) -> ReviewRepository: ...
    @property
    def roles(self) -> RoleRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def outbox(self) -> Outbox: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        """Rolls back anything not committed."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...


# ---------------------------------------------------------------- operations and scheduling


@dataclass(frozen=True, slots=True)
class TimeBoxExtension:
    """A later end for a stage's time box, granted with a reason (kept as evidence)."""

    initiative_ref: str
    stage: str
    previous_end: datetime | None
    new_end: datetime
    reason: str
    author_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OperationsReview:
    """One periodic review of a system in operations: the answers and when the next is due."""

    initiative_ref: str
    reviewer_id: str
    reviewed_at: datetime
    answers: Mapping[str, AnswerValue]
    next_due: datetime
    id: int | None = None


class OperationsRecords(Protocol):
    def add_extension(self, extension: TimeBoxExtension) -> None: ...
    def extensions(self, ref: str) -> Sequence[TimeBoxExtension]: ...
    def add_review(self, review: OperationsReview) -> None: ...
    def reviews(self, ref: str) -> Sequence[OperationsReview]:
        """Oldest first."""
        ...

    def latest_reviews(self) -> dict[str, OperationsReview]:
        """The most recent periodic review of every initiative that has one, by ref."""
        ...


class FiredEvents(Protocol):
    def first_time(self, key: str, kind: str, at: datetime) -> bool:
        """Record that the scheduled event ``key`` fired; False if it already had (by anyone).

        Called in the transaction that queues the event's notification, so the record and the
        notification commit together or not at all.
        """
        ...

    def fired_at(self, key: str) -> datetime | None:
        """When the scheduled event ``key`` was recorded as fired; None if it never was."""
        ...


class Deliveries(Protocol):
    def first_time(self, key: str, at: datetime) -> bool:
        """Claim ``key`` (a form Slack sent, by its id); False if it was claimed before.

        Called in the transaction of the change the delivery makes, so a refused or rolled-back
        change leaves the key free for the next attempt.
        """
        ...


class OperationsUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also keeps time box extensions, periodic reviews, fired events and
    the forms already recorded."""

    @property
    def operations(self) -> OperationsRecords: ...
    @property
    def fired(self) -> FiredEvents: ...
    @property
    def dedupe(self) -> Deliveries: ...
