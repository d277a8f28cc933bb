"""Form state and payload shapes the emulator builds, checked against Slack's formats."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot.emulator import payloads
from bot.emulator.blockkit import build_state_values, ensure_ids


def option(value: str) -> dict[str, Any]:
    """A plain-text option whose label is its value."""
    return {"text": {"type": "plain_text", "text": value.title()}, "value": value}


def input_block(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
    """An input block around ``element`` (action_id ``value``)."""
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": block_id},
        "element": {"action_id": "value", **element},
    }


QUESTIONNAIRE: list[dict[str, Any]] = [
    input_block("problem", {"type": "plain_text_input", "multiline": True}),
    input_block("users", {"type": "number_input", "is_decimal_allowed": False}),
    input_block("tier", {"type": "static_select", "options": [option("low"), option("high")]}),
    input_block("regions", {"type": "multi_static_select", "options": [option("eu"), option("us")]}),
    input_block("personal_data", {"type": "radio_buttons", "options": [option("yes"), option("no")]}),
    input_block("checks", {"type": "checkboxes", "options": [option("dpia"), option("bias")]}),
    input_block("go_live", {"type": "datepicker"}),
    input_block("sponsor", {"type": "users_select"}),
    input_block("evidence", {"type": "url_text_input"}),
]


def test_state_values_take_the_shape_slack_sends_for_each_element() -> None:
    values = build_state_values(
        QUESTIONNAIRE,
        {
            "problem": "Manual fraud triage is slow",
            "users": 40,
            "tier": "high",
            "regions": ["eu", "us"],
            "personal_data": "yes",
            "checks": ["dpia"],
            "go_live": dt.date(2026, 9, 1),
            "sponsor": "U0SPONSOR",
            "evidence": "https://wiki.example.com/dpia",
        },
    )

    assert values == {
        "problem": {"value": {"type": "plain_text_input", "value": "Manual fraud triage is slow"}},
        "users": {"value": {"type": "number_input", "value": "40"}},
        "tier": {"value": {"type": "static_select", "selected_option": option("high")}},
        "regions": {
            "value": {"type": "multi_static_select", "selected_options": [option("eu"), option("us")]}
        },
        "personal_data": {"value": {"type": "radio_buttons", "selected_option": option("yes")}},
        "checks": {"value": {"type": "checkboxes", "selected_options": [option("dpia")]}},
        "go_live": {"value": {"type": "datepicker", "selected_date": "2026-09-01"}},
        "sponsor": {"value": {"type": "users_select", "selected_user": "U0SPONSOR"}},
        "evidence": {"value": {"type": "url_text_input", "value": "https://wiki.example.com/dpia"}},
    }


def test_untouched_inputs_report_their_initial_values_or_nothing() -> None:
    blocks = [
        input_block("problem", {"type": "plain_text_input", "initial_value": "draft"}),
        input_block(
            "tier", {"type": "static_select", "options": [option("low")], "initial_option": option("low")}
        ),
        input_block("checks", {"type": "checkboxes", "options": [option("dpia")]}),
        input_block("go_live", {"type": "datepicker"}),
    ]

    values = build_state_values(blocks)

    assert values["problem"]["value"]["value"] == "draft"
    assert values["tier"]["value"]["selected_option"] == option("low")
    assert values["checks"]["value"]["selected_options"] == []
    assert values["go_live"]["value"]["selected_date"] is None


def test_values_can_be_keyed_by_action_id() -> None:
    blocks = [
        {
            "type": "input",
            "block_id": "b1",
            "label": {"type": "plain_text", "text": "Name"},
            "element": {"type": "plain_text_input", "action_id": "initiative_name"},
        }
    ]

    values = build_state_values({"type": "modal", "blocks": blocks}, {"initiative_name": "Triage"})

    assert values == {"b1": {"initiative_name": {"type": "plain_text_input", "value": "Triage"}}}


def test_a_value_that_is_not_an_option_is_refused_with_the_options() -> None:
    with pytest.raises(ValueError, match=r"'medium' is not an option .*low, high"):
        build_state_values(QUESTIONNAIRE, {"tier": "medium"})


def test_an_unknown_key_is_refused_with_the_known_ids() -> None:
    with pytest.raises(KeyError, match="no block or element with id 'nope'"):
        build_state_values(QUESTIONNAIRE, {"nope": "x"})


def test_blocks_without_ids_get_the_same_ids_every_time() -> None:
    blocks = [
        {
            "type": "input",
            "label": {"type": "plain_text", "text": "x"},
            "element": {"type": "plain_text_input"},
        }
    ]

    first, second = ensure_ids(blocks), ensure_ids(blocks)

    assert first == second
    assert first[0]["block_id"] and first[0]["element"]["action_id"]
    assert "block_id" not in blocks[0], "the caller's blocks are not changed"


def test_select_in_a_modal_reports_the_choice_in_action_and_state() -> None:
    view = {"type": "modal", "id": "V1", "blocks": QUESTIONNAIRE}

    payload = payloads.block_actions_in_view(view, "tier", user_id="U1", value="low", values={"problem": "p"})

    assert payload["container"] == {"type": "view", "view_id": "V1"}
    assert payload["actions"][0]["selected_option"] == option("low")
    assert payload["actions"][0]["type"] == "static_select"
    state = payload["view"]["state"]["values"]
    assert state["tier"]["value"]["selected_option"] == option("low")
    assert state["problem"]["value"]["value"] == "p"
    assert "response_url" not in payload


def test_slash_command_has_every_field_slack_sends() -> None:
    fields = payloads.slash_command("shepherd", "help", user_id="U1", channel_id="D1")

    assert set(fields) >= {
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
        "command", "text", "api_app_id", "is_enterprise_install", "response_url", "trigger_id",
    }  # fmt: skip
    assert fields["command"] == "/shepherd"
    assert fields["channel_name"] == "directmessage"


def test_event_envelope_has_ids_and_authorizations() -> None:
    envelope = payloads.event_callback(payloads.message_event("hi", user_id="U1", channel_id="D1"))

    assert envelope["type"] == "event_callback"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == payloads.DEFAULT_WORKSPACE.bot_user_id
    assert envelope["event"]["channel_type"] == "im"
    assert envelope["event"]["event_ts"] == envelope["event"]["ts"]
