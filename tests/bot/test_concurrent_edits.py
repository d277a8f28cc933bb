"""Two people with the same questionnaire page open: each save records only what that person
changed. Slack sends back every field of the form, the ones left as they were shown too, so
without this the later save would silently put back the answers it showed over the ones saved
meanwhile, and the history would credit them to the wrong person. And a form left open while
its gate was decided saves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.emulator.blockkit import STATE_KEYS, build_state_values
from bot.emulator.webapi import FakeSlackWebAPI
from gates import usecases
from gates.loader import DEFAULT_PIPELINE, parse_pipeline
from gates.ports import AnswerVersion
from tests.bot.scenario import Workspace, running_workspace
from tests.bot.test_lifecycle import OWNER, SPONSOR, card, register, request_dm, submit

TEAMMATE = "U0TEAMMAT"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (TEAMMATE, "tina")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        yield ws


def open_questionnaire(ws: Workspace, user: str) -> dict[str, Any]:
    return ws.opened_view(lambda: ws.click(user, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))


def save(ws: Workspace, user: str, view: dict[str, Any], answers: dict[str, Any]) -> None:
    values = {ids.question_block_id(qid): value for qid, value in answers.items()}
    response = ws.submit_view(user, view, values)
    assert response.status == 200, response.text
    assert '"errors"' not in response.text, response.text


def current(ws: Workspace, ref: str) -> dict[str, Any]:
    with ws.services.read_uow() as uow:
        return usecases.current_answers(uow, ref)


def authors(ws: Workspace, ref: str, question_id: str) -> list[str]:
    with ws.services.read_uow() as uow:
        return [v.author_id for v in uow.answers.history(ref) if v.question_id == question_id]


def test_a_save_does_not_put_back_answers_someone_else_changed_meanwhile(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    mine, theirs = open_questionnaire(ws, OWNER), open_questionnaire(ws, TEAMMATE)
    save(
        ws,
        TEAMMATE,
        theirs,
        {
            "problem_statement": "Stock-outs of spare parts delay field repairs.",
            "target_improvement_pct": "30",  # a percent: shown as 25, stored as 25.0
            "data_sources": ["internal operational data", "synthetic data"],
        },
    )
    save(ws, OWNER, mine, {"target_outcome": "Same-week repairs in 95% of cases."})

    answers = current(ws, ref)
    assert answers["problem_statement"] == "Stock-outs of spare parts delay field repairs."
    assert answers["target_improvement_pct"] == 30
    assert sorted(answers["data_sources"]) == ["internal operational data", "synthetic data"]
    assert answers["target_outcome"] == "Same-week repairs in 95% of cases."
    # The history credits each change to the person who made it, and nobody else.
    assert authors(ws, ref, "problem_statement") == [OWNER, TEAMMATE]
    assert authors(ws, ref, "target_outcome") == [OWNER, OWNER]


def test_when_both_change_the_same_answer_the_later_save_wins_and_the_history_keeps_both(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register(ws)
    mine, theirs = open_questionnaire(ws, OWNER), open_questionnaire(ws, TEAMMATE)
    save(ws, TEAMMATE, theirs, {"primary_kpi": "Stock-out rate"})
    save(ws, OWNER, mine, {"primary_kpi": "Stock-out days per month"})

    assert current(ws, ref)["primary_kpi"] == "Stock-out days per month"
    assert authors(ws, ref, "primary_kpi") == [OWNER, TEAMMATE, OWNER]


def test_the_next_form_shown_after_a_save_knows_what_it_shows(workspace: Workspace) -> None:
    """The form a save leaves open (the same page again, or the next one) remembers the answers
    as they are after that save, so saving it again changes nothing it did not change."""
    ws = workspace
    ref = register(ws)
    mine = open_questionnaire(ws, OWNER)
    save(ws, OWNER, mine, {"primary_kpi": "Stock-out rate"})
    again = open_questionnaire(ws, OWNER)
    theirs = open_questionnaire(ws, TEAMMATE)
    save(ws, TEAMMATE, theirs, {"primary_kpi": "Stock-out days"})
    save(ws, OWNER, again, {})

    assert current(ws, ref)["primary_kpi"] == "Stock-out days"
    assert authors(ws, ref, "primary_kpi") == [OWNER, OWNER, TEAMMATE]


def test_an_answer_that_no_longer_fits_is_cleared_once_and_nothing_else_is_put_back(
    workspace: Workspace,
) -> None:
    """Both forms show the area field empty (its saved answer is no longer an option), and
    saving it empty clears that answer, as its hint says; the first save clears it, the later
    one finds it cleared and adds nothing, and neither undoes the other's changes."""
    ws = workspace
    ref = register(ws)
    with ws.services.uow() as uow:  # an option the pipeline has dropped since
        uow.answers.append(AnswerVersion(ref, "intake", "business_area", "retail", OWNER, ws.clock()))
        uow.commit()
    mine, theirs = open_questionnaire(ws, OWNER), open_questionnaire(ws, TEAMMATE)
    save(ws, TEAMMATE, theirs, {"primary_kpi": "Stock-out days"})
    save(ws, OWNER, mine, {"target_outcome": "Same-week repairs in 95% of cases."})

    answers = current(ws, ref)
    assert answers["business_area"] is None
    assert answers["primary_kpi"] == "Stock-out days"
    assert answers["target_outcome"] == "Same-week repairs in 95% of cases."
    assert authors(ws, ref, "business_area") == [OWNER, OWNER, TEAMMATE]
    assert authors(ws, ref, "primary_kpi") == [OWNER, TEAMMATE]


def test_a_form_left_open_while_its_gate_was_decided_saves_nothing(workspace: Workspace) -> None:
    """The intake page asking about personal data, opened before the intake was approved and
    saved after: the approved answer would change, and with it what the pilot requires (the
    privacy officer's approval), with no error. Refused inside the form instead."""
    ws = workspace
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN01", ws.clock()
    )
    ref = register(ws)
    stale = open_questionnaire(ws, OWNER)
    personal_data = ids.question_block_id("personal_data")
    while personal_data not in str(stale["blocks"]):
        stale = ws.submit_view(OWNER, stale, {}).json()["view"]
    submit(ws, ref)
    ws.deliver()
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.deliver()
    with ws.services.read_uow() as uow:
        assert uow.initiatives.get(ref).stage == "poc"
        recorded = len(uow.answers.history(ref))

    response = ws.submit_view(OWNER, stale, {personal_data: "yes"})

    assert response.status == 200, response.text
    body = response.json()
    assert body["response_action"] == "errors", body
    [message] = body["errors"].values()
    assert message.startswith("The intake gate was decided while this form was open, so nothing was saved.")
    assert "questionnaire again from the initiative's card" in message
    with ws.services.read_uow() as uow:
        assert len(uow.answers.history(ref)) == recorded
    assert current(ws, ref)["personal_data"] == "no"
    pilot = usecases.check_readiness(ws.services.pipeline, ws.services.read_uow(), ref)
    assert pilot.gate_id == "pilot" and "privacy" not in [need.role for need in pilot.approvals]


def test_a_form_opened_before_the_pipeline_gained_a_question_saves_every_change_made_on_it(
    workspace: Workspace,
) -> None:
    """A form remembers what each field showed by the question's place in the gate. Opened before
    a deploy added a question ahead of the others, every place named the question after the one
    it showed: the team's "regulated domain: yes" was taken for the unchanged "generative AI:
    yes" shown next to it and silently left out, while the form closed as saved."""
    ws = workspace
    ref = register(ws)
    save(ws, OWNER, open_questionnaire(ws, OWNER), {"generative_ai": "yes"})
    stale = open_questionnaire(ws, OWNER)
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    first = text.index("      - id: success_metrics")
    added = (
        "      - id: sponsor_briefed\n        label: Has the sponsor been briefed?\n        type: yes_no\n"
    )
    ws.services.pipeline = parse_pipeline(text[:first] + added + text[first:], "added-question.yaml")

    save(ws, OWNER, stale, {"regulated_domain": "yes"})

    answers = current(ws, ref)
    assert answers["regulated_domain"] == "yes"
    assert answers["generative_ai"] == "yes"
    assert authors(ws, ref, "regulated_domain") == [OWNER, OWNER]


def slack_keeps(before: dict[str, Any], typed: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the fields of ``after``, the view an app's answer put in place of ``before`` (in
    which the person typed ``typed``), hold as Slack shows it: a field with the same block_id and
    action_id as one of ``before`` keeps what it held there (Slack's "preserving input entry"
    on an update); the others show their initial values. Keyed by block_id, for ``submit_view``."""
    held = build_state_values(before, typed)
    kept: dict[str, Any] = {}
    for block in after["blocks"]:
        if block.get("type") == "input":
            entry = held.get(block["block_id"], {}).get(block["element"]["action_id"])
            if entry is not None:
                kept[block["block_id"]] = entry[STATE_KEYS[entry["type"]]]
    return kept


def test_the_page_drawn_again_after_a_save_shows_and_keeps_an_answer_a_teammate_saved_meanwhile(
    workspace: Workspace,
) -> None:
    """Saying the initiative uses personal data draws the page again with the questions that
    reveals. Slack keeps what a field held when the new page has it under the same ids, so the
    KPI field went on showing the answer the owner's form opened with, not the one a teammate
    saved meanwhile; and saving the revealed questions then put that stale answer back over the
    teammate's, credited to the owner, who never touched it."""
    ws = workspace
    ref = register(ws)
    before = current(ws, ref)["primary_kpi"]
    mine, theirs = open_questionnaire(ws, OWNER), open_questionnaire(ws, TEAMMATE)
    save(ws, TEAMMATE, theirs, {"primary_kpi": "Stock-out days per month"})

    typed = {ids.question_block_id("personal_data"): "yes"}
    response = ws.submit_view(OWNER, mine, typed)
    body = response.json()
    assert body["response_action"] == "update", body
    again = body["view"]
    assert ids.question_block_id("special_category_data") in str(again["blocks"])
    answers = {
        **slack_keeps(mine, typed, again),
        ids.question_block_id("special_category_data"): "no",
        ids.question_block_id("privacy_contacted"): "yes",
        ids.question_block_id("third_party_ai"): "yes",  # reveals the vendor: drawn once more
    }
    kpi = ids.question_block_id("primary_kpi")
    [shown] = build_state_values(again, answers)[kpi].values()
    assert shown["value"] == "Stock-out days per month" != before  # what the owner now sees
    third = ws.submit_view(OWNER, again, answers).json()
    assert third["response_action"] == "update", third

    after = current(ws, ref)
    assert after["primary_kpi"] == "Stock-out days per month"
    assert (after["special_category_data"], after["privacy_contacted"]) == ("no", "yes")
    assert authors(ws, ref, "primary_kpi") == [OWNER, TEAMMATE]
    # Drawn a third time, every field the owner submitted shows the saved answer again.
    assert slack_keeps(again, answers, third["view"]) == {}


def test_a_form_whose_gate_a_deploy_renamed_says_so_inside_the_form(workspace: Workspace) -> None:
    """The pipeline deployed while the form was open no longer has the form's gate (renamed):
    saving it failed in the listener, so Slack said it could not connect and the owner got
    "something went wrong on Shepherd's side ... try again in a minute", which never helps."""
    ws = workspace
    ref = register(ws)
    stale = open_questionnaire(ws, OWNER)
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8").replace("  - id: intake\n", "  - id: screening\n", 1)
    ws.services.pipeline = parse_pipeline(text, "renamed-gate.yaml")
    apologies = len(ws.messages_in(ws.dm_with(OWNER)))

    response = ws.submit_view(OWNER, stale, {ids.question_block_id("primary_kpi"): "Stock-out days"})

    assert response.status == 200, response.text
    body = response.json()
    assert body["response_action"] == "errors", body
    [message] = body["errors"].values()
    assert "no longer has this form's intake gate, so nothing was saved" in message, message
    assert message.endswith("Open the questionnaire again from the initiative's card."), message
    assert current(ws, ref)["primary_kpi"] != "Stock-out days"
    ws.deliver()
    assert len(ws.messages_in(ws.dm_with(OWNER))) == apologies


def test_a_form_opened_before_a_question_became_a_choice_saves_without_its_untouched_old_answer(
    workspace: Workspace,
) -> None:
    """A deploy turned the KPI from text into a choice while the owner's form was open. The
    form still showed the old text answer in a text field the owner never touched, and saving
    refused the whole page with "'...' is not one of: ..." under it: the change they did make
    (the target outcome) could not be saved from that form at all."""
    ws = workspace
    ref = register(ws)
    kpi = current(ws, ref)["primary_kpi"]
    stale = open_questionnaire(ws, OWNER)
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    old = "      - id: primary_kpi\n        label: Primary business KPI\n        type: text\n"
    assert old in text
    new = old.replace("type: text\n", "type: choice\n        options: [Stock-out rate, Stock value]\n")
    ws.services.pipeline = parse_pipeline(text.replace(old, new), "kpi-choice.yaml")

    save(ws, OWNER, stale, {"target_outcome": "Same-week repairs in 95% of cases."})

    answers = current(ws, ref)
    assert answers["target_outcome"] == "Same-week repairs in 95% of cases."
    assert answers["primary_kpi"] == kpi  # left as it was: readiness asks for a choice now
    assert authors(ws, ref, "primary_kpi") == [OWNER]
    # Picking one of the new options on that old form is not possible (it shows a text field),
    # and typing something else into it is refused, naming what the question takes now.
    response = ws.submit_view(OWNER, stale, {ids.question_block_id("primary_kpi"): "Repairs"})
    assert "not one of: Stock-out rate, Stock value" in response.text, response.text
