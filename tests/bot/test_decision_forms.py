"""The form Reject and Request changes open for a reason: it opens while the click's trigger is
fresh, it counts roles held through Slack user groups, and it says why when the person may not
decide."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.usergroups import GroupRoles
from gates import usecases
from gates.lifecycle import ReviewStatus
from tests.bot.scenario import Workspace, workspace_of
from tests.bot.test_lifecycle import OUTSIDER, OWNER, REPO, SPONSOR, _reviews, register, request_dm, submit

GROUP = "S0SPONSORS"


@pytest.fixture
def group_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """The default pipeline with its sponsor role held only through a Slack user group."""
    text = (REPO / "gates" / "defaults" / "pipeline.yaml").read_text(encoding="utf-8")
    sponsor = text.index("  sponsor:\n")
    text = text[:sponsor] + text[sponsor:].replace(
        "    slack_users: []\n", f"    slack_users: []\n    slack_usergroup: {GROUP}\n", 1
    )
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(text, encoding="utf-8")
    with workspace_of(
        {OWNER: "olivia", SPONSOR: "sam", OUTSIDER: "oscar"}, tmp_path / "data", pipeline=pipeline
    ) as ws:
        ws.api.state.add_usergroup(GROUP, "sponsors", [SPONSOR])
        yield ws


def submitted(ws: Workspace) -> tuple[str, dict[str, Any]]:
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    return ref, request_dm(ws, SPONSOR)


def test_a_group_member_can_request_changes_with_a_reason(group_workspace: Workspace) -> None:
    ws = group_workspace
    ref, request = submitted(ws)
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REQUEST_CHANGES))
    assert form["callback_id"] == ids.VIEW_REASON and form.get("submit")
    response = ws.submit_view(SPONSOR, form, {ids.REASON_BLOCK: "The baseline period is too short."})
    assert response.status == 200 and "errors" not in response.text
    ws.inbox.drain()
    ws.deliver()
    review = _reviews(ws, ref)[-1]
    assert review.status is ReviewStatus.CHANGES_REQUESTED
    assert [(d.approver_id, d.role, d.reason) for d in review.decisions] == [
        (SPONSOR, "sponsor", "The baseline period is too short.")
    ]


def test_the_form_opens_before_slack_is_asked_who_is_in_the_group(group_workspace: Workspace) -> None:
    # Slack makes the bot wait 4 s for the group's members: the click's trigger lasts 3.
    ws = group_workspace
    ref, request = submitted(ws)
    ws.api.faults.rate_limit("usergroups.users.list", retry_after=4, times=1)
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REJECT))
    assert ws.api.calls("views.open")[-1].ok
    assert form["callback_id"] == ids.VIEW_REASON and form.get("submit")
    ws.wait(lambda: [c for c in ws.api.calls("usergroups.users.list") if c.ok], timeout=15)
    response = ws.submit_view(SPONSOR, form, {ids.REASON_BLOCK: "Not worth the risk."})
    assert response.status == 200 and "errors" not in response.text
    ws.inbox.drain()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.REJECTED


def test_someone_who_may_not_decide_is_told_why_in_the_form_and_it_is_audited(
    group_workspace: Workspace,
) -> None:
    ws = group_workspace
    ref, request = submitted(ws)
    ws.opened_view(lambda: ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_REJECT))
    shown = ws.api.wait_for("views.update", timeout=10)[-1].params["view"]
    assert "submit" not in shown  # nothing left to send
    assert "hold none of the roles this review still needs" in str(shown["blocks"])
    with ws.services.read_uow() as uow:
        refused = [e for e in uow.audit.timeline(ref) if e.action == "decision.refused"]
    assert [(e.actor_id, e.detail["decision"]) for e in refused] == [(OUTSIDER, "reject")]
    assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN


def test_a_role_granted_while_the_form_opens_records_nothing_until_the_reason_is_sent(
    group_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An admin makes the outsider a sponsor between the click's first read and its check.
    ws = group_workspace
    ref, request = submitted(ws)
    asked = ws.services.group_roles.roles_of

    def granted_meanwhile(pipeline: Any, user: str, client: Any, **options: Any) -> Any:
        usecases.set_role_holders(
            pipeline, ws.services.uow(), "sponsor", [OUTSIDER], "U0ADMIN", ws.services.now()
        )
        return asked(pipeline, user, client, **options)

    monkeypatch.setattr(ws.services.group_roles, "roles_of", granted_meanwhile)
    form = ws.opened_view(lambda: ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_REJECT))
    ws.wait(lambda: [c for c in ws.api.calls("usergroups.users.list") if c.ok], timeout=15)
    # Nothing follows for the listener to do; a second is the time it would take to record a
    # decision the person never sent, or to tell them they may not decide.
    time.sleep(1.0)
    assert _reviews(ws, ref)[-1].decisions == []
    assert not ws.api.calls("views.update")
    response = ws.submit_view(OUTSIDER, form, {ids.REASON_BLOCK: "The pilot has no rollback plan."})
    assert response.status == 200 and "errors" not in response.text
    ws.inbox.drain()
    review = _reviews(ws, ref)[-1]
    assert review.status is ReviewStatus.REJECTED
    assert [(d.approver_id, d.reason) for d in review.decisions] == [
        (OUTSIDER, "The pilot has no rollback plan.")
    ]


def test_a_reason_whose_decision_could_not_be_recorded_is_given_back(group_workspace: Workspace) -> None:
    """The sponsor sends a reason; the worker cannot record it (Slack answers 500 when listing the
    group for a day, and the membership it remembered ran out) and gives up. The message saying so gives
    the reason back, as a refusal does: the form is closed, and nothing else kept it."""
    ws = group_workspace
    ref, request = submitted(ws)
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REQUEST_CHANGES))
    ws.wait(lambda: [c for c in ws.api.calls("usergroups.users.list") if c.ok], timeout=15)
    ws.services.group_roles = GroupRoles()  # what was remembered has run out
    ws.api.faults.server_error("usergroups.users.list", times=None)
    reason = "The baseline covers two weeks; we need a full quarter of demand data."
    assert ws.submit_view(SPONSOR, form, {ids.REASON_BLOCK: reason}).status == 200
    for _ in range(10):  # every retry due, until the outage has lasted past a day
        ws.clock.advance(hours=3)
        ws.inbox.drain()
    ws.deliver()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN
    told = [c.params.get("text", "") for c in ws.api.calls("chat.postEphemeral", ok=True)]
    told += [m.get("text", "") for m in ws.messages_in(ws.dm_with(SPONSOR))]
    [given_up] = [text for text in told if "could not be recorded" in text]
    assert given_up.startswith(f"{ref}: ") and reason in given_up, given_up


def test_a_reason_sent_while_slack_refuses_to_list_the_group_is_given_back_with_why(
    group_workspace: Workspace,
) -> None:
    # The app's token lost usergroups:read after the request went out: Slack refuses for good.
    ws = group_workspace
    ref, request = submitted(ws)
    ws.api.faults.fail("usergroups.users.list", "missing_scope", times=None)
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REJECT))
    response = ws.submit_view(SPONSOR, form, {ids.REASON_BLOCK: "The vendor contract lapses in May."})
    assert response.status == 200 and "errors" not in response.text  # the form has closed
    for _ in range(10):  # the worker's tries, however many it makes
        ws.clock.advance(hours=1)
        ws.inbox.drain()
    ws.deliver()
    told = [
        c.params["text"] for c in ws.api.calls("chat.postEphemeral", ok=True) if c.params["user"] == SPONSOR
    ]
    told += [
        m.get("text", "") for m in ws.messages_in(ws.dm_with(SPONSOR)) if "could not" in m.get("text", "")
    ]
    assert len(told) == 1
    # Why (Slack would not say who is in the group), not "try again", and the reason given back.
    assert "S0SPONSORS" in told[0] and "missing_scope" in told[0]
    assert "The vendor contract lapses in May." in told[0]
    assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN


def test_a_holder_slack_need_not_vouch_for_is_recorded_while_slack_refuses_to_list_the_group(
    group_workspace: Workspace,
) -> None:
    ws = group_workspace
    ref, request = submitted(ws)
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [OUTSIDER], "U0ADMIN", ws.clock()
    )
    ws.deliver()
    ws.api.faults.fail("usergroups.users.list", "missing_scope", times=None)
    ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_APPROVE)
    ws.inbox.drain()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED


def test_a_holder_is_recorded_on_the_remembered_group_while_slack_cannot_list_it_again(
    group_workspace: Workspace,
) -> None:
    """Deciding asks Slack again about a remembered group that leaves the clicker out (they may
    have just joined it); Slack failing that second look must not hold up a click the remembered
    list and the stored roles already decide."""
    ws = group_workspace
    ref, request = submitted(ws)
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [OUTSIDER], "U0ADMIN", ws.clock()
    )
    ws.deliver()
    listed = ws.api.web_client(retry_handlers=[])
    assert ws.services.group_roles.roles_of(ws.services.pipeline, OUTSIDER, listed) == set()  # remembered
    ws.api.faults.server_error("usergroups.users.list", times=None)
    ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_APPROVE)
    ws.inbox.drain()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED


def test_a_reason_sent_on_a_review_withdrawn_and_resubmitted_meanwhile_points_to_the_new_one(
    group_workspace: Workspace,
) -> None:
    ws = group_workspace
    ref, request = submitted(ws)
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REJECT))
    # While the sponsor writes, the owner takes the review back to fix a typo and submits again.
    assert ws.command(OWNER, f"withdraw {ref}").status == 200
    ws.deliver()
    submit(ws, ref)
    ws.deliver()
    response = ws.submit_view(SPONSOR, form, {ids.REASON_BLOCK: "No rollback plan."})
    said = response.json()["errors"][ids.REASON_BLOCK]
    assert "withdrawn" in said and "nothing was recorded" in said.lower()
    assert "submitted again" in said and not said.endswith("…")  # said whole: where to decide now
    assert [r.status for r in _reviews(ws, ref)] == [ReviewStatus.WITHDRAWN, ReviewStatus.OPEN]


def test_someone_added_to_the_group_and_asked_to_decide_is_not_refused_on_a_remembered_list(
    group_workspace: Workspace,
) -> None:
    ws = group_workspace
    ref, request = submitted(ws)
    ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_APPROVE)  # refused: not a sponsor yet
    ws.inbox.drain()
    # An admin adds Oscar to the sponsors' group; the owner withdraws and submits again, and
    # Shepherd asks the group's members as they are now: Oscar among them.
    ws.api.state.add_usergroup(GROUP, "sponsors", [SPONSOR, OUTSIDER])
    assert ws.command(OWNER, f"withdraw {ref}").status == 200
    ws.deliver()
    submit(ws, ref)
    ws.deliver()
    mine = request_dm(ws, OUTSIDER)
    ws.click(OUTSIDER, mine, ws.dm_with(OUTSIDER), ids.ACTION_APPROVE)
    ws.inbox.drain()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED
