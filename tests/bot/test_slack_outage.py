"""A Slack outage (500s, 429s, no connection) delays notifications and clicks but loses none: the
outbox and the inbox wait it out without using up attempts (``storage.Unavailable``), up to a
day; anything else still fails as before, and `shepherd outbox retry` sends a dead message again.

Through the real app, the real outbox worker and inbox processor, a SQLite file and the local fake
Slack answering errors, on the test's clock."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from typer.testing import CliRunner

from bot import ids
from bot.cli import app as shepherd
from bot.emulator.webapi import FakeSlackWebAPI
from bot.listeners.common import queue_private_message
from bot.slack_client import unavailable
from gates.lifecycle import ReviewStatus
from storage import Unavailable
from storage.tables import inbox, outbox
from tests.bot.scenario import Workspace, register_low_risk, running_workspace
from tests.bot.test_lifecycle import (
    OWNER,
    SPONSOR,
    _reviews,
    register,
    request_dm,
    sponsors_by_user_group,
    submit,
    workspace,  # noqa: F401 - the fixture
)


def outbox_rows(ws: Workspace) -> list[dict[str, Any]]:
    with ws.services.database.session(read_only=True) as session:
        return [dict(r) for r in session.execute(select(outbox).order_by(outbox.c.id)).mappings()]


def test_a_30_minute_outage_loses_no_notification_and_the_card_is_posted_once_slack_is_back(
    workspace: Workspace,  # noqa: F811
) -> None:
    ws = workspace
    ws.api.faults.server_error(None, times=None)  # Slack answers 500 to everything
    ref = register_low_risk(ws, OWNER, SPONSOR)
    for _ in range(10):  # 30 minutes, the worker polling
        assert ws.deliver() == 0
        ws.clock.advance(minutes=3)
    [row] = outbox_rows(ws)
    assert (row["kind"], row["status"], row["attempts"]) == ("initiative.registered", "pending", 0)
    assert "HTTP 500" in row["last_error"]
    assert ws.messages_in(ws.registry) == []

    ws.api.faults.clear()  # Slack is back: within the longest wait (15 minutes) it is all sent
    ws.clock.advance(minutes=15)
    assert ws.deliver() == 1
    [posted] = ws.messages_in(ws.registry)
    assert ref in posted["text"]
    assert any(ref in m.get("text", "") for m in ws.messages_in(ws.dm_with(OWNER)))  # the welcome
    assert [r["status"] for r in outbox_rows(ws)] == ["delivered"]


def test_a_user_group_outage_keeps_the_click_pending_and_records_it_once_slack_answers(
    tmp_path: Path,
) -> None:
    api, pipeline = sponsors_by_user_group(tmp_path)
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        request = request_dm(ws, SPONSOR)

        api.faults.server_error("usergroups.users.list", times=None)  # for 30 minutes
        assert ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE).status == 200
        for _ in range(10):
            ws.clock.advance(minutes=3)
            ws.inbox.drain()
            ws.deliver()
        with ws.services.database.session(read_only=True) as session:
            [(status, attempts)] = session.execute(select(inbox.c.status, inbox.c.attempts)).all()
        assert (status, attempts) == ("pending", 0)
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN

        api.faults.clear()  # Slack answers again: within the inbox's longest wait (5 minutes)
        ws.clock.advance(minutes=5)
        ws.inbox.drain()
        ws.deliver()
        review = _reviews(ws, ref)[-1]
        assert review.status is ReviewStatus.APPROVED
        assert [(d.approver_id, d.role) for d in review.decisions] == [(SPONSOR, "sponsor")]
        told = [m.get("text", "") for m in ws.messages_in(ws.dm_with(SPONSOR))]
        told += [c.params.get("text", "") for c in api.calls("chat.postEphemeral")]
        assert not [t for t in told if "could not be recorded" in t or "none of the roles" in t], told


def test_a_message_failing_for_another_reason_is_dead_after_its_attempts_as_before(
    workspace: Workspace,  # noqa: F811
) -> None:
    ws = workspace
    with ws.services.uow() as uow:  # about an initiative that does not exist: a bug, not Slack
        uow.outbox.put("initiative.registered", {"ref": "AI-9999"}, ws.clock())
        uow.commit()
    for _ in range(12):
        ws.deliver()
        ws.clock.advance(minutes=20)
    [row] = outbox_rows(ws)
    assert (row["status"], row["attempts"]) == ("dead", 8)
    assert "There is no initiative AI-9999" in row["last_error"]


def test_a_private_message_to_someone_slack_cannot_reach_is_given_up_at_once_not_retried_until_dead(
    workspace: Workspace,  # noqa: F811
) -> None:
    """Someone who left the workspace clicked, and the refusal's explanation can reach them
    neither in the channel nor by DM (user_not_found): that is Slack's final word, so the message
    is settled at once instead of using up its attempts and landing among the dead letters that
    `shepherd doctor` reports and an operator would then retry in vain."""
    ws = workspace
    gone = "U0GONE001"  # not (or no longer) a member of the workspace
    with ws.services.uow() as uow:
        queue_private_message(
            uow, gone, "You hold none of the roles this review still needs.", ws.registry, ws.clock()
        )
        uow.commit()
    ws.deliver()
    [row] = outbox_rows(ws)
    assert (row["kind"], row["status"], row["last_error"]) == ("ephemeral", "delivered", None)
    assert ws.api.calls("conversations.open"), "the DM was tried after the channel refused"


def test_a_message_slack_refused_until_dead_is_sent_again_by_shepherd_outbox_retry(
    workspace: Workspace,  # noqa: F811
) -> None:
    ws = workspace
    ws.api.faults.fail("chat.postMessage", "invalid_auth", times=None)  # not an outage: a bad token
    ref = register_low_risk(ws, OWNER, SPONSOR)
    for _ in range(12):
        ws.deliver()
        ws.clock.advance(minutes=20)
    [row] = outbox_rows(ws)
    assert (row["status"], row["attempts"]) == ("dead", 8)
    ws.api.faults.clear()  # the token is fixed
    url = ["--database-url", ws.services.database.url.render_as_string(hide_password=False)]
    runner = CliRunner()

    listed = runner.invoke(shepherd, ["outbox", "list-dead", *url])
    assert listed.exit_code == 0, listed.output
    assert f"{row['id']}  initiative.registered {ref}" in listed.output
    assert "8 attempts: SlackApiError" in listed.output and "invalid_auth" in listed.output

    unknown = runner.invoke(shepherd, ["outbox", "retry", "--id", str(row["id"]), "--id", "999", *url])
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "error: there is no outbox message 999; nothing was requeued."
    assert "Traceback" not in unknown.output
    assert outbox_rows(ws)[0]["status"] == "dead"
    neither = runner.invoke(shepherd, ["outbox", "retry", *url])
    assert (neither.exit_code, neither.output.strip()) == (1, "error: give --id N (one or more) or --all.")

    retried = runner.invoke(shepherd, ["outbox", "retry", "--id", str(row["id"]), *url])
    assert retried.exit_code == 0, retried.output
    assert retried.output.strip() == (
        f"Requeued outbox message {row['id']} (initiative.registered of {ref}): the worker sends it again."
    )
    assert ws.deliver() == 1
    [posted] = ws.messages_in(ws.registry)
    assert ref in posted["text"]
    again = runner.invoke(shepherd, ["outbox", "retry", "--id", str(row["id"]), *url])
    assert again.exit_code == 1 and "is delivered, not dead" in again.output
    assert runner.invoke(shepherd, ["outbox", "list-dead", *url]).output.strip() == "No dead outbox messages."


# -- telling an outage from a refusal --------------------------------------------------------------


def failure(client: WebClient) -> BaseException:
    try:
        client.chat_postMessage(channel="C0NOWHERE", text="hello")
    except Exception as error:
        return error
    raise AssertionError("the call did not fail")


def test_5xx_429_and_no_connection_are_slack_unavailable_and_refusals_are_not(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    slack_api.faults.server_error("chat.postMessage", status=503)
    outage = unavailable(failure(web_client))
    assert isinstance(outage, Unavailable) and outage.retry_after is None
    assert str(outage) == "Slack answered HTTP 503 (internal_error) to chat.postMessage"

    slack_api.faults.rate_limit("chat.postMessage", retry_after=120)
    limited = unavailable(failure(web_client))
    assert limited is not None and limited.retry_after is not None
    assert limited.retry_after.total_seconds() == 120  # Slack's Retry-After is honoured

    slack_api.faults.fail("chat.postMessage", "service_unavailable")
    assert unavailable(failure(web_client)) is not None

    refused = failure(web_client)  # no such channel: Slack answered, and no
    assert isinstance(refused, SlackApiError) and unavailable(refused) is None
    assert unavailable(RuntimeError("a bug")) is None

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = WebClient(token="xoxb-1", base_url=f"http://127.0.0.1:{port}/api/", retry_handlers=[])
    down = unavailable(failure(unreachable))
    assert down is not None and str(down).startswith("Slack could not be reached (URLError")


@pytest.mark.parametrize("code", ["missing_scope", "invalid_auth", "channel_not_found"])
def test_a_slack_refusal_is_not_an_outage(
    slack_api: FakeSlackWebAPI, web_client: WebClient, code: str
) -> None:
    slack_api.faults.fail("chat.postMessage", code)
    assert unavailable(failure(web_client)) is None
