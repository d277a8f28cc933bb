"""Who may change an initiative's sponsor through its questionnaire. Naming the sponsor gives
them the right to submit the initiative for review, so someone else working on the questionnaire
cannot name themselves sponsor and submit: the form says so under the sponsor field and keeps
what they typed, and nothing of that page is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.emulator.webapi import FakeSlackWebAPI
from gates import usecases
from tests.bot.scenario import Workspace, running_workspace
from tests.bot.test_lifecycle import OUTSIDER, OWNER, SPONSOR, _open_review, card, register

STEWARD = "U0ADMIN01"  # a role admin in every test workspace
SPONSOR_FIELD = ids.question_block_id("business_sponsor")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (OUTSIDER, "oscar"), (STEWARD, "gail")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        yield ws


def save_intake(ws: Workspace, user: str, answers: dict[str, Any]) -> dict[str, Any]:
    """``user`` opens the intake questionnaire from the card and saves ``answers``; the response."""
    view = ws.opened_view(lambda: ws.click(user, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    values = {ids.question_block_id(qid): value for qid, value in answers.items()}
    response = ws.submit_view(user, view, values)
    assert response.status == 200, response.text
    return json.loads(response.text) if response.text.strip() else {}


def sponsor_of(ws: Workspace, ref: str) -> str | None:
    with ws.services.read_uow() as uow:
        return uow.initiatives.get(ref).sponsor_id


def test_someone_else_cannot_name_themselves_sponsor_and_then_submit(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    answer = save_intake(ws, OUTSIDER, {"business_sponsor": OUTSIDER, "primary_kpi": "Stock-out days"})

    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {SPONSOR_FIELD}
    assert "Only the owner of" in answer["errors"][SPONSOR_FIELD]
    assert sponsor_of(ws, ref) == SPONSOR
    with ws.services.read_uow() as uow:
        assert usecases.current_answers(uow, ref)["primary_kpi"] != "Stock-out days"
    ws.click(OUTSIDER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.deliver()
    assert _open_review(ws, ref) is None


def test_someone_else_may_save_the_rest_of_the_page(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    assert save_intake(ws, OUTSIDER, {"primary_kpi": "Stock-out days"}).get("response_action") != "errors"
    with ws.services.read_uow() as uow:
        assert usecases.current_answers(uow, ref)["primary_kpi"] == "Stock-out days"
    assert sponsor_of(ws, ref) == SPONSOR


@pytest.mark.parametrize("who", [OWNER, SPONSOR, STEWARD])
def test_the_owner_the_sponsor_or_a_steward_may_change_the_sponsor(workspace: Workspace, who: str) -> None:
    ws = workspace
    ref = register(ws)
    assert save_intake(ws, who, {"business_sponsor": OUTSIDER}).get("response_action") != "errors"
    assert sponsor_of(ws, ref) == OUTSIDER


def test_naming_a_bot_as_sponsor_in_the_questionnaire_is_refused_in_the_form(workspace: Workspace) -> None:
    """As at registration: a bot named sponsor could never be told of the initiative nor act on
    it. Slack is asked only about a sponsor the person picked, not on every save of the page."""
    ws = workspace
    ref = register(ws)
    ws.api.state.add_user("U0ROBOT01", "robot", is_bot=True)
    asked = len(ws.api.calls("users.info"))
    assert save_intake(ws, OWNER, {"primary_kpi": "Stock-out days"}).get("response_action") != "errors"
    assert len(ws.api.calls("users.info")) == asked  # the sponsor shown, left as it was

    answer = save_intake(ws, OWNER, {"business_sponsor": "U0ROBOT01"})
    assert answer.get("response_action") == "errors", answer
    assert "is a bot" in answer["errors"][SPONSOR_FIELD]
    assert sponsor_of(ws, ref) == SPONSOR
