"""What the emulator learned for the playground: clicks that name their block, a slash
command's immediate answer shown as Slack shows it, and what one person sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator import payloads
from bot.emulator.blockkit import find_element
from bot.emulator.state import SlackApiFailure
from bot.emulator.webapi import FakeSlackWebAPI

ALICE = "U0ALICE01"
BOB = "U0BOB0001"


def approve_buttons(*review_ids: str) -> list[dict[str, Any]]:
    """One actions block per review, each with the same Approve action_id (as the App Home has)."""
    return [
        {
            "type": "actions",
            "block_id": f"review:{rid}",
            "elements": [
                {
                    "type": "button",
                    "action_id": "review_approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": rid,
                },
                {
                    "type": "static_select",
                    "action_id": "tier",
                    "options": [
                        {"text": {"type": "plain_text", "text": t}, "value": t} for t in ("low", "high")
                    ],
                },
            ],
        }
        for rid in review_ids
    ]


@pytest.fixture
def api() -> Iterator[FakeSlackWebAPI]:
    """A running emulator with two people and #ops."""
    fake = FakeSlackWebAPI()
    fake.state.add_user(ALICE, "alice")
    fake.state.add_user(BOB, "bob")
    fake.state.add_channel("ops")
    with fake:
        yield fake


def test_a_repeated_action_id_is_told_apart_by_its_block() -> None:
    blocks = approve_buttons("R1", "R2")
    assert find_element(blocks, "review_approve")[1]["value"] == "R1"
    assert find_element(blocks, "review_approve", "review:R2")[1]["value"] == "R2"
    with pytest.raises(KeyError, match="no block or element"):
        find_element(blocks, "review_approve", "review:R9")


def test_a_click_on_the_second_of_two_same_buttons_reports_that_button() -> None:
    message = {"ts": "1700000000.000100", "blocks": approve_buttons("R1", "R2")}
    payload = payloads.block_actions_on_message(
        message, "review_approve", user_id=ALICE, channel_id="C1", block_id="review:R2"
    )
    action = payload["actions"][0]
    assert (action["block_id"], action["value"]) == ("review:R2", "R2")


def test_a_selection_in_a_view_is_reported_for_its_own_block() -> None:
    view = {"type": "home", "blocks": approve_buttons("R1", "R2")}
    payload = payloads.block_actions_in_view(view, "tier", user_id=ALICE, value="high", block_id="review:R2")
    assert payload["actions"][0]["selected_option"]["value"] == "high"
    values = payload["view"]["state"]["values"]
    assert values["review:R2"]["tier"]["selected_option"]["value"] == "high"
    assert values["review:R1"]["tier"]["selected_option"] is None


def test_a_commands_json_answer_is_shown_only_to_its_sender(api: FakeSlackWebAPI) -> None:
    ops = api.state.channel_by_name("ops")
    answer = api.apply_command_response(ops.id, ALICE, json.dumps({"text": "Here is *help*"}).encode())
    assert answer == {"ok": True}
    shown = api.state.ephemeral_for(ALICE, ops.id)
    assert [m["text"] for m in shown] == ["Here is *help*"]
    assert api.state.ephemeral_for(BOB) == []
    assert api.state.channel_messages(ops.id) == []
    assert api.last("command_response").params["user"] == ALICE


def test_an_in_channel_answer_is_posted_for_everyone(api: FakeSlackWebAPI) -> None:
    ops = api.state.channel_by_name("ops")
    body = json.dumps({"response_type": "in_channel", "text": "Registered AI-0001"}).encode()
    api.apply_command_response(ops.id, ALICE, body)
    assert [m["text"] for m in api.state.channel_messages(ops.id)] == ["Registered AI-0001"]
    assert api.state.ephemeral_for(ALICE) == []


def test_a_plain_text_answer_is_shown_and_an_empty_one_shows_nothing(api: FakeSlackWebAPI) -> None:
    ops = api.state.channel_by_name("ops")
    assert api.apply_command_response(ops.id, ALICE, b"") is None
    assert api.apply_command_response(ops.id, ALICE, b'{"text": ""}') is None
    assert api.state.ephemeral_for(ALICE) == []
    api.apply_command_response(ops.id, ALICE, b"just words")
    assert [m["text"] for m in api.state.ephemeral_for(ALICE)] == ["just words"]


def test_an_answer_slack_would_refuse_is_reported_not_shown(api: FakeSlackWebAPI) -> None:
    ops = api.state.channel_by_name("ops")
    body = json.dumps({"blocks": [{"type": "no_such_block"}]}).encode()
    answer = api.apply_command_response(ops.id, ALICE, body)
    assert answer is not None and answer["error"] == "invalid_blocks"
    assert api.state.ephemeral_for(ALICE) == []


def test_a_person_sees_their_channels_then_their_dm_with_the_app(api: FakeSlackWebAPI) -> None:
    api.state.add_channel("secret", is_private=True, members=[BOB])
    names = [c.name for c in api.state.conversations_for(ALICE)]
    assert names == ["ops", ALICE]
    assert api.state.conversations_for(ALICE)[-1].is_im
    assert [c.name for c in api.state.conversations_for(BOB)][:2] == ["ops", "secret"]


def test_an_ephemeral_message_can_be_read_and_dismissed_by_its_recipient_only(api: FakeSlackWebAPI) -> None:
    ops = api.state.channel_by_name("ops")
    api.web_client().chat_postEphemeral(channel=ops.id, user=ALICE, text="only for you")
    ts = api.state.ephemeral_for(ALICE)[0]["ts"]
    assert api.state.ephemeral(ALICE, ops.id, ts)["text"] == "only for you"
    with pytest.raises(SlackApiFailure, match="message_not_found"):
        api.state.ephemeral(BOB, ops.id, ts)
    assert not api.state.dismiss_ephemeral(BOB, ops.id, ts)
    assert api.state.dismiss_ephemeral(ALICE, ops.id, ts)
    assert api.state.ephemeral_for(ALICE) == []
