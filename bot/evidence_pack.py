"""The evidence pack: everything an auditor needs to reconstruct how an initiative passed its gates.

Pure functions over an ``InitiativeView``: no I/O, no clock, so the same view always gives the
same pack. ``evidence_json`` is the record; ``evidence_markdown`` renders that same record, so
the two can never disagree.

Everything people typed (names, answers, reasons, titles) reaches the Markdown through ``_inline``
or ``_cell``, escaped so that it renders as the literal text: an answer cannot add HTML or a link
to the pack. The JSON carries the values as stored.

Answers and decisions are plain rows; only the audit log is hash-chained. So each closed review's
evidence hash is recomputed from its answers as submitted and links (``evidence_hash_holds``),
and each decision is compared with its ``decision.recorded`` entry on the timeline (``audit``):
where they disagree, the pack says so instead of vouching for what the tables hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gates.answers import AnswerValue, display
from gates.errors import UnknownGate
from gates.evidence import decision_differences, evidence_holds
from gates.lifecycle import Decision, Review
from gates.loader import CompiledPipeline
from gates.markdown import markdown_text
from gates.pipeline import Question
from gates.ports import AnswerVersion
from gates.system_card import SystemCard, draft_system_card, hidden_by, is_production_gate
from gates.usecases import InitiativeView

FORMAT = "shepherd-evidence-pack/1"
HIDDEN = "does not apply with the other answers: it counts for nothing"
"""Said of an answer to a question a show_if hides: kept on record, but no rule reads it and the
questionnaire no longer asks it."""


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
        "answers": _answers(
            pipeline,
            view.history,
            wanted,
            hidden_by(pipeline, {qid: version.value for qid, version in view.answers.items()}),
        ),
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
                "evidence_hash_holds": _evidence_holds(pipeline, view, review),
                "tier": review.tier,
                "requirements": [{"role": r.role, "min": r.min} for r in review.requirements],
                "exception_reason": review.exception_reason,
                "decisions": [
                    {
                        "approver": d.approver_id,
                        "role": d.role,
                        # In the end: a later approver may have moved it (``role``: when given).
                        "counted_for": review.counted_for(d),
                        "decision": d.kind.value,
                        "reason": d.reason,
                        "decided_at": _iso(d.decided_at),
                        "audit": _against_audit_entry(view, review, d),
                    }
                    for d in review.decisions
                ],
                "answers_as_submitted": _as_submitted(pipeline, view, review),
            }
            for review in view.reviews
            if wanted(review.gate_id)
        ],
        "system_card": system_card(pipeline, view).markdown
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
        lines += _reviews_markdown(pipeline, reviews)

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


def system_card(
    pipeline: CompiledPipeline,
    view: InitiativeView,
    heading_level: int = 2,
    people: Mapping[str, str] | None = None,
) -> SystemCard:
    """The draft system card from the current answers, with its figures, headed at
    ``heading_level`` (2 inside the pack, 1 as a file of its own); ``people`` names the persons
    it lists by user id (``gates.system_card.draft_system_card``)."""
    tiers = [r.tier for r in view.reviews if r.tier and is_production_gate(pipeline, r.gate_id)]
    return draft_system_card(
        pipeline,
        ref=view.initiative.ref,
        name=view.initiative.name,
        answers={qid: version.value for qid, version in view.answers.items()},
        stage=view.initiative.stage,
        tier=tiers[-1] if tiers else None,
        heading_level=heading_level,
        people=people,
    )


# ---------------------------------------------------------------- checked against the record


def _evidence_holds(pipeline: CompiledPipeline, view: InitiativeView, review: Review) -> bool | None:
    """Whether the answers as submitted and the links of then still give the evidence hash the
    review's audit entry recorded (``gates.evidence``, as ``submit`` computes it); None for an
    open review, whose answers as submitted the pack does not show."""
    submitted = view.as_submitted.get(review.id) if review.id is not None else None
    if submitted is None:
        return None
    recorded = next(
        (
            entry.detail.get("evidence_hash")
            for entry in view.timeline
            if entry.action == "review.submitted" and entry.detail.get("review") == review.id
        ),
        review.evidence_hash,
    )
    links = [(link.url, link.title) for link in view.links if link.added_at <= review.submitted_at]
    answers = {qid: version.value for qid, version in submitted.items()}
    return recorded == review.evidence_hash and evidence_holds(
        pipeline, review.pipeline_version, recorded, answers, links
    )


def _against_audit_entry(view: InitiativeView, review: Review, decision: Decision) -> dict[str, Any]:
    """``{"entry": whether the audit log records this decision, "differs": {field: what the
    entry records}}``: a decision is a plain row, and only the audit log is hash-chained."""
    entry = next(
        (
            e
            for e in view.timeline
            if e.action == "decision.recorded"
            and e.actor_id == decision.approver_id
            and e.detail.get("review") == review.id
        ),
        None,
    )
    if entry is None:
        return {"entry": False, "differs": {}}
    differs = decision_differences(
        decision.kind.value,
        decision.role,
        decision.reason,
        decision.decided_at,
        entry.detail,
        entry.at,
        decision.roles,
    )
    if "at" in differs:
        differs["at"] = _iso(differs["at"])
    return {"entry": True, "differs": differs}


# ---------------------------------------------------------------- answers


def _answers(
    pipeline: CompiledPipeline, history: Sequence[AnswerVersion], wanted: Any, hidden: frozenset[str]
) -> list[dict[str, Any]]:
    """One entry per question, in pipeline order, with every version oldest first; ``applies``
    is False for a question ``hidden`` by the other current answers (its answer counts for nothing)."""
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
                "applies": qid not in hidden,
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


def _as_submitted(
    pipeline: CompiledPipeline, view: InitiativeView, review: Review
) -> list[dict[str, Any]] | None:
    """The answers a closed review was decided on (every gate's, as its evidence hash covers
    them), each with what became of it since; None for an open review, whose gate is frozen.

    ``since`` is "unchanged", "changed" (``current`` has today's answer) or, for the review's own
    gate only, "answered after submission" (a question it was decided without). ``applies`` is
    False for an answer the other answers as submitted hid: the review was decided without it.
    """
    submitted = view.as_submitted.get(review.id) if review.id is not None else None
    if submitted is None:
        return None
    hidden = hidden_by(pipeline, {qid: version.value for qid, version in submitted.items()})
    questions = pipeline.model.all_questions()
    order = {qid: index for index, qid in enumerate(questions)}
    later = {
        qid for qid, now in view.answers.items() if now.gate_id == review.gate_id and qid not in submitted
    }
    entries = []
    for qid in sorted(set(submitted) | later, key=lambda q: (order.get(q, len(order)), q)):
        question = questions.get(qid, (None, None))[1]
        then, now = submitted.get(qid), view.answers.get(qid)
        current = None if now is None else now.value
        recorded = then or now  # one of them is there: qid came from one or the other
        assert recorded is not None
        if then is None:
            since = "answered after submission"
        else:
            since = "unchanged" if current == then.value else "changed"
        entries.append(
            {
                "gate": recorded.gate_id,
                "question": qid,
                "label": question.label if question else qid,
                "value": None if then is None else then.value,
                "display": None if then is None else _display(question, then.value),
                "author": None if then is None else then.author_id,
                "answered_at": None if then is None else _iso(then.answered_at),
                "applies": qid not in hidden,
                "since": since,
                "current": None
                if since == "unchanged"
                else {"value": current, "display": _display(question, current)},
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
            f"| {_cell(entry['label'])} (`{entry['question']}`) | {_answer_cell(entry)} "
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


def _reviews_markdown(pipeline: CompiledPipeline, reviews: list[dict[str, Any]]) -> list[str]:
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
        if review["evidence_hash_holds"] is False:
            lines.append(
                "- **Warning: its answers as submitted (below) and the links of then do not give this "
                "evidence hash.** They were changed in the database after the review was submitted, so "
                "they are not what it was decided on; `shepherd audit verify` names what disagrees."
            )
        lines.append("")
        if review["decisions"]:
            lines += ["| Approver | Role | Decision | Reason | When |", "| --- | --- | --- | --- | --- |"]
            for d in review["decisions"]:
                role = _cell(d["counted_for"])
                if d["counted_for"] != d["role"]:
                    role += f" (first counted as {_cell(d['role'])})"
                lines.append(
                    f"| {_cell(d['approver'])} | {role} | {d['decision'].replace('_', ' ')} "
                    f"| {_cell(d['reason'])} | {d['decided_at']} |"
                )
            lines += _decision_warnings(review["decisions"])
        else:
            lines.append("No decisions yet.")
        lines.append("")
        if review["answers_as_submitted"] is not None:
            lines += _as_submitted_markdown(pipeline, review)
    return lines


def _decision_warnings(decisions: list[dict[str, Any]]) -> list[str]:
    """A warning under the decisions table for each decision its audit entry does not record so."""
    lines = []
    for d in decisions:
        audit = d["audit"]
        if not audit["entry"]:
            said = "has no audit entry: it was added in the database, not through Shepherd."
        elif audit["differs"]:
            recorded = ", ".join(_recorded(field, value) for field, value in audit["differs"].items())
            said = (
                f"does not match its audit entry, which records {recorded}: it was changed in the database."
            )
        else:
            continue
        lines.append(f"**Warning:** the decision of {_inline(d['approver'])} {said}")
    return ["", *lines] if lines else []


def _recorded(field: str, value: Any) -> str:
    if value is None:
        return f"no {field}"
    if field == "decision":
        return f"decision {_inline(str(value).replace('_', ' '))}"
    return f'{field} "{_inline(value)}"'


def _as_submitted_markdown(pipeline: CompiledPipeline, review: dict[str, Any]) -> list[str]:
    """What a closed review was decided on, beside the gate's current answers: the answers of
    its gate as submitted, and those of other gates (also under its hash) that changed since."""
    entries = review["answers_as_submitted"]
    own = [e for e in entries if e["gate"] == review["gate"]]
    others = [e for e in entries if e["gate"] != review["gate"]]
    if review["evidence_hash_holds"] is False:
        said = (
            f"The answers the database holds for review {review['id']} as they stood when it was "
            f"submitted ({review['submitted_at']}). **They do not match its evidence hash "
            f"`{review['evidence_hash']}`**: some were changed in the database since, so they are not "
            "what it was decided on."
        )
    else:
        said = (
            f"The answers review {review['id']} was decided on, as they stood when it was submitted "
            f"({review['submitted_at']}): its evidence hash `{review['evidence_hash']}` covers them."
        )
    lines = [
        f"##### Answers as submitted for review {review['id']}",
        "",
        f"{said} Answers changed since are marked; the current answers are in the table above.",
        "",
    ]
    if own:
        lines += [
            "| Question | As submitted | Answered by | When | Since then |",
            "| --- | --- | --- | --- | --- |",
        ]
        for e in own:
            lines.append(
                f"| {_cell(e['label'])} (`{e['question']}`) | {_answer_cell(e)} | {_cell(e['author'])} "
                f"| {e['answered_at'] or '-'} | {_since(e)} |"
            )
    else:
        lines.append("No answers to this gate were recorded when it was submitted.")
    if others:
        changed = [e for e in others if e["since"] != "unchanged"]
        lines += [
            "",
            f"Its hash also covers {len(others)} answer(s) to other gates, as submitted: "
            + (f"{len(changed)} changed since:" if changed else "none changed since."),
        ]
        if changed:
            lines.append("")
        for e in changed:
            lines.append(
                f"- {_inline(_gate_title(pipeline, e['gate']))} gate, {_inline(e['label'])} (`{e['question']}`): "
                f"as submitted {_inline(e['display'])}; {_since(e)}"
            )
    return [*lines, ""]


def _answer_cell(entry: dict[str, Any]) -> str:
    """An answer's display, said not to apply where other answers hide its question."""
    shown = _cell(entry["display"])
    return shown if entry["applies"] or entry["value"] is None else f"{shown} ({HIDDEN})"


def _since(entry: dict[str, Any]) -> str:
    if entry["since"] == "unchanged":
        return "unchanged"
    return f"**{entry['since']}**, now: {_cell(entry['current']['display'])}"


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
