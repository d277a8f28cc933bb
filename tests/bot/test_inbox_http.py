"""Approve clicks through the real HTTP path: Slack hears "OK" only once the click is stored in
the inbox, the worker records it once, a click that cannot be stored is answered with an error,
and a refused click is explained privately to the person who made it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import ids
from bot.emulator import payloads
from gates import usecases
from gates.lifecycle import ReviewStatus
from storage import DatabaseUnavailable
from storage.inbox import inbox_counts
from storage.outbox import SqlOutbox
from storage.tables import inbox
from tests.bot.scenario import (
    Workspace,
    find_button,
    has_button,
    only_ref,
    workspace_with_initiative,
)

OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"
OUTSIDER = "U0OUTSIDE"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite; one initiative whose intake review waits for the sponsor."""
    people = {OWNER: "olivia", SPONSOR: "sam", OUTSIDER: "oscar"}
    with workspace_with_initiative(tmp_path / "data", people, OWNER, [SPONSOR]) as ws:
        usecases.submit(ws.services.pipeline, ws.services.uow(), only_ref(ws), OWNER, ws.clock())
        ws.deliver()
        yield ws


def review(ws: Workspace) -> Any:
    with ws.services.read_uow() as uow:
        [found] = uow.reviews.for_initiative(only_ref(ws))
        return found


def timeline(ws: Workspace) -> list[Any]:
    with ws.services.read_uow() as uow:
        return list(uow.audit.timeline(only_ref(ws)))


def review_request(ws: Workspace, user: str) -> tuple[dict[str, Any], str]:
    """Where ``user`` sees the Approve button, and in which channel: the sponsor in their DM,
    anyone else in the registry thread (a DM is only ever seen by its member)."""
    if user == SPONSOR:
        channel = ws.dm_with(SPONSOR)
        messages = ws.messages_in(channel)
    else:
        channel = ws.registry
        messages = ws.api.state.thread(ws.registry, ws.messages_in(ws.registry)[0]["ts"])
    [message] = [m for m in messages if has_button(m, ids.ACTION_APPROVE)]
    return message, channel


def approve_without_draining(ws: Workspace, user: str) -> Any:
    """A click on Approve, as Workspace.click sends it, but without applying the inbox after."""
    message, channel = review_request(ws, user)
    payload = payloads.block_actions_on_message(
        message,
        ids.ACTION_APPROVE,
        user_id=user,
        channel_id=channel,
        value=find_button(message, ids.ACTION_APPROVE)["value"],
        trigger_id=ws.api.mint_trigger_id(user),
        response_url=ws.api.response_url(channel, user, message.get("ts")),
    )
    return ws.client.send(payload)


def ephemerals_to(ws: Workspace, user: str) -> list[str]:
    return [
        c.params.get("text", "")
        for c in ws.api.calls("chat.postEphemeral", ok=True)
        if c.params.get("user") == user
    ]


def test_an_approval_is_stored_before_the_ack_and_recorded_once_by_the_worker(workspace: Workspace) -> None:
    ws = workspace
    response = approve_without_draining(ws, SPONSOR)
    assert response.status == 200, response.text
    # Answered, so already durable: the row is there, the decision is not (the worker's job).
    assert inbox_counts(ws.services.database) == {"pending": 1}
    assert review(ws).decisions == []

    assert approve_without_draining(ws, SPONSOR).status == 200  # a double click
    assert inbox_counts(ws.services.database) == {"pending": 2}

    assert ws.inbox.drain() == 2
    decided = review(ws)
    assert [d.approver_id for d in decided.decisions] == [SPONSOR]
    assert decided.status is ReviewStatus.APPROVED
    actions = [e.action for e in timeline(ws)]
    assert actions.count("decision.recorded") == 1 and actions.count("stage.advanced") == 1
    assert inbox_counts(ws.services.database) == {"applied": 2}
    assert ws.inbox.drain() == 0
    ws.deliver()
    assert ephemerals_to(ws, SPONSOR) == []  # the double click is not a refusal


def test_a_click_the_inbox_cannot_store_is_answered_with_an_error_and_records_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    writer = ws.services.inbox

    def cannot_store(kind: str, payload: Any) -> Future[None]:
        failed: Future[None] = Future()
        failed.set_exception(DatabaseUnavailable("the database is down"))
        return failed

    monkeypatch.setattr(writer, "submit", cannot_store)
    response = approve_without_draining(ws, SPONSOR)
    assert response.status == 500
    assert inbox_counts(ws.services.database) == {}
    assert ws.inbox.drain() == 0
    assert review(ws).decisions == []
    assert "decision.recorded" not in [e.action for e in timeline(ws)]

    # Slack shows the click as failed; the person clicks again once the database is back.
    monkeypatch.undo()
    assert ws.click(SPONSOR, *review_request(ws, SPONSOR), ids.ACTION_APPROVE).status == 200
    assert [d.approver_id for d in review(ws).decisions] == [SPONSOR]


def test_a_click_is_not_acknowledged_when_the_inbox_table_is_gone(workspace: Workspace) -> None:
    """The same, with a real storage failure rather than a stand-in for one."""
    ws = workspace
    with ws.services.database.engine.begin() as connection:
        connection.execute(text("DROP TABLE inbox"))
    assert approve_without_draining(ws, SPONSOR).status == 500
    inbox.create(ws.services.database.engine)
    assert ws.inbox.drain() == 0
    assert review(ws).decisions == []
    assert approve_without_draining(ws, SPONSOR).status == 200  # the writer recovered
    assert inbox_counts(ws.services.database) == {"pending": 1}


def test_the_owner_approving_their_own_review_is_told_why_privately_and_audited(workspace: Workspace) -> None:
    ws = workspace
    assert approve_without_draining(ws, OWNER).status == 200
    ws.deliver()
    assert ephemerals_to(ws, OWNER) == []  # nothing to tell before the worker judged it

    assert ws.inbox.drain() == 1
    ws.deliver()
    [told] = ephemerals_to(ws, OWNER)
    assert "separation of duties" in told
    [call] = [c for c in ws.api.calls("chat.postEphemeral", ok=True) if c.params.get("user") == OWNER]
    assert call.params["channel"] == ws.registry  # where the button was clicked
    refused = [e for e in timeline(ws) if e.action == "decision.refused"]
    assert [(e.actor_id, e.detail["decision"]) for e in refused] == [(OWNER, "approve")]
    assert review(ws).decisions == []
    assert inbox_counts(ws.services.database) == {"applied": 1}
    ws.deliver()
    assert len(ephemerals_to(ws, OWNER)) == 1  # told once


def test_refusals_in_a_burst_are_each_told_to_their_clicker(workspace: Workspace) -> None:
    """Several clicks applied together (the batch path): the owner and an outsider are refused
    and told, the sponsor's approval is recorded."""
    ws = workspace
    for user in (OWNER, OUTSIDER, SPONSOR):
        assert approve_without_draining(ws, user).status == 200
    assert ws.inbox.drain() == 3
    ws.deliver()
    assert any("separation of duties" in t for t in ephemerals_to(ws, OWNER))
    assert any("hold none of the roles" in t for t in ephemerals_to(ws, OUTSIDER))
    assert ephemerals_to(ws, SPONSOR) == []
    assert [d.approver_id for d in review(ws).decisions] == [SPONSOR]
    refused = [e.actor_id for e in timeline(ws) if e.action == "decision.refused"]
    assert sorted(refused) == sorted([OWNER, OUTSIDER])


def test_a_refusal_whose_explanation_could_not_be_queued_is_still_told_later(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bot/inbox.py promises the explanation is "neither lost nor sent twice". A lone click is
    applied through ``apply_decision``: if queueing the explanation fails (the database dropped
    the connection just then), the item must stay pending and the explanation go out on retry."""
    ws = workspace
    put = SqlOutbox.put
    failures = [1]

    def flaky_put(self: SqlOutbox, kind: str, payload: Any, at: Any, *args: Any, **kwargs: Any) -> None:
        if kind == "ephemeral" and failures[0]:
            failures[0] -= 1
            raise DatabaseUnavailable("Lost the database connection")
        put(self, kind, payload, at, *args, **kwargs)

    monkeypatch.setattr(SqlOutbox, "put", flaky_put)
    assert approve_without_draining(ws, OWNER).status == 200
    for _ in range(3):  # the worker keeps going, with its backoff
        ws.inbox.drain()
        ws.clock.advance(minutes=5)
    ws.deliver()
    assert failures == [0]
    assert len([t for t in ephemerals_to(ws, OWNER) if "separation of duties" in t]) == 1
