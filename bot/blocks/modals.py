"""Modals: intake, questionnaire pages, decision reasons, exception requests and evidence.

Long questionnaires are cut into pages from the pipeline alone (never from the answers), so a
question cannot slip between pages when an answer changes what is shown; questions hidden by
``show_if`` are then left out of their page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot import ids
from bot.blocks.inputs import fits_input, question_input, text_input, worst_case_size
from bot.blocks.labels import REVIEW_WORDS, answer_display, gate_title, stage_label
from bot.blocks.text import (
    MAX_PRIVATE_METADATA,
    MAX_SECTION_TEXT,
    MAX_VIEW_BLOCKS,
    MAX_VIEW_BYTES,
    MAX_VIEW_TITLE,
    bullet_list,
    clamp_blocks,
    clip,
    context,
    divider,
    escape,
    fit_blocks,
    json_bytes,
    mention,
    plain,
    section,
    slack_date,
    truncate,
)
from gates.answers import AnswerValue, coerce, fingerprint, for_rules
from gates.conditions import ConditionError, MissingAnswer, make_context
from gates.errors import InvalidAnswer, UnknownGate
from gates.evidence import current_links
from gates.lifecycle import DecisionKind, Initiative, Review
from gates.loader import CompiledPipeline
from gates.pipeline import Gate, Question, QuestionType
from gates.ports import AnswerVersion, EvidenceLink
from gates.readiness import readiness
from gates.system_card import hidden_by

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 90
NAME_MAX_LENGTH = 200
REASON_MAX_LENGTH = 3000
# Room left in a view for everything around the questions (title, intro, link inputs).
QUESTION_BYTES = MAX_VIEW_BYTES - 20_000


# Pipelines are immutable and live as long as the process, so a gate's pages are worked out once
# (rendering every input to size it is half the cost of building a questionnaire page). Keyed by
# identity, holding the gate so that the id cannot be reused.
_PAGES: dict[tuple[int, int], tuple[Gate, list[list[Question]]]] = {}


def questionnaire_pages(gate: Gate, page_size: int = 0) -> list[list[Question]]:
    """The gate's questions cut into pages of at most ``page_size`` (0: the default), each page
    small enough for one view whatever the answers are. Do not modify the result: it is shared."""
    cached = _PAGES.get((id(gate), page_size))
    if cached is not None and cached[0] is gate:
        return cached[1]
    pages = _cut_pages(gate, page_size)
    if len(_PAGES) > 256:  # tests build many pipelines; a process serving one never gets here
        _PAGES.clear()
    _PAGES[(id(gate), page_size)] = (gate, pages)
    return pages


def _cut_pages(gate: Gate, page_size: int) -> list[list[Question]]:
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    pages: list[list[Question]] = [[]]
    used = 0
    for question in gate.questions:
        cost = worst_case_size(question)
        if pages[-1] and (len(pages[-1]) >= size or used + cost > QUESTION_BYTES):
            pages.append([])
            used = 0
        pages[-1].append(question)
        used += cost
    return pages


def _modal(
    callback_id: str,
    title: str,
    blocks: list[dict[str, Any]],
    *,
    submit: str | None = None,
    close: str = "Cancel",
    private_metadata: str = "",
) -> dict[str, Any]:
    if len(private_metadata) > MAX_PRIVATE_METADATA:
        raise ValueError(
            f"private_metadata is {len(private_metadata)} characters; Slack allows {MAX_PRIVATE_METADATA}"
        )
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MAX_VIEW_TITLE),
        "close": plain(close, MAX_VIEW_TITLE),
        "blocks": clamp_blocks(blocks, MAX_VIEW_BLOCKS),
    }
    if submit is not None:
        view["submit"] = plain(submit, MAX_VIEW_TITLE)
    if private_metadata:
        view["private_metadata"] = private_metadata
    return view


def _title(ref: str, gate: str, suffix: str = "") -> str:
    """``AI-0007 · Pilot 2/3``: the gate title gives way first, so ref and page always show."""
    head = f"{ref} · "
    room = MAX_VIEW_TITLE - len(head) - len(suffix)
    if room < 3:
        return truncate(f"{ref}{suffix}", MAX_VIEW_TITLE)
    return f"{head}{truncate(gate, room)}{suffix}"


def _required_now(pipeline: CompiledPipeline, question: Question, rules_context: Any) -> bool:
    if question.required_if is None:
        return question.required
    try:
        return pipeline.condition(question.required_if).holds(rules_context)
    except (MissingAnswer, ConditionError):
        return False


def _typed(
    pipeline: CompiledPipeline, answers: Mapping[str, Any]
) -> tuple[dict[str, AnswerValue], dict[str, str]]:
    """The answers coerced to their questions' types, and why the ones that do not fit fail."""
    questions = {qid: q for qid, (_, q) in pipeline.model.all_questions().items()}
    typed: dict[str, AnswerValue] = {}
    problems: dict[str, str] = {}
    for qid, raw in answers.items():
        question = questions.get(qid)
        if question is None or raw is None:
            continue
        try:
            value = coerce(question, raw)
        except InvalidAnswer as error:
            problems[qid] = error.reason
            continue
        if value is not None:
            typed[qid] = value
    return typed, problems


def _question_blocks(
    pipeline: CompiledPipeline,
    questions: Sequence[Question],
    answers: Mapping[str, AnswerValue],
    counted: Mapping[str, AnswerValue],
    problems: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``counted``: the answers rules see (``Readiness.counted``: hidden questions' left out)."""
    rules_context = make_context(for_rules(pipeline.questions, counted))
    blocks = []
    for question in questions:
        value = answers.get(question.id)
        if value is None or fits_input(question, value):
            required = _required_now(pipeline, question, rules_context)
            blocks.append(question_input(question, value, required, (problems or {}).get(question.id)))
        else:
            # Prefilling a cut version would shorten the answer on the next save.
            shown = clip(answer_display(question, value), 1500)
            blocks.append(
                section(
                    f"*{clip(question.label, 300)}*\n{shown}\n_This answer is longer than a Slack input "
                    "holds, so it cannot be edited here; it is kept as it is._"
                )
            )
    return blocks


def intake_modal(pipeline: CompiledPipeline, private_metadata: str = "") -> dict[str, Any]:
    """The registration form: the initiative's name and the intake gate's questions.

    When the intake questionnaire is longer than one page, the modal carries its first page and
    says that the rest follows in the questionnaire once the initiative exists.
    """
    gate = pipeline.model.intake
    visible = {q.id for q in readiness(pipeline, gate.id, {}).visible_questions}
    pages = questionnaire_pages(gate)
    first = [q for q in pages[0] if q.id in visible]
    blocks: list[dict[str, Any]] = [
        section(
            f"Register a new AI initiative. These are the *{escape(gate.title)}* questions; you can "
            "save what you know now and complete the rest later from the initiative's card."
        ),
        text_input(
            ids.NAME_BLOCK,
            "Initiative name",
            max_length=NAME_MAX_LENGTH,
            placeholder="A short name people will recognise",
        ),
        *_question_blocks(pipeline, first, {}, {}),
    ]
    later = sum(1 for page in pages[1:] for q in page if q.id in visible)
    if later:
        blocks.append(context(f"{later} more question(s) follow in the questionnaire after registration."))
    return _modal(
        ids.VIEW_INTAKE,
        "Register an initiative",
        blocks,
        submit="Register",
        private_metadata=private_metadata,
    )


def questionnaire_modal(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    gate_id: str,
    answers: Mapping[str, AnswerValue | None],
    page: int = 0,
    page_size: int = 0,
    private_metadata_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One page of a gate's questionnaire, prefilled with the current answers.

    Args:
        answers: current answers of every gate (``show_if`` may read earlier gates); None means
            no answer.
        page: 0-based; clamped to the last page.
        page_size: questions per page, 0 for the default (20); pages also stay under 250 kB.
        private_metadata_extra: more keys for private_metadata beside ``ref``, ``gate``, ``page``.

    Raises:
        UnknownGate: the pipeline has no such gate.
        ValueError: private_metadata would exceed 3,000 characters.
    """
    gate = pipeline.model.gate(gate_id)
    if gate is None:
        raise UnknownGate(gate_id)
    typed, problems = _typed(pipeline, answers)
    state = readiness(pipeline, gate.id, typed)
    visible = {q.id for q in state.visible_questions}
    pages = questionnaire_pages(gate, page_size)
    page = max(0, min(page, len(pages) - 1))
    last = page == len(pages) - 1
    shown = [q for q in pages[page] if q.id in visible]

    intro = f"*{clip(initiative.name, 300)}* · {escape(initiative.ref)} · {escape(gate.title)} questionnaire"
    notes = [f"{state.answered}/{len(state.visible_questions)} answered"]
    if len(pages) > 1:
        notes.insert(0, f"Page {page + 1} of {len(pages)}")
    notes.append("leave a field empty to keep it unanswered; you can save part now and finish later")
    blocks: list[dict[str, Any]] = [section(intro), context(" · ".join(notes))]
    if shown:
        blocks += _question_blocks(pipeline, shown, typed, state.counted, problems)
    else:
        blocks.append(section("_No questions apply on this page with the current answers._"))
    if last:
        blocks += [
            divider(),
            text_input(
                ids.LINK_URL_BLOCK,
                "Evidence link (optional)",
                optional=True,
                url=True,
                placeholder="https://…",
                hint="A document, dashboard or ticket that supports these answers.",
            ),
            text_input(ids.LINK_TITLE_BLOCK, "Link title", optional=True, max_length=200),
        ]
    metadata = {
        "ref": initiative.ref,
        "gate": gate.id,
        "page": page,
        # What each field showed, so that saving the form records only what this person changed
        # (``usecases.check_page``). Keyed by the question's place in the gate, not its id (up
        # to 64 characters): 90 questions on a page then fit in 1,500 of the 3,000 characters.
        # A saved answer that no longer fits shows as an empty field, but the field stands for
        # that saved answer: saved empty, it is cleared, as its hint says, rather than taken as
        # untouched and left in place to block the gate.
        "shown": shown_fingerprints(gate, shown, {**typed, **{qid: answers[qid] for qid in problems}}),
        # The questions those places stood for: a pipeline deployed while the form is open may
        # have moved them, and ``parse.shown_answers`` then trusts none of them.
        "layout": questions_layout(gate),
        **(private_metadata_extra or {}),
    }
    suffix = f" {page + 1}/{len(pages)}" if len(pages) > 1 else ""
    return _modal(
        ids.VIEW_QUESTIONNAIRE,
        _title(initiative.ref, gate.title, suffix),
        blocks,
        submit="Save" if last else "Save & next",
        private_metadata=json.dumps(metadata, separators=(",", ":")),
    )


def shown_fingerprints(
    gate: Gate, questions: Sequence[Question], typed: Mapping[str, AnswerValue | None]
) -> dict[str, str]:
    """``fingerprint`` of the answer each of ``questions`` stands for (``typed``: the saved
    answer, even one that no longer fits and shows as an empty field), keyed by its place in
    ``gate`` (``parse.shown_answers`` reads them back)."""
    place = {question.id: n for n, question in enumerate(gate.questions)}
    return {str(place[q.id]): fingerprint(typed.get(q.id)) for q in questions}


def questions_layout(gate: Gate) -> str:
    """A digest of ``gate``'s question ids in their order: the places ``shown_fingerprints``
    keys by name the same questions only while it is unchanged."""
    return fingerprint("\n".join(question.id for question in gate.questions))


_REASON_TITLES = {
    DecisionKind.REJECT: ("Reject", "Reject", "You are rejecting"),
    DecisionKind.REQUEST_CHANGES: ("Request changes", "Send to team", "You are requesting changes to"),
    DecisionKind.APPROVE: ("Approve", "Approve", "You are approving"),
}


def reason_modal(
    review_id: int,
    kind: DecisionKind,
    initiative_name: str,
    ref: str,
    private_metadata: str = "",
) -> dict[str, Any]:
    """Ask for the reason a decision needs. Required for reject and request changes; an approval
    may carry an optional comment. Empty ``private_metadata`` becomes ``{"review", "kind"}``."""
    title, submit, lead = _REASON_TITLES[kind]
    metadata = private_metadata or json.dumps(
        {"review": review_id, "kind": kind.value}, separators=(",", ":")
    )
    blocks = [
        section(f"{lead} *{clip(initiative_name, 300)}* ({escape(ref)})."),
        text_input(
            ids.REASON_BLOCK,
            "Reason" if kind is not DecisionKind.APPROVE else "Comment (optional)",
            multiline=True,
            optional=kind is DecisionKind.APPROVE,
            max_length=REASON_MAX_LENGTH,
            hint="The team sees this, and it is kept on the review's record.",
        ),
    ]
    return _modal(ids.VIEW_REASON, title, blocks, submit=submit, private_metadata=metadata)


def refused_modal(ref: str, explanation: str) -> dict[str, Any]:
    """What a reason form becomes when its person may not decide (it opens before that is known)."""
    blocks = [section(f"*{escape(ref)}*: {escape(explanation)}")]
    return _modal(ids.VIEW_REASON, "Cannot decide", blocks, close="Close")


def exception_modal(
    ref: str,
    gate_title: str,
    blockers: list[str],
    private_metadata: str = "",
) -> dict[str, Any]:
    """Submit despite unmet blocking criteria, with a justification the approvers will read."""
    blocks = [
        section(
            f"*{escape(ref)}* does not yet meet the *{escape(gate_title)}* gate. This gate allows "
            "an exception: you can submit anyway with a justification, and the approvers decide."
        ),
        section("*Not met:*\n" + bullet_list([escape(b) for b in blockers], limit=MAX_SECTION_TEXT - 20)),
        text_input(
            ids.REASON_BLOCK,
            "Why should this go ahead as an exception?",
            multiline=True,
            max_length=REASON_MAX_LENGTH,
            hint="Shown to every approver and kept with the review.",
        ),
    ]
    return _modal(
        ids.VIEW_EXCEPTION,
        "Request an exception",
        blocks,
        submit="Submit for review",
        private_metadata=private_metadata,
    )


def _answer_text(question: Question, value: AnswerValue) -> str:
    if question.type is QuestionType.USER and isinstance(value, str):
        return mention(value)
    if question.type is QuestionType.URL and isinstance(value, str):
        return f"<{escape(value)}>" if len(value) < 1500 else clip(value, 1500)
    return clip(answer_display(question, value), 2500)


def evidence_modal(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    review: Review | None,
    gate_id: str,
    answers: Mapping[str, AnswerVersion],
    links: Sequence[EvidenceLink],
) -> dict[str, Any]:
    """Read-only summary of a gate's evidence: each answer with who gave it and when, the links,
    and (for a review) the evidence hash and pipeline version it was submitted under.

    Args:
        answers: for a review, the answers as they stood when it was submitted, every gate's
            (its evidence hash covers them all); otherwise the current ones.
        links: likewise, every link of the initiative for a review.
    """
    gate = pipeline.model.gate(gate_id)
    title = gate.title if gate is not None else gate_title(pipeline, gate_id)
    questions = gate.questions if gate is not None else []
    blocks: list[dict[str, Any]] = [
        section(
            f"*{clip(initiative.name, 300)}* · {escape(initiative.ref)}\n"
            f"{escape(title)} gate · stage {escape(stage_label(initiative.stage))}"
        )
    ]
    # Judged with the answers shown, as the evidence pack and the system card judge them: an
    # answer to a question the others hide (a vendor, once the team said it uses no external
    # AI) was not asked and counts for nothing, so it must not read as evidence.
    hidden = hidden_by(pipeline, {qid: version.value for qid, version in answers.items()})
    other_gates: list[dict[str, Any]] = []
    if review is not None:
        facts = [
            f"Review #{review.id} · {REVIEW_WORDS[review.status]}",
            f"submitted by {mention(review.submitted_by)} {slack_date(review.submitted_at)}",
            f"pipeline version `{escape(review.pipeline_version)}`",
            f"evidence hash `{escape(review.evidence_hash)}`",
        ]
        if review.tier:
            facts.append(f"risk tier {escape(review.tier)}")
        blocks.append(context(*facts))
        # Said outright: the team may have changed answers since, and this is not today's state.
        blocks.append(
            context(
                f"Answers and links as submitted on {slack_date(review.submitted_at)}: the evidence "
                "the hash covers. Changes made since are not shown."
            )
        )
        if review.exception_reason:
            blocks.append(section("*Exception requested:*\n" + _quote(review.exception_reason)))
        other_gates = _other_gates_answers(pipeline, gate_id, answers, hidden)
        if review.pipeline_version != pipeline.version:
            # Submitted on another pipeline, whose questions the hash covers: those removed since
            # are nowhere above, yet the review was decided on them.
            other_gates += _no_longer_asked(pipeline, answers, review.pipeline_version)

    link_lines = [
        (
            f"<{url}|{clip(link.title or link.url, 150)}>"
            if len(url := escape(link.url)) <= _LINK_URL_CHARS
            # Named all the same: left out, the review looked as if it had no evidence link.
            else f"{clip(link.title or link.url, 150)} (its address is too long to show in Slack; "
            f"the evidence pack has it: `shepherd export {escape(initiative.ref)}`)"
        )
        + f" · {mention(link.author_id)} {slack_date(link.added_at, '{date_short}')}"
        # An address given again with a new title once, with its new title.
        for link in current_links(links).values()
    ]
    # Each line whole: a link cut short is no link at all.
    listed = bullet_list(link_lines, limit=2900, max_items=15, item_limit=_LINK_URL_CHARS + 300)
    link_blocks = [divider(), section("*Evidence links*\n" + listed)]
    if not link_lines:
        link_blocks = [
            divider(),
            context("No evidence links yet." if review is None else "No evidence links at the time."),
        ]

    answered: list[dict[str, Any]] = []
    unanswered = 0
    for question in questions:
        version = answers.get(question.id)
        if version is None or version.value is None:
            unanswered += question.id not in hidden  # a question not asked is no gap
            continue
        if question.id in hidden:
            answered.append(section(f"*{clip(question.label, 300)}*\n_{HIDDEN_ANSWER}_"))
            continue
        answered.append(
            section(
                f"*{clip(question.label, 300)}*\n{_answer_text(question, version.value)}\n"
                f"_{mention(version.author_id)} · {slack_date(version.answered_at)}_"
            )
        )
    blocks.append(divider())
    room = MAX_VIEW_BLOCKS - len(blocks) - len(other_gates) - len(link_blocks) - 1
    # Whatever bytes the rest leaves, with room for the note on unanswered questions.
    byte_room = MAX_VIEW_BYTES - json_bytes([*blocks, *other_gates, *link_blocks]) - 5_000
    blocks += (
        fit_blocks(answered, room, byte_room)
        if answered
        else [section("_No answers recorded for this gate yet._")]
    )
    if unanswered and answered:
        blocks.append(context(f"{unanswered} question(s) of this gate have no answer."))
    blocks += other_gates
    blocks += link_blocks
    return _modal(
        ids.VIEW_EVIDENCE,
        _title(initiative.ref, "Evidence"),
        blocks,
        close="Close",
        private_metadata=json.dumps({"ref": initiative.ref, "gate": gate_id}, separators=(",", ":")),
    )


_OTHER_GATE_BLOCKS = 8
HIDDEN_ANSWER = "Does not apply with the other answers: not evidence."
_OTHER_ANSWER_CHARS = 200
# Longer evidence links are named in the modal, not linked (the evidence pack has them).
_LINK_URL_CHARS = 1000


def _other_gates_answers(
    pipeline: CompiledPipeline,
    gate_id: str,
    answers: Mapping[str, AnswerVersion],
    hidden: frozenset[str],
) -> list[dict[str, Any]]:
    """The answers to other gates' questions, one line each under their gate's name: a review's
    evidence hash covers every answer of the initiative, and approvers decide knowing them."""
    sections: list[dict[str, Any]] = []
    for other in pipeline.model.gates:
        if other.id == gate_id:
            continue
        lines = [
            _other_answer_line(question, version.value, question.id in hidden)
            for question in other.questions
            if (version := answers.get(question.id)) is not None and version.value is not None
        ]
        # A gate's lines over as many sections as they need, rather than "and N more".
        text = f"*{escape(other.title)} gate*"
        for line in lines:
            if len(text) + 1 + len(line) > MAX_SECTION_TEXT:
                sections.append(section(text))
                text = f"*{escape(other.title)} gate (continued)*"
            text += "\n" + line
        if lines:
            sections.append(section(text))
    if not sections:
        return []
    heading = context("Also covered by the evidence hash: the answers to other gates, as submitted.")
    return [divider(), heading, *clamp_blocks(sections, _OTHER_GATE_BLOCKS)]


def _no_longer_asked(
    pipeline: CompiledPipeline, answers: Mapping[str, AnswerVersion], submitted_on: str
) -> list[dict[str, Any]]:
    """The answers as submitted to questions this pipeline no longer has, by gate and id: no
    label or type is left to show them by, so each is its id and its value as stored."""
    lines = [
        f"{escape(version.gate_id)} · `{escape(qid)}`: "
        + clip(
            ", ".join(map(str, version.value)) if isinstance(version.value, list) else str(version.value), 150
        )
        for qid, version in sorted(answers.items(), key=lambda item: (item[1].gate_id, item[0]))
        if qid not in pipeline.questions and version.value is not None
    ]
    if not lines:
        return []
    heading = context(
        f"No longer asked by the pipeline: answers on record when it was submitted (on pipeline "
        f"version `{escape(submitted_on)}`) to questions removed since. The hash covers those that "
        "version still asked."
    )
    return [divider(), heading, section(bullet_list(lines, limit=2900, max_items=20, item_limit=250))]


def _other_answer_line(question: Question, value: AnswerValue, hidden: bool) -> str:
    if hidden:
        return f"• {clip(question.label, 100)}: _{HIDDEN_ANSWER}_"
    line = f"• {clip(question.label, 100)}: {_answer_text(question, value)}"
    if question.type is QuestionType.URL:  # whole: a link cut short is no link at all
        return line
    return truncate(line, _OTHER_ANSWER_CHARS)


def _quote(text: str, limit: int = 2500) -> str:
    return "\n".join(f">{line}" for line in clip(text.strip(), limit).splitlines() or [""])
