"""Words for the domain's ids and statuses, as people read them in Slack."""

from __future__ import annotations

from collections.abc import Mapping

from gates.answers import AnswerValue, display
from gates.lifecycle import DecisionKind, Requirement, ReviewStatus, Status
from gates.loader import CompiledPipeline
from gates.pipeline import Question

# Stage ids are lowercase identifiers; a few read badly when simply capitalised.
_STAGE_WORDS = {"poc": "PoC", "mvp": "MVP", "bau": "BAU"}

STATUS_WORDS = {
    Status.ACTIVE: "active",
    Status.IN_REVIEW: "in review",
    Status.ON_HOLD: "on hold",
    Status.RETIRED: "retired",
}

REVIEW_WORDS = {
    ReviewStatus.OPEN: "open",
    ReviewStatus.APPROVED: "approved",
    ReviewStatus.REJECTED: "rejected",
    ReviewStatus.CHANGES_REQUESTED: "changes requested",
    ReviewStatus.WITHDRAWN: "withdrawn",
}

REVIEW_EMOJI = {
    ReviewStatus.OPEN: ":hourglass_flowing_sand:",
    ReviewStatus.APPROVED: ":white_check_mark:",
    ReviewStatus.REJECTED: ":x:",
    ReviewStatus.CHANGES_REQUESTED: ":leftwards_arrow_with_hook:",
    ReviewStatus.WITHDRAWN: ":heavy_minus_sign:",
}

DECISION_WORDS = {
    DecisionKind.APPROVE: "approved",
    DecisionKind.REJECT: "rejected",
    DecisionKind.REQUEST_CHANGES: "requested changes",
}

DECISION_EMOJI = {
    DecisionKind.APPROVE: ":white_check_mark:",
    DecisionKind.REJECT: ":x:",
    DecisionKind.REQUEST_CHANGES: ":leftwards_arrow_with_hook:",
}


def stage_label(stage: str) -> str:
    return _STAGE_WORDS.get(stage, stage.replace("_", " ").capitalize())


def role_label(pipeline: CompiledPipeline, role: str) -> str:
    definition = pipeline.model.roles.get(role)
    return definition.label if definition is not None and definition.label else role.replace("_", " ")


def gate_title(pipeline: CompiledPipeline, gate_id: str) -> str:
    gate = pipeline.model.gate(gate_id)
    return gate.title if gate is not None else gate_id.replace("_", " ").capitalize()


def requirements_text(pipeline: CompiledPipeline, requirements: tuple[Requirement, ...]) -> str:
    """``2 × AI risk, 1 × Business sponsor``."""
    return ", ".join(f"{r.min} × {role_label(pipeline, r.role)}" for r in requirements) or "none"


def remaining_text(pipeline: CompiledPipeline, remaining: Mapping[str, int]) -> str:
    return ", ".join(f"{n} × {role_label(pipeline, role)}" for role, n in remaining.items()) or "none"


def answer_display(question: Question, value: AnswerValue) -> str:
    """``gates.answers.display``, tolerant of an answer recorded before its question changed type
    (a percent stored as text must still show, not break the whole view)."""
    try:
        return display(question, value)
    except (TypeError, ValueError):
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
