"""Every Slack surface the bot listens on, driven with the payloads Slack really sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ask, ids
from bot.emulator import payloads
from bot.emulator.webapi import FakeSlackWebAPI
from bot.manifest import manifest
from gates import usecases
from gates.lifecycle import ReviewStatus
from tests.bot.blockkit_checks import assert_valid_message
from tests.bot.scenario import Workspace, has_button, running_workspace
from tests.bot.test_lifecycle import (
    OUTSIDER,
    OWNER,
    RISK,
    SPONSOR,
    card,
    intake_values,
    register,
    request_dm,
    submit,
)

ADMIN = "U0ADMIN01"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with an owner, a sponsor, a risk officer, an outsider and a role admin."""
    api = FakeSlackWebAPI()
    for user, name in [
        (OWNER, "olivia"),
        (SPONSOR, "sam"),
        (RISK, "rafael"),
        (OUTSIDER, "oscar"),
        (ADMIN, "ada"),
    ]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], ADMIN, ws.clock()
        )
        yield ws


def test_help_answers_in_the_ack_without_calling_slack(workspace: Workspace) -> None:
    response = workspace.command(OWNER, "help")
    assert response.status == 200
    assert "/shepherd new" in response.text
    assert not workspace.api.calls("chat.postMessage")


def test_status_of_an_initiative_shows_its_stage_and_what_is_missing(workspace: Workspace) -> None:
    ref = register(workspace)
    body = workspace.command(OWNER, f"status {ref}").json()
    text = str(body)
    assert ref in text and "intake" in text.lower()


def test_status_of_a_stalled_initiative_says_it_is_stalled_as_its_card_does(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    ws.clock.advance(days=31)  # past the idea stage's 30-day time box
    assert ":warning: stalled" in ws.command(OWNER, "status").text  # the list says so
    blocks = str(ws.command(OWNER, f"status {ref}").json()["blocks"])
    assert "Stalled: in Idea since" in blocks


def test_status_of_a_retired_initiative_says_it_was_retired_not_that_it_reached_its_final_stage(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register(ws)
    assert ws.command(OWNER, f"retire {ref} the supplier changed the data contract").status == 200
    ws.deliver()
    for shown in (str(ws.command(OWNER, f"status {ref}").json()["blocks"]), str(card(ws)["blocks"])):
        assert "final stage" not in shown
        assert "Retired in the Idea stage" in shown


def test_status_of_an_unknown_ref_says_so(workspace: Workspace) -> None:
    assert "There is no initiative AI-9999" in workspace.command(OWNER, "status AI-9999").text


def test_unknown_subcommand_points_to_help(workspace: Workspace) -> None:
    assert "/shepherd help" in workspace.command(OWNER, "frobnicate").text


def test_only_role_admins_can_change_roles(workspace: Workspace) -> None:
    assert "Only role admins" in workspace.command(OWNER, f"roles set risk <@{OWNER}>").text
    reply = workspace.command(ADMIN, f"roles set risk <@{RISK}>").text
    assert RISK in reply
    with workspace.services.read_uow() as uow:
        assert uow.roles.roles_of(RISK) == {"risk"}
    assert "no role called 'wizard'" in workspace.command(ADMIN, f"roles set wizard <@{RISK}>").text


def test_anyone_can_see_who_holds_the_roles_as_help_says(workspace: Workspace) -> None:
    assert "`/shepherd roles` see who holds the approver roles" in workspace.command(OWNER, "help").text
    for words in ("roles", "roles list"):
        reply = workspace.command(OWNER, words).text
        assert "Role holders:" in reply and f"<@{SPONSOR}>" in reply
    assert "Only role admins" in workspace.command(OWNER, "roles clear sponsor").text
    with workspace.services.read_uow() as uow:
        assert uow.roles.roles_of(SPONSOR) == {"sponsor"}


def test_a_direct_message_gets_a_policy_answer_with_sources(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event(
        "who has to sign off the handover to operations?", user_id=OWNER, channel_id=dm
    )
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    reply = workspace.wait(
        lambda: [m for m in workspace.messages_in(dm) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)]
    )[-1]
    assert "handover" in str(reply["blocks"]).lower()


def test_a_question_naming_an_initiative_in_lower_case_gets_its_checklist(workspace: Workspace) -> None:
    ref = register(workspace)
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event(f"what does {ref.lower()} still need?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    reply = workspace.wait(
        lambda: [m for m in workspace.messages_in(dm) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)]
    )[-1]
    assert ref in str(reply["blocks"]) and "Approvals needed" in str(reply["blocks"])


def test_a_question_naming_an_initiative_that_does_not_exist_says_so(workspace: Workspace) -> None:
    """A mistyped ref (or the greeting's example) must not get a policy answer that reads as if
    it were about that initiative."""
    ref = register(workspace)
    wrong = ref[:-1] + ("8" if ref[-1] != "8" else "9")
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event(f"what does {wrong} still need?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    reply = workspace.wait(
        lambda: [m for m in workspace.messages_in(dm) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)]
    )[-1]
    assert f"There is no initiative {wrong}" in str(reply["blocks"])
    assert_valid_message(reply)


def test_a_mention_with_no_question_gets_the_help_not_a_verdict_on_the_policies(workspace: Workspace) -> None:
    workspace.mention(OWNER, "", workspace.registry)
    workspace.api.wait_for("chat.update", timeout=10)
    reply = workspace.api.calls("chat.update")[-1].params
    assert "mention its ref" in reply["text"]
    assert "do not clearly cover" not in str(reply["blocks"]), reply["blocks"]


def test_a_follow_up_in_the_thread_of_an_answer_about_an_initiative_is_about_it_too(
    workspace: Workspace,
) -> None:
    """A question naming AI-0001 is answered in a thread under it; a follow-up there ("and who
    has to approve it?") is still about AI-0001, without typing its ref again."""
    ref = register(workspace)
    mention = f"<@{workspace.api.state.bot_user_id}> what does {ref} need?"
    first = payloads.app_mention_event(mention, user_id=OWNER, channel_id=workspace.registry)
    assert workspace.client.send_event(payloads.event_callback(first)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    workspace.mention(OWNER, "and who has to approve it?", workspace.registry, first["ts"])
    workspace.api.wait_for("chat.update", count=2, timeout=10)
    replies = [
        m
        for m in workspace.api.state.thread(workspace.registry, first["ts"])
        if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
    ]
    assert len(replies) == 2
    assert ref in str(replies[-1]["blocks"]) and "Approvals needed" in str(replies[-1]["blocks"])


def test_a_mistyped_ref_in_the_thread_of_an_initiative_is_said_not_to_exist(workspace: Workspace) -> None:
    """In the thread of an answer about one initiative, a question naming another ref that does
    not exist (a typo) is not answered with the thread's initiative's checklist, as if it were
    the one meant: it is said that there is no such initiative."""
    ref = register(workspace)
    wrong = ref[:-1] + ("8" if ref[-1] != "8" else "9")
    mention = f"<@{workspace.api.state.bot_user_id}> what does {ref} need?"
    first = payloads.app_mention_event(mention, user_id=OWNER, channel_id=workspace.registry)
    assert workspace.client.send_event(payloads.event_callback(first)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    workspace.mention(OWNER, f"and what does {wrong} need?", workspace.registry, first["ts"])
    workspace.api.wait_for("chat.update", count=2, timeout=10)
    reply = workspace.api.calls("chat.update")[-1].params
    assert f"There is no initiative {wrong}" in str(reply["blocks"]), reply["blocks"]
    assert "Approvals needed" not in str(reply["blocks"])


def test_a_reply_under_a_dm_answer_about_an_initiative_is_about_it_too(workspace: Workspace) -> None:
    ref = register(workspace)
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event(f"what does {ref} need?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    answer = workspace.api.calls("chat.update")[-1].params["ts"]
    follow_up = payloads.message_event(
        "and who has to approve it?", user_id=OWNER, channel_id=dm, thread_ts=answer
    )
    assert workspace.client.send_event(payloads.event_callback(follow_up)).status == 200
    workspace.api.wait_for("chat.update", count=2, timeout=10)
    reply = workspace.api.calls("chat.update")[-1].params
    assert ref in str(reply["blocks"]) and "Approvals needed" in str(reply["blocks"])


def test_the_welcomes_next_gate_question_in_a_dm_is_about_the_askers_one_initiative(
    workspace: Workspace,
) -> None:
    """The welcome suggests "what do we need for the next gate?": typed at the top of the DM
    by the owner of one initiative, it gets that initiative's checklist, not only policies."""
    ref = register(workspace)
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event("what do we need for the next gate?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    reply = workspace.api.calls("chat.update")[-1].params
    assert ref in str(reply["blocks"]) and "Approvals needed" in str(reply["blocks"])


def test_the_next_gate_question_from_someone_with_several_initiatives_asks_which(
    workspace: Workspace,
) -> None:
    first = register(workspace)
    view = workspace.opened_view(lambda: workspace.command(OWNER, "new"))
    assert workspace.submit_view(OWNER, view, intake_values()).status == 200
    workspace.deliver()
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event("what do we need for the next gate?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    said = str(workspace.api.calls("chat.update")[-1].params["blocks"])
    assert first in said and "AI-0002" in said and "name one" in said, said
    assert "Approvals needed" not in said  # no guess at which one


def test_every_suggested_prompt_makes_sense_to_whoever_clicks_it(workspace: Workspace) -> None:
    """Slack's agent view sends a suggested prompt as it is written, for everyone: one naming
    an initiative names one that does not exist, or that is someone else's."""
    register(workspace)
    prompts = manifest()["features"]["agent_view"]["suggested_prompts"]
    dm = workspace.dm_with(OUTSIDER)
    for prompt in prompts:
        event = payloads.message_event(prompt["message"], user_id=OUTSIDER, channel_id=dm)
        assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    replies = workspace.wait(
        lambda: [m for m in workspace.messages_in(dm) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)][
            len(prompts) - 1 :
        ]
    )
    for reply in workspace.messages_in(dm):
        assert "There is no initiative" not in str(reply.get("blocks")), reply
        assert "Approvals needed" not in str(reply.get("blocks")), reply  # another team's checklist
    assert replies


def test_a_failure_after_the_ack_reaches_the_person_not_just_a_log_line(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """Bolt only logs a lazy listener's error in one line; Shepherd's reporter tells the person."""
    workspace.api.faults.fail("views.open", "internal_error")
    assert workspace.command(OWNER, "new").status == 200
    workspace.wait(lambda: workspace.deliver() or workspace.messages_in(workspace.dm_with(OWNER)))
    told = [m.get("text", "") for m in workspace.messages_in(workspace.dm_with(OWNER))]
    assert any("something went wrong on Shepherd's side" in text for text in told), told
    assert any(r.exc_info and "internal_error" in str(r.exc_info[1]) for r in caplog.records)


def test_an_answer_that_fails_says_so_in_place_of_its_placeholder(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the retriever fell over")

    monkeypatch.setattr("bot.ask.reply", broken)
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event("what does the pilot gate need?", user_id=OWNER, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    workspace.deliver()
    texts = [m.get("text", "") for m in workspace.messages_in(dm)]
    assert any("could not finish this answer" in text for text in texts), texts
    assert not any("Looking into it" in text for text in texts)
    assert not any("something went wrong" in text for text in texts)  # one apology, in place
    # The status line does not go on saying Shepherd is checking.
    workspace.api.wait_for("assistant.threads.setStatus", count=2, timeout=10)
    statuses = [c.params.get("status") for c in workspace.api.calls("assistant.threads.setStatus")]
    assert statuses[-1] == ""


@pytest.mark.parametrize(
    "subtype", ["message_replied", "message_changed", "channel_join", "ekm_access_denied"]
)
def test_dm_events_that_are_not_a_person_writing_are_not_answered(workspace: Workspace, subtype: str) -> None:
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event("", user_id=OWNER, channel_id=dm)
    event["subtype"] = subtype
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    with pytest.raises(TimeoutError):
        workspace.api.wait_for("chat.postMessage", timeout=1.0)


def test_bot_messages_in_a_dm_are_not_answered(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    event = payloads.message_event("I am a bot", user_id=OWNER, channel_id=dm)
    event["subtype"] = "bot_message"
    event["bot_id"] = "B0OTHER"
    workspace.client.send_event(payloads.event_callback(event))
    with pytest.raises(TimeoutError):
        workspace.api.wait_for("chat.postMessage", timeout=1.0)


@pytest.mark.parametrize(
    "author",
    [
        {"user": "U0OTHERBOT", "bot_id": "B0OTHER", "app_id": "A0OTHER"},  # another app's bot
        {"subtype": "bot_message", "bot_id": "B0WORKFLOW", "username": "Weekly check-in"},  # a workflow
    ],
)
def test_a_bot_mentioning_shepherd_is_not_answered(workspace: Workspace, author: dict[str, str]) -> None:
    """Another bot that answers every reply in its threads, and mentions Shepherd in them, would
    otherwise talk with Shepherd without end (an LLM call and a message each way, each turn)."""
    event = payloads.app_mention_event(
        f"<@{workspace.api.state.bot_user_id}> what is a DPIA?", user_id=OWNER, channel_id=workspace.registry
    )
    if "user" not in author:
        del event["user"]
    event.update(author)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    with pytest.raises(TimeoutError):
        workspace.api.wait_for("chat.postMessage", timeout=1.0)


def test_editing_a_question_that_mentions_shepherd_does_not_answer_it_again(workspace: Workspace) -> None:
    """Slack sends ``app_mention`` again, with ``edited``, when a person edits a message that
    mentions the bot (fixing a typo): the question was answered already."""
    channel = workspace.registry
    mention = f"<@{workspace.api.state.bot_user_id}> what is a DPIA?"
    event = payloads.app_mention_event(mention, user_id=OWNER, channel_id=channel)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)
    placeholders = len(workspace.api.calls("chat.postMessage"))
    edited = {**event, "text": f"{mention} (typo)", "edited": {"user": OWNER, "ts": payloads.new_ts()}}
    assert workspace.client.send_event(payloads.event_callback(edited)).status == 200
    with pytest.raises(TimeoutError):
        workspace.api.wait_for("chat.postMessage", count=placeholders + 1, timeout=1.0)


def test_a_message_edited_to_mention_shepherd_is_answered(workspace: Workspace) -> None:
    """Someone who forgot the mention and added it by editing still gets their answer."""
    mention = f"<@{workspace.api.state.bot_user_id}> what is a DPIA?"
    event = payloads.app_mention_event(mention, user_id=OWNER, channel_id=workspace.registry)
    event["edited"] = {"user": OWNER, "ts": payloads.new_ts()}
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("chat.update", timeout=10)


def test_feedback_on_an_answer_is_recorded(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    workspace.client.send_event(
        payloads.event_callback(payloads.message_event("what is a DPIA?", user_id=OWNER, channel_id=dm))
    )
    workspace.api.wait_for("chat.update", timeout=10)
    reply = workspace.wait(
        lambda: [m for m in workspace.messages_in(dm) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)]
    )[-1]
    for _ in range(2):  # a double click counts once
        assert workspace.click(OWNER, reply, dm, ids.ACTION_FEEDBACK_UNHELPFUL).status == 200
    from sqlalchemy import text

    with workspace.services.database.session() as session:
        rows = session.execute(
            text("select actor_id, payload from audit_log where action = 'ask.feedback'")
        ).all()
    assert len(rows) == 1 and rows[0][0] == OWNER
    recorded = json.loads(rows[0][1])
    assert recorded["helpful"] is False and recorded["ts"] == reply["ts"] and recorded["channel"] == dm
    assert recorded["answer"][:40] == reply["text"][:40]  # the answer it judges
    workspace.deliver()
    thanks = [m for m in workspace.messages_in(dm) if "marked as not helpful" in m.get("text", "")]
    thanks += [
        c for c in workspace.api.calls("chat.postEphemeral") if "marked as not helpful" in str(c.params)
    ]
    assert len(thanks) == 1


def test_app_home_lists_my_initiatives_and_approvals_waiting_for_me(workspace: Workspace) -> None:
    ref = register(workspace)
    submit(workspace, ref)
    event = payloads.app_home_opened_event(SPONSOR, channel_id=workspace.dm_with(SPONSOR))
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("views.publish", timeout=10)
    home = workspace.api.state.home_view(SPONSOR)
    assert ref in str(home) and has_button(home, ids.ACTION_APPROVE)
    workspace.client.send_event(
        payloads.event_callback(payloads.app_home_opened_event(OWNER, channel_id=workspace.dm_with(OWNER)))
    )
    workspace.api.wait_for("views.publish", count=2, timeout=10)
    assert ref in str(workspace.api.state.home_view(OWNER))
    # Deciding from the DM leaves no live button on the sponsor's open Home tab either.
    workspace.deliver()
    workspace.click(SPONSOR, request_dm(workspace, SPONSOR), workspace.dm_with(SPONSOR), ids.ACTION_APPROVE)
    workspace.deliver()
    assert not has_button(workspace.api.state.home_view(SPONSOR), ids.ACTION_APPROVE)
    assert workspace.api.state.home_view(SPONSOR) != home


def test_the_global_shortcut_opens_the_intake_form(workspace: Workspace) -> None:
    payload = payloads.global_shortcut(
        ids.SHORTCUT_NEW, user_id=OWNER, trigger_id=workspace.api.mint_trigger_id(OWNER)
    )
    view = workspace.opened_view(lambda: workspace.client.send(payload))
    assert view["callback_id"] == ids.VIEW_INTAKE
    assert ids.NAME_BLOCK in [block.get("block_id") for block in view["blocks"]]


def test_the_ask_command_answers_privately_with_sources_and_feedback(workspace: Workspace) -> None:
    assert workspace.command(OWNER, "ask who has to sign off the handover to operations?").status == 200
    answers = workspace.wait(
        lambda: [e for e in workspace.api.state.ephemerals if has_button(e, ids.ACTION_FEEDBACK_HELPFUL)]
    )
    assert answers[-1]["user"] == OWNER and "handover" in str(answers[-1]["blocks"]).lower()


def test_a_question_with_the_word_payload_is_answered_like_any_other(workspace: Workspace) -> None:
    # Bolt would decode this form as an interactive payload (it contains "payload"): 404.
    assert workspace.command(OWNER, "ask does the payload we log count as personal data?").status == 200
    answers = workspace.wait(
        lambda: [e for e in workspace.api.state.ephemerals if has_button(e, ids.ACTION_FEEDBACK_HELPFUL)]
    )
    assert answers[-1]["user"] == OWNER


def test_view_evidence_opens_a_summary_of_the_answers(workspace: Workspace) -> None:
    ref = register(workspace)
    submit(workspace, ref)
    workspace.deliver()
    request = request_dm(workspace, SPONSOR)
    view = workspace.opened_view(
        lambda: workspace.click(SPONSOR, request, workspace.dm_with(SPONSOR), ids.ACTION_VIEW_EVIDENCE)
    )
    shown = str(view["blocks"])
    assert ref in shown and "Intake gate" in shown
    assert "Monthly stock-out rate for fast-moving parts" in shown  # an answer, as the reviewer reads it


def test_closing_a_modal_is_acknowledged_and_records_nothing(workspace: Workspace) -> None:
    view = workspace.opened_view(lambda: workspace.command(OWNER, "new"))
    response = workspace.client.send(payloads.view_closed(view, user_id=OWNER))
    assert response.status == 200
    assert not usecases.list_initiatives(
        workspace.services.pipeline, workspace.services.read_uow(), workspace.clock()
    )


def test_a_rejection_ends_the_review_and_the_owner_hears_why(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    request = request_dm(ws, SPONSOR)
    view = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REJECT))
    assert (
        ws.submit_view(SPONSOR, view, {ids.REASON_BLOCK: "No business case for this quarter."}).status == 200
    )
    ws.deliver()
    with ws.services.read_uow() as uow:
        review = uow.reviews.for_initiative(ref)[-1]
        initiative = uow.initiatives.get(ref)
    assert review.status is ReviewStatus.REJECTED and initiative.stage == "idea"
    assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
    owner_dm = ws.messages_in(ws.dm_with(OWNER))
    assert any("No business case" in m.get("text", "") for m in owner_dm)


def test_submitting_an_incomplete_gate_explains_what_is_missing(workspace: Workspace) -> None:
    ws = workspace
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    ws.submit_view(OWNER, view, {ids.NAME_BLOCK: "Half-baked idea"})
    ws.deliver()
    ws.click(OWNER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: ws.deliver() or ws.api.calls("chat.postEphemeral"))
    text = ws.api.calls("chat.postEphemeral")[-1].params["text"]
    assert "not ready for review" in text and "not answered" in text


def test_rate_limited_slack_is_waited_out_not_dropped(workspace: Workspace) -> None:
    ws = workspace
    ws.api.faults.rate_limit("chat.postMessage", retry_after=0, times=1)
    ref = register(ws)
    assert ref in str(card(ws)["blocks"])
    assert sum(1 for c in ws.api.calls("chat.postMessage") if c.status == 429) == 1


def test_opening_the_messages_tab_greets_once(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    for _ in range(2):
        event = payloads.app_home_opened_event(OWNER, channel_id=dm, tab="messages")
        assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.deliver()
    workspace.api.wait_for("chat.postMessage", timeout=10)
    with pytest.raises(TimeoutError):
        workspace.api.wait_for("chat.postMessage", count=2, timeout=1.0)
    assert "/shepherd new" in workspace.messages_in(dm)[0]["text"]


def test_a_greeting_slack_could_not_take_is_sent_once_it_can(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    workspace.api.faults.server_error("chat.postMessage", times=None)
    event = payloads.app_home_opened_event(OWNER, channel_id=dm, tab="messages")
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.deliver()
    # The first try and the client's two retries all failed.
    workspace.api.log.wait_for("chat.postMessage", count=3, timeout=10, ok=False)
    time.sleep(0.5)  # no try still under way
    assert workspace.messages_in(dm) == []
    workspace.api.faults.clear()
    workspace.clock.advance(minutes=30)  # the retry is due
    workspace.deliver()
    workspace.client.send_event(payloads.event_callback(event))  # opened again: no second greeting
    workspace.deliver()
    greetings = [m for m in workspace.messages_in(dm) if "/shepherd new" in m.get("text", "")]
    assert len(greetings) == 1


def test_a_dm_question_shows_an_assistant_status_while_it_works(workspace: Workspace) -> None:
    dm = workspace.dm_with(OWNER)
    workspace.client.send_event(
        payloads.event_callback(payloads.message_event("what is a DPIA?", user_id=OWNER, channel_id=dm))
    )
    workspace.api.wait_for("assistant.threads.setStatus", count=2, timeout=10)
    statuses = [c.params.get("status") for c in workspace.api.calls("assistant.threads.setStatus")]
    assert statuses and statuses[0] and statuses[-1] == ""


def thread_answer(workspace: Workspace, thread: str) -> dict[str, Any]:
    """The bot's latest answer (the message with feedback buttons) in the registry ``thread``."""
    return workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
        ]
    )[-1]


def cited_sources(reply: dict[str, Any]) -> list[str]:
    """The sources an answer lists under it ("*[1]* document > section")."""
    return [
        e["text"]
        for b in reply["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
        if e["text"].startswith("*[")
    ]


def test_a_question_about_the_next_gate_cites_policies_for_that_gate(workspace: Workspace) -> None:
    register(workspace)
    thread = card(workspace)["ts"]
    workspace.mention(OWNER, "what do we need for the next gate?", workspace.registry, thread)
    reply = thread_answer(workspace, thread)
    sources = cited_sources(reply)
    assert len(sources) >= 3, "no sources listed"
    from knowledge.policy_pack import POLICY_DIR

    front_matter = {p.name: p.read_text(encoding="utf-8").split("---")[1] for p in POLICY_DIR.glob("*.md")}
    intake_docs = {name for name, meta in front_matter.items() if "intake" in meta}
    # Unfiltered, this question also cites release-and-monitoring and model documentation,
    # which say nothing about the intake gate.
    assert all(any(doc in source for doc in intake_docs) for source in sources), sources


def test_a_question_about_another_gate_in_a_thread_cites_that_gates_policy(workspace: Workspace) -> None:
    ref = register(workspace)
    thread = card(workspace)["ts"]
    next_gate = usecases.check_readiness(workspace.services.pipeline, workspace.services.read_uow(), ref)
    assert next_gate.gate_id != "handover"
    workspace.mention(OWNER, "who has to sign off the Handover to operations?", workspace.registry, thread)
    reply = thread_answer(workspace, thread)
    assert_valid_message(reply)
    sources = cited_sources(reply)
    assert any(
        "08-handover-and-operations.md &gt; Handover and Operations &gt; The operations owner &gt; Sign-off"
        in s
        for s in sources
    ), sources
    # The checklist is still the one for the initiative's next gate.
    assert f"needs for the {next_gate.gate_title} gate" in reply["blocks"][0]["text"]["text"]


def test_a_gate_is_named_by_its_title_or_id_in_any_case_as_whole_words(workspace: Workspace) -> None:
    def named(question: str) -> list[str]:
        return [gate for gate, _ in ask.gates_named(workspace.services, question)]

    assert named("who signs off the HANDOVER?") == ["handover"]
    assert named("what does handover to operations need?") == ["handover"]
    assert named("from pilot to production: what changes?") == ["pilot", "production"]
    assert named("what is a DPIA?") == []
    assert named("how many pilots ran last year?") == []
