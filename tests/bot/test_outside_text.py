"""Text that someone outside controls (a button's value, a stored answer) reaches people in
Slack as text: never as a ping, a mention or a link that goes somewhere else than it says.

Through the real protocol: signed requests into the app, the explanation read from what the
fake Slack was asked to post.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import ids
from bot.blocks.text import MAX_MESSAGE_TEXT
from bot.emulator import payloads
from bot.listeners.common import tell_later
from gates.ports import AnswerVersion
from tests.bot.scenario import Workspace, find_button, only_ref, workspace_with_initiative

OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"
PAYLOAD = "<!channel> <https://evil.example|the DPIA>"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with workspace_with_initiative(
        tmp_path / "data", {OWNER: "olivia", SPONSOR: "sam"}, OWNER, [SPONSOR]
    ) as ws:
        ws.deliver()
        yield ws


def card(ws: Workspace) -> dict:
    return ws.messages_in(ws.registry)[0]


def told(ws: Workspace, user: str) -> str:
    """The one private explanation ``user`` got: an ephemeral in the channel (the fixture has
    delivered every earlier message, the welcome DM among them). The click's listener runs
    after the ack, so it is waited for."""
    ws.wait(lambda: ws.deliver() >= 0 and ws.api.calls("chat.postEphemeral"))
    sent = [str(call.params.get("text")) for call in ws.api.calls("chat.postEphemeral")]
    assert [call.params.get("user") for call in ws.api.calls("chat.postEphemeral")] == [user]
    return sent[0]


def assert_inert(text: str) -> None:
    assert "<!channel>" not in text and "<https://evil.example" not in text, text
    assert "&lt;!channel&gt;" in text, text


@pytest.mark.parametrize("action_id", [ids.ACTION_SUBMIT_REVIEW, ids.ACTION_OPEN_QUESTIONNAIRE])
def test_a_forged_button_value_is_echoed_as_text(workspace: Workspace, action_id: str) -> None:
    ws = workspace
    message = copy.deepcopy(card(ws))
    find_button(message, action_id)["value"] = PAYLOAD  # the card's own button, its value forged
    payload = payloads.block_actions_on_message(
        message,
        action_id,
        user_id=OWNER,
        channel_id=ws.registry,
        trigger_id=ws.api.mint_trigger_id(OWNER),
        response_url=ws.api.response_url(ws.registry, OWNER, message.get("ts")),
    )
    assert ws.client.send(payload).status == 200

    text = told(ws, OWNER)
    assert "is not an initiative reference" in text
    assert_inert(text)


def test_a_stored_answer_that_no_longer_fits_is_quoted_as_text_when_submitting(workspace: Workspace) -> None:
    """An answer recorded before the pipeline made its question a number (written here as the
    store holds it): Submit for review quotes it in its explanation."""
    ws = workspace
    ref = only_ref(ws)
    with ws.services.uow() as uow:
        uow.answers.append(AnswerVersion(ref, "intake", "poc_duration_weeks", PAYLOAD, OWNER, ws.clock()))
        uow.commit()

    assert ws.click(OWNER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW).status == 200

    text = told(ws, OWNER)
    assert "poc_duration_weeks" in text and "expected a number" in text
    assert_inert(text)


def test_a_private_explanation_too_long_for_slack_is_cut_not_refused(workspace: Workspace) -> None:
    """An explanation built from a long gate's labels (every missing answer named) is cut to
    what Slack shows, rather than refused by Slack and retried until set aside."""
    ws = workspace
    reasons = "; ".join(
        f"*Question {n}* about the model's monitoring and alerting has no answer" for n in range(200)
    )
    tell_later(ws.services, OWNER, reasons, ws.registry)

    text = told(ws, OWNER)
    assert len(text) <= MAX_MESSAGE_TEXT and text.endswith("…")
    assert text.startswith("*Question 0* about the model's monitoring and alerting")
