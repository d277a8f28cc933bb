"""Time boxes, reminders and periodic reviews in Slack, through the emulator and a hand-moved clock:
the scheduler ticks, the outbox delivers, people click and submit modals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot import ids
from bot.emulator.webapi import FakeSlackWebAPI
from bot.scheduler import Scheduler
from bot.usergroups import TTL_SECONDS, GroupRoles, MembershipUnavailable
from gates import operations, usecases
from gates.lifecycle import Initiative, Review, Status
from gates.loader import DEFAULT_PIPELINE, parse_pipeline
from gates.ports import OperationsReview
from storage.scheduling import fired_events
from storage.slack_messages import SlackMessageRow
from storage.tables import initiatives
from tests.bot.scenario import Workspace, has_button, running_workspace
from tests.bot.test_lifecycle import OWNER, RISK, SPONSOR, intake_values

OUTSIDER = "U0OUTSIDE"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with an owner, a sponsor holding the sponsor role and a risk officer."""
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (RISK, "rafael"), (OUTSIDER, "oscar")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN01", ws.clock()
        )
        yield ws


def register(ws: Workspace) -> str:
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    response = ws.submit_view(OWNER, view, intake_values())
    assert response.status == 200 and response.text in ("", "{}"), response.text
    ws.deliver()
    [initiative] = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    return initiative.ref


def tick(ws: Workspace) -> list[str]:
    """One scheduler tick, then deliver everything it queued; returns the fired keys."""
    fired = [event.key for event in Scheduler(ws.services, holder="test").tick()]
    ws.deliver()
    return fired


def dms_with_button(ws: Workspace, user: str, action_id: str) -> list[dict[str, Any]]:
    return [m for m in ws.messages_in(ws.dm_with(user)) if has_button(m, action_id)]


def registered_and_stalled(ws: Workspace) -> tuple[str, dict[str, Any]]:
    """Register an initiative and let its idea stage's 30-day time box run out: its ref and the
    stalled notice its owner got (with Extend, Submit and Stop)."""
    ref = register(ws)
    ws.clock.advance(days=31)
    tick(ws)
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)
    return ref, notice


def open_extend_form(ws: Workspace, notice: dict[str, Any]) -> dict[str, Any]:
    """The Extend form the owner opens from ``notice``."""
    return ws.opened_view(lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_EXTEND_TIME_BOX))


def open_review(ws: Workspace, ref: str) -> Review | None:
    with ws.services.read_uow() as uow:
        return uow.reviews.open_for(ref)


def stored(ws: Workspace, ref: str) -> Initiative:
    with ws.services.read_uow() as uow:
        return uow.initiatives.get(ref)


def test_a_stalled_owner_extends_the_time_box_from_the_dm(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    assert tick(ws) == []
    ws.clock.advance(days=31)
    assert tick(ws) == [f"stalled:{ref}:idea:20261202T090000Z"]
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)
    assert has_button(notice, ids.ACTION_SUBMIT_REVIEW) and has_button(notice, ids.ACTION_STOP_INITIATIVE)
    card = ws.messages_in(ws.registry)[0]
    assert "Stalled" in str(card["blocks"])
    # A second tick (or a second replica) does not nag again.
    assert tick(ws) == []
    assert len(dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)) == 1

    view = open_extend_form(ws, notice)
    assert view["callback_id"] == ids.VIEW_EXTEND
    response = ws.submit_view(
        OWNER,
        view,
        {ids.EXTEND_UNTIL_BLOCK: "2027-01-15", ids.REASON_BLOCK: "Waiting for the data-sharing agreement"},
    )
    assert response.status == 200 and response.text in ("", "{}"), response.text
    initiative = stored(ws, ref)
    assert (
        initiative.extended_until is not None
        and operations.picked_day(initiative.extended_until).isoformat() == "2027-01-15"
    )
    assert not usecases.is_stalled(ws.services.pipeline, initiative, ws.clock())
    ws.deliver()
    assert "Stalled" not in str(ws.messages_in(ws.registry)[0]["blocks"])
    assert any(
        "now runs until" in m.get("text", "") + str(m.get("blocks"))
        for m in ws.messages_in(ws.dm_with(OWNER))
    )
    with ws.services.read_uow() as uow:
        [extension] = uow.operations.extensions(ref)
        assert extension.reason == "Waiting for the data-sharing agreement"
        assert "timebox.extended" in [entry.action for entry in uow.audit.timeline(ref)]
    # Past the new end it stalls again, as a new occurrence.
    ws.clock.at = initiative.extended_until + timedelta(hours=1)
    assert tick(ws) == [f"stalled:{ref}:idea:20270116T115959Z"]


def test_a_box_extended_to_the_day_it_ran_out_is_told_again_once_that_day_is_over(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register(ws)
    ws.clock.advance(days=30, minutes=5)
    assert tick(ws) == [f"stalled:{ref}:idea:20261202T090000Z"]
    # The owner asks for the rest of the day: later than 09:00, so accepted.
    operations.extend_time_box(
        ws.services.pipeline, ws.services.uow(), ref, ws.clock().date(), "demo at 5pm", OWNER, ws.clock()
    )
    ws.deliver()
    ws.clock.at = datetime(2026, 12, 3, 12, 5, tzinfo=UTC)  # the 2nd has ended everywhere
    assert tick(ws) == [f"stalled:{ref}:idea:20261203T115959Z"]
    assert len(dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)) == 2
    assert tick(ws) == []


def test_a_notice_told_before_keys_named_the_exact_end_is_not_told_again(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    ws.clock.advance(days=30, minutes=5)
    tick(ws)
    # Make the notice look like an older Shepherd's, kept by the day its box ended.
    with ws.services.database.session() as session:
        key = fired_events.c.key
        session.execute(
            update(fired_events)
            .where(key == f"stalled:{ref}:idea:20261202T090000Z")
            .values(key=f"stalled:{ref}:idea:2026-12-02")
        )
        session.execute(
            update(SlackMessageRow.__table__)
            .where(SlackMessageRow.kind == "stalled:20261202T090000Z:idea")
            .values(kind="stalled:idea:2026-12-02")
        )
        session.commit()
    ws.clock.advance(minutes=5)
    assert tick(ws) == []
    # Its outbox message delivered once more (delivery is at least once) posts nothing either.
    with ws.services.uow() as uow:
        uow.outbox.put("schedule.stalled", {"ref": ref, "stage": "idea"}, ws.clock())
        uow.commit()
    ws.deliver()
    assert len(dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)) == 1
    # The end of that day the owner then asks for is a new occurrence, told once.
    operations.extend_time_box(
        ws.services.pipeline, ws.services.uow(), ref, ws.clock().date(), "demo at 5pm", OWNER, ws.clock()
    )
    ws.clock.at = datetime(2026, 12, 3, 12, 5, tzinfo=UTC)  # the 2nd has ended everywhere
    assert tick(ws) == [f"stalled:{ref}:idea:20261203T115959Z"]
    assert len(dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)) == 2


def test_an_extension_that_is_not_later_is_refused_inside_the_modal(workspace: Workspace) -> None:
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    view = open_extend_form(ws, notice)
    response = ws.submit_view(
        OWNER, view, {ids.EXTEND_UNTIL_BLOCK: "2026-11-20", ids.REASON_BLOCK: "more time"}
    )
    assert ids.EXTEND_UNTIL_BLOCK in response.text and "today or a later date" in response.text
    assert stored(ws, ref).extended_until is None


def test_the_owner_stops_a_stalled_initiative_with_a_reason(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    ws.clock.advance(days=31)
    tick(ws)
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_STOP_INITIATIVE)
    view = ws.opened_view(lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_STOP_INITIATIVE))
    empty = ws.submit_view(OWNER, view, {ids.REASON_BLOCK: ""})
    assert "A reason is required" in empty.text
    response = ws.submit_view(OWNER, view, {ids.REASON_BLOCK: "An off-the-shelf tool covers it"})
    assert response.status == 200 and response.text in ("", "{}"), response.text
    initiative = stored(ws, ref)
    assert (initiative.status, initiative.status_reason) == (
        Status.RETIRED,
        "An off-the-shelf tool covers it",
    )


def test_a_pending_review_reminds_its_approvers_once_per_reminder(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    card = ws.messages_in(ws.registry)[0]
    ws.click(OWNER, card, ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    ws.clock.advance(days=3)
    fired = tick(ws)
    assert [key.split(":")[0] for key in fired] == ["remind"]
    reminders = [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if "waited 3 day" in str(m.get("blocks"))]
    assert len(reminders) == 1 and has_button(reminders[0], ids.ACTION_APPROVE)
    assert tick(ws) == []
    # Deciding from the reminder leaves no live button behind, there or in the request DM.
    ws.click(SPONSOR, reminders[0], ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.wait(lambda: open_review(ws, ref) is None)
    ws.deliver()
    for message in ws.messages_in(ws.dm_with(SPONSOR)):
        assert not has_button(message, ids.ACTION_APPROVE), message.get("text")


def test_raising_the_reminder_interval_while_a_review_waits_does_not_pause_its_reminders(
    workspace: Workspace,
) -> None:
    """Reminded on days 3, 6 and 9, then the intake's review_reminder_days goes from 3 to 7:
    the approvers are reminded on day 14, the new interval's second reminder, not first on
    day 28 (when the new interval's numbers pass those already sent)."""
    ws = workspace
    ref = register(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    for _ in range(3):
        ws.clock.advance(days=3)
        assert "remind" in [key.split(":")[0] for key in tick(ws)]
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    assert "    review_reminder_days: 3\n    review_escalation_days: 7\n" in text
    ws.services.pipeline = parse_pipeline(
        text.replace(
            "    review_reminder_days: 3\n    review_escalation_days: 7\n",
            "    review_reminder_days: 7\n    review_escalation_days: 8\n",
            1,
        ),
        "slower.yaml",
    )
    ws.clock.advance(days=5)  # day 14
    assert [key.split(":")[0] for key in tick(ws)] == ["remind"]
    told = [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if "waited 14 day" in str(m.get("blocks"))]
    assert len(told) == 1 and has_button(told[0], ids.ACTION_APPROVE)
    ws.clock.advance(days=6)  # day 20: the next one is on day 21
    assert tick(ws) == []


BOSS = "U0BOSS001"
OPS_LEAD = "U0OPSLEAD"
# A complete periodic review of the default pipeline, as typed into its form.
REVIEW_ANSWERS = {
    "ops_still_delivering_value": "yes as planned",
    "ops_drift_detected": "no",
    "ops_incidents": "0",
    "ops_owner_still_right": "yes",
    "ops_retraining_done": "not due yet",
    "ops_recommendation": "continue",
}


def with_contacts(ws: Workspace, edit: Callable[[str], str] = str) -> None:
    """Give the sponsor and operations roles escalation contacts (the default leaves them empty);
    ``edit`` changes the default pipeline's text first."""
    text = edit(DEFAULT_PIPELINE.read_text(encoding="utf-8"))
    sponsor, operations = text.index("  sponsor:"), text.index("  operations:\n    label")
    text = (
        text[:sponsor]
        + text[sponsor:operations].replace('escalation_contact: ""', f"escalation_contact: {BOSS}", 1)
        + text[operations:].replace('escalation_contact: ""', f"escalation_contact: {OPS_LEAD}", 1)
    )
    ws.services.pipeline = parse_pipeline(text, "contacts.yaml")
    for user, name in [(BOSS, "bea"), (OPS_LEAD, "otto")]:
        ws.api.state.add_user(user, name)


def move_to_operations(ws: Workspace, ref: str) -> None:
    """Put the initiative in the operations stage as of now (the whole route is tested elsewhere)."""
    with ws.services.database.session() as session:
        session.execute(
            update(initiatives)
            .where(initiatives.c.ref == ref)
            .values(stage="operations", stage_entered_at=ws.clock())
        )
        session.commit()


def test_a_review_waiting_past_escalation_reaches_the_roles_contact(workspace: Workspace) -> None:
    ws = workspace
    with_contacts(ws)
    ref = register(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    review = ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    ws.clock.advance(days=7)
    assert tick(ws) == [f"escalate:{review.id}", f"remind:{review.id}:20261108T090000Z"]
    [escalation] = ws.messages_in(ws.dm_with(BOSS))
    assert "Escalation" in escalation["text"] and ref in escalation["text"]
    ws.clock.advance(days=1)
    assert tick(ws) == []
    assert len(ws.messages_in(ws.dm_with(BOSS))) == 1


def who_can_approve(ws: Workspace) -> str:
    """Whom the escalation DM to the sponsor role's contact names as able to approve."""
    [escalation] = ws.messages_in(ws.dm_with(BOSS))
    shown = "\n".join(b["text"]["text"] for b in escalation["blocks"] if b["type"] == "section")
    return shown.split("Who can approve:", 1)[1]


def test_an_escalation_names_the_members_of_the_roles_user_group(workspace: Workspace) -> None:
    """Members of the role's Slack user group are asked to decide, so the contact hears of them
    too, not only of the holders stored in Shepherd."""
    ws = workspace
    member = "U0GRPMEMB"
    ws.api.state.add_user(member, "gina")
    ws.api.state.add_usergroup("S0SPONS", "sponsors", [member])
    with_contacts(
        ws,
        lambda text: text.replace(
            "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0SPONS\n", 1
        ),
    )
    ref = register(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    review = ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    assert dms_with_button(ws, member, ids.ACTION_APPROVE)  # the member was asked
    ws.clock.advance(days=7)
    assert f"escalate:{review.id}" in tick(ws)
    who = who_can_approve(ws)
    assert f"<@{SPONSOR}>" in who and f"<@{member}>" in who, who


def test_an_escalation_does_not_name_an_approver_who_already_approved(workspace: Workspace) -> None:
    """The intake needs two sponsors; one approved, the other has not after a week: the contact
    is pointed at the one still to decide, not at both."""
    ws = workspace
    other = "U0SPONS0B"
    ws.api.state.add_user(other, "sue")
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR, other], "U0ADMIN01", ws.clock()
    )
    with_contacts(
        ws, lambda text: text.replace("      - role: sponsor\n", "      - role: sponsor\n        min: 2\n", 1)
    )
    ref = register(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    review = ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    [request] = dms_with_button(ws, SPONSOR, ids.ACTION_APPROVE)
    ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    assert open_review(ws, ref) is not None  # the second sponsor is still to decide
    ws.clock.advance(days=7)
    assert f"escalate:{review.id}" in tick(ws)
    who = who_can_approve(ws)
    assert f"<@{other}>" in who and f"<@{SPONSOR}>" not in who, who


def test_a_periodic_review_is_due_answered_in_a_modal_and_then_not_overdue(workspace: Workspace) -> None:
    ws = workspace
    with_contacts(ws)
    ref = register(ws)
    move_to_operations(ws, ref)
    ws.clock.advance(days=89)
    assert tick(ws) == []
    ws.clock.advance(days=1)
    assert tick(ws) == [f"opsreview:{ref}:2027-01-31"]
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    view = ws.opened_view(
        lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    assert view["callback_id"] == ids.VIEW_OPERATIONS_REVIEW
    incomplete = ws.submit_view(OWNER, view, {ids.question_block_id("ops_drift_detected"): "no"})
    assert "This question is required" in incomplete.text
    values = {ids.question_block_id(q): v for q, v in REVIEW_ANSWERS.items()}
    response = ws.submit_view(OWNER, view, values)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    with ws.services.read_uow() as uow:
        [recorded] = uow.operations.reviews(ref)
    assert recorded.answers["ops_incidents"] == 0
    assert recorded.next_due == ws.clock() + timedelta(days=90)
    ws.clock.advance(days=20)
    assert tick(ws) == []
    assert ws.messages_in(ws.dm_with(OPS_LEAD)) == []


def test_an_unanswered_periodic_review_turns_overdue_and_is_escalated(workspace: Workspace) -> None:
    ws = workspace
    with_contacts(ws)
    ref = register(ws)
    move_to_operations(ws, ref)
    ws.clock.advance(days=104)
    assert tick(ws) == [f"opsoverdue:{ref}:2027-01-31", f"opsreview:{ref}:2027-01-31"]
    owner_notices = dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    assert len(owner_notices) == 1 and "overdue" in owner_notices[0]["text"]
    [flag] = ws.messages_in(ws.dm_with(OPS_LEAD))
    assert "overdue" in flag["text"]


def test_a_system_resumed_after_its_review_fell_due_on_hold_is_due_before_it_is_escalated(
    workspace: Workspace,
) -> None:
    """Held from day 10 to day 120, when nobody could record its periodic review (due on day
    90): on resume it is due at once, and overdue (escalated) only if the grace runs out from
    then, not told at once that it is overdue without ever having been told it was due."""
    ws = workspace
    with_contacts(ws)
    ref = register(ws)
    move_to_operations(ws, ref)
    ws.clock.advance(days=10)
    usecases.hold(ws.services.uow(), ref, OWNER, "Vendor contract paused", ws.clock())
    ws.clock.advance(days=110)
    assert tick(ws) == []
    usecases.resume(ws.services.uow(), ref, OWNER, ws.clock())
    ws.deliver()
    assert tick(ws) == [f"opsreview:{ref}:2027-01-31"]
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    assert "overdue" not in notice["text"], notice["text"]
    assert ws.messages_in(ws.dm_with(OPS_LEAD)) == []
    ws.clock.advance(days=13)
    assert tick(ws) == []
    ws.clock.advance(days=1)
    assert tick(ws) == [f"opsoverdue:{ref}:2027-01-31"]
    [flag] = ws.messages_in(ws.dm_with(OPS_LEAD))
    assert "overdue" in flag["text"]


def with_operations_group(ws: Workspace) -> None:
    """Give the operations role a Slack user group, S0OPS, whose one member, the ops lead, holds
    the role in Slack only."""
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    operations = text.index("  operations:\n    label")
    text = text[:operations] + text[operations:].replace(
        "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0OPS\n", 1
    )
    ws.services.pipeline = parse_pipeline(text, "ops-group.yaml")
    ws.api.state.add_user(OPS_LEAD, "otto")
    ws.api.state.add_usergroup("S0OPS", "operations", [OPS_LEAD])


def review_due(ws: Workspace) -> tuple[str, dict[str, Any]]:
    """A registered initiative in operations whose periodic review is due; returns its reference
    and the owner's DM with the button that opens the review form."""
    ref = register(ws)
    move_to_operations(ws, ref)
    ws.clock.advance(days=90)
    assert tick(ws) == [f"opsreview:{ref}:2027-01-31"]
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    return ref, notice


def reviews_of(ws: Workspace, ref: str) -> list[OperationsReview]:
    with ws.services.read_uow() as uow:
        return list(uow.operations.reviews(ref))


def thanks(ws: Workspace, user: str) -> list[dict[str, Any]]:
    """The "Recorded ..." messages ``user`` received, once everything queued is delivered."""
    ws.deliver()
    return [m for m in ws.messages_in(ws.dm_with(user)) if "Recorded the periodic" in m.get("text", "")]


REVIEW_VALUES = {ids.question_block_id(q): v for q, v in REVIEW_ANSWERS.items()}


def test_the_operations_roles_user_group_records_the_periodic_review_and_outsiders_are_told_first(
    workspace: Workspace,
) -> None:
    ws = workspace
    with_operations_group(ws)
    ref, notice = review_due(ws)

    # Someone outside the group is told before typing anything: no form opens.
    opened = len(ws.api.calls("views.open"))
    assert ws.click(OUTSIDER, notice, ws.registry, ids.ACTION_OPEN_OPERATIONS_REVIEW).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any(
                "the operations role can record" in str(c.params) for c in ws.api.calls("chat.postEphemeral")
            )
        )
    )
    assert len(ws.api.calls("views.open")) == opened

    # A member of the group opens it (Slack is asked who is in the group) and records it.
    view = ws.opened_view(lambda: ws.click(OPS_LEAD, notice, ws.registry, ids.ACTION_OPEN_OPERATIONS_REVIEW))
    response = ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    [recorded] = reviews_of(ws, ref)
    assert recorded.reviewer_id == OPS_LEAD
    assert len(thanks(ws, OPS_LEAD)) == 1


@dataclass
class Seconds:
    """A monotonic clock for the user group memory, moved by hand (how long a form stays open)."""

    at: float = 0.0

    def __call__(self) -> float:
        return self.at


def _remembered(ws: Workspace, user: str) -> bool:
    """Whether the user group memory can answer for ``user`` without asking Slack."""
    try:
        ws.services.group_roles.roles_of(ws.services.pipeline, user, None)
    except MembershipUnavailable:
        return False
    return True


def test_a_review_form_kept_open_past_the_group_memory_is_answered_without_asking_slack(
    workspace: Workspace,
) -> None:
    ws = workspace
    with_operations_group(ws)
    seconds = Seconds()
    ws.services.group_roles = GroupRoles(clock=seconds)
    ref, notice = review_due(ws)
    view = ws.opened_view(lambda: ws.click(OPS_LEAD, notice, ws.registry, ids.ACTION_OPEN_OPERATIONS_REVIEW))
    answered = len(ws.api.calls("usergroups.users.list"))
    listed = len(ws.api.calls("usergroups.users.list", ok=True))

    # The ops lead spends longer on the form than the membership is remembered, and Slack is
    # slow (each usergroups.users.list answer takes 2 s) and rate limiting (429, Retry-After).
    seconds.at += TTL_SECONDS + 60
    ws.api.faults.delay(2.0, "usergroups.users.list")
    ws.api.faults.rate_limit("usergroups.users.list", retry_after=1, times=1)
    response = ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)

    # Answered before Slack was: the fake logs a call once it answers, and none was logged.
    assert len(ws.api.calls("usergroups.users.list")) == answered
    refused = response.json()
    assert refused["response_action"] == "errors"
    assert set(refused["errors"]) <= {block["block_id"] for block in view["blocks"]}
    assert "submit again in a moment" in str(refused["errors"])
    assert reviews_of(ws, ref) == []

    # Shepherd asked Slack after answering (waiting out the 429); submitting again records it
    # from what Slack said, without asking again.
    ws.api.wait_for("usergroups.users.list", count=listed + 1, timeout=15)
    # The fake logs the answer before Shepherd has stored it: wait until it is remembered.
    ws.wait(lambda: _remembered(ws, OPS_LEAD))
    asked = len(ws.api.calls("usergroups.users.list"))
    response = ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    assert len(ws.api.calls("usergroups.users.list")) == asked
    [recorded] = reviews_of(ws, ref)
    assert recorded.reviewer_id == OPS_LEAD
    assert len(thanks(ws, OPS_LEAD)) == 1


def test_a_review_form_sent_twice_records_one_review_and_thanks_once(workspace: Workspace) -> None:
    ws = workspace
    with_operations_group(ws)
    ref, notice = review_due(ws)
    view = ws.opened_view(lambda: ws.click(OPS_LEAD, notice, ws.registry, ids.ACTION_OPEN_OPERATIONS_REVIEW))
    # Slack sends the same form again when its first answer came late and the person, seeing
    # the form fail, pressed Submit again.
    first = ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)
    again = ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)
    for response in (first, again):
        assert response.status == 200 and response.text in ("", "{}"), response.text
    assert len(reviews_of(ws, ref)) == 1
    assert len(thanks(ws, OPS_LEAD)) == 1
    with ws.services.read_uow() as uow:
        audited = [entry.action for entry in uow.audit.timeline(ref)]
    assert audited.count("operations.reviewed") == 1

    # A new form, opened from the button again, is a new review.
    view = ws.opened_view(lambda: ws.click(OPS_LEAD, notice, ws.registry, ids.ACTION_OPEN_OPERATIONS_REVIEW))
    ws.submit_view(OPS_LEAD, view, REVIEW_VALUES)
    assert len(reviews_of(ws, ref)) == 2
    assert len(thanks(ws, OPS_LEAD)) == 2


# A chain of show_ifs in the periodic review: the severity is asked only when something happened,
# and the post-mortem only for a high severity.
SEVERITY_CHAIN = """
    - id: ops_incident_severity
      label: How severe was the worst incident?
      type: choice
      options: [low, high]
      show_if: answers.ops_drift_detected == "yes" || answers.ops_incidents > 0
    - id: ops_postmortem
      label: Link to the post-mortem
      type: text
      show_if: answers.ops_incident_severity == "high"
      required_if: answers.ops_incident_severity == "high"
"""


def test_a_hidden_answer_in_the_periodic_review_counts_for_nothing(workspace: Workspace) -> None:
    """Nothing happened (no drift, no incident), so the severity is hidden and the post-mortem
    with it: the severity picked before the reviewer corrected the incident count neither makes
    the post-mortem required nor is kept with the review, as in a gate's questionnaire."""
    ws = workspace
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8").rstrip("\n") + "\n" + SEVERITY_CHAIN
    ws.services.pipeline = parse_pipeline(text, "ops-chain.yaml")
    ref, notice = review_due(ws)
    view = ws.opened_view(
        lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    values = dict(REVIEW_VALUES, **{ids.question_block_id("ops_incident_severity"): "high"})
    response = ws.submit_view(OWNER, view, values)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    [recorded] = reviews_of(ws, ref)
    assert "ops_incident_severity" not in recorded.answers

    # With an incident, the same answers make the post-mortem required.
    values[ids.question_block_id("ops_incidents")] = "1"
    values[ids.question_block_id("ops_incident_notes")] = "A biased answer reached a customer."
    view = ws.opened_view(
        lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    refused = ws.submit_view(OWNER, view, values).json()
    assert refused["errors"] == {ids.question_block_id("ops_postmortem"): "This question is required."}


OPS_OWNER = "U0OPSOWNR"


def test_the_operations_owner_named_at_handover_is_told_of_the_review_and_records_it(
    workspace: Workspace,
) -> None:
    """The handover names the operations owner, "accountable for ... the periodic review": they
    get the due notice with its button, as the owner does, and may record the review."""
    ws = workspace
    ws.api.state.add_user(OPS_OWNER, "oona")
    ref = register(ws)
    usecases.answer(
        ws.services.pipeline,
        ws.services.uow(),
        ref,
        "handover",
        {"operations_owner": OPS_OWNER},
        OWNER,
        ws.clock(),
    )
    move_to_operations(ws, ref)
    ws.clock.advance(days=90)
    assert tick(ws) == [f"opsreview:{ref}:2027-01-31"]
    assert len(dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)) == 1
    [notice] = dms_with_button(ws, OPS_OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    view = ws.opened_view(
        lambda: ws.click(OPS_OWNER, notice, ws.dm_with(OPS_OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    response = ws.submit_view(OPS_OWNER, view, REVIEW_VALUES)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    [recorded] = reviews_of(ws, ref)
    assert recorded.reviewer_id == OPS_OWNER
    assert len(thanks(ws, OPS_OWNER)) == 1


def test_the_review_cadence_and_first_date_given_at_handover_drive_the_periodic_reviews(
    workspace: Workspace,
) -> None:
    """The operations owner answered "every 3 months, the first on 1 March" at handover: the
    first review is due on 1 March, not 90 days after the handover, and the next one three
    months after it was recorded."""
    ws = workspace
    ref = register(ws)
    usecases.answer(
        ws.services.pipeline,
        ws.services.uow(),
        ref,
        "handover",
        {"review_cadence_months": 3, "first_review_date": "2027-03-01"},
        OWNER,
        ws.clock(),
    )
    move_to_operations(ws, ref)  # on 2 November 2026
    ws.clock.advance(days=90)
    assert tick(ws) == []  # 31 January: the pipeline's 90 days, not the team's date
    ws.clock.at = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    assert tick(ws) == [f"opsreview:{ref}:2027-03-01"]
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    view = ws.opened_view(
        lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    response = ws.submit_view(OWNER, view, REVIEW_VALUES)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    [recorded] = reviews_of(ws, ref)
    assert recorded.next_due == datetime(2027, 6, 1, 12, 0, tzinfo=UTC)  # three months on
    ws.deliver()
    [done] = [m for m in ws.messages_in(ws.dm_with(OWNER)) if "next one is due" in str(m.get("blocks"))]
    assert "2027-03-01" in str(done["blocks"]) and "2027-06-01" in str(done["blocks"]), done["blocks"]


def test_an_extension_runs_until_the_day_picked_wherever_its_readers_are(workspace: Workspace) -> None:
    """A date picker gives a plain day: the box runs until that day has ended everywhere, and
    every message says that day (a date token would show the next day to a reader east of the
    end's time zone)."""
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    view = open_extend_form(ws, notice)
    response = ws.submit_view(
        OWNER, view, {ids.EXTEND_UNTIL_BLOCK: "2027-01-15", ids.REASON_BLOCK: "Waiting for the DSA"}
    )
    assert response.status == 200 and response.text in ("", "{}"), response.text
    ws.deliver()
    [confirmation] = [
        m for m in ws.messages_in(ws.dm_with(OWNER)) if "now runs until" in str(m.get("blocks"))
    ]
    assert "now runs until Jan 15, 2027." in str(confirmation["blocks"])
    assert "<!date" not in str(confirmation["blocks"])

    # In Los Angeles at 8 pm on 15 January it is already the 16th in UTC: not stalled yet.
    ws.clock.at = datetime(2027, 1, 16, 4, 0, tzinfo=UTC)
    assert tick(ws) == []
    ws.clock.at = datetime(2027, 1, 16, 12, 5, tzinfo=UTC)
    assert tick(ws) == [f"stalled:{ref}:idea:20270116T115959Z"]
    stalled = dms_with_button(ws, OWNER, ids.ACTION_EXTEND_TIME_BOX)[-1]
    assert "its time box ended on Jan 15, 2027." in str(stalled["blocks"])

    # Picking "today" in Los Angeles, after midnight in UTC, is accepted.
    view = open_extend_form(ws, stalled)
    assert "It ended on Jan 15, 2027." in str(view["blocks"][0])
    ws.clock.at = datetime(2027, 1, 17, 4, 0, tzinfo=UTC)  # 8 pm on the 16th in Los Angeles
    response = ws.submit_view(
        OWNER, view, {ids.EXTEND_UNTIL_BLOCK: "2027-01-16", ids.REASON_BLOCK: "Signed tonight"}
    )
    assert response.status == 200 and response.text in ("", "{}"), response.text


def test_a_review_form_without_questions_that_is_refused_closes_and_says_why(workspace: Workspace) -> None:
    """A pipeline whose periodic review has no questions ("submitting records the review"): the
    initiative is put on hold while the form is open. Slack shows a form's errors only under its
    fields, and this one has none: it closes and the person is told why in a private message."""
    ws = workspace
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    text = text[: text.index("  questions:\n    - id: ops_still")] + "  questions: []\n"
    ws.services.pipeline = parse_pipeline(text, "no-questions.yaml")
    ref, notice = review_due(ws)
    view = ws.opened_view(
        lambda: ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    usecases.hold(ws.services.uow(), ref, OWNER, "vendor outage", ws.clock())
    response = ws.submit_view(OWNER, view, {})
    assert response.status == 200 and response.text in ("", "{}"), response.text
    ws.deliver()
    told = [str(c.params) for c in ws.api.calls() if c.method in ("chat.postEphemeral", "chat.postMessage")]
    assert any("not an active system" in params for params in told), told
    assert reviews_of(ws, ref) == []


def test_the_sponsor_stops_a_stalled_initiative_from_the_stop_form(workspace: Workspace) -> None:
    """The Stop form says the owner or the sponsor may stop it; the sponsor's reason retires it."""
    ws = workspace
    ref = register(ws)
    ws.clock.advance(days=31)
    tick(ws)
    [notice] = dms_with_button(ws, OWNER, ids.ACTION_STOP_INITIATIVE)
    view = ws.opened_view(lambda: ws.click(SPONSOR, notice, ws.registry, ids.ACTION_STOP_INITIATIVE))
    response = ws.submit_view(SPONSOR, view, {ids.REASON_BLOCK: "The business case changed"})
    assert response.status == 200 and response.text in ("", "{}"), response.text
    initiative = stored(ws, ref)
    assert (initiative.status, initiative.status_reason) == (Status.RETIRED, "The business case changed")


def test_extending_again_says_until_when_the_time_box_still_runs(workspace: Workspace) -> None:
    """The owner extended the box to 15 January, then opens Extend again from the same stalled
    notice in December: the form says the box runs until 15 January, not that it ended."""
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    operations.extend_time_box(
        ws.services.pipeline, ws.services.uow(), ref, date(2027, 1, 15), "DSA pending", OWNER, ws.clock()
    )
    ws.deliver()
    view = open_extend_form(ws, notice)
    intro = str(view["blocks"][0])
    assert "It runs until Jan 15, 2027." in intro and "ended" not in intro, intro


def test_start_the_review_on_a_held_system_is_refused_before_the_form_opens(workspace: Workspace) -> None:
    """Held after the due notice: the button says why at once, instead of a form that refuses
    only once everything is typed."""
    ws = workspace
    ref, notice = review_due(ws)
    usecases.hold(ws.services.uow(), ref, OWNER, "vendor outage", ws.clock())
    opened = len(ws.api.calls("views.open"))
    assert ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any("not an active system" in str(c.params) for c in ws.api.calls("chat.postEphemeral"))
        )
    )
    assert len(ws.api.calls("views.open")) == opened


def test_a_recorded_periodic_review_takes_the_button_off_every_due_notice(workspace: Workspace) -> None:
    """The owner and the operations owner both get the due notice; once the operations owner
    has recorded the review, the owner's notice says so and no longer offers to start it (a
    second review, typed again for nothing, would otherwise be recorded from it)."""
    ws = workspace
    ws.api.state.add_user(OPS_OWNER, "oona")
    ref = register(ws)
    usecases.answer(
        ws.services.pipeline,
        ws.services.uow(),
        ref,
        "handover",
        {"operations_owner": OPS_OWNER},
        OWNER,
        ws.clock(),
    )
    move_to_operations(ws, ref)
    ws.clock.advance(days=90)
    assert tick(ws) == [f"opsreview:{ref}:2027-01-31"]
    [notice] = dms_with_button(ws, OPS_OWNER, ids.ACTION_OPEN_OPERATIONS_REVIEW)
    view = ws.opened_view(
        lambda: ws.click(OPS_OWNER, notice, ws.dm_with(OPS_OWNER), ids.ACTION_OPEN_OPERATIONS_REVIEW)
    )
    response = ws.submit_view(OPS_OWNER, view, REVIEW_VALUES)
    assert response.status == 200 and response.text in ("", "{}"), response.text
    ws.deliver()
    for user in (OWNER, OPS_OWNER):
        assert dms_with_button(ws, user, ids.ACTION_OPEN_OPERATIONS_REVIEW) == [], user
    [told] = [
        m for m in ws.messages_in(ws.dm_with(OWNER)) if "periodic operations review" in str(m.get("blocks"))
    ]
    shown = str(told["blocks"])
    assert f"recorded by <@{OPS_OWNER}>" in shown and "2027-01-31" in shown and "2027-05-01" in shown, shown


@pytest.mark.parametrize("action", [ids.ACTION_EXTEND_TIME_BOX, ids.ACTION_STOP_INITIATIVE])
def test_extend_or_stop_on_a_retired_initiative_is_refused_before_the_form_opens(
    workspace: Workspace, action: str
) -> None:
    """Retired since the stalled notice (from the card, a command): its Extend and Stop say why
    at once, instead of a form that refuses only once the reason is typed."""
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    usecases.retire(ws.services.uow(), ref, OWNER, "replaced by a vendor tool", ws.clock())
    ws.deliver()
    opened = len(ws.api.calls("views.open"))
    assert ws.click(OWNER, notice, ws.dm_with(OWNER), action).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any(
                f"{ref} is retired" in str(c.params) or f"{ref} is already retired" in str(c.params)
                for c in ws.api.calls("chat.postEphemeral")
            )
        )
    )
    assert len(ws.api.calls("views.open")) == opened


def test_extend_on_a_held_initiative_is_refused_before_the_form_opens(workspace: Workspace) -> None:
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    usecases.hold(ws.services.uow(), ref, OWNER, "budget freeze", ws.clock())
    ws.deliver()
    opened = len(ws.api.calls("views.open"))
    assert ws.click(OWNER, notice, ws.dm_with(OWNER), ids.ACTION_EXTEND_TIME_BOX).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any(f"{ref} is on hold" in str(c.params) for c in ws.api.calls("chat.postEphemeral"))
        )
    )
    assert len(ws.api.calls("views.open")) == opened


def test_a_stalled_notice_loses_its_buttons_once_the_stage_is_approved(workspace: Workspace) -> None:
    """The idea stage stalled, then its gate was approved: the old notice no longer offers to
    submit (which would now submit the next stage's gate), extend or stop, and says why."""
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    [request] = dms_with_button(ws, SPONSOR, ids.ACTION_APPROVE)
    ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.inbox.drain()
    ws.deliver()
    assert stored(ws, ref).stage == "poc"
    [redrawn] = [m for m in ws.messages_in(ws.dm_with(OWNER)) if m["ts"] == notice["ts"]]
    for action in (ids.ACTION_SUBMIT_REVIEW, ids.ACTION_EXTEND_TIME_BOX, ids.ACTION_STOP_INITIATIVE):
        assert not has_button(redrawn, action), action
    shown = str(redrawn["blocks"])
    assert "Idea stage's time box" in shown and "moved on to the PoC stage" in shown, shown


def test_a_stalled_notice_loses_its_buttons_once_the_initiative_is_retired(workspace: Workspace) -> None:
    """Retired from a command or the card after the notice: its buttons go with it."""
    ws = workspace
    ref, notice = registered_and_stalled(ws)
    usecases.retire(ws.services.uow(), ref, OWNER, "replaced by a vendor tool", ws.clock())
    ws.deliver()
    [redrawn] = [m for m in ws.messages_in(ws.dm_with(OWNER)) if m["ts"] == notice["ts"]]
    for action in (ids.ACTION_SUBMIT_REVIEW, ids.ACTION_EXTEND_TIME_BOX, ids.ACTION_STOP_INITIATIVE):
        assert not has_button(redrawn, action), action
    assert "since been retired" in str(redrawn["blocks"])


def test_the_submitter_hears_once_that_an_approver_was_deactivated_while_the_review_waits(
    workspace: Workspace,
) -> None:
    """The sponsor's account is deactivated after the request went out: their reminders cannot be
    sent, and the owner, who submitted the review, is told once that the sponsor cannot decide,
    instead of waiting on someone who will never see it."""
    ws = workspace
    ref = register(ws)
    ws.click(OWNER, ws.messages_in(ws.registry)[0], ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: open_review(ws, ref))
    ws.deliver()
    assert dms_with_button(ws, SPONSOR, ids.ACTION_APPROVE)
    ws.api.state.add_user(SPONSOR, "sam", deleted=True)  # an admin deactivates Sam's account
    for _ in range(2):  # two reminders fall due
        ws.clock.advance(days=3)
        assert "remind" in [key.split(":")[0] for key in tick(ws)]
    told = [m["text"] for m in ws.messages_in(ws.dm_with(OWNER)) if "deactivated" in m.get("text", "")]
    assert len(told) == 1
    assert told[0].startswith(f"{ref}: ") and f"<@{SPONSOR}>" in told[0] and "role admin" in told[0]
    assert ws.api.calls("chat.postMessage", ok=False) == []
