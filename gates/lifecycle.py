"""Initiatives, reviews and decisions: the rules of the route, with time passed in.

An initiative sits in a stage and works towards the gate leading out of it. Submitting opens a
review that pins the pipeline version, a hash of the evidence, and the approvals required.
Approvers decide; any rejection ends the review, "request changes" hands it back to the team,
and the stage advances exactly once, when the last required approval is in.

Nothing here reads the clock or touches storage: ``storage`` persists these objects and guards
the "exactly once" with database constraints; these classes decide what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gates.errors import (
    AlreadyDecided,
    InvalidTransition,
    NotAnApprover,
    ReasonRequired,
    ReviewClosed,
    SelfApproval,
)
from gates.matching import assign_roles


class Status(StrEnum):
    ACTIVE = "active"
    IN_REVIEW = "in_review"
    ON_HOLD = "on_hold"
    RETIRED = "retired"


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    WITHDRAWN = "withdrawn"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"


def format_ref(number: int, prefix: str = "AI") -> str:
    """``AI-0007``: short enough to type in Slack, sortable as text up to 9,999."""
    return f"{prefix}-{number:04d}"


@dataclass
class Initiative:
    ref: str
    name: str
    owner_id: str
    stage: str
    created_at: datetime
    sponsor_id: str | None = None
    status: Status = Status.ACTIVE
    stage_entered_at: datetime | None = None
    updated_at: datetime | None = None
    status_reason: str | None = None
    version: int = 0
    extended_until: datetime | None = None
    """A later end for the current stage's time box, granted with a reason; cleared on advance."""

    def __post_init__(self) -> None:
        self.stage_entered_at = self.stage_entered_at or self.created_at
        self.updated_at = self.updated_at or self.created_at

    def start_review(self, from_stage: str, now: datetime) -> None:
        """Move to ``in_review`` for the gate leading out of ``from_stage``."""
        self._require(Status.ACTIVE, "submit it for review")
        if self.stage != from_stage:
            raise InvalidTransition(f"{self.ref} is in the {self.stage} stage, not {from_stage}.")
        self._set(Status.IN_REVIEW, now)

    def back_to_team(self, now: datetime) -> None:
        """After a rejection, a request for changes or a withdrawal."""
        if self.status is Status.IN_REVIEW:
            self._set(Status.ACTIVE, now)

    def advance(self, from_stage: str, to_stage: str, now: datetime) -> None:
        """Enter ``to_stage``; refuses if the stage already moved (the exactly-once guard)."""
        if self.stage != from_stage or self.status is not Status.IN_REVIEW:
            raise InvalidTransition(f"{self.ref} has already left the {from_stage} stage.")
        self.stage = to_stage
        self.stage_entered_at = now
        self.extended_until = None
        self._set(Status.ACTIVE, now)

    def hold(self, reason: str, now: datetime) -> None:
        self._require(Status.ACTIVE, "put it on hold")
        self.status_reason = reason
        self._set(Status.ON_HOLD, now)

    def resume(self, now: datetime) -> None:
        self._require(Status.ON_HOLD, "resume it")
        self.status_reason = None
        self._set(Status.ACTIVE, now)

    def retire(self, reason: str, now: datetime) -> None:
        if self.status is Status.RETIRED:
            raise InvalidTransition(f"{self.ref} is already retired.")
        if not reason.strip():
            raise InvalidTransition("A reason is required to retire an initiative.")
        self.status_reason = reason.strip()
        self._set(Status.RETIRED, now)

    def _require(self, status: Status, action: str) -> None:
        if self.status is not status:
            raise InvalidTransition(
                f"{self.ref} is {self.status.value.replace('_', ' ')}, so you cannot {action} now."
            )

    def _set(self, status: Status, now: datetime) -> None:
        self.status = status
        self.updated_at = now


@dataclass(frozen=True, slots=True)
class Requirement:
    """``min`` approvals from holders of ``role``, frozen into the review at submission."""

    role: str
    min: int


@dataclass(frozen=True, slots=True)
class Decision:
    approver_id: str
    kind: DecisionKind
    role: str | None
    reason: str | None
    decided_at: datetime
    roles: tuple[str, ...] = ()
    """The review's roles the approver held when deciding (``role`` is the one they were counted
    for at that moment); later decisions may count them for another of these, so that one
    person holding two roles never leaves the other role unreachable."""

    @property
    def eligible(self) -> tuple[str, ...]:
        """Roles this decision can count for (a decision recorded before ``roles`` was kept
        counts for its recorded role only)."""
        return self.roles or ((self.role,) if self.role else ())


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What one click did. ``duplicate`` is True when the same person repeated the same decision
    (a double click, a Slack retry): nothing new was recorded."""

    decision: Decision
    status: ReviewStatus
    duplicate: bool
    remaining: Mapping[str, int]

    @property
    def approved(self) -> bool:
        return self.status is ReviewStatus.APPROVED and not self.duplicate


@dataclass
class Review:
    initiative_ref: str
    gate_id: str
    from_stage: str
    to_stage: str
    submitted_by: str
    owner_id: str
    submitted_at: datetime
    pipeline_version: str
    evidence_hash: str
    requirements: tuple[Requirement, ...]
    id: int | None = None
    status: ReviewStatus = ReviewStatus.OPEN
    decisions: list[Decision] = field(default_factory=list)
    closed_at: datetime | None = None
    exception_reason: str | None = None
    tier: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status is ReviewStatus.OPEN

    def remaining(self) -> dict[str, int]:
        """Approvals still needed, per role (roles already satisfied are left out): the
        approvals so far are counted for roles so that as many as possible count."""
        counts = self._needs()
        for role in assign_roles(self._approvers(), counts).values():
            counts[role] -= 1
        return {role: n for role, n in counts.items() if n > 0}

    def counted_for(self, decision: Decision) -> str | None:
        """The role ``decision`` counts for now. An approval's ``role`` is the one it filled when
        it was given, as its audit entry records; a later approver who could fill only that role
        moves a two-role approver to their other one (the matching ``remaining`` makes). Another
        decision counts for the role it was given in."""
        if decision.kind is not DecisionKind.APPROVE:
            return decision.role
        return assign_roles(self._approvers(), self._needs()).get(decision.approver_id, decision.role)

    def _needs(self) -> dict[str, int]:
        needs: dict[str, int] = {}
        for requirement in self.requirements:
            needs[requirement.role] = max(needs.get(requirement.role, 0), requirement.min)
        return needs

    def _approvers(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(d.approver_id, d.eligible) for d in self.decisions if d.kind is DecisionKind.APPROVE]

    def _role_for(self, user_id: str, user_roles: Iterable[str]) -> str | None:
        """The role ``user_id`` would count for now, or None when their approval would add
        nothing (every slot of their roles is filled by people who cannot move elsewhere)."""
        held = set(user_roles)
        mine = tuple(role for role in self._needs() if role in held)
        if not mine:
            return None
        return assign_roles([*self._approvers(), (user_id, mine)], self._needs()).get(user_id)

    def decision_by(self, user_id: str) -> Decision | None:
        return next((d for d in self.decisions if d.approver_id == user_id), None)

    def can_decide(self, user_id: str, user_roles: Iterable[str]) -> bool:
        """True when a click by ``user_id`` would be accepted (for showing buttons)."""
        if not self.is_open or self.decision_by(user_id) or user_id in (self.submitted_by, self.owner_id):
            return False
        return self._role_for(user_id, user_roles) is not None

    def decide(
        self,
        user_id: str,
        user_roles: Iterable[str],
        kind: DecisionKind,
        reason: str | None,
        now: datetime,
    ) -> DecisionResult:
        """Record one approver's decision.

        Raises:
            AlreadyDecided: the user already gave a different decision on this review.
            ReviewClosed: the review is no longer open.
            SelfApproval: the user submitted the review or owns the initiative.
            ReasonRequired: reject or request changes without a reason.
            NotAnApprover: the user holds none of the roles the review still needs.
        """
        earlier = self.decision_by(user_id)
        if earlier is not None:
            if earlier.kind is kind:
                return DecisionResult(earlier, self.status, duplicate=True, remaining=self.remaining())
            raise AlreadyDecided(
                f"You already chose '{_label(earlier.kind)}' on this review; decisions cannot be changed."
            )
        if not self.is_open:
            raise ReviewClosed(f"This review is already {_label_status(self.status)}; nothing was recorded.")
        if user_id == self.submitted_by or user_id == self.owner_id:
            raise SelfApproval(
                "You submitted this review or own the initiative, so you cannot decide on it: "
                "separation of duties."
            )
        text = (reason or "").strip() or None
        if kind is not DecisionKind.APPROVE and text is None:
            raise ReasonRequired()
        roles = set(user_roles)
        # A person counts once, so one person holding two roles cannot satisfy both (four eyes
        # stay four eyes); which role each approver counts for is recomputed at every decision
        # (a maximum matching), so a two-role approver never blocks the other role's holders.
        role = self._role_for(user_id, roles)
        held = tuple(r for r in self._needs() if r in roles)
        if role is None:
            wanted = ", ".join(sorted(self.remaining())) or "none"
            if held:
                # They do hold a role of this review (the thread's buttons are everyone's): saying
                # they hold none would be false, and they need to know where a concern still counts.
                raise NotAnApprover(
                    f"The approvals this review needs from {', '.join(held)} are already given, so "
                    f"your decision would not be counted; it still waits on {wanted}. If you see a "
                    "problem, say so in the review's thread, so that those approvers see it before "
                    "they decide."
                )
            raise NotAnApprover(f"You hold none of the roles this review still needs ({wanted}).")
        decision = Decision(user_id, kind, role, text, now, held)
        self.decisions.append(decision)
        remaining = self.remaining()  # once: a matching per call, and the worker decides thousands
        if kind is DecisionKind.REJECT:
            self._close(ReviewStatus.REJECTED, now)
        elif kind is DecisionKind.REQUEST_CHANGES:
            self._close(ReviewStatus.CHANGES_REQUESTED, now)
        elif not remaining:
            self._close(ReviewStatus.APPROVED, now)
        return DecisionResult(decision, self.status, duplicate=False, remaining=remaining)

    def withdraw(self, now: datetime) -> None:
        if not self.is_open:
            raise ReviewClosed(f"This review is already {_label_status(self.status)}.")
        self._close(ReviewStatus.WITHDRAWN, now)

    def _close(self, status: ReviewStatus, now: datetime) -> None:
        self.status = status
        self.closed_at = now


def evidence_hash(answers: Mapping[str, Any], links: Iterable[tuple[str, str]] = ()) -> str:
    """SHA-256 of the evidence a review is decided on: answers and links in canonical JSON,
    so the same evidence always gives the same hash and any change gives a different one."""
    payload = {
        "answers": {key: answers[key] for key in sorted(answers)},
        "links": sorted([list(link) for link in links]),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _label(kind: DecisionKind) -> str:
    return kind.value.replace("_", " ")


def _label_status(status: ReviewStatus) -> str:
    return status.value.replace("_", " ")
