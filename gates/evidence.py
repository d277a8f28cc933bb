"""What a review was decided on and what the audit log records of each decision, defined once:
``submit`` and ``decide`` record them, and ``shepherd audit verify`` and the evidence pack check
the tables against them. Only the audit log is hash-chained; the answers and decisions the pack
shows are plain rows that anyone with write access to the database could change, and these are
how such a change shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from gates.lifecycle import Decision, Review, evidence_hash
from gates.loader import CompiledPipeline
from gates.ports import EvidenceLink
from gates.readiness import typed_answers


def submitted_evidence_hash(
    pipeline: CompiledPipeline, answers: Mapping[str, Any], links: Iterable[tuple[str, str]]
) -> str:
    """The evidence hash ``submit`` records: of every gate's ``answers`` as readiness reads them
    (``typed_answers``) and of the initiative's links as ``(url, title)``."""
    return evidence_hash(typed_answers(pipeline, answers), links)


def evidence_holds(
    pipeline: CompiledPipeline,
    decided_on: str,
    recorded: str,
    answers: Mapping[str, Any],
    links: Iterable[tuple[str, str]],
) -> bool:
    """Whether a review's answers and links as submitted still give the evidence hash
    ``recorded`` when it was submitted on pipeline version ``decided_on``.

    That version's questions typed the answers, and ``pipeline`` may no longer have some of them
    (a question removed since would otherwise make every review that answered it look edited).
    For a review of another version, the answers are therefore also hashed as stored, each
    already coerced by the pipeline of its day when it was given. Either way only the evidence
    that was hashed can give the hash again.
    """
    links = list(links)
    if submitted_evidence_hash(pipeline, answers, links) == recorded:
        return True
    if decided_on == pipeline.version:
        return False
    stored = {qid: value for qid, value in answers.items() if value is not None}
    return evidence_hash(stored, links) == recorded


def current_links(links: Iterable[EvidenceLink]) -> dict[tuple[str, str], EvidenceLink]:
    """Each link as it stands, by ``(gate id, url)``: the latest of ``links`` (in the order
    ``AnswerRepository.links`` gives them) for an address given again with a new title.

    Every row stays stored and hashed (a review submitted before the new title covers the old
    one); this is what a person reading the links today should see, once each."""
    latest: dict[tuple[str, str], EvidenceLink] = {}
    for link in links:
        latest.pop((link.gate_id, link.url), None)  # listed where it was last given
        latest[(link.gate_id, link.url)] = link
    return latest


def decision_detail(review: Review, decision: Decision) -> dict[str, Any]:
    """The detail of the ``decision.recorded`` audit entry of ``decision`` on ``review``; the
    entry's actor is the approver and its time the decision's. It holds the review's roles the
    approver held (``Decision.roles``: which of them the approval may count for); entries written
    before it did lack ``roles``."""
    return {
        "review": review.id,
        "gate": review.gate_id,
        "decision": decision.kind.value,
        "role": decision.role,
        "roles": list(decision.roles),
        "reason": decision.reason,
        "evidence_hash": review.evidence_hash,
    }


def decision_differences(
    kind: str,
    role: str | None,
    reason: str | None,
    decided_at: datetime,
    entry_detail: Mapping[str, Any],
    entry_at: datetime,
    roles: Sequence[str] = (),
) -> dict[str, Any]:
    """Where a decision as stored differs from its ``decision.recorded`` entry (of the same
    review and approver): ``{field: what the entry records}``, empty when they agree. Fields:
    ``decision``, ``role``, ``reason``, ``at`` and, when the entry records them, ``roles`` (the
    review's roles the approver held: which roles their approval may count for)."""
    stored: dict[str, Any] = {"decision": kind, "role": role, "reason": reason, "at": decided_at}
    recorded = {
        "decision": entry_detail.get("decision"),
        "role": entry_detail.get("role"),
        "reason": entry_detail.get("reason"),
        "at": entry_at,
    }
    if isinstance(entry_detail.get("roles"), list):  # older entries do not record them
        stored["roles"] = sorted(roles)
        recorded["roles"] = sorted(entry_detail["roles"])
    return {field: value for field, value in recorded.items() if stored[field] != value}
