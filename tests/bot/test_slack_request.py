"""Slack's HTTP requests parsed the fast way give exactly what Bolt's own parsing gives, and the
signature still covers the raw body as received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.adapter.starlette.handler import to_bolt_request
from slack_bolt.request.internals import parse_body as bolt_parse_body
from starlette.requests import Request

from bot import ids
from bot.emulator import payloads
from bot.emulator.client import encode_command, encode_event, encode_interaction
from bot.slack_request import bolt_request, parse_body, parse_form, unquote_form
from tests.bot.scenario import Workspace, workspace_of

FORM = "application/x-www-form-urlencoded"
OWNER = "U0OWNER01"

# Text people type into Slack: accents, emoji, quotes, backslashes, plus signs, percent signs,
# newlines, and characters outside the Basic Multilingual Plane.
TYPED = [
    "Spare-parts demand forecast",
    'Müller says "go" — 50% + 5% = 55%\\n, path C:\\temp\\new',
    "🚀 launch ✅ ok; a&b=c?d#e",
    "line one\nline two\ttabbed",
    "",
]


def starlette_request(body: bytes, content_type: str, query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/slack/events",
        "query_string": query.encode(),
        "headers": [(b"content-type", content_type.encode()), (b"x-slack-request-timestamp", b"1700000000")],
    }
    return Request(scope)


def interactive_bodies() -> list[bytes]:
    """Approve clicks on a card whose text and button value are ``TYPED``."""
    bodies = []
    for text in TYPED:
        button = {
            "type": "button",
            "action_id": ids.ACTION_APPROVE,
            "text": {"type": "plain_text", "text": "Approve"},
            "value": text,
        }
        message = {
            "ts": "1700000000.000100",
            "text": text,
            "blocks": [{"type": "actions", "block_id": "decide", "elements": [button]}],
        }
        click = payloads.block_actions_on_message(
            message, ids.ACTION_APPROVE, user_id=OWNER, channel_id="C0REG"
        )
        bodies.append(encode_interaction(click))
    return bodies


@pytest.mark.parametrize("text", TYPED)
def test_slash_commands_parse_as_bolt_parses_them(text: str) -> None:
    body = encode_command(
        payloads.slash_command(ids.COMMAND, text, user_id=OWNER, channel_id="C0REG")
    ).decode()
    assert parse_body(body, FORM) == bolt_parse_body(body, FORM)
    assert parse_body(body, FORM)["text"] == text


def test_interactive_payloads_parse_as_bolt_parses_them() -> None:
    for raw in interactive_bodies():
        body = raw.decode()
        assert parse_body(body, FORM) == bolt_parse_body(body, FORM)
    assert parse_body(interactive_bodies()[1].decode(), FORM)["actions"][0]["value"] == TYPED[1]


def test_event_bodies_are_json() -> None:
    event = payloads.app_mention_event("<@U0BOT> what do we need? 🚀", user_id=OWNER, channel_id="C0REG")
    body = encode_event(payloads.event_callback(event)).decode()
    assert parse_body(body, "application/json; charset=utf-8") == bolt_parse_body(body, "application/json")
    assert parse_body("", FORM) == {} == bolt_parse_body("", FORM)


@pytest.mark.parametrize(
    "raw",
    [
        "a=%zz&b=%4",  # not escapes at all: kept as typed
        "a=%C3%28",  # not UTF-8: replaced, as urllib does
        "a=caf\u00e9%20au%20lait",  # raw non-ASCII in the body
        "a=1&a=2&&b&c=",  # repeated, empty and value-less fields
        "a=%5C%5Cx41%25",  # escaped backslashes and percent signs that look like escapes once decoded
        "payload=",  # an empty payload field
    ],
)
def test_malformed_or_unusual_forms_decode_exactly_as_urllib_does(raw: str) -> None:
    assert parse_form(raw) == dict(parse_qsl(raw, keep_blank_values=True))


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_any_encoded_form_round_trips(fields: dict[str, str]) -> None:
    assert parse_form(urlencode(fields)) == fields


@given(st.text(alphabet="%+&=\\abcdefABCDEF0123456789xé🚀 "))
def test_any_string_decodes_as_urllib_decodes_it(raw: str) -> None:
    assert parse_form(raw) == dict(parse_qsl(raw, keep_blank_values=True))
    assert unquote_form(raw) == unquote_plus(raw)


def test_the_bolt_request_is_the_one_bolts_adapter_would_build() -> None:
    raw = interactive_bodies()[2]
    request = starlette_request(raw, FORM, "x=1")
    ours, theirs = bolt_request(request, raw), to_bolt_request(request, raw)
    assert ours.mode == theirs.mode == "http"
    assert ours.raw_body == theirs.raw_body == raw.decode()  # what the signature is checked against
    for attribute in ("body", "query", "headers", "content_type", "lazy_only", "lazy_function_name"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert dict(ours.context) == dict(theirs.context)
    # Lazy listeners get a copy re-read from the raw body: it must be the same request.
    assert ours.to_copyable().body == ours.body


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with workspace_of({OWNER: "olivia"}, tmp_path / "data") as ws:
        yield ws


def test_a_body_changed_after_signing_is_refused(workspace: Workspace) -> None:
    """The signature covers the bytes Slack sent: a payload altered in transit (here, the
    command's text) is refused with 401, though the parsing no longer goes through Bolt."""
    fields = payloads.slash_command(ids.COMMAND, "help", user_id=OWNER, channel_id=workspace.registry)
    signed = encode_command(fields)
    tampered = encode_command({**fields, "text": "status AI-0001"})
    headers = workspace.client.signed_headers(signed, FORM)  # the signature of the original
    assert workspace.client.post(tampered, FORM, headers=headers).status == 401
    # The untouched body with the same headers is answered.
    assert workspace.client.post(signed, FORM).status == 200


def test_a_command_with_typed_text_is_understood_through_http(workspace: Workspace) -> None:
    """The fast parsing is what the listeners see: an unknown subcommand with accents, emoji and
    percent signs is quoted back intact."""
    result = workspace.command(OWNER, "Müller 🚀 50%+5%")
    assert result.status == 200, result.text
    assert result.text == "I don't know `müller`. Try `/shepherd help`."
    status = workspace.command(OWNER, "status  AI-9999")
    assert "AI-9999" in status.text


@pytest.mark.parametrize(
    ("body", "signed_status"),
    [
        (b"payload=%7B%22type", 404),  # malformed JSON
        (b"payload=1", 404),  # JSON, but not an object
        (b'{"type": "event_callback"', 404),
        # Not UTF-8: it cannot be read back as the bytes that were signed, so it is not verified.
        (b"\xff\xfe", 401),
    ],
)
def test_a_body_that_is_not_slacks_is_refused_without_a_server_error(
    workspace: Workspace, body: bytes, signed_status: int
) -> None:
    """Signed, it is a request no listener handles; forged, it is refused; never a 500."""
    assert workspace.client.post(body, FORM).status == signed_status
    assert workspace.client.post(body, FORM, signing="forged").status == 401


@pytest.mark.parametrize("body", [b'"x"', b"1", b"[1]", b"null"])
def test_a_json_body_that_is_not_an_object_is_refused_without_a_server_error(
    workspace: Workspace, body: bytes
) -> None:
    """Anyone can post to /slack/events: JSON that is not an object, unsigned, is refused like
    any unsigned request (a JSON string used to reach Bolt as a string, parsed again there: a
    500 and a traceback before the signature was checked). Signed, no listener handles it."""
    assert workspace.client.post(body, "application/json", signing="unsigned").status == 401
    assert workspace.client.post(body, "application/json", signing="forged").status == 401
    assert workspace.client.post(body, "application/json").status == 404


def test_a_slash_command_that_mentions_payload_is_still_a_slash_command() -> None:
    # Bolt's decoding takes any form containing "payload" for an interactive payload: {}.
    fields = payloads.slash_command(
        ids.COMMAND, "ask what payload do we log?", user_id=OWNER, channel_id="C0REG"
    )
    fields["channel_name"] = "payments-payload-team"
    body = encode_command(fields).decode()
    assert bolt_parse_body(body, FORM) == {}
    decoded = parse_body(body, FORM)
    assert decoded["text"] == "ask what payload do we log?"
    assert decoded["channel_name"] == "payments-payload-team"


def test_the_lazy_half_gets_the_request_decoded_the_same_way() -> None:
    fields = payloads.slash_command(
        ids.COMMAND, "ask what payload do we log?", user_id=OWNER, channel_id="C0REG"
    )
    raw = encode_command(fields)
    request = bolt_request(starlette_request(raw, FORM, ""), raw)
    copy = request.to_copyable()
    assert copy.body == request.body and copy.body["text"] == "ask what payload do we log?"
    assert (copy.mode, copy.raw_body) == ("http", raw.decode())
