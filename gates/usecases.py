"""Use cases: what people can do with an initiative, written against the ports.

Each function opens the unit of work it is given, does one thing, records it on the audit log,
queues the notifications it causes in the same transaction, and commits. Time and ids come from
the caller; nothing here reads the clock. Every refusal is a ``GateError`` whose message can be
shown to the person as it is.

The unit of work may be entered again after it exits (each ``with`` is a fresh transaction):
``decide``, ``submit``, ``retire`` and the other status changes rely on that to try again when
they lose a race to another writer (``retrying``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from gates.answers import AnswerValue, coerce, fingerprint
from gates.errors import (
    ConcurrentUpdate,
    DecisionRefused,
    GateDecided,
    GateError,
    InvalidAnswer,
    InvalidTransition,
    NotFound,
    NotPermitted,
    NotReady,
    ReviewClosed,
    UnknownGate,
    UnknownInitiative,
    UnknownQuestion,
    UnknownRole,
)
from gates.evidence import current_links, decision_detail, submitted_evidence_hash
from gates.lifecycle import (
    DecisionKind,
    DecisionResult,
    Initiative,
    Requirement,
    Review,
    ReviewStatus,
    Status,
)
from gates.loader import CompiledPipeline
from gates.pipeline import Gate, Question, QuestionType
from gates.ports import (
    AnswerVersion,
    EvidenceLink,
    InitiativeFilter,
    OperationsUnitOfWork,
    TimelineEntry,
    UnitOfWork,
)
from gates.readiness import Readiness, readiness

T = TypeVar("T")


# ---------------------------------------------------------------- answers


def validate_answers(
    pipeline: CompiledPipeline, gate_id: str, raw: Mapping[str, Any]
) -> tuple[dict[str, AnswerValue | None], dict[str, str]]:
    """Coerce a batch of answers for one gate, collecting every problem (for modal errors).

    Returns:
        (typed answers, {question id: message}) - the second is empty when all fit.

    Raises:
        UnknownGate, UnknownQuestion: the gate or a question id does not exist.
    """
    gate = _gate(pipeline, gate_id)
    typed: dict[str, AnswerValue | None] = {}
    errors: dict[str, str] = {}
    for qid, value in raw.items():
        question = gate.question(qid)
        if question is None:
            raise UnknownQuestion(gate_id, qid)
        try:
            typed[qid] = coerce(question, value)
        except InvalidAnswer as error:
            errors[qid] = error.reason
    return typed, errors


@dataclass(frozen=True, slots=True)
class AnswerResult:
    initiative: Initiative
    changed: tuple[str, ...]
    answers: Mapping[str, AnswerValue | None]
    """Every current answer of the initiative, as this save committed them."""
    readiness: Readiness | None
    """The answered gate's readiness; None where not judged (``answer_many``: the next
    questionnaire page needs the answers only)."""


def register(
    pipeline: CompiledPipeline,
    uow: OperationsUnitOfWork,
    *,
    name: str,
    owner_id: str,
    answers: Mapping[str, Any],
    actor_id: str,
    now: datetime,
    sponsor_id: str | None = None,
    form: str | None = None,
    registered_from: Mapping[str, str | None] | None = None,
) -> Initiative | None:
    """Register a new initiative from its intake answers; returns it with its new ref.

    ``form``: the id of the registration form Slack sent. Slack sends the same form again when
    its first answer came late and the person pressed Register again: that form registers
    nothing more, and None is returned.

    ``registered_from``: where the registration was made (opaque here: the chat workspace), so
    that the welcome and the confirmation reach the people there.

    Raises:
        InvalidAnswer: the first answer that does not fit (nothing is recorded).
    """
    name = name.strip()
    if not name:
        raise InvalidAnswer("name", "an initiative needs a name")
    intake = pipeline.model.intake
    typed = _typed_or_raise(pipeline, intake.id, answers)
    with uow:
        if form is not None and not uow.dedupe.first_time(f"intake:{form}", now):
            return None
        initiative = Initiative(
            ref=uow.initiatives.next_ref(),
            name=name[:200],
            owner_id=owner_id,
            sponsor_id=sponsor_id,
            stage=pipeline.model.stages[0],
            created_at=now,
        )
        uow.initiatives.add(initiative)
        for qid, value in typed.items():
            if value is not None:
                uow.answers.append(AnswerVersion(initiative.ref, intake.id, qid, value, actor_id, now))
        uow.audit.append(
            actor_id,
            "initiative.registered",
            initiative.ref,
            {
                "name": initiative.name,
                "owner": owner_id,
                "sponsor": sponsor_id,
                "stage": initiative.stage,  # ``audit verify`` checks it while no approval moves it on
                "answers": _jsonable(typed),
            },
            now,
        )
        uow.outbox.put(
            "initiative.registered",
            {
                "ref": initiative.ref,
                "name": initiative.name,
                "owner": owner_id,
                "actor": actor_id,
                **({"registered_from": dict(registered_from)} if registered_from else {}),
            },
            now,
            dedupe_key=f"registered:{initiative.ref}",
        )
        uow.commit()
    return initiative


@dataclass(frozen=True)
class PageOfAnswers:
    """One save of a gate's answers, already checked (``check_page``): what ``answer_many``
    records."""

    ref: str
    gate_id: str
    typed: Mapping[str, AnswerValue | None]
    author_id: str
    at: datetime
    link: tuple[str, str] | None = None
    """(url, title), the url already checked."""
    sponsor_question: str | None = None
    """The intake question naming the initiative's sponsor, when this page answers it: a new
    answer there makes that person the sponsor (``sponsor_question``)."""
    steward: bool | None = None
    """Whether the author is a steward (a governance lead or role admin). Given, only the owner,
    the sponsor or a steward may change the sponsor answer; None: the caller decided already."""
    read_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per other gate, this page's questions that gate's rules read (``gate_inputs``): frozen
    while that gate is under review."""
    decided_in: frozenset[str] = frozenset()
    """The stages after the one this gate leads out of: an initiative there has passed the gate,
    which was decided on these answers (``decided_stages``)."""


def sponsor_question(pipeline: CompiledPipeline) -> str | None:
    """The intake's person question that names the sponsor, if any (``Pipeline.sponsor_question_id``)."""
    return pipeline.model.sponsor_question_id


def owner_question(pipeline: CompiledPipeline) -> str | None:
    """The intake's person question that names the owner at registration, if any
    (``Pipeline.owner_question_id``); without one, whoever registers owns the initiative."""
    return pipeline.model.owner_question_id


def decided_stages(pipeline: CompiledPipeline, gate_id: str) -> frozenset[str]:
    """The stages in which ``gate_id`` has been decided: those after the stage it leads out of.

    Its answers are then the evidence it was decided on, and later gates' rules read them (a
    pilot requires a DPIA because the intake said personal data), so they no longer change. The
    gates ahead of the initiative stay open: a team may prepare the next questionnaire early.
    """
    stages = pipeline.model.stages
    gate = _gate(pipeline, gate_id)
    return frozenset(stages[stages.index(gate.from_) + 1 :]) if gate.from_ in stages else frozenset()


def check_page(
    pipeline: CompiledPipeline,
    ref: str,
    gate_id: str,
    answers: Mapping[str, Any],
    author_id: str,
    now: datetime,
    link: tuple[str, str] | None = None,
    shown: Mapping[str, str] | None = None,
    steward: bool | None = None,
) -> PageOfAnswers:
    """``answers`` (and ``link``) as they would be recorded, checked without the database.

    Args:
        shown: the ``fingerprint`` of each answer as the form showed it when it was opened. A
            form sends back every field, changed or not: an answer still as it was shown is
            left out, so it cannot put back the old answer over one somebody else saved while
            this form was open. Two people changing the same answer at once: the later save
            wins, and the history keeps both.
        steward: see ``PageOfAnswers.steward``.

    Raises:
        UnknownGate, UnknownQuestion, InvalidAnswer (naming every answer that does not fit).
    """
    if shown:
        # Left out before it is checked too: a field sent back exactly as it was shown is
        # untouched, and may hold an answer the question's type no longer takes (a deploy made
        # a text question a choice while the form was open). It stays as it was, for readiness
        # to ask again, instead of refusing the whole page under a field nobody changed.
        answers = {qid: raw for qid, raw in answers.items() if shown.get(qid) != fingerprint(raw)}
    typed = _typed_or_raise(pipeline, gate_id, answers)
    if shown:
        typed = {qid: value for qid, value in typed.items() if shown.get(qid) != fingerprint(value)}
    checked = (check_link(link[0]), link[1]) if link else None
    sponsor = sponsor_question(pipeline) if gate_id == pipeline.model.intake.id else None
    read_by = {
        other: tuple(sorted(qid for qid in typed if inputs is None or qid in inputs))
        for other, inputs in pipeline.gate_inputs.items()
        if other != gate_id
    }
    return PageOfAnswers(
        ref,
        gate_id,
        typed,
        author_id,
        now,
        checked,
        sponsor if sponsor in typed else None,
        steward,
        {other: questions for other, questions in read_by.items() if questions},
        decided_stages(pipeline, gate_id),
    )


def answer(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    ref: str,
    gate_id: str,
    answers: Mapping[str, Any],
    author_id: str,
    now: datetime,
    link: tuple[str, str] | None = None,
) -> AnswerResult:
    """Record answers for one gate as new versions; unchanged answers add nothing.

    Partial saves are fine: questions not mentioned keep their current answer. An empty value
    clears an answer (recorded as a version too, so the history shows who cleared it).
    ``link`` (url, title) is an evidence link attached in the same transaction.

    Raises:
        UnknownInitiative, UnknownGate, UnknownQuestion, InvalidAnswer, InvalidTransition
        (GateDecided: the initiative has moved past this gate).
    """
    page = check_page(pipeline, ref, gate_id, answers, author_id, now, link)
    with uow:
        # Before the checks read the initiative: a submission or a retirement committing
        # meanwhile is then either seen by them, or conflicts with this save (``touch``).
        uow.initiatives.touch([ref])
        initiative, open_review = uow.reviews.initiative_with_open_review(ref)
        _refuse_unless_answerable(initiative, page, open_review)
        _refuse_inputs_under_review(page, open_review)
        page = _after_submission(page, open_review)
        current = uow.answers.current(ref)
        values, changed, versions = _record_page(uow, page, current)
        _follow_sponsor(uow, initiative, page, changed)
        uow.answers.append_many(versions)
        holders = role_holders(pipeline, uow)
        uow.commit()
    report = readiness(pipeline, gate_id, values, holders, initiative.owner_id)
    return AnswerResult(initiative, tuple(changed), values, report)


def answer_many(uow: UnitOfWork, pages: Sequence[PageOfAnswers]) -> list[AnswerResult | GateError]:
    """Record several checked pages in one transaction, each as ``answer`` would (without
    readiness). A page refused by the state it finds (retired, under review, a gate already
    decided, unknown, a sponsor its author may not change) gets its error in its place and writes
    nothing; the others are recorded. The initiatives, their open reviews and their current
    answers are read once for the whole batch.

    Raises:
        anything else the database raises: then nothing of the batch is recorded.
    """
    outcomes: dict[int, AnswerResult | GateError] = {}
    refs = sorted({page.ref for page in pages})
    # Written initiative by initiative, in ref order (a stable sort: pages of one initiative
    # keep theirs). Each new answer version holds its key in the unique index until commit, so
    # two writers (``shepherd serve --processes 2``) that met the same initiatives in different
    # orders would wait on each other until PostgreSQL's deadlock check aborted one, a second
    # later. In one order, the later writer just waits for the earlier one's commit.
    in_order = sorted(range(len(pages)), key=lambda n: pages[n].ref)
    written: list[AnswerVersion] = []
    with uow:
        # Touched before the checks read them, as in ``answer``; on PostgreSQL one round trip.
        found = uow.reviews.touch_and_read(refs)
        for n in in_order:
            page = pages[n]
            if page.ref not in found:
                outcomes[n] = UnknownInitiative(page.ref)
                continue
            initiative, open_review, current = found[page.ref]
            try:
                _refuse_unless_answerable(initiative, page, open_review)
                _refuse_inputs_under_review(page, open_review)
                _refuse_sponsor_change(initiative, page, current)
            except (InvalidTransition, InvalidAnswer) as refused:
                outcomes[n] = refused
                continue
            page = _after_submission(page, open_review)
            values, changed, versions = _record_page(uow, page, current)
            _follow_sponsor(uow, initiative, page, changed)
            written.extend(versions)
            # A later page of the same initiative in this batch builds on this one.
            current.update((version.question_id, version) for version in versions)
            outcomes[n] = AnswerResult(initiative, tuple(changed), values, None)
        # The whole batch's answers in one statement round (one round trip on PostgreSQL).
        uow.answers.append_many(written)
        uow.commit()
    return [outcomes[n] for n in range(len(pages))]


def _after_submission(page: PageOfAnswers, open_review: Review | None) -> PageOfAnswers:
    """``page`` stamped after the open review's submission, which it was not part of.

    A page is stamped when it is checked and written later (after the page writer's previous
    round), and one of a gate the review does not read may be written while it is open. Stamped
    before the submission yet written after it, it would be read back as evidence the review
    was submitted on (``evidence_as_submitted`` goes by time), and the pack and `audit verify`
    would say the review's evidence was changed after its submission.
    """
    if open_review is None or page.at > open_review.submitted_at:
        return page
    return replace(page, at=open_review.submitted_at + timedelta(microseconds=1))


def _record_page(
    uow: UnitOfWork, page: PageOfAnswers, current: Mapping[str, AnswerVersion]
) -> tuple[dict[str, AnswerValue | None], list[str], list[AnswerVersion]]:
    """Inside the caller's transaction, given the initiative's ``current`` answers: ``page``'s
    audit entry, card redraw and evidence link. Returns every current answer once this commits,
    the questions whose answer changed and their new versions, for the caller to append."""
    ref, gate_id, typed, author_id, now = page.ref, page.gate_id, page.typed, page.author_id, page.at
    changed = [
        qid for qid, value in typed.items() if (current[qid].value if qid in current else None) != value
    ]
    versions = [  # in one order for every writer (see ``answer_many``)
        AnswerVersion(ref, gate_id, qid, typed[qid], author_id, now) for qid in sorted(changed)
    ]
    if changed:
        uow.audit.append(
            author_id,
            "answers.recorded",
            ref,
            {"gate": gate_id, "answers": _jsonable({q: typed[q] for q in changed})},
            now,
        )
        # The initiative's card shows readiness; it is redrawn from the current state after
        # the answers land, so one redraw still waiting covers any number of saves (twenty
        # pages in a minute are one chat.update, not twenty against Slack's rate limit).
        uow.outbox.put(
            "answers.recorded",
            {"ref": ref, "gate": gate_id, "changed": changed},
            now,
            merge_key=f"card:{ref}",
        )
    if page.link:
        _record_link(uow, ref, gate_id, page.link[0], page.link[1], author_id, now)
    # The state this transaction commits, known without reading it back in a second one.
    values = {qid: version.value for qid, version in current.items()}
    values.update({qid: typed[qid] for qid in changed})
    return values, changed, versions


def _follow_sponsor(uow: UnitOfWork, initiative: Initiative, page: PageOfAnswers, changed: list[str]) -> None:
    """A new answer to the intake's sponsor question names the sponsor (the card shows them,
    and they may submit): registering is not the only moment it can be given or changed."""
    question = page.sponsor_question
    if question is None or question not in changed:
        return
    sponsor = page.typed.get(question)
    initiative.sponsor_id = str(sponsor) if sponsor else None
    uow.initiatives.save(initiative)
    uow.audit.append(
        page.author_id, "initiative.sponsor_changed", page.ref, {"sponsor": initiative.sponsor_id}, page.at
    )


def _refuse_sponsor_change(
    initiative: Initiative, page: PageOfAnswers, current: Mapping[str, AnswerVersion]
) -> None:
    """Naming the sponsor lets that person submit the initiative for review, so only its owner,
    its sponsor or a steward may change who it is (``PageOfAnswers.steward``); anyone working on
    the questionnaire may still save the rest of the page unchanged.

    Raises:
        InvalidAnswer: on the sponsor question, so the form says it under that field.
    """
    question = page.sponsor_question
    if question is None or page.steward is not False:
        return
    if page.author_id in (initiative.owner_id, initiative.sponsor_id):
        return
    before = current[question].value if question in current else None
    if page.typed.get(question) != before:
        raise InvalidAnswer(
            question,
            f"Only the owner of {initiative.ref}, its sponsor or a governance lead can change its sponsor.",
        )


def _refuse_inputs_under_review(page: PageOfAnswers, open_review: Review | None) -> None:
    """Answers of another gate that the gate under review reads (its tier, its required
    questions, its approvers) are frozen with its own: changed mid-review, they changed what the
    review required after the approvers had been asked (a sponsor's approval alone let personal
    data into a pilot whose DPIA and DPO approval it then needed).

    Raises:
        InvalidAnswer: on each such question, so the form says it under the fields.
    """
    if open_review is None or open_review.gate_id == page.gate_id:
        return
    frozen = page.read_by.get(open_review.gate_id, ())
    if frozen:
        message = (
            f"The {open_review.gate_id} review of {page.ref} depends on this answer: it is frozen "
            "until that review ends or is withdrawn."
        )
        raise InvalidAnswer(frozen[0], message, dict.fromkeys(frozen, message))


def _refuse_unless_answerable(
    initiative: Initiative, page: PageOfAnswers, open_review: Review | None
) -> None:
    refuse_if_retired(initiative)
    # A form opened before its gate was decided and saved after (Slack keeps a modal open for
    # as long as the person likes) would otherwise change the evidence of a decided gate.
    if initiative.stage in page.decided_in:
        raise GateDecided(initiative.ref, page.gate_id, initiative.stage)
    refuse_while_under_review(initiative.ref, page.gate_id, open_review)


def refuse_if_retired(initiative: Initiative) -> None:
    """Raises InvalidTransition if ``initiative`` is retired: its answers can no longer change."""
    if initiative.status is Status.RETIRED:
        raise InvalidTransition(f"{initiative.ref} is retired; its answers can no longer change.")


def refuse_while_under_review(ref: str, gate_id: str, open_review: Review | None) -> None:
    """Raises InvalidTransition if ``open_review`` (the initiative's, if any) is of this gate:
    its answers are frozen until the review ends or is withdrawn."""
    if open_review is not None and open_review.gate_id == gate_id:
        raise InvalidTransition(
            f"The {gate_id} gate of {ref} is under review, so its answers are frozen. "
            "Withdraw the review to change them."
        )


def check_link(url: str) -> str:
    """``url`` as an evidence link stores it.

    Raises:
        InvalidAnswer: not an http(s) URL.
    """
    checked = coerce(_URL_QUESTION, url)
    assert isinstance(checked, str)
    return checked


def add_link(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    ref: str,
    gate_id: str,
    url: str,
    title: str,
    author_id: str,
    now: datetime,
) -> EvidenceLink:
    """Attach an evidence link (a document, a dashboard, a ticket) to a gate, as a
    questionnaire page's link is: refused where that page would be.

    Raises:
        UnknownInitiative, UnknownGate, InvalidAnswer (not an http(s) URL), InvalidTransition.
    """
    page = check_page(pipeline, ref, gate_id, {}, author_id, now)
    checked = check_link(url)
    with uow:
        uow.initiatives.touch([ref])  # as in ``answer``: a link is evidence too
        initiative, open_review = uow.reviews.initiative_with_open_review(ref)
        _refuse_unless_answerable(initiative, page, open_review)
        at = _after_submission(page, open_review).at
        link = _record_link(uow, ref, gate_id, checked, title, author_id, at)
        uow.commit()
    return link


def _record_link(
    uow: UnitOfWork, ref: str, gate_id: str, url: str, title: str, author_id: str, now: datetime
) -> EvidenceLink:
    # The same page sent twice (a retry after a timeout) must not list the link twice, and a
    # link given again without a title keeps the one it has. A new title is a new row, with who
    # gave it and when: the old row stays, as a review submitted before may have hashed it.
    existing = current_links(uow.answers.links(ref)).get((gate_id, url))
    title = title.strip()[:300]
    if existing is not None and (not title or title == existing.title):
        return existing
    link = EvidenceLink(ref, gate_id, url, title or url, author_id, now)
    uow.answers.add_link(link)
    uow.audit.append(
        author_id, "evidence.linked", ref, {"gate": gate_id, "url": url, "title": link.title}, now
    )
    return link


# ---------------------------------------------------------------- readiness


def current_answers(uow: UnitOfWork, ref: str) -> dict[str, AnswerValue | None]:
    return {qid: version.value for qid, version in uow.answers.current(ref).items()}


def role_holders(pipeline: CompiledPipeline, uow: UnitOfWork) -> dict[str, list[str]]:
    """Who holds each role: the pipeline file's ``slack_users`` plus ``shepherd roles set``."""
    return with_configured_holders(pipeline, uow.roles.holders())


def with_configured_holders(
    pipeline: CompiledPipeline, stored: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """``stored`` (``RoleRepository.holders()``) after the pipeline file's ``slack_users``."""
    holders: dict[str, list[str]] = {
        role: list(spec.slack_users) for role, spec in pipeline.model.roles.items()
    }
    for role, users in stored.items():
        holders.setdefault(role, [])
        holders[role].extend(u for u in users if u not in holders[role])
    return holders


def roles_of(pipeline: CompiledPipeline, uow: UnitOfWork, user_id: str) -> set[str]:
    configured = {role for role, spec in pipeline.model.roles.items() if user_id in spec.slack_users}
    return configured | uow.roles.roles_of(user_id)


def next_gate(pipeline: CompiledPipeline, initiative: Initiative) -> Gate | None:
    """The gate leading out of the initiative's stage; None in the last stage."""
    return pipeline.model.gate_from(initiative.stage)


def check_readiness(
    pipeline: CompiledPipeline, uow: UnitOfWork, ref: str, gate_id: str | None = None
) -> Readiness:
    """Readiness of an initiative for ``gate_id`` (default: its next gate).

    Raises:
        UnknownInitiative; InvalidTransition when the initiative has no next gate.
    """
    with uow:
        state = uow.reviews.initiative_state(ref)
    initiative = state.initiative
    gate = _gate(pipeline, gate_id) if gate_id else next_gate(pipeline, initiative)
    if gate is None:
        raise InvalidTransition(f"{ref} is in the {initiative.stage} stage, which has no further gate.")
    holders = with_configured_holders(pipeline, state.stored_holders)
    return readiness(pipeline, gate.id, state.values, holders, initiative.owner_id)


@dataclass(frozen=True, slots=True)
class StatusView:
    initiative: Initiative
    open_review: Review | None
    readiness: Readiness | None
    """For the next gate; None in the last stage or once retired."""


def status(pipeline: CompiledPipeline, uow: UnitOfWork, ref: str) -> StatusView:
    """An initiative, its open review and its readiness (its reads sent together).

    Raises:
        UnknownInitiative.
    """
    with uow:
        state = uow.reviews.initiative_state(ref)
    initiative = state.initiative
    gate = next_gate(pipeline, initiative)
    report = None
    if gate is not None and initiative.status is not Status.RETIRED:
        holders = with_configured_holders(pipeline, state.stored_holders)
        report = readiness(pipeline, gate.id, state.values, holders, initiative.owner_id)
    return StatusView(initiative, state.open_review, report)


# ---------------------------------------------------------------- reviews


def submit(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    ref: str,
    submitter_id: str,
    now: datetime,
    exception_reason: str | None = None,
    *,
    steward: bool | None = None,
) -> Review:
    """Open a review of the initiative's next gate.

    Blocking criteria must be met, unless the gate allows exceptions and a justification is
    given (it is recorded on the review and the audit log). Missing required answers always block.

    Args:
        steward: whether the submitter is a steward (a governance lead or role admin). Given,
            only the initiative's owner, its sponsor or a steward may submit: a review asks
            several approvers for their time. None: the caller decided already (the CLI).

    Raises:
        NotReady: with every reason; ReviewAlreadyOpen; InvalidTransition; UnknownInitiative;
        NotPermitted.
    """

    def attempt() -> Review:
        with uow:
            state = uow.reviews.initiative_state(ref)  # one round trip for the reads on PostgreSQL
            initiative = state.initiative
            if steward is False and submitter_id not in (initiative.owner_id, initiative.sponsor_id):
                raise NotPermitted(
                    f"Only the owner of {ref}, its sponsor or a governance lead can submit it for review."
                )
            gate = next_gate(pipeline, initiative)
            if gate is None:
                raise InvalidTransition(
                    f"{ref} is in the {initiative.stage} stage, which has no further gate."
                )
            # The submitter cannot approve either: a review only they could decide would wait forever.
            report = readiness(
                pipeline,
                gate.id,
                state.values,
                with_configured_holders(pipeline, state.stored_holders),
                initiative.owner_id,
                submitter_id=submitter_id,
            )
            justification = (exception_reason or "").strip() or None
            if not report.ready:
                only_criteria = not (report.missing or report.invalid or report.tier_unknown) and not any(
                    need.short_of_holders for need in report.approvals
                )
                if not (gate.allow_exceptions and justification and only_criteria):
                    raise NotReady(gate.id, report.blockers)
            else:
                justification = None
            evidence = uow.answers.links(ref)
            links = [(link.url, link.title) for link in evidence]
            # Stamped no earlier than the evidence it hashes: ``now`` was read before this try
            # began, and a page saved meanwhile (while this waited for SQLite's write lock, or
            # between its read and its save, which sends it round again with the same ``now``)
            # carries a later time. The answers as submitted are read back by time (``as_of``):
            # an earlier stamp would leave them out, and the evidence pack and `audit verify`
            # would then call the review's evidence changed in the database.
            at = max(
                [now]
                + [version.answered_at for version in state.answers.values()]
                + [link.added_at for link in evidence]
            )
            review = Review(
                initiative_ref=ref,
                gate_id=gate.id,
                from_stage=gate.from_,
                to_stage=gate.to,
                submitted_by=submitter_id,
                owner_id=initiative.owner_id,
                submitted_at=at,
                pipeline_version=pipeline.version,
                evidence_hash=submitted_evidence_hash(pipeline, state.values, links),
                requirements=tuple(Requirement(need.role, need.min) for need in report.approvals),
                exception_reason=justification,
                tier=report.tier,
            )
            initiative.start_review(gate.from_, at)
            uow.reviews.add(review)
            uow.initiatives.save(initiative)
            uow.audit.append(
                submitter_id,
                "review.submitted",
                ref,
                {
                    "review": review.id,
                    "gate": gate.id,
                    "pipeline_version": review.pipeline_version,
                    "evidence_hash": review.evidence_hash,
                    "tier": review.tier,
                    "requirements": [[r.role, r.min] for r in review.requirements],
                    "exception_reason": justification,
                    # What the approvers are told was unmet at submission: the pipeline may
                    # change while the review is open, and the criteria with it.
                    "unmet": {
                        "blocking": [c.id for c in report.blocking_unmet],
                        "advisory": [c.id for c in report.advisory_unmet],
                    },
                },
                at,
            )
            uow.outbox.put(
                "review.requested",
                {"review": review.id, "ref": ref, "gate": gate.id, "submitter": submitter_id},
                now,
                dedupe_key=f"review-requested:{review.id}",
            )
            uow.commit()
            return review

    return retrying(attempt)


@dataclass(frozen=True, slots=True)
class DecideOutcome:
    review: Review
    initiative: Initiative
    result: DecisionResult
    advanced: bool


def check_decision(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    review_id: int,
    user_id: str,
    kind: DecisionKind,
    reason: str | None,
    now: datetime,
    extra_roles: Collection[str] = (),
) -> str:
    """Whether ``decide`` would accept this decision now, recording nothing: the domain's own
    rules run on a copy of the review read in a transaction that is never committed. For a
    caller that must answer at once (a Slack modal) while the decision is recorded later.
    ``extra_roles``: roles held outside storage (Slack user groups), as in ``DecisionRequest``.

    Returns:
        the reference of the review's initiative.

    Raises:
        UnknownReview; DecisionRefused and its subclasses, as ``decide`` would.
    """
    with uow:
        review = uow.reviews.get(review_id)
        roles = roles_of(pipeline, uow, user_id) | set(extra_roles)
        _judge(uow, review, user_id, roles, kind, reason, now)
    return review.initiative_ref


def audit_if_refused(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    review_id: int,
    user_id: str,
    kind: DecisionKind,
    now: datetime,
    extra_roles: Collection[str] = (),
) -> None:
    """Judge a Reject or Request changes whose reason form is open, recording no decision: a
    refusal is audited, as for a click, and raised. If the person may decide after all (a role
    granted a moment ago), nothing happens and their reason, once sent, is judged as usual.

    Raises:
        UnknownReview; DecisionRefused and its subclasses, as ``decide`` would.
    """
    with uow:
        review = uow.reviews.get(review_id)
        roles = roles_of(pipeline, uow, user_id) | set(extra_roles)
        try:
            # On a copy never saved: the reason is still being written.
            _judge(uow, review, user_id, roles, kind, "(reason to follow)", now)
        except DecisionRefused as refusal:
            _audit_refusal(uow, review, user_id, kind, refusal, now)
            uow.commit()
            raise


def decide(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    review_id: int,
    user_id: str,
    kind: DecisionKind,
    reason: str | None,
    now: datetime,
    extra_roles: Iterable[str] = (),
) -> DecideOutcome:
    """Record one approver's decision on an open review, advancing the stage when complete.

    The same click delivered again returns the first outcome (``result.duplicate``) and
    records nothing. A refused attempt (not an approver, self-approval) is audited.

    Args:
        extra_roles: roles the caller resolved outside storage (Slack user-group membership).

    Raises:
        UnknownReview; DecisionRefused and its subclasses.
    """

    def attempt() -> DecideOutcome:
        with uow:
            review = uow.reviews.get(review_id)
            initiative = uow.initiatives.get(review.initiative_ref)
            roles = roles_of(pipeline, uow, user_id) | set(extra_roles)
            try:
                outcome = _decide_one(uow, review, initiative, user_id, roles, kind, reason, now)
            except DecisionRefused as refusal:
                uow.rollback()
                _audit_refusal(uow, review, user_id, kind, refusal, now)
                uow.commit()
                raise
            if not outcome.result.duplicate:
                uow.reviews.save(review)
                if not review.is_open:
                    uow.initiatives.save(initiative)
                uow.commit()
            return outcome

    return retrying(attempt)


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One click to record with ``decide_many``; ``at`` is when the person clicked."""

    review_id: int
    user_id: str
    kind: DecisionKind
    reason: str | None
    at: datetime
    extra_roles: frozenset[str] = frozenset()  # as in ``decide``: held through Slack user groups


def decide_many(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    requests: Sequence[DecisionRequest],
    on_refused: Callable[[UnitOfWork, DecisionRequest, GateError], None] | None = None,
) -> list[DecideOutcome | GateError]:
    """Record several decisions in one transaction, judging each exactly as ``decide`` would,
    in order (a burst of clicks applied by the worker: one commit and one audit-chain append
    instead of one per click).

    A refused request is audited and its error returned in its place; ``on_refused`` runs in
    the same transaction (to tell the person why). Returns one outcome or error per request.

    Raises:
        ConcurrentUpdate: another writer kept changing the same reviews; nothing was recorded,
            and the caller may fall back to ``decide`` one request at a time.
    """

    def attempt() -> list[DecideOutcome | GateError]:
        with uow:
            # Everything the round needs, read up front: a few queries for the whole round
            # instead of three per click (on SQLite the round holds the one write lock).
            reviews = uow.reviews.get_many(request.review_id for request in requests)
            initiatives = uow.initiatives.get_many(review.initiative_ref for review in reviews.values())
            holders = role_holders(pipeline, uow)
            roles = {
                user: {role for role, users in holders.items() if user in users}
                for user in {request.user_id for request in requests}
            }
            touched: dict[int, Review] = {}
            results: list[DecideOutcome | GateError] = []
            for request in requests:
                try:
                    if request.review_id not in reviews:  # raises UnknownReview: it was not read
                        reviews[request.review_id] = uow.reviews.get(request.review_id)
                    review = reviews[request.review_id]
                    ref = review.initiative_ref
                    if ref not in initiatives:
                        initiatives[ref] = uow.initiatives.get(ref)
                    initiative = initiatives[ref]
                    outcome = _decide_one(
                        uow,
                        review,
                        initiative,
                        request.user_id,
                        roles[request.user_id] | request.extra_roles,
                        request.kind,
                        request.reason,
                        request.at,
                    )
                except DecisionRefused as refusal:
                    _audit_refusal(uow, review, request.user_id, request.kind, refusal, request.at)
                    results.append(refusal)
                    if on_refused is not None:
                        on_refused(uow, request, refusal)
                    continue
                except NotFound as missing:
                    results.append(missing)
                    if on_refused is not None:
                        on_refused(uow, request, missing)
                    continue
                if not outcome.result.duplicate:
                    touched[request.review_id] = review
                results.append(outcome)
            uow.reviews.save_many(list(touched.values()))
            # In ref order, as questionnaire pages lock them (``touch``): never each waiting
            # for a row the other holds.
            for review in sorted(touched.values(), key=lambda closed: closed.initiative_ref):
                if not review.is_open:
                    uow.initiatives.save(initiatives[review.initiative_ref])
            uow.commit()
            return results

    return retrying(attempt)


def _decide_one(
    uow: UnitOfWork,
    review: Review,
    initiative: Initiative,
    user_id: str,
    roles: set[str],
    kind: DecisionKind,
    reason: str | None,
    now: datetime,
) -> DecideOutcome:
    """Apply one decision to loaded objects and queue its audit entries and notifications;
    the caller saves the review (and the initiative, once the review closes) and commits.

    Raises:
        DecisionRefused: before anything changed.
    """
    result = _judge(uow, review, user_id, roles, kind, reason, now)
    if result.duplicate:
        return DecideOutcome(review, initiative, result, advanced=False)
    review_id = review.id
    uow.audit.append(
        user_id, "decision.recorded", review.initiative_ref, decision_detail(review, result.decision), now
    )
    payload = {
        "review": review_id,
        "ref": review.initiative_ref,
        "gate": review.gate_id,
        "decision": kind.value,
        "approver": user_id,
        "status": review.status.value,
    }
    uow.outbox.put("decision.recorded", payload, now, dedupe_key=f"decision:{review_id}:{user_id}")
    advanced = False
    if review.status is ReviewStatus.APPROVED:
        initiative.advance(review.from_stage, review.to_stage, now)
        advanced = True
        uow.audit.append(
            user_id,
            "stage.advanced",
            initiative.ref,
            {"review": review_id, "from": review.from_stage, "to": review.to_stage},
            now,
        )
        uow.outbox.put(
            "stage.advanced",
            {
                "review": review_id,
                "ref": initiative.ref,
                "from": review.from_stage,
                "to": review.to_stage,
            },
            now,
            dedupe_key=f"advanced:{review_id}",
        )
    elif not review.is_open:
        initiative.back_to_team(now)
    return DecideOutcome(review, initiative, result, advanced)


def _judge(
    uow: UnitOfWork,
    review: Review,
    user_id: str,
    roles: Collection[str],
    kind: DecisionKind,
    reason: str | None,
    now: datetime,
) -> DecisionResult:
    """``review.decide``, except that a decision on a review withdrawn and since submitted again
    is refused with where it can be made now: the approver came from the old request (a reason
    form open across the withdrawal, a click before its message was redrawn).

    Raises:
        DecisionRefused and its subclasses, as ``Review.decide``.
    """
    try:
        return review.decide(user_id, roles, kind, reason, now)
    except ReviewClosed as closed:
        if review.status is not ReviewStatus.WITHDRAWN:
            raise
        newer = uow.reviews.open_for(review.initiative_ref)
        if newer is None or newer.id == review.id:
            raise
        # Short enough for a modal field's error (150 characters) with any reference.
        raise ReviewClosed(
            f"This review was withdrawn and {review.initiative_ref} submitted again: nothing was "
            "recorded. Decide on the new one from its request (in your DMs, the card's thread)."
        ) from closed


def _audit_refusal(
    uow: UnitOfWork, review: Review, user_id: str, kind: DecisionKind, refusal: GateError, now: datetime
) -> None:
    uow.audit.append(
        user_id,
        "decision.refused",
        review.initiative_ref,
        {"review": review.id, "decision": kind.value, "why": str(refusal)},
        now,
    )


def withdraw(uow: UnitOfWork, ref: str, user_id: str, now: datetime) -> Review:
    """Withdraw the open review; only its submitter or the initiative's owner may."""

    def attempt() -> Review:
        with uow:
            initiative, review = uow.reviews.initiative_with_open_review(ref)
            if review is None:
                raise InvalidTransition(f"{ref} has no open review to withdraw.")
            if user_id not in (review.submitted_by, initiative.owner_id):
                raise InvalidTransition(
                    "Only the person who submitted the review or the owner can withdraw it."
                )
            review.withdraw(now)
            initiative.back_to_team(now)
            uow.reviews.save(review)
            uow.initiatives.save(initiative)
            _audit_withdrawn(uow, user_id, ref, review, now)
            uow.outbox.put(
                "review.withdrawn",
                {"review": review.id, "ref": ref},
                now,
                dedupe_key=f"withdrawn:{review.id}",
            )
            uow.commit()
            return review

    # A questionnaire page saved meanwhile moves the initiative's version on (``touch``).
    return retrying(attempt)


def _audit_withdrawn(uow: UnitOfWork, user_id: str, ref: str, review: Review, now: datetime) -> None:
    uow.audit.append(user_id, "review.withdrawn", ref, {"review": review.id, "gate": review.gate_id}, now)


RESUMED = "initiative.resumed"
"""The audit action of a resume from a hold (``gates.operations.review_plans`` looks for it)."""


def hold(
    uow: UnitOfWork, ref: str, user_id: str, reason: str, now: datetime, *, steward: bool = False
) -> Initiative:
    """Pause an active initiative, with a reason shown on its card.

    Only its owner may, or a ``steward`` (someone the deployment trusts with every initiative:
    a governance lead or role admin).

    Raises:
        NotPermitted; InvalidTransition: not active (under review, on hold, retired), or no reason.
    """
    why = reason.strip()
    if not why:
        raise InvalidTransition("A reason is required to put an initiative on hold.")
    held = _StatusChange("initiative.held", "put it on hold", lambda i: i.hold(why, now), why)
    return _change_status(uow, ref, user_id, held, now, steward)


def resume(uow: UnitOfWork, ref: str, user_id: str, now: datetime, *, steward: bool = False) -> Initiative:
    """Make an initiative on hold active again (its owner or a steward, as for ``hold``)."""
    resumed = _StatusChange(RESUMED, "resume it", lambda i: i.resume(now), None)
    return _change_status(uow, ref, user_id, resumed, now, steward)


def retire(
    uow: UnitOfWork, ref: str, user_id: str, reason: str, now: datetime, *, steward: bool = False
) -> Initiative:
    """Retire an initiative (its owner or a steward, as for ``hold``); an open review is
    withdrawn first, so no approver acts on it."""

    def attempt() -> Initiative:
        with uow:
            initiative, review = uow.reviews.initiative_with_open_review(ref)
            _may_change(initiative, user_id, steward, "retire it")
            initiative.retire(reason, now)
            if review is not None:
                review.withdraw(now)
                uow.reviews.save(review)
                # The hash-chained log says the review closed, as when it is withdrawn by itself.
                _audit_withdrawn(uow, user_id, ref, review, now)
            uow.initiatives.save(initiative)
            uow.audit.append(user_id, "initiative.retired", ref, {"reason": reason.strip()}, now)
            uow.outbox.put(
                "initiative.retired",
                {"ref": ref, "reason": reason.strip()},
                now,
                dedupe_key=f"retired:{ref}",
            )
            uow.commit()
            return initiative

    # A page saved meanwhile conflicts (``touch``): tried again, the retirement comes after it.
    return retrying(attempt)


def set_role_holders(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    role: str,
    user_ids: Sequence[str],
    actor_id: str,
    now: datetime,
) -> list[str]:
    """Replace the holders of ``role`` (recorded on the audit log).

    Each open review still waiting on ``role`` is told (``roles.changed``), so that those who
    now hold it are asked to decide and those who no longer do lose its buttons.
    """
    if role not in pipeline.model.roles:
        raise UnknownRole(role, list(pipeline.model.roles))
    users = list(dict.fromkeys(u.strip() for u in user_ids if u.strip()))
    with uow:
        # The holders replaced as the storage saw them when this replacement's turn came: read
        # before it, another admin's replacement committing meanwhile would be missed, and the
        # people it named would keep the review's buttons in App Home.
        before = uow.roles.set_holders(role, users)
        uow.audit.append(actor_id, "roles.set", f"role:{role}", {"users": users}, now)
        removed = [user for user in before if user not in users]
        # Only reviews still waiting on the role: once its approvals are all in, its holders
        # are asked nothing more and have no buttons for it, whoever they are.
        for review in uow.reviews.pending_for([role]):
            payload = {"review": review.id, "ref": review.initiative_ref, "role": role, "removed": removed}
            uow.outbox.put("roles.changed", payload, now)
        uow.commit()
    return users


# ---------------------------------------------------------------- listing and showing


def stalled_cutoffs(pipeline: CompiledPipeline, now: datetime) -> dict[str, datetime]:
    """stage -> the moment before which entering it means the time box has run out."""
    return {
        gate.from_: now - timedelta(days=gate.time_box_days)
        for gate in pipeline.model.gates
        if gate.time_box_days is not None
    }


def time_box_ends(pipeline: CompiledPipeline, initiative: Initiative) -> datetime | None:
    """When the current stage's time box runs out (an extension counts); None without one."""
    gate = pipeline.model.gate_from(initiative.stage)
    if gate is None or gate.time_box_days is None:
        return None
    entered = initiative.stage_entered_at or initiative.created_at
    ends = entered + timedelta(days=gate.time_box_days)
    if initiative.extended_until is not None and initiative.extended_until > ends:
        return initiative.extended_until
    return ends


def is_stalled(pipeline: CompiledPipeline, initiative: Initiative, now: datetime) -> bool:
    """True when an active initiative is past its stage's time box.

    Only an active one: in review it waits for its approvers (who are reminded, not its owner),
    on hold or retired it is not expected to move.
    """
    if initiative.status is not Status.ACTIVE:
        return False
    ends = time_box_ends(pipeline, initiative)
    return ends is not None and ends < now


def list_initiatives(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    now: datetime,
    *,
    stage: str | None = None,
    status: Status | None = None,
    owner_id: str | None = None,
    stalled: bool = False,
    limit: int = 200,
    offset: int = 0,
) -> list[Initiative]:
    """One page of the initiatives matching the filters, oldest first (``all_initiatives``: every one)."""
    query = _initiative_filter(pipeline, now, stage, status, owner_id, stalled)
    with uow:
        return list(uow.initiatives.list(replace(query, limit=limit, offset=offset)))


_LIST_PAGE = 500


def all_initiatives(
    pipeline: CompiledPipeline,
    uow: UnitOfWork,
    now: datetime,
    *,
    stage: str | None = None,
    status: Status | None = None,
    owner_id: str | None = None,
    stalled: bool = False,
) -> list[Initiative]:
    """Every initiative matching the filters, oldest first, read page by page (one registered
    meanwhile comes last, so paging skips none)."""
    query = _initiative_filter(pipeline, now, stage, status, owner_id, stalled)
    found: list[Initiative] = []
    with uow:
        while True:
            page = uow.initiatives.list(replace(query, limit=_LIST_PAGE, offset=len(found)))
            found.extend(page)
            if len(page) < _LIST_PAGE:
                return found


def _initiative_filter(
    pipeline: CompiledPipeline,
    now: datetime,
    stage: str | None,
    status: Status | None,
    owner_id: str | None,
    stalled: bool,
) -> InitiativeFilter:
    if stage is not None and stage not in pipeline.model.stages:
        raise UnknownGate(stage)
    return InitiativeFilter(
        stage=stage,
        status=status,
        owner_id=owner_id,
        stalled_before=stalled_cutoffs(pipeline, now) if stalled else None,
        extended_past=now if stalled else None,
    )


@dataclass(frozen=True, slots=True)
class InitiativeView:
    initiative: Initiative
    answers: dict[str, AnswerVersion]
    history: tuple[AnswerVersion, ...]
    links: tuple[EvidenceLink, ...]
    reviews: tuple[Review, ...]
    timeline: tuple[TimelineEntry, ...]
    readiness: Readiness | None
    # For each closed review (by id), the answers it was decided on: as ``evidence_as_submitted``
    # reads them, every gate's as they stood when it was submitted.
    as_submitted: Mapping[int, Mapping[str, AnswerVersion]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmittedEvidence:
    """What a review was decided on: what its evidence hash covers (``submit``)."""

    review: Review
    initiative: Initiative
    answers: dict[str, AnswerVersion]
    links: tuple[EvidenceLink, ...]


def evidence_as_submitted(uow: UnitOfWork, review_id: int) -> SubmittedEvidence:
    """A review's evidence as it stood when it was submitted, whatever changed since: every
    gate's answers and every link of then, as ``submit`` hashed them. Even while the review is
    open: only its own gate's answers are frozen then.

    Raises:
        UnknownReview, UnknownInitiative.
    """
    with uow:
        review = uow.reviews.get(review_id)
        initiative = uow.initiatives.get(review.initiative_ref)
        answers = _answers_as_submitted(uow, review)
        links = tuple(
            link for link in uow.answers.links(initiative.ref) if link.added_at <= review.submitted_at
        )
    return SubmittedEvidence(review, initiative, answers, links)


def _answers_as_submitted(uow: UnitOfWork, review: Review) -> dict[str, AnswerVersion]:
    """Every gate's answers as they stood when ``review`` was submitted (what its hash covers)."""
    return uow.answers.as_of(review.initiative_ref, review.submitted_at)


def show(pipeline: CompiledPipeline, uow: UnitOfWork, ref: str) -> InitiativeView:
    with uow:
        state = uow.reviews.initiative_state(ref)
        initiative = state.initiative
        gate = next_gate(pipeline, initiative)
        report = None
        if gate is not None and initiative.status is not Status.RETIRED:
            holders = with_configured_holders(pipeline, state.stored_holders)
            report = readiness(pipeline, gate.id, state.values, holders, initiative.owner_id)
        reviews = tuple(uow.reviews.for_initiative(ref))
        return InitiativeView(
            initiative=initiative,
            answers=state.answers,
            history=tuple(uow.answers.history(ref)),
            links=tuple(uow.answers.links(ref)),
            reviews=reviews,
            timeline=tuple(uow.audit.timeline(ref)),
            readiness=report,
            # An open review's gate is frozen: only a closed one can have been decided on answers
            # that have changed since.
            as_submitted={
                review.id: _answers_as_submitted(uow, review)
                for review in reviews
                if review.id is not None and not review.is_open
            },
        )


# ---------------------------------------------------------------- helpers


def _gate(pipeline: CompiledPipeline, gate_id: str) -> Gate:
    gate = pipeline.model.gate(gate_id)
    if gate is None:
        raise UnknownGate(gate_id)
    return gate


def _typed_or_raise(
    pipeline: CompiledPipeline, gate_id: str, raw: Mapping[str, Any]
) -> dict[str, AnswerValue | None]:
    typed, errors = validate_answers(pipeline, gate_id, raw)
    if errors:
        qid, message = next(iter(errors.items()))
        raise InvalidAnswer(qid, message, errors)
    return typed


@dataclass(frozen=True)
class _StatusChange:
    action: str  # on the audit log and the outbox
    what: str  # "put it on hold": for the refusal
    change: Callable[[Initiative], None]
    reason: str | None


def _change_status(
    uow: UnitOfWork, ref: str, user_id: str, status: _StatusChange, now: datetime, steward: bool
) -> Initiative:
    def attempt() -> Initiative:
        with uow:
            initiative = uow.initiatives.get(ref)
            _may_change(initiative, user_id, steward, status.what)
            status.change(initiative)
            uow.initiatives.save(initiative)
            uow.audit.append(user_id, status.action, ref, {"reason": status.reason}, now)
            # The card shows the status and its reason; a redraw already waiting shows it as well.
            uow.outbox.put(status.action, {"ref": ref}, now, merge_key=f"card:{ref}")
            uow.commit()
            return initiative

    return retrying(attempt)  # a page saved meanwhile moved the version on (``touch``)


def _may_change(initiative: Initiative, user_id: str, steward: bool, what: str) -> None:
    if not steward and user_id != initiative.owner_id:
        raise NotPermitted(
            f"Only the owner of {initiative.ref}, a governance lead or a role admin can {what}."
        )


def retrying(attempt: Callable[[], T], tries: int = 3) -> T:
    """Run ``attempt`` again when it lost a race (``ConcurrentUpdate``); each try reloads
    everything it reads. A save of an initiative loses one to any questionnaire page saved
    after it was read (``InitiativeRepository.touch``)."""
    for remaining in range(tries - 1, -1, -1):
        try:
            return attempt()
        except ConcurrentUpdate:
            if remaining == 0:
                raise
    raise AssertionError("unreachable")


def _jsonable(values: Mapping[str, AnswerValue | None]) -> dict[str, Any]:
    return {key: value for key, value in values.items()}


_URL_QUESTION = Question(id="link", label="Link", type=QuestionType.URL)
