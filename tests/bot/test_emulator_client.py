"""Signed requests into a real Bolt app over HTTP, with the payload shapes Slack sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.emulator import payloads
from bot.emulator.client import SlackClient, compute_signature
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.state import Channel
from bot.emulator.webapi import FakeSlackWebAPI
from tests.bot.conftest import OWNER

SIGNING_SECRET = "test-signing-secret"

INTAKE_VIEW: dict[str, Any] = {
    "type": "modal",
    "callback_id": "intake",
    "title": {"type": "plain_text", "text": "Register"},
    "submit": {"type": "plain_text", "text": "Submit"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "personal_data",
            "label": {"type": "plain_text", "text": "Personal data?"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": "Yes"}, "value": "yes"},
                    {"text": {"type": "plain_text", "text": "No"}, "value": "no"},
                ],
            },
        },
    ],
}


class Recorder:
    """Collects what the Bolt listeners received."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.retry_nums: list[str | None] = []


@pytest.fixture
def recorder() -> Recorder:
    """What the listeners saw."""
    return Recorder()


@pytest.fixture
def bolt_app(slack_api: FakeSlackWebAPI, recorder: Recorder) -> App:
    """A tiny Bolt app whose WebClient talks to the fake Slack."""
    app = App(
        signing_secret=SIGNING_SECRET,
        client=slack_api.web_client(),
        process_before_response=True,
    )

    @app.command("/shepherd")
    def on_command(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        recorder.bodies.append(body)
        if body["text"] == "new":
            client.views_open(trigger_id=body["trigger_id"], view=INTAKE_VIEW)

    @app.action("approve")
    def on_approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        recorder.bodies.append(body)
        client.chat_update(
            channel=body["container"]["channel_id"], ts=body["container"]["message_ts"], text="Approved"
        )

    @app.view("intake")
    def on_intake(ack: Ack, body: dict[str, Any]) -> None:
        recorder.bodies.append(body)
        title = body["view"]["state"]["values"]["title"]["value"]["value"]
        if not title:
            ack(response_action="errors", errors={"title": "A title is required"})
        else:
            ack()

    @app.view_closed("intake")
    def on_closed(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        recorder.bodies.append(body)

    @app.shortcut("register")
    def on_shortcut(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        recorder.bodies.append(body)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], request: Any) -> None:
        recorder.bodies.append(body)
        recorder.retry_nums.append(request.headers.get("x-slack-retry-num", [None])[0])

    @app.event("message")
    def on_message(body: dict[str, Any]) -> None:
        recorder.bodies.append(body)

    @app.event("app_home_opened")
    def on_home(body: dict[str, Any]) -> None:
        recorder.bodies.append(body)

    return app


@pytest.fixture
def endpoint(bolt_app: App) -> Iterator[str]:
    """The Bolt app behind Starlette and uvicorn; yields its /slack/events URL."""
    handler = SlackRequestHandler(bolt_app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    web = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    with BackgroundASGIServer(web) as server:
        yield server.url + "/slack/events"


@pytest.fixture
def slack(endpoint: str) -> SlackClient:
    """The signing client pointed at the Bolt app."""
    return SlackClient(endpoint, SIGNING_SECRET)


def test_signature_matches_slacks_documented_example() -> None:
    # The example from Slack's "Verifying requests from Slack" guide.
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )

    signature = compute_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body)

    assert signature == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_signed_slash_command_reaches_the_listener(
    slack: SlackClient, recorder: Recorder, registry: Channel
) -> None:
    command = payloads.slash_command(
        "/shepherd", "status AI-7", user_id=OWNER, channel_id=registry.id, channel_name=registry.name
    )

    result = slack.send(command)

    assert result.status == 200
    assert recorder.bodies[0]["text"] == "status AI-7"
    assert recorder.bodies[0]["user_id"] == OWNER
    assert recorder.bodies[0]["api_app_id"] == payloads.DEFAULT_WORKSPACE.api_app_id


@pytest.mark.parametrize("signing", ["forged", "unsigned", "stale"])
def test_badly_signed_requests_are_refused_with_401(
    slack: SlackClient, recorder: Recorder, registry: Channel, signing: Any
) -> None:
    command = payloads.slash_command("/shepherd", "help", user_id=OWNER, channel_id=registry.id)

    result = slack.send(command, signing=signing)

    assert result.status == 401
    assert recorder.bodies == []


def test_slash_command_opens_a_modal_with_the_minted_trigger(
    slack_api: FakeSlackWebAPI, slack: SlackClient, registry: Channel
) -> None:
    command = payloads.slash_command(
        "/shepherd",
        "new",
        user_id=OWNER,
        channel_id=registry.id,
        trigger_id=slack_api.mint_trigger_id(OWNER),
    )

    assert slack.send(command).status == 200

    opened = slack_api.last("views.open")
    assert opened.ok, opened.response
    assert slack_api.state.modal_stack(OWNER)[0]["callback_id"] == "intake"


def test_button_click_on_a_posted_message_updates_it(
    slack_api: FakeSlackWebAPI, slack: SlackClient, registry: Channel
) -> None:
    buttons = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "review-1",
                "style": "primary",
            }
        ],
    }
    posted = slack_api.web_client().chat_postMessage(channel=registry.id, text="Review", blocks=[buttons])
    click = payloads.block_actions_on_message(
        posted["message"], "approve", user_id=OWNER, channel_id=registry.id
    )

    assert slack.send(click).status == 200

    action = click["actions"][0]
    assert (action["type"], action["value"], action["style"]) == ("button", "review-1", "primary")
    assert click["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": registry.id,
        "is_ephemeral": False,
    }
    assert slack_api.state.message(registry.id, posted["ts"])["text"] == "Approved"


def test_view_submission_carries_state_values_and_gets_errors_back(
    slack_api: FakeSlackWebAPI, slack: SlackClient, recorder: Recorder
) -> None:
    view = slack_api.web_client().views_open(trigger_id=slack_api.mint_trigger_id(OWNER), view=INTAKE_VIEW)[
        "view"
    ]

    empty = slack.send(payloads.view_submission(view, user_id=OWNER, values={"personal_data": "no"}))
    filled = slack.send(
        payloads.view_submission(
            view, user_id=OWNER, values={"title": "Fraud triage", "personal_data": "yes"}
        )
    )

    assert empty.status == 200
    assert empty.json() == {"response_action": "errors", "errors": {"title": "A title is required"}}
    assert filled.status == 200 and filled.body == b""
    values = recorder.bodies[1]["view"]["state"]["values"]
    assert values["title"]["value"] == {"type": "plain_text_input", "value": "Fraud triage"}
    assert values["personal_data"]["value"]["selected_option"]["value"] == "yes"
    assert recorder.bodies[1]["view"]["id"] == view["id"]


def test_view_closed_and_shortcut_reach_their_listeners(slack: SlackClient, recorder: Recorder) -> None:
    closed = slack.send(payloads.view_closed(INTAKE_VIEW, user_id=OWNER))
    shortcut = slack.send(payloads.global_shortcut("register", user_id=OWNER))

    assert (closed.status, shortcut.status) == (200, 200)
    assert [b["type"] for b in recorder.bodies] == ["view_closed", "shortcut"]


def test_events_arrive_with_retry_headers_when_slack_redelivers(
    slack_api: FakeSlackWebAPI, slack: SlackClient, recorder: Recorder, registry: Channel
) -> None:
    mention = payloads.event_callback(
        payloads.app_mention_event(
            f"<@{slack_api.state.bot_user_id}> what does the pilot need?",
            user_id=OWNER,
            channel_id=registry.id,
        )
    )

    first = slack.send_event(mention)
    again = slack.send_event(mention, retry_num=1, retry_reason="http_timeout")

    assert (first.status, again.status) == (200, 200)
    assert recorder.retry_nums == [None, "1"]
    assert recorder.bodies[0]["event_id"] == recorder.bodies[1]["event_id"]
    user_element = recorder.bodies[0]["event"]["blocks"][0]["elements"][0]["elements"][0]
    assert user_element == {"type": "user", "user_id": slack_api.state.bot_user_id}


def test_direct_message_and_app_home_opened_reach_their_listeners(
    slack_api: FakeSlackWebAPI, slack: SlackClient, recorder: Recorder
) -> None:
    dm, _ = slack_api.state.open_dm(OWNER)

    im = slack.send(
        payloads.event_callback(payloads.message_event("status", user_id=OWNER, channel_id=dm.id))
    )
    home = slack.send(
        payloads.event_callback(payloads.app_home_opened_event(OWNER, channel_id=dm.id, tab="messages"))
    )

    assert (im.status, home.status) == (200, 200)
    assert recorder.bodies[0]["event"]["channel_type"] == "im"
    assert recorder.bodies[1]["event"]["tab"] == "messages"


def test_answers_to_a_submission_close_update_or_keep_the_modal(
    slack_api: FakeSlackWebAPI, slack: SlackClient
) -> None:
    view = slack_api.web_client().views_open(trigger_id=slack_api.mint_trigger_id(OWNER), view=INTAKE_VIEW)[
        "view"
    ]
    rejected = slack.send(payloads.view_submission(view, user_id=OWNER))

    errors = slack_api.apply_view_response(OWNER, view["id"], rejected.json())
    page_two = {**INTAKE_VIEW, "title": {"type": "plain_text", "text": "Page 2"}}
    slack_api.apply_view_response(OWNER, view["id"], {"response_action": "update", "view": page_two})
    still_open = slack_api.state.modal_stack(OWNER)
    slack_api.apply_view_response(OWNER, view["id"], None)

    assert errors == {"title": "A title is required"}
    assert [v["title"]["text"] for v in still_open] == ["Page 2"]
    assert slack_api.state.modal_stack(OWNER) == []
