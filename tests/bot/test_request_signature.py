"""Signatures checked piecewise (``bot.request_signature``) are slack_sdk's signatures: the same
requests are accepted and the same are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.middleware.request_verification import RequestVerification
from slack_sdk.signature import SignatureVerifier

from bot import ids
from bot.app import build_app
from bot.emulator import payloads
from bot.emulator.client import encode_command
from bot.request_signature import PIECE_BYTES, PiecewiseSignatureVerifier
from tests.bot.scenario import Workspace, workspace_of

FORM = "application/x-www-form-urlencoded"
OWNER = "U0OWNER01"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@given(body=st.text(max_size=9000), timestamp=st.integers(0, 2**40))
def test_the_signature_is_slack_sdks_for_any_body(body: str, timestamp: int) -> None:
    ours = PiecewiseSignatureVerifier(SECRET).generate_signature(timestamp=str(timestamp), body=body)
    assert ours == SignatureVerifier(SECRET).generate_signature(timestamp=str(timestamp), body=body)


@pytest.mark.parametrize(
    "size", [0, 1, PIECE_BYTES - 20, PIECE_BYTES, PIECE_BYTES + 1, 3 * PIECE_BYTES, 60_000]
)
def test_bodies_around_the_piece_size_sign_alike(size: int) -> None:
    body = ("é" * size)[:size].encode()  # two bytes a character: pieces end inside one
    reference, ours = SignatureVerifier(SECRET), PiecewiseSignatureVerifier(SECRET)
    signature = reference.generate_signature(timestamp="1700000000", body=body)
    assert ours.generate_signature(timestamp="1700000000", body=body) == signature
    now = str(int(ours.clock.now()))
    signed = reference.generate_signature(timestamp=now, body=body)
    assert ours.is_valid(body, now, signed) is True
    assert ours.is_valid(body + b"!", now, signed) is False


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with workspace_of({OWNER: "olivia"}, tmp_path / "data") as ws:
        yield ws


def test_the_app_checks_signatures_piecewise(workspace: Workspace) -> None:
    """Bolt's request verification is the one that runs piecewise; a Bolt upgrade that moves it
    fails here rather than quietly giving the ack back its GIL wait."""
    app = build_app(workspace.services.settings, workspace.services)
    verifiers = [m.verifier for m in app._middleware_list if isinstance(m, RequestVerification)]
    assert [type(v) for v in verifiers] == [PiecewiseSignatureVerifier]


def test_a_long_body_changed_far_past_its_first_piece_is_refused(workspace: Workspace) -> None:
    """A command of 9 KB (five pieces) altered near its end is refused with 401; untouched, it
    is answered."""
    text = "status " + "x" * 9000
    fields = payloads.slash_command(ids.COMMAND, text, user_id=OWNER, channel_id=workspace.registry)
    signed = encode_command(fields)
    tampered = encode_command({**fields, "text": text[:-1] + "y"})
    headers = workspace.client.signed_headers(signed, FORM)
    assert workspace.client.post(tampered, FORM, headers=headers).status == 401
    answered = workspace.client.post(signed, FORM)
    assert answered.status == 200
    assert "Usage: `/shepherd status`" in answered.text
