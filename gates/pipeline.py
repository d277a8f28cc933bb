"""The pipeline definition: stages, gates, questions, criteria, risk tiers and approvals.

These models mirror the YAML a governance lead writes (see ``gates/defaults/pipeline.yaml``).
They reject unknown keys so that a typo (``requried: true``) is an error, not a silent default.
Structural checks live here; cross-references and CEL compilation live in ``gates.loader``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
"""Ids are used in CEL (``answers.<id>``), in Slack ``action_id`` values and in URLs."""

SLACK_USER_ID = r"^[UW][A-Z0-9]{2,}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class QuestionType(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    NUMBER = "number"
    PERCENT = "percent"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    YES_NO = "yes_no"
    DATE = "date"
    USER = "user"
    URL = "url"


CHOICE_TYPES = frozenset({QuestionType.CHOICE, QuestionType.MULTI_CHOICE})

OWNER_QUESTION_IDS = ("initiative_owner", "owner")
"""The intake person questions that name the owner when ``owner_question`` is not set, in this
order. Exact ids, not a part of one: a question about the data owner is not about the owner."""
SPONSOR_QUESTION_IDS = ("business_sponsor", "sponsor")
"""Likewise for ``sponsor_question``."""
OPERATIONS_OWNER_QUESTION_ID = "operations_owner"
"""Likewise for ``operations.owner_question``, looked for in every gate."""
CADENCE_QUESTION_ID = "review_cadence_months"
"""Likewise for ``operations.cadence_question`` (type: number)."""
FIRST_REVIEW_QUESTION_ID = "first_review_date"
"""Likewise for ``operations.first_review_question`` (type: date)."""

OPTION_TEXT_MAX = 75
"""The characters of an option a menu shows (Slack's limit on an option's text). Defined here,
where the loader checks options against it, and used by the Slack menus."""


def option_text(option: str) -> str:
    """``option`` as a menu shows it: whole, or cut to ``OPTION_TEXT_MAX`` with an ellipsis."""
    if len(option) <= OPTION_TEXT_MAX:
        return option
    return option[: OPTION_TEXT_MAX - 1].rstrip() + "…"


PATTERN_MESSAGE_MAX = 100
"""A refusal reads "expected <message>, got '<the answer, clipped>'", and Slack shows at most
150 characters of it under the field."""


class Validation(_Strict):
    """Limits on an answer. ``min``/``max`` apply to numbers and percents."""

    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    message: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PATTERN_MESSAGE_MAX)]
        | None
    ) = None
    """What an answer matching ``pattern`` looks like, in words ("a Slack channel, like
    #ops-alerts"): people are told "expected <message>" instead of seeing the regex."""
    max_length: int | None = Field(default=None, gt=0)


class Question(_Strict):
    id: Identifier
    label: str = Field(min_length=1, max_length=2000)
    help: str | None = None
    type: QuestionType = QuestionType.TEXT
    options: list[str] | None = None
    required: bool = False
    required_if: str | None = None
    show_if: str | None = None
    validation: Validation | None = None
    policy_refs: list[str] = Field(default_factory=list)
    placeholder: str | None = None


class Criterion(_Strict):
    id: Identifier
    rule: str
    blocking: bool = True
    explain: str
    policy_tags: list[str] = Field(default_factory=list)


class RiskRule(_Strict):
    tier: str
    when: str


class ApprovalRule(_Strict):
    role: Identifier
    min: int = Field(default=1, ge=1, le=20)
    when: str | None = None


class Role(_Strict):
    label: str | None = None
    description: str | None = None
    slack_users: list[str] = Field(default_factory=list)
    slack_usergroup: str | None = None
    escalation_contact: str | None = None
    """Slack user id told when a review waiting for this role passes its escalation time."""

    @field_validator("escalation_contact")
    @classmethod
    def _slack_user(cls, value: str | None) -> str | None:
        # An empty string is how a template leaves the contact to be filled in.
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.match(SLACK_USER_ID, value):
            raise ValueError(f"must be a Slack user id such as U012ABCDEF, not {value!r}")
        return value


class Gate(_Strict):
    id: Identifier
    label: str | None = None
    description: str | None = None
    from_: str = Field(alias="from")
    to: str
    time_box_days: int | None = Field(default=None, gt=0)
    review_reminder_days: int | None = Field(default=None, gt=0)
    """Remind the approvers still needed once a review has waited this many days (and again
    every as many days after)."""
    review_escalation_days: int | None = Field(default=None, gt=0)
    """Tell the escalation contact of each role still needed once a review waited this long."""
    allow_exceptions: bool = False
    questions: list[Question] = Field(default_factory=list)
    criteria: list[Criterion] = Field(default_factory=list)
    risk_tier: list[RiskRule] = Field(default_factory=list)
    approvals: list[ApprovalRule] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.label or self.id.replace("_", " ").capitalize()

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


class Operations(_Strict):
    """Periodic reviews of the systems that reached the operations stage."""

    stage: Identifier | None = None
    """The stage whose initiatives are reviewed; the last stage when not given."""
    review_every_days: int = Field(default=90, gt=0, le=3660)
    overdue_after_days: int = Field(default=14, ge=0, le=365)
    """Grace after the due date before a review counts as overdue and is escalated."""
    role: Identifier | None = None
    """The role that receives systems at handover; its escalation contact hears of overdue
    reviews, and the gate into the operations stage must require its approval."""
    owner_question: Identifier | None = None
    """A gate's person question whose answer is the system's operations owner: like the
    initiative's owner, they are told when a review is due and may record it; see
    ``Pipeline.operations_owner_question_id``."""
    cadence_question: Identifier | None = None
    """A gate's number question whose answer, in months, is how often the system is reviewed
    (``review_every_days`` when unanswered); see ``Pipeline.operations_cadence_question_id``."""
    first_review_question: Identifier | None = None
    """A gate's date question whose answer is the day of the first periodic review (one
    cadence after entering the stage when unanswered); see
    ``Pipeline.operations_first_review_question_id``."""
    questions: list[Question] = Field(default_factory=list)


class Pipeline(_Strict):
    version: int = Field(ge=1)
    name: str = "AI initiative pathway"
    stages: list[Identifier] = Field(min_length=2)
    risk_tiers: list[str] = Field(default_factory=lambda: ["low", "medium", "high"])
    roles: dict[Identifier, Role] = Field(default_factory=dict)
    gates: list[Gate] = Field(min_length=1)
    operations: Operations | None = None
    owner_question: Identifier | None = None
    """The intake's person question whose answer at registration is the initiative's owner
    (welcomed, and holding the owner's rights); see ``owner_question_id``."""
    sponsor_question: Identifier | None = None
    """The intake's person question whose answer is the initiative's sponsor (who may submit),
    at registration and whenever it is answered again; see ``sponsor_question_id``."""

    @property
    def owner_question_id(self) -> str | None:
        """The intake question that names the owner: ``owner_question``, else a person question
        with one of the ``OWNER_QUESTION_IDS``; None: whoever registers is the owner."""
        return self._intake_person(self.owner_question, OWNER_QUESTION_IDS)

    @property
    def sponsor_question_id(self) -> str | None:
        """The intake question that names the sponsor: ``sponsor_question``, else a person
        question with one of the ``SPONSOR_QUESTION_IDS``; None: no sponsor is named."""
        return self._intake_person(self.sponsor_question, SPONSOR_QUESTION_IDS)

    def _intake_person(self, named: str | None, conventional: tuple[str, ...]) -> str | None:
        if named is not None:
            return named  # the loader checked it is a person question of the intake
        people = {q.id for q in self.intake.questions if q.type is QuestionType.USER}
        return next((qid for qid in conventional if qid in people), None)

    @property
    def operations_owner_question_id(self) -> str | None:
        """The question that names the operations owner: ``operations.owner_question``, else a
        person question with the exact id ``OPERATIONS_OWNER_QUESTION_ID``; None: no one is
        named (or the pipeline has no operations reviews)."""
        if self.operations is None:
            return None
        if self.operations.owner_question is not None:
            return self.operations.owner_question  # the loader checked it is a person question
        return self._operations_question(None, OPERATIONS_OWNER_QUESTION_ID, QuestionType.USER)

    @property
    def operations_cadence_question_id(self) -> str | None:
        """The question whose answer is the review cadence in months: ``operations.cadence_question``,
        else a number question with the exact id ``CADENCE_QUESTION_ID``; None: none is asked."""
        named = self.operations.cadence_question if self.operations is not None else None
        return self._operations_question(named, CADENCE_QUESTION_ID, QuestionType.NUMBER)

    @property
    def operations_first_review_question_id(self) -> str | None:
        """The question whose answer is the first review's day: ``operations.first_review_question``,
        else a date question with the exact id ``FIRST_REVIEW_QUESTION_ID``; None: none is asked."""
        named = self.operations.first_review_question if self.operations is not None else None
        return self._operations_question(named, FIRST_REVIEW_QUESTION_ID, QuestionType.DATE)

    def _operations_question(self, named: str | None, conventional: str, kind: QuestionType) -> str | None:
        if self.operations is None:
            return None
        if named is not None:
            return named  # the loader checked it is a question of that type
        found = self.all_questions().get(conventional)
        return conventional if found and found[1].type is kind else None

    @property
    def operations_stage(self) -> str | None:
        """The stage periodic reviews apply to, or None when the pipeline has no operations."""
        if self.operations is None:
            return None
        return self.operations.stage or self.stages[-1]

    def gate(self, gate_id: str) -> Gate | None:
        return next((g for g in self.gates if g.id == gate_id), None)

    def gate_from(self, stage: str) -> Gate | None:
        """The gate that leads out of ``stage``: the one a team works towards."""
        return next((g for g in self.gates if g.from_ == stage), None)

    @property
    def intake(self) -> Gate:
        """The first gate, whose questionnaire registers an initiative."""
        return self.gate_from(self.stages[0]) or self.gates[0]

    def tier_gate(self, gate: Gate) -> Gate | None:
        """The gate whose risk_tier rules set the tier at ``gate``: ``gate`` itself when it has
        some, else the nearest gate before it that has (following back the gates that lead into
        each one's from stage). The tier is known from the first gate on and carried forward, so
        a later gate without rules of its own must not judge ``tier`` as empty; None when no
        gate on the way has rules (the loader refuses a gate that then reads ``tier``)."""
        seen: set[str] = set()
        current: Gate | None = gate
        while current is not None and current.id not in seen:
            if current.risk_tier:
                return current
            seen.add(current.id)
            stage = current.from_
            current = next((g for g in self.gates if g.to == stage), None)
        return None

    def all_questions(self) -> dict[str, tuple[Gate, Question]]:
        return {q.id: (g, q) for g in self.gates for q in g.questions}
