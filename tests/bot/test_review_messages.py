"""What the messages of an open review show and to whom: an approver's own DM after they
decide, a repeated refused click, a request that Slack could not address at first, and a role
holder Slack cannot send a DM to."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot import ids
from bot.blocks.operations import load_checked_pipeline
from bot.emulator.webapi import RecordedCall
from bot.notify import SlackNotifier
from gates import usecases
from gates.lifecycle import Initiative, ReviewStatus
from storage import Database
from storage.outbox import OutboxWorker, outbox_counts
from storage.slack_messages import MessageRefs
from tests.bot.blockkit_checks import assert_valid_message
from tests.bot.scenario import Workspace, has_button, workspace_of
from tests.bot.test_home_paging import _open_home
from tests.bot.test_lifecycle import (
    OUTSIDER,
    OWNER,
    REPO,
    RISK,
    SPONSOR,
    _reviews,
    card,
    intake_values,
    register,
    request_dm,
    submit,
)
from tests.storage.conftest import database_url  # noqa: F401 - the fixture: SQLite, then PostgreSQL

ADMIN = "U0ADMIN01"


def pipeline_with(tmp_path: Path, old: str, new: str, after: str = "") -> Path:
    """The default pipeline with the first ``old`` after ``after`` replaced by ``new``."""
    text = (REPO / "gates" / "defaults" / "pipeline.yaml").read_text(encoding="utf-8")
    start = text.index(after)
    assert old in text[start:]
    path = tmp_path / "pipeline.yaml"
    path.write_text(text[:start] + text[start:].replace(old, new, 1), encoding="utf-8")
    return path


PEOPLE = {OWNER: "olivia", SPONSOR: "sam", RISK: "rafael", OUTSIDER: "oscar"}
SPONSOR2 = "U0SPONSOR2"


@pytest.fixture
def two_roles(tmp_path: Path) -> Iterator[Workspace]:
    """The intake gate needs a sponsor and a risk officer, so it stays open after one decides."""
    pipeline = pipeline_with(
        tmp_path, '      - role: risk\n        when: tier == "high"\n', "      - role: risk\n"
    )
    with workspace_of(PEOPLE, tmp_path / "data", pipeline=pipeline) as ws:
        for role, user in [("sponsor", SPONSOR), ("risk", RISK)]:
            usecases.set_role_holders(
                ws.services.pipeline, ws.services.uow(), role, [user], ADMIN, ws.clock()
            )
        yield ws


def test_an_approvers_own_request_keeps_no_decision_buttons_once_they_decided(two_roles: Workspace) -> None:
    ws = two_roles
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN  # the risk officer has not decided
    mine, theirs = request_dm(ws, SPONSOR), request_dm(ws, RISK)
    assert not has_button(mine, ids.ACTION_APPROVE) and not has_button(mine, ids.ACTION_REJECT)
    assert has_button(mine, ids.ACTION_VIEW_EVIDENCE)
    assert has_button(theirs, ids.ACTION_APPROVE) and has_button(theirs, ids.ACTION_REQUEST_CHANGES)


def test_a_holder_of_a_role_whose_approvals_are_in_keeps_no_decision_buttons(tmp_path: Path) -> None:
    pipeline = pipeline_with(
        tmp_path, '      - role: risk\n        when: tier == "high"\n', "      - role: risk\n"
    )
    with workspace_of(PEOPLE | {SPONSOR2: "sue"}, tmp_path / "data", pipeline=pipeline) as ws:
        for role, users in [("sponsor", [SPONSOR, SPONSOR2]), ("risk", [RISK])]:
            usecases.set_role_holders(ws.services.pipeline, ws.services.uow(), role, users, ADMIN, ws.clock())
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
        ws.inbox.drain()
        ws.deliver()
        assert _reviews(ws, ref)[-1].remaining() == {"risk": 1}  # one sponsor was enough
        other, risk = request_dm(ws, SPONSOR2), request_dm(ws, RISK)
        for message in (other, risk):
            assert_valid_message(message)
        assert not has_button(other, ids.ACTION_APPROVE) and not has_button(other, ids.ACTION_REJECT)
        assert has_button(other, ids.ACTION_VIEW_EVIDENCE)
        assert "None of your roles is still needed" in str(other["blocks"])
        assert has_button(risk, ids.ACTION_APPROVE) and has_button(risk, ids.ACTION_REJECT)
        assert all(c.ok for c in ws.api.calls("chat.update"))


def test_a_holder_whose_roles_approvals_are_in_is_told_so_when_rejecting_from_the_thread(
    tmp_path: Path,
) -> None:
    # A second sponsor sees a problem after the first approved, while the review waits on risk:
    # the thread's buttons are everyone's, so they click Reject there.
    pipeline = pipeline_with(
        tmp_path, '      - role: risk\n        when: tier == "high"\n', "      - role: risk\n"
    )
    with workspace_of(PEOPLE | {SPONSOR2: "sue"}, tmp_path / "data", pipeline=pipeline) as ws:
        for role, users in [("sponsor", [SPONSOR, SPONSOR2]), ("risk", [RISK])]:
            usecases.set_role_holders(ws.services.pipeline, ws.services.uow(), role, users, ADMIN, ws.clock())
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
        ws.inbox.drain()
        ws.deliver()
        ws.opened_view(lambda: ws.click(SPONSOR2, thread_request(ws), ws.registry, ids.ACTION_REJECT))
        shown = str(ws.api.wait_for("views.update", timeout=10)[-1].params["view"]["blocks"])
        # Not "you hold none of the roles": they hold one, whose approvals are all in.
        assert "hold none of the roles" not in shown
        assert "sponsor" in shown and "already" in shown and "risk" in shown
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN


ADVISORY_UNMET_NOTE = ":clipboard: At submission: 1 advisory criteria unmet"


def submitted_with_an_advisory_criterion_unmet(ws: Workspace) -> Initiative:
    """Registered through the intake form with an advisory criterion unmet, then submitted: the
    risk officer's request says so."""
    values = intake_values()
    values[ids.question_block_id("kpi_baseline_known")] = "no"  # an advisory criterion unmet
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    assert ws.submit_view(OWNER, view, values).text in ("", "{}")
    ws.deliver()
    [initiative] = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    submit(ws, initiative.ref)
    ws.deliver()
    assert ADVISORY_UNMET_NOTE in str(request_dm(ws, RISK)["blocks"])
    return initiative


def test_a_request_keeps_its_approvers_and_the_criteria_unmet_at_submission_after_a_decision(
    two_roles: Workspace,
) -> None:
    """The risk officer still to decide reads on their request, after the sponsor approved, who
    is asked and the warning about criteria unmet at submission, as the request first said."""
    ws = two_roles
    initiative = submitted_with_an_advisory_criterion_unmet(ws)
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    assert _reviews(ws, initiative.ref)[-1].status is ReviewStatus.OPEN
    for message in (request_dm(ws, RISK), thread_request(ws)):
        assert_valid_message(message)
        shown = str(message["blocks"])
        assert ADVISORY_UNMET_NOTE in shown and "Still needed: 1 × AI risk" in shown, shown
        assert f"Approvers: <@{RISK}>" in shown, shown  # the sponsor can decide no more


def test_the_criteria_unmet_at_submission_stay_as_they_were_after_the_pipeline_changes_mid_review(
    two_roles: Workspace, tmp_path: Path
) -> None:
    """The pipeline is changed and Shepherd restarted while the review is open: its messages,
    redrawn after the sponsor approves, still say what was unmet when it was submitted (the
    submission's audit entry records it), not what today's pipeline would make of it."""
    ws = two_roles
    initiative = submitted_with_an_advisory_criterion_unmet(ws)
    # The criterion no longer holds anyone back in the new pipeline.
    (tmp_path / "changed").mkdir()
    changed = pipeline_with(
        tmp_path / "changed",
        'rule: answers.kpi_baseline_known == "yes"',
        'rule: answers.kpi_baseline_known == "yes" || answers.kpi_baseline_known == "no"',
    )
    changed.write_text(
        changed.read_text(encoding="utf-8").replace(
            '      - role: risk\n        when: tier == "high"\n', "      - role: risk\n", 1
        ),
        encoding="utf-8",
    )
    ws.services.pipeline = load_checked_pipeline(changed)
    assert ws.services.pipeline.version != _reviews(ws, initiative.ref)[-1].pipeline_version
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    assert _reviews(ws, initiative.ref)[-1].status is ReviewStatus.OPEN
    for message in (request_dm(ws, RISK), thread_request(ws)):
        assert_valid_message(message)
        assert ADVISORY_UNMET_NOTE in str(message["blocks"]), message["blocks"]


def test_the_note_in_the_cards_thread_after_an_approval_names_roles_by_their_label(
    two_roles: Workspace,
) -> None:
    """As the card, the review message and App Home do: "1 × AI risk", not the role's id."""
    ws = two_roles
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
    [note] = [m["text"] for m in thread if f"<@{SPONSOR}> approved" in m.get("text", "")]
    assert note.endswith("Still needed: 1 × AI risk."), note


def thread_request(ws: Workspace) -> dict[str, Any]:
    """The review request posted in the card's thread."""
    thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
    return next(m for m in thread if has_button(m, ids.ACTION_VIEW_EVIDENCE))


def test_a_refused_double_click_is_explained_once_and_both_attempts_audited(two_roles: Workspace) -> None:
    ws = two_roles
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    request = request_dm(ws, SPONSOR)
    for _ in range(2):
        assert ws.click(OUTSIDER, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE).status == 200
    ws.inbox.drain()
    ws.deliver()
    ephemerals = ws.api.calls("chat.postEphemeral", ok=True)
    told = [c.params["text"] for c in ephemerals if c.params.get("user") == OUTSIDER]
    told += [m.get("text", "") for m in ws.messages_in(ws.dm_with(OUTSIDER))]  # where Slack refused one
    assert len(told) == 1 and "hold none of the roles" in told[0]
    with ws.services.read_uow() as uow:
        refused = [e for e in uow.audit.timeline(ref) if e.action == "decision.refused"]
    assert [e.actor_id for e in refused] == [OUTSIDER, OUTSIDER]


def test_a_request_slack_could_not_address_to_a_user_group_is_sent_once_slack_can(tmp_path: Path) -> None:
    pipeline = pipeline_with(
        tmp_path,
        "    slack_users: []\n",
        "    slack_users: []\n    slack_usergroup: S0SPONSORS\n",
        after="  sponsor:\n",
    )
    with workspace_of(PEOPLE, tmp_path / "data", pipeline=pipeline) as ws:
        api = ws.api
        api.state.add_usergroup("S0SPONSORS", "sponsors", [SPONSOR])
        ref = register(ws)
        submit(ws, ref)
        api.faults.server_error("usergroups.users.list", times=None)  # only this method fails
        ws.deliver()
        assert not [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_APPROVE)]
        api.faults.clear()
        ws.clock.advance(minutes=30)  # the retry is due
        ws.deliver()
        ws.clock.advance(minutes=30)
        ws.deliver()
        asked = [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_APPROVE)]
        assert len(asked) == 1 and ref in asked[0]["text"]


def test_the_outcome_of_a_review_is_told_when_slack_refuses_to_list_a_user_group_for_good(
    tmp_path: Path,
) -> None:
    """The approval was recorded (the group was listed then); afterwards Slack refuses to list it
    (the app lost its usergroups:read scope). A closed review's messages need nobody's roles: the
    thread, the submitter and the approver's request still show the outcome, instead of the whole
    delivery failing until it is dead-lettered."""
    pipeline = pipeline_with(
        tmp_path,
        "    slack_users: []\n",
        "    slack_users: []\n    slack_usergroup: S0SPONSORS\n",
        after="  sponsor:\n",
    )
    with workspace_of(PEOPLE, tmp_path / "data", pipeline=pipeline) as ws:
        ws.api.state.add_usergroup("S0SPONSORS", "sponsors", [SPONSOR])
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
        ws.inbox.drain()
        assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED
        ws.api.faults.fail("usergroups.users.list", "missing_scope", times=None)
        for _ in range(12):  # more than the outbox's attempts, each retry due
            ws.deliver()
            ws.clock.advance(minutes=20)
        thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
        assert any("gave the last approval" in m.get("text", "") for m in thread)
        assert any("gave the last approval" in m.get("text", "") for m in ws.messages_in(ws.dm_with(OWNER)))
        assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
        assert outbox_counts(ws.services.database).get("dead", 0) == 0


def test_direct_holders_are_asked_and_everyone_told_when_slack_refuses_to_list_a_user_group_for_good(
    tmp_path: Path,
) -> None:
    """The sponsor role is held directly in Shepherd and through a Slack user group; the app has
    lost its usergroups:read scope. The sponsor and the risk officer Shepherd knows of are still
    asked, the card loses its Submit button, the owner and the thread hear which role's group
    could not be read and what an admin must do, and a decision that leaves the review open is
    still noted in the thread, instead of every delivery being dead-lettered with nobody asked."""
    pipeline = pipeline_with(
        tmp_path, '      - role: risk\n        when: tier == "high"\n', "      - role: risk\n"
    )
    text = pipeline.read_text(encoding="utf-8").replace(
        "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0SPONSORS\n", 1
    )
    pipeline.write_text(text, encoding="utf-8")
    with workspace_of(PEOPLE | {SPONSOR2: "sue"}, tmp_path / "data", pipeline=pipeline) as ws:
        ws.api.state.add_usergroup("S0SPONSORS", "sponsors", [SPONSOR2])
        for role, user in [("sponsor", SPONSOR), ("risk", RISK)]:
            usecases.set_role_holders(
                ws.services.pipeline, ws.services.uow(), role, [user], ADMIN, ws.clock()
            )
        ref = register(ws)
        ws.api.faults.fail("usergroups.users.list", "missing_scope", times=None)
        submit(ws, ref)
        for _ in range(12):  # more than the outbox's attempts, each retry due
            ws.deliver()
            ws.clock.advance(minutes=20)
        for user in (SPONSOR, RISK):
            assert has_button(request_dm(ws, user), ids.ACTION_APPROVE)
        assert not has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
        thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
        told = [m.get("text", "") for m in thread if "usergroups:read" in str(m)]
        told += [m.get("text", "") for m in ws.messages_in(ws.dm_with(OWNER)) if "usergroups:read" in str(m)]
        assert len(told) == 2, told
        assert all("Business sponsor" in text and "reinstall" in text for text in told), told
        ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
        ws.inbox.drain()
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN  # the risk officer has not decided
        for _ in range(12):
            ws.deliver()
            ws.clock.advance(minutes=20)
        thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
        assert any(SPONSOR in m.get("text", "") and "approved" in m.get("text", "") for m in thread), thread
        assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
        assert outbox_counts(ws.services.database).get("dead", 0) == 0


def test_approvers_are_asked_when_the_registry_channel_takes_no_thread_replies(two_roles: Workspace) -> None:
    """Slack refuses the request in the card's thread (replies are turned off in that channel):
    the approvers are still asked by DM at once, instead of the whole request failing again and
    again until it is dead-lettered with nobody asked."""
    ws = two_roles
    ref = register(ws)
    submit(ws, ref)
    ws.api.faults.fail("chat.postMessage", "restricted_action_non_threadable_channel")  # the thread's
    ws.deliver()
    for user in (SPONSOR, RISK):
        assert has_button(request_dm(ws, user), ids.ACTION_APPROVE)
    assert not has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
    assert outbox_counts(ws.services.database).get("pending", 0) == 0


GONE = "U0LEFTCO1"  # holds the sponsor role in Shepherd, but has left the Slack workspace


@pytest.fixture
def gone_sponsor(tmp_path: Path) -> Iterator[Workspace]:
    """Three sponsors, the second of whom Slack no longer knows (``user_not_found``)."""
    people = PEOPLE | {SPONSOR2: "sue"}
    with workspace_of(people, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR, GONE, SPONSOR2], ADMIN, ws.clock()
        )
        yield ws


def requests_to(ws: Workspace, user: str) -> list[dict[str, Any]]:
    """The review requests ``user`` was sent by DM (each still checked as Slack would)."""
    asked = [m for m in ws.messages_in(ws.dm_with(user)) if has_button(m, ids.ACTION_APPROVE)]
    for message in asked:
        assert_valid_message(message)
    return asked


def test_a_role_holder_slack_cannot_dm_is_skipped_and_the_others_are_still_asked(
    gone_sponsor: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    ws = gone_sponsor
    ref = register(ws)
    submit(ws, ref)
    with caplog.at_level(logging.WARNING, logger="shepherd.notify"):
        assert ws.deliver() >= 1
    assert [len(requests_to(ws, user)) for user in (SPONSOR, SPONSOR2)] == [1, 1]
    assert any(GONE in r.getMessage() and "user_not_found" in r.getMessage() for r in caplog.records)
    # The rest of the delivery ran too: the card no longer offers Submit while the review is open.
    assert_valid_message(card(ws))
    assert not has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
    assert outbox_counts(ws.services.database).get("dead", 0) == 0
    assert all(c.ok for c in ws.api.calls("chat.postMessage") + ws.api.calls("chat.update"))


def test_a_slack_outage_after_a_skipped_role_holder_is_retried_and_asks_nobody_twice(
    gone_sponsor: Workspace,
) -> None:
    ws = gone_sponsor
    ref = register(ws)
    submit(ws, ref)
    armed: list[bool] = []

    def outage_after_the_gone_sponsor(call: RecordedCall) -> None:
        # Slack fails (5xx) right after refusing the gone sponsor, as the next sponsor is asked.
        if call.method == "conversations.open" and call.params.get("users") == GONE and not armed:
            armed.append(True)
            ws.api.faults.server_error("conversations.open", times=None)

    ws.api.on_call(outage_after_the_gone_sponsor)
    assert ws.deliver() == 0  # not delivered: the outbox will try again
    assert [len(requests_to(ws, user)) for user in (SPONSOR, SPONSOR2)] == [1, 0]
    ws.api.faults.clear()
    ws.clock.advance(minutes=20)
    assert ws.deliver() >= 1
    assert [len(requests_to(ws, user)) for user in (SPONSOR, SPONSOR2)] == [1, 1]
    assert not has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
    ws.clock.advance(minutes=20)
    assert ws.deliver() == 0
    assert outbox_counts(ws.services.database).get("dead", 0) == 0


def test_a_role_handed_over_during_a_review_asks_the_new_holder_and_takes_the_old_ones_buttons(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """`/shepherd roles set` while a review waits on the role: the successor is asked, the former
    holder's request and App Home keep no decision buttons, and handing it back asks nobody twice."""
    migrated = Database(database_url)  # start-up checks the schema before the workspace could upgrade it
    migrated.upgrade()
    migrated.dispose()
    with workspace_of(PEOPLE | {SPONSOR2: "sue"}, tmp_path / "data", database_url=database_url) as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], ADMIN, ws.clock()
        )
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        assert has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
        assert has_button(_open_home(ws, SPONSOR), ids.ACTION_APPROVE)
        published = len(ws.api.calls("views.publish"))

        response = ws.command(ADMIN, f"roles set sponsor <@{SPONSOR2}>")
        assert response.status == 200 and "now held by" in response.text, response.text
        ws.deliver()
        assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
        assert len(requests_to(ws, SPONSOR2)) == 1
        shown = str(thread_request(ws)["blocks"])
        assert f"Approvers: <@{SPONSOR2}>" in shown and f"Approvers: <@{SPONSOR}>" not in shown, shown
        homes = [c for c in ws.api.calls("views.publish")[published:] if c.params.get("user_id") == SPONSOR]
        assert homes and not has_button(homes[-1].params["view"], ids.ACTION_APPROVE)

        response = ws.command(ADMIN, f"roles set sponsor <@{SPONSOR}> <@{SPONSOR2}>")
        assert response.status == 200, response.text
        ws.deliver()
        assert has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)  # their own request again
        assert [len(requests_to(ws, user)) for user in (SPONSOR, SPONSOR2)] == [1, 1]
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN


def test_a_card_redrawn_from_a_state_read_before_the_last_approval_does_not_stay_stale(
    two_roles: Workspace,
) -> None:
    """Two delivery workers: one is redrawing the card for the sponsor's approval when the risk
    officer's approval closes the review and the other worker redraws the card as approved; the
    first one's update, drawn from what it read before, reaches Slack last. The card ends up
    showing the initiative as it is, instead of the stale "in review" one until the next change."""
    ws = two_roles
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    the_card = card(ws)["ts"]
    meanwhile = []

    class SlowToUpdate(WebClient):
        """Slack slow to take the first worker's card update: the other worker goes first."""

        def chat_update(self, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("ts") == the_card and not meanwhile:
                meanwhile.append(True)
                ws.click(RISK, request_dm(ws, RISK), ws.dm_with(RISK), ids.ACTION_APPROVE)
                ws.inbox.drain()
                assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED
                ws.deliver()  # the other worker
                assert card(ws)["text"].endswith("PoC, active"), card(ws)["text"]
            return super().chat_update(**kwargs)

    slow = SlowToUpdate(token=ws.api.bot_token, base_url=ws.api.api_url.rstrip("/") + "/")
    first = OutboxWorker(
        ws.services.database, SlackNotifier(ws.services, slow, MessageRefs(ws.services.database)), ws.services
    )
    assert first.run_once() == 1 and meanwhile
    assert card(ws)["text"].endswith("PoC, active"), card(ws)["text"]
