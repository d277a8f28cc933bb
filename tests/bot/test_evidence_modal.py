"""View evidence shows what a review was decided on, whatever the team changed since.

Through the real protocols: a signed click on the review's message, the modal the bot opens in
the emulator. The strongest check is the review's own evidence hash: the answers and links the
modal shows, read back from the answer history as of the submission, must hash to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.blocks.labels import answer_display
from bot.blocks.text import escape, slack_date
from gates import usecases
from gates.lifecycle import Review, ReviewStatus, evidence_hash
from gates.pipeline import QuestionType
from gates.ports import AnswerVersion, EvidenceLink
from gates.readiness import readiness
from gates.system_card import hidden_by
from tests.bot.scenario import Workspace, workspace_of
from tests.bot.test_lifecycle import OWNER, SPONSOR, card, register, request_dm, submit

LATER_LINK = ("https://wiki.example.com/after-the-review", "Written after the review")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with an owner and a sponsor who decides the intake gate."""
    with workspace_of({OWNER: "olivia", SPONSOR: "sam"}, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN01", ws.clock()
        )
        yield ws


def the_review(ws: Workspace, ref: str) -> Review:
    with ws.services.read_uow() as uow:
        return list(uow.reviews.for_initiative(ref))[-1]


def evidence_then(ws: Workspace, review: Review) -> tuple[dict[str, AnswerVersion], list[EvidenceLink]]:
    """The answers and links as they stood when ``review`` was submitted, read from the full
    history (not from the repository's ``as_of``, so that this checks it)."""
    with ws.services.read_uow() as uow:
        history = uow.answers.history(review.initiative_ref)
        links = uow.answers.links(review.initiative_ref)
    answers: dict[str, AnswerVersion] = {}
    for version in history:  # oldest first: the last one standing at submission wins
        if version.answered_at <= review.submitted_at:
            answers[version.question_id] = version
    return answers, [link for link in links if link.added_at <= review.submitted_at]


def hash_of(
    ws: Workspace, review: Review, answers: dict[str, AnswerVersion], links: list[EvidenceLink]
) -> str:
    """The evidence hash ``submit`` computes, of these answers and links."""
    values = {qid: version.value for qid, version in answers.items()}
    typed = readiness(ws.services.pipeline, review.gate_id, values).answers
    return evidence_hash(typed, [(link.url, link.title) for link in links])


def open_evidence(ws: Workspace) -> dict[str, Any]:
    message = request_dm(ws, SPONSOR)
    return ws.opened_view(lambda: ws.click(SPONSOR, message, ws.dm_with(SPONSOR), ids.ACTION_VIEW_EVIDENCE))


def texts(view: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for block in view["blocks"]:
        if block["type"] == "section":
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found += [element["text"] for element in block["elements"]]
    return found


def shown(ws: Workspace, question_id: str, version: AnswerVersion) -> str:
    """The start of an answer as the modal writes it."""
    question = ws.services.pipeline.questions[question_id]
    if question.type is QuestionType.USER:
        return f"<@{version.value}>"
    assert version.value is not None
    return escape(answer_display(question, version.value))[:40]


def assert_shows_exactly(ws: Workspace, view: dict[str, Any], review: Review) -> None:
    """Every answer and link the review's hash covers is in the modal, each of this gate's
    answers with who gave it and when; and that evidence hashes to the review's hash."""
    answers, links = evidence_then(ws, review)
    assert hash_of(ws, review, answers, links) == review.evidence_hash
    blocks = texts(view)
    gate = ws.services.pipeline.model.gate(review.gate_id)
    assert gate is not None
    for question in gate.questions:
        version = answers.get(question.id)
        if version is None or version.value is None:
            continue
        section = next(t for t in blocks if t.startswith(f"*{escape(question.label)}*"))
        assert shown(ws, question.id, version) in section
        assert slack_date(version.answered_at) in section
    everything = "\n".join(blocks)
    for question_id, version in answers.items():
        if version.value is not None:
            assert shown(ws, question_id, version)[:20] in everything, question_id
    for link in links:
        assert f"<{escape(link.url)}|" in everything


def test_evidence_of_a_closed_review_shows_the_answers_it_was_decided_on(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    reason = ws.opened_view(
        lambda: ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_REQUEST_CHANGES)
    )
    ws.submit_view(SPONSOR, reason, {ids.REASON_BLOCK: "Eight weeks is too long a PoC."})
    ws.deliver()
    review = the_review(ws, ref)
    assert review.status is ReviewStatus.CHANGES_REQUESTED

    # The team does what was asked: a shorter PoC, and a link written after the review.
    ws.clock.advance(minutes=5)
    usecases.answer(
        ws.services.pipeline,
        ws.services.uow(),
        ref,
        "intake",
        {"poc_duration_weeks": "4"},
        OWNER,
        ws.clock(),
        link=LATER_LINK,
    )
    with ws.services.read_uow() as uow:
        now_answers = uow.answers.current(ref)
        now_links = list(uow.answers.links(ref))
    assert hash_of(ws, review, now_answers, now_links) != review.evidence_hash  # it did change

    view = open_evidence(ws)  # the outcome message keeps View evidence
    blocks = texts(view)
    assert f"evidence hash `{review.evidence_hash}`" in "\n".join(blocks)
    assert any(f"as submitted on {slack_date(review.submitted_at)}" in t for t in blocks)
    weeks = next(t for t in blocks if t.startswith("*How many weeks will the proof of concept take?*"))
    assert weeks.split("\n")[1] == "8"  # not the 4 given after the review closed
    assert slack_date(ws.clock()) not in "\n".join(blocks)  # nothing dated after the review
    assert LATER_LINK[0] not in "\n".join(blocks)
    assert_shows_exactly(ws, view, review)


def test_evidence_of_an_open_review_ignores_other_gates_changed_meanwhile(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    pipeline = ws.services.pipeline
    usecases.answer(
        pipeline, ws.services.uow(), ref, "pilot", {"poc_findings": "First notes."}, OWNER, ws.clock()
    )
    submit(ws, ref)
    ws.deliver()
    review = the_review(ws, ref)
    assert review.status is ReviewStatus.OPEN and review.gate_id == "intake"

    # Only the gate under review is frozen: the next gate's answers and links may change.
    ws.clock.advance(minutes=5)
    usecases.answer(
        pipeline,
        ws.services.uow(),
        ref,
        "pilot",
        {"poc_findings": "Findings rewritten while the intake was under review."},
        OWNER,
        ws.clock(),
        link=LATER_LINK,
    )

    view = open_evidence(ws)
    everything = "\n".join(texts(view))
    pilot = next(t for t in texts(view) if "What did the PoC show?" in t)
    assert pilot.startswith("*Pilot gate*")
    assert "What did the PoC show?: First notes." in pilot  # covered by the hash, as submitted
    assert "rewritten" not in everything and LATER_LINK[0] not in everything
    assert_shows_exactly(ws, view, review)


def test_evidence_lists_a_link_given_before_the_submission(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    link = ("https://wiki.example.com/model-card", "Model card")
    usecases.answer(ws.services.pipeline, ws.services.uow(), ref, "intake", {}, OWNER, ws.clock(), link=link)
    ws.clock.advance(seconds=1)
    submit(ws, ref)
    ws.deliver()
    view = open_evidence(ws)
    assert f"<{link[0]}|{link[1]}>" in "\n".join(texts(view))
    assert_shows_exactly(ws, view, the_review(ws, ref))


def test_evidence_names_a_link_too_long_to_show_instead_of_saying_there_is_none(workspace: Workspace) -> None:
    """A link to a document deep in a file share (its address over a thousand characters) is
    too long to write as a Slack link here; the approver was told "No evidence links at the
    time." about the review whose only evidence it was."""
    ws = workspace
    ref = register(ws)
    url = "https://files.example.com/sites/ai/Shared%20Documents/" + "/".join(["PoC%20evaluation"] * 70)
    assert len(url) > 1000
    form = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    saved = ws.submit_view(OWNER, form, {ids.LINK_URL_BLOCK: url, ids.LINK_TITLE_BLOCK: "PoC evaluation"})
    assert saved.status == 200 and '"errors"' not in saved.text, saved.text
    ws.clock.advance(seconds=1)
    submit(ws, ref)
    ws.deliver()

    everything = "\n".join(texts(open_evidence(ws)))
    assert "No evidence links" not in everything
    line = next(line for line in everything.splitlines() if "PoC evaluation" in line)
    assert f"the evidence pack has it: `shepherd export {ref}`" in line  # where its address is in full


def test_a_link_added_again_with_a_new_title_shows_the_new_title(workspace: Workspace) -> None:
    """The owner linked the model card as "Draft", then added the same address again titled
    "Model card v2": the form said it was saved, but the old row was kept and the approver
    still read "Draft". The new title is recorded with who gave it and when."""
    ws = workspace
    ref = register(ws)
    url = "https://wiki.example.com/model-card"
    for title in ("Draft", "Model card v2"):
        form = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        saved = ws.submit_view(OWNER, form, {ids.LINK_URL_BLOCK: url, ids.LINK_TITLE_BLOCK: title})
        assert saved.status == 200 and '"errors"' not in saved.text, saved.text
        ws.deliver()
        ws.clock.advance(days=1)
    retitled_on = slack_date(ws.clock() - timedelta(days=1), "{date_short}")
    submit(ws, ref)
    ws.deliver()

    view = open_evidence(ws)
    lines = [line for line in "\n".join(texts(view)).splitlines() if url in line]
    assert len(lines) == 1, lines  # one link, not the address twice
    assert f"<{url}|Model card v2>" in lines[0] and retitled_on in lines[0]
    assert_shows_exactly(ws, view, the_review(ws, ref))
    with ws.services.read_uow() as uow:
        entries = [e for e in uow.audit.timeline(ref) if e.action == "evidence.linked"]
    assert [e.detail["title"] for e in entries] == ["Draft", "Model card v2"]


def test_an_answer_the_other_answers_hide_is_not_shown_as_evidence(workspace: Workspace) -> None:
    """The team named a vendor, then said it uses no external AI before submitting: the vendor's
    question was not asked when the review was submitted, so the approver must not read its
    stale answer as evidence (the evidence pack and the system card say it does not apply)."""
    ws = workspace
    ref = register(ws)
    pipeline = ws.services.pipeline
    usecases.answer(
        pipeline, ws.services.uow(), ref, "intake",
        {"third_party_ai": "yes", "third_party_vendor": "Acme LLM hosted in us-east"}, OWNER, ws.clock(),
    )  # fmt: skip
    ws.clock.advance(minutes=1)
    usecases.answer(pipeline, ws.services.uow(), ref, "intake", {"third_party_ai": "no"}, OWNER, ws.clock())
    ws.clock.advance(minutes=1)
    submit(ws, ref)
    ws.deliver()

    blocks = texts(open_evidence(ws))
    vendor = next(t for t in blocks if t.startswith("*Which provider(s) and model(s)?*"))
    assert vendor.split("\n")[1] == "_Does not apply with the other answers: not evidence._"
    assert "Acme LLM" not in "\n".join(blocks)
    ai = next(t for t in blocks if t.startswith("*Does it rely on an external AI provider or model?*"))
    assert ai.split("\n")[1] == "no"
    # A question the other answers hide is no gap: only the unanswered ones asked are counted.
    answers, _ = evidence_then(ws, the_review(ws, ref))
    hidden = hidden_by(pipeline, {qid: version.value for qid, version in answers.items()})
    intake = pipeline.model.gate("intake")
    assert intake is not None
    asked = [q.id for q in intake.questions if q.id not in hidden and q.id not in answers]
    assert len(hidden - set(answers)) > 0  # hidden, unanswered questions that must not count
    note = f"{len(asked)} question(s) of this gate have no answer."
    assert (note in blocks) if asked else not any("have no answer" in t for t in blocks)
