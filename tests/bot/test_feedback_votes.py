"""Feedback on an answer: a person may change their mind; the latest vote stands.

Through the real protocols: the question goes to the running app as a signed event, the votes as
signed clicks on the reply, and what the person is told is read from the emulator's transcript.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import ids
from bot.emulator import payloads
from storage.retention import prune
from tests.bot.blockkit_checks import assert_valid_message
from tests.bot.scenario import Workspace, has_button, workspace_of

OWNER = "U0OWNER01"
COLLEAGUE = "U0COLLEAG"
HELPFUL, UNHELPFUL = ids.ACTION_FEEDBACK_HELPFUL, ids.ACTION_FEEDBACK_UNHELPFUL


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with two people who ask it questions."""
    with workspace_of({OWNER: "olivia", COLLEAGUE: "colin"}, tmp_path / "data") as ws:
        yield ws


def answered(ws: Workspace, question: str) -> tuple[dict[str, Any], str]:
    """The owner asks in their DM; returns Shepherd's reply (with feedback buttons) and the DM."""
    dm = ws.dm_with(OWNER)
    ws.client.send_event(
        payloads.event_callback(payloads.message_event(question, user_id=OWNER, channel_id=dm))
    )
    ws.api.wait_for("chat.update", timeout=10)
    replies = ws.wait(lambda: [m for m in ws.messages_in(dm) if has_button(m, HELPFUL)])
    return replies[-1], dm


def votes(ws: Workspace) -> list[tuple[str, bool]]:
    """Every recorded vote, in order: (who, helpful)."""
    with ws.services.database.session() as session:
        rows = session.execute(
            text("select actor_id, payload from audit_log where action = 'ask.feedback' order by seq")
        ).all()
    return [(actor, json.loads(payload)["helpful"]) for actor, payload in rows]


def told(ws: Workspace, user: str) -> list[str]:
    """What Shepherd told ``user`` about their feedback, privately in the channel or by DM."""
    ws.deliver()
    said = [
        str(call.params.get("text"))
        for call in ws.api.calls("chat.postEphemeral")
        if call.params.get("user") == user and call.ok  # refused: outside the channel, so by DM
    ]
    said += [m.get("text", "") for m in ws.messages_in(ws.dm_with(user)) if m.get("user") != user]
    return [line for line in said if "marked as" in line]


def test_a_changed_vote_is_recorded_and_the_person_told(workspace: Workspace) -> None:
    ws = workspace
    reply, dm = answered(ws, "what is a DPIA?")
    for action in [HELPFUL, UNHELPFUL, HELPFUL]:
        assert ws.click(OWNER, reply, dm, action).status == 200
    assert votes(ws) == [(OWNER, True), (OWNER, False), (OWNER, True)]  # the last one stands
    assert told(ws, OWNER) == [
        "Thanks: marked as helpful.",
        "Changed: now marked as not helpful, and recorded with the answer for the governance team.",
        "Changed: now marked as helpful.",
    ]


def test_the_same_vote_again_counts_once_and_is_told_once(workspace: Workspace) -> None:
    ws = workspace
    reply, dm = answered(ws, "what is a DPIA?")
    for action in [HELPFUL, HELPFUL, UNHELPFUL, UNHELPFUL]:  # two double clicks
        assert ws.click(OWNER, reply, dm, action).status == 200
    assert votes(ws) == [(OWNER, True), (OWNER, False)]
    assert len(told(ws, OWNER)) == 2


def test_each_persons_vote_on_the_same_answer_is_their_own(workspace: Workspace) -> None:
    ws = workspace
    reply, dm = answered(ws, "what is a DPIA?")
    ws.click(OWNER, reply, dm, UNHELPFUL)
    ws.click(COLLEAGUE, reply, dm, HELPFUL)  # a first vote, not a change of the owner's
    assert votes(ws) == [(OWNER, False), (COLLEAGUE, True)]
    assert told(ws, COLLEAGUE) == ["Thanks: marked as helpful."]


def test_a_vote_is_recorded_with_the_answer_as_it_was_posted(workspace: Workspace) -> None:
    ws = workspace
    reply, dm = answered(ws, "what is a DPIA?")
    # Slack hands the message back as it was posted: mrkdwn, its entities already escaped.
    reply = {**reply, "text": "Ask the DPO &amp; <https://example.com/dpia|the DPIA guide>."}
    assert ws.click(OWNER, reply, dm, HELPFUL).status == 200
    assert votes(ws) == [(OWNER, True)]
    with ws.services.database.session() as session:
        [payload] = session.execute(
            text("select payload from audit_log where action = 'ask.feedback'")
        ).scalars()
    assert json.loads(payload)["answer"] == "Ask the DPO &amp; <https://example.com/dpia|the DPIA guide>."


def privately_answered(ws: Workspace, question: str) -> dict[str, Any]:
    """The owner asks with ``/shepherd ask`` in the registry channel; returns the private answer."""
    assert ws.command(OWNER, f"ask {question}").status == 200
    answers = ws.wait(
        lambda: [e for e in ws.api.state.ephemeral_for(OWNER, ws.registry) if has_button(e, HELPFUL)]
    )
    return answers[-1]


def vote_on_private(ws: Workspace, answer: dict[str, Any], action_id: str) -> None:
    """A click on an ephemeral message, as Slack sends it: without the message."""
    payload = payloads.block_actions_on_message(
        answer,
        action_id,
        user_id=OWNER,
        channel_id=ws.registry,
        is_ephemeral=True,
        trigger_id=ws.api.mint_trigger_id(OWNER),
        response_url=ws.api.response_url(ws.registry, OWNER, answer["ts"]),
    )
    assert "message" not in payload
    assert ws.client.send(payload).status == 200


def recorded(ws: Workspace) -> list[dict[str, Any]]:
    with ws.services.database.session() as session:
        payloads_ = session.execute(
            text("select payload from audit_log where action = 'ask.feedback' order by seq")
        ).scalars()
        return [json.loads(payload) for payload in payloads_]


def test_a_vote_on_a_private_answer_is_recorded_with_its_question_answer_and_sources(
    workspace: Workspace,
) -> None:
    ws = workspace
    assert ws.services.knowledge is not None
    answer = privately_answered(ws, "who has to sign off the handover to operations?")
    assert_valid_message(answer)
    vote_on_private(ws, answer, UNHELPFUL)
    [record] = recorded(ws)
    assert record["helpful"] is False
    assert record["question"] == "who has to sign off the handover to operations?"
    assert record["answer"][:-1] == answer["text"][:999]  # cut to 1,000 characters, with "…"
    assert any("08-handover-and-operations.md" in source for source in record["sources"])
    assert told(ws, OWNER) == [
        "Thanks: marked as not helpful, and recorded with the answer for the governance team."
    ]


def test_a_vote_on_an_answer_older_than_those_kept_says_it_is_recorded_without_it(
    workspace: Workspace,
) -> None:
    ws = workspace
    answer = privately_answered(ws, "what is a DPIA?")
    with ws.services.database.session() as session:  # as if posted before answers were kept
        session.execute(text("delete from asked_answers"))
        session.commit()
    vote_on_private(ws, answer, UNHELPFUL)
    [record] = recorded(ws)
    assert record["helpful"] is False and record["answer"] == "" and record["question"] is None
    [said] = told(ws, OWNER)
    assert "recorded with the answer" not in said
    assert said.startswith("Thanks: marked as not helpful.") and "recorded without it" in said


def test_a_vote_on_an_answer_past_the_retention_period_is_recorded_without_it_and_says_so(
    workspace: Workspace,
) -> None:
    ws = workspace
    answer = privately_answered(ws, "what is a DPIA?")
    ws.clock.advance(days=ws.services.settings.retention_days + 1)
    retention = timedelta(days=ws.services.settings.retention_days)
    assert prune(ws.services.database, ws.clock(), retention)["asked_answers"] == 1
    vote_on_private(ws, answer, HELPFUL)
    [record] = recorded(ws)
    assert record["helpful"] is True and record["question"] is None
    [said] = told(ws, OWNER)
    assert said.startswith("Thanks: marked as helpful.")
    assert "no longer has the answer you judged" in said and "recorded without it" in said
