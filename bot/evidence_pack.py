"""The evidence pack: everything an auditor needs to reconstruct how an initiative passed its gates.

Pure functions over an ``InitiativeView``: no I/O, no clock, so the same view always gives the
same pack. ``evidence_json`` is the record; ``evidence_markdown`` renders that same record, so
the two can never disagree.

Everything people typed (names, answers, reasons, titles) reaches the Markdown through ``_inline``
or ``_cell``, escaped so that it renders as the literal text: an answer cannot add HTML or a link
to the pack. The JSON carries the values as stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gates.answers import AnswerValue, display
from gates.errors import UnknownGate
from gates.loader import CompiledPipeline
from gates.markdown import markdown_text
from gates.pipeline import Question
from gates.ports import AnswerVersion
from gates.system_card import draft_system_card, is_production_gate
from gates.usecases import InitiativeView

FORMAT = "shepherd-evidence-pack/1"


def evidence_json(
    pipeline: CompiledPipeline, view: InitiativeView, gate_id: str | None = None
) -> dict[str, Any]:
    """The evidence pack as plain JSON-serialisable data.

    Args:
        gate_id: restrict answers, links and reviews to this gate (the timeline stays whole:
            it is the context an auditor reads the gate's decisions in).

    Raises:
        UnknownGate: ``gate_id`` is not a gate of the pipeline.
    """
    if gate_id is not None and pipeline.model.gate(gate_id) is None:
        raise UnknownGate(gate_id)
    initiative = view.initiative

    def wanted(gate: str) -> bool:
        return gate_id is None or gate == gate_id

    return {
        "format": FORMAT,
        "pipeline": {"name": pipeline.model.name, "version": pipeline.version},
        "gate": gate_id,
        "initiative": {
            "ref": initiative.ref,
            "name": initiative.name,
            "owner": initiative.owner_id,
            "sponsor": initiative.sponsor_id,
            "stage": initiative.stage,
            "status": initiative.status.value,
            "status_reason": initiative.status_reason,
            "created_at": _iso(initiative.created_at),
            "stage_entered_at": _iso(initiative.stage_entered_at),
            "updated_at": _iso(initiative.updated_at),
        },
        "answers": _answers(pipeline, view.history, wanted),
        "links": [
            {
                "gate": link.gate_id,
                "url": link.url,
                "title": link.title,
                "author": link.author_id,
                "added_at": _iso(link.added_at),
            }
            for link in view.links
            if wanted(link.gate_id)
        ],
        "reviews": [
            {
                "id": review.id,
                "gate": review.gate_id,
                "from_stage": review.from_stage,
                "to_stage": review.to_stage,
                "status": review.status.value,
                "submitted_by": review.submitted_by,
                "submitted_at": _iso(review.submitted_at),
                "closed_at": _iso(review.closed_at),
                "pipeline_version": review.pipeline_version,
                "evidence_hash": review.evidence_hash,
                "tier": review.tier,
                "requirements": [{"role": r.role, "min": r.min} for r in review.requirements],
                "exception_reason": review.exception_reason,
                "decisions": [
                    {
                        "approver": d.approver_id,
                        "role": d.role,
                        "decision": d.kind.value,
                        "reason": d.reason,
                        "decided_at": _iso(d.decided_at),
                    }
                    for d in review.decisions
                ],
            }
            for review in view.reviews
            if wanted(review.gate_id)
        ],
        "system_card": system_card_markdown(pipeline, view)
        if gate_id is None or is_production_gate(pipeline, gate_id)
        else None,
        "timeline": [
            {
                "at": _iso(entry.at),
                "actor": entry.actor_id,
                "action": entry.action,
                "detail": dict(entry.detail),
            }
            for entry in view.timeline
        ],
    }


def evidence_markdown(pipeline: CompiledPipeline, view: InitiativeView, gate_id: str | None = None) -> str:
    """The evidence pack as Markdown for an auditor: one section per gate, then the audit timeline.

    Raises:
        UnknownGate: ``gate_id`` is not a gate of the pipeline.
    """
    pack = evidence_json(pipeline, view, gate_id)
    info = pack["initiative"]
    scope = f" - {_gate_title(pipeline, gate_id)} gate" if gate_id else ""
    lines = [
        f"# Evidence pack: {info['ref']} {_inline(info['name'])}{scope}",
        "",
        f"Pipeline: {_inline(pack['pipeline']['name'])}, version {pack['pipeline']['version']}.",
        "",
        "## Initiative",
        "",
        "| Field | Value |",
        "| --- | --- |",
    ]
    status = info["status"].replace("_", " ") + (
        f" ({info['status_reason']})" if info["status_reason"] else ""
    )
    for label, value in (
        ("Reference", info["ref"]),
        ("Name", info["name"]),
        ("Owner", info["owner"]),
        ("Sponsor", info["sponsor"]),
        ("Stage", info["stage"]),
        ("Status", status),
        ("Registered", info["created_at"]),
        ("In stage since", info["stage_entered_at"]),
        ("Last change", info["updated_at"]),
    ):
        lines.append(f"| {label} | {_cell(value)} |")

    gates_shown = [g.id for g in pipeline.model.gates if gate_id is None or g.id == gate_id]
    known = set(gates_shown)
    # Answers recorded under a gate the current pipeline no longer has must still be shown.
    orphans = sorted(
        {a["gate"] for a in pack["answers"]}
        | {r["gate"] for r in pack["reviews"]}
        | {k["gate"] for k in pack["links"]}
    )
    for gate in gates_shown + [g for g in orphans if g not in known]:
        answers = [a for a in pack["answers"] if a["gate"] == gate]
        links = [k for k in pack["links"] if k["gate"] == gate]
        reviews = [r for r in pack["reviews"] if r["gate"] == gate]
        if not (answers or links or reviews or gate_id):
            continue
        lines += ["", f"## {_inline(_gate_title(pipeline, gate))} gate ({_inline(gate)})", ""]
        lines += _answers_markdown(answers)
        lines += _links_markdown(links)
        lines += _reviews_markdown(reviews)

    if pack["system_card"]:
        lines += ["", pack["system_card"].rstrip()]

    lines += ["", "## Audit timeline", ""]
    if pack["timeline"]:
        lines += ["| Time | Actor | Action | Detail |", "| --- | --- | --- | --- |"]
        for entry in pack["timeline"]:
            detail = "; ".join(
                f"{k}: {_short(v)}" for k, v in entry["detail"].items() if v not in (None, "", [], {})
            )
            lines.append(
                f"| {entry['at']} | {_cell(entry['actor'])} | {_cell(entry['action'])} | {_cell(detail)} |"
            )
    else:
        lines.append("No audit entries.")
    return "\n".join(lines) + "\n"


def system_card_markdown(pipeline: CompiledPipeline, view: InitiativeView, heading_level: int = 2) -> str:
    """The draft system card from the current answers, headed at ``heading_level`` (2 inside the
    pack, 1 as a file of its own)."""
    tiers = [r.tier for r in view.reviews if r.tier and is_production_gate(pipeline, r.gate_id)]
    return draft_system_card(
        pipeline,
        ref=view.initiative.ref,
        name=view.initiative.name,
        answers={qid: version.value for qid, version in view.answers.items()},
        stage=view.initiative.stage,
        tier=tiers[-1] if tiers else None,
        heading_level=heading_level,
    )


# ---------------------------------------------------------------- answers


def _answers(
    pipeline: CompiledPipeline, history: Sequence[AnswerVersion], wanted: Any
) -> list[dict[str, Any]]:
    """One entry per question, in pipeline order, with every version oldest first."""
    questions = pipeline.model.all_questions()
    order = {qid: index for index, qid in enumerate(questions)}
    by_question: dict[tuple[str, str], list[AnswerVersion]] = {}
    for version in history:
        if wanted(version.gate_id):
            by_question.setdefault((version.gate_id, version.question_id), []).append(version)
    entries = []
    for (gate, qid), versions in sorted(
        by_question.items(), key=lambda item: (order.get(item[0][1], len(order)), item[0][1])
    ):
        question = questions.get(qid, (None, None))[1]
        latest = versions[-1]
        entries.append(
            {
                "gate": gate,
                "question": qid,
                "label": question.label if question else qid,
                "value": latest.value,
                "display": _display(question, latest.value),
                "history": [
                    {
                        "value": v.value,
                        "display": _display(question, v.value),
                        "author": v.author_id,
                        "answered_at": _iso(v.answered_at),
                        "gate": v.gate_id,
                    }
                    for v in versions
                ],
            }
        )
    return entries


def _display(question: Question | None, value: AnswerValue | None) -> str:
    if question is None:  # the question left the pipeline; show what was stored
        return "-" if value is None else ", ".join(value) if isinstance(value, list) else str(value)
    return display(question, value)


def _answers_markdown(answers: list[dict[str, Any]]) -> list[str]:
    lines = ["### Answers", ""]
    if not answers:
        return [*lines, "No answers recorded.", ""]
    lines += ["| Question | Current answer | Answered by | When |", "| --- | --- | --- | --- |"]
    for entry in answers:
        latest = entry["history"][-1]
        lines.append(
            f"| {_cell(entry['label'])} (`{entry['question']}`) | {_cell(entry['display'])} "
            f"| {_cell(latest['author'])} | {latest['answered_at']} |"
        )
    changed = [entry for entry in answers if len(entry["history"]) > 1]
    if changed:
        lines += ["", "#### Answer history", ""]
        for entry in changed:
            lines.append(f"- `{entry['question']}`:")
            for number, version in enumerate(entry["history"], start=1):
                lines.append(
                    f"  {number}. {_inline(version['display'])} - {_inline(version['author'])}, {version['answered_at']}"
                )
    return [*lines, ""]


# ---------------------------------------------------------------- links and reviews


def _links_markdown(links: list[dict[str, Any]]) -> list[str]:
    lines = ["### Evidence links", ""]
    if not links:
        return [*lines, "No evidence links.", ""]
    lines += ["| Title | URL | Added by | When |", "| --- | --- | --- | --- |"]
    for link in links:
        lines.append(
            f"| {_cell(link['title'])} | <{link['url']}> | {_cell(link['author'])} | {link['added_at']} |"
        )
    return [*lines, ""]


def _reviews_markdown(reviews: list[dict[str, Any]]) -> list[str]:
    lines = ["### Reviews", ""]
    if not reviews:
        return [*lines, "No reviews.", ""]
    for review in reviews:
        outcome = review["status"].replace("_", " ")
        closed = f", closed {review['closed_at']}" if review["closed_at"] else ""
        needs = ", ".join(f"{r['min']} x {r['role']}" for r in review["requirements"]) or "none"
        lines += [
            f"#### Review {review['id']}: {review['from_stage']} -> {review['to_stage']}, {outcome}",
            "",
            f"- Submitted by {_inline(review['submitted_by'])} at {review['submitted_at']}{closed}",
            f"- Decided on pipeline version **{review['pipeline_version']}**, "
            f"evidence hash `{review['evidence_hash']}`",
            f"- Risk tier: {_inline(review['tier'] or 'not determined')}; approvals required: {_inline(needs)}",
        ]
        if review["exception_reason"]:
            lines.append(
                f"- **Exception granted on blocking criteria.** Justification: {_inline(review['exception_reason'])}"
            )
        lines.append("")
        if review["decisions"]:
            lines += ["| Approver | Role | Decision | Reason | When |", "| --- | --- | --- | --- | --- |"]
            for d in review["decisions"]:
                lines.append(
                    f"| {_cell(d['approver'])} | {_cell(d['role'])} | {d['decision'].replace('_', ' ')} "
                    f"| {_cell(d['reason'])} | {d['decided_at']} |"
                )
        else:
            lines.append("No decisions yet.")
        lines.append("")
    return lines


# ---------------------------------------------------------------- formatting


def _gate_title(pipeline: CompiledPipeline, gate_id: str) -> str:
    gate = pipeline.model.gate(gate_id)
    return gate.title if gate else gate_id


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat(timespec="seconds")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _inline(value: object) -> str:
    """``value`` on one line, as Markdown that renders as the literal text (HTML, links and
    emphasis in it are shown, not applied)."""
    return markdown_text(_one_line(value))


def _cell(value: object) -> str:
    """Table cells are one line (a pipe in a value is escaped and does not split the row)."""
    if value is None or value == "":
        return "-"
    return _inline(value)


def _short(value: object, limit: int = 160) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    text = _one_line(text)  # plain: the cell it goes into escapes it
    return text if len(text) <= limit else text[: limit - 1] + "…"
