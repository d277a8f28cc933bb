"""An initiative whose card Slack refuses in the registry channel: its owner is told once, by DM,
why and what to do, and gets the card's buttons meanwhile; the card appears once it can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bot import ids
from bot.emulator.state import Channel
from bot.notify import SlackNotifier
from gates import usecases
from storage import Unavailable
from storage.outbox import outbox_counts
from storage.slack_messages import MessageRefs
from tests.bot.scenario import REPO, Workspace, has_button, register_low_risk, workspace_of

OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd with an owner and a sponsor."""
    with workspace_of({OWNER: "olivia", SPONSOR: "sam"}, tmp_path / "data") as ws:
        yield ws


def registry_without_the_bot(ws: Workspace) -> Channel:
    """A registry channel Shepherd was never invited to, configured as the registry."""
    channel = ws.api.state.add_channel("ai-registry", bot_is_member=False)
    ws.services.settings.registry_channel = channel.id
    return channel


def owner_dms(ws: Workspace) -> list[dict[str, Any]]:
    return ws.messages_in(ws.dm_with(OWNER))


def warnings_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if "could not post the card" in m.get("text", "")]


def test_the_welcome_says_why_the_card_is_missing_and_carries_its_buttons(workspace: Workspace) -> None:
    ws = workspace
    registry = registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()

    assert ws.messages_in(registry.id) == []
    [welcome] = owner_dms(ws)
    assert f"You registered *Spare-parts demand forecast* as {ref}" in welcome["text"]
    assert f"could not post the card of {ref} in <#{registry.id}>" in welcome["text"]
    assert "not a member" in welcome["text"] and "/invite @Shepherd" in welcome["text"]
    assert has_button(welcome, ids.ACTION_OPEN_QUESTIONNAIRE)
    assert has_button(welcome, ids.ACTION_SUBMIT_REVIEW)

    # The buttons work from the DM as they would on the card.
    questionnaire = ws.opened_view(
        lambda: ws.click(OWNER, welcome, ws.dm_with(OWNER), ids.ACTION_OPEN_QUESTIONNAIRE)
    )
    assert questionnaire["callback_id"] == ids.VIEW_QUESTIONNAIRE


def test_later_changes_retry_the_card_but_tell_the_owner_only_once(workspace: Workspace) -> None:
    ws = workspace
    registry = registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    for change in (f"hold {ref} waiting for the data contract", f"resume {ref}"):
        assert ws.command(OWNER, change).status == 200
        ws.deliver()

    refused = [c for c in ws.api.calls("chat.postMessage") if c.params.get("channel") == registry.id]
    assert len(refused) == 3  # registration, hold, resume: each tried the card again
    assert len(warnings_in(owner_dms(ws))) == 1

    # Once Shepherd is invited, the next change posts the card.
    assert registry.members is not None
    registry.members.add(ws.api.state.bot_user_id)
    assert ws.command(OWNER, f"hold {ref} waiting for the data contract").status == 200
    ws.deliver()
    [card] = ws.messages_in(registry.id)
    assert ref in str(card["blocks"])
    # The one warning, in the welcome, now says where the card is, and no longer offers its buttons.
    [welcome] = owner_dms(ws)
    assert warnings_in([welcome]) == []
    assert welcome["text"].startswith(
        f"You registered *Spare-parts demand forecast* as {ref}. Its card is here: "
    )
    assert f"The card of {ref} is posted now in <#{registry.id}>." in welcome["text"]
    assert not has_button(welcome, ids.ACTION_OPEN_QUESTIONNAIRE)


def test_a_welcome_redrawn_with_the_card_still_says_who_registered_it(workspace: Workspace) -> None:
    """Registered by the sponsor on the owner's behalf: the welcome, redrawn with the card at
    each change while the card cannot be posted, keeps saying who registered it."""
    ws = workspace
    registry_without_the_bot(ws)
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    services = ws.services
    ref = usecases.register(
        services.pipeline,
        services.uow(),
        name="Spare-parts demand forecast",
        owner_id=OWNER,
        answers=answers | {"business_sponsor": SPONSOR, "initiative_owner": OWNER},
        actor_id=SPONSOR,
        now=ws.clock(),
    ).ref
    ws.deliver()
    said = f"<@{SPONSOR}> registered *Spare-parts demand forecast* as {ref} and named you its owner."
    [welcome] = owner_dms(ws)
    assert welcome["text"].startswith(said)
    assert ws.command(OWNER, f"hold {ref} waiting for the data contract").status == 200
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert "could not post the card" in welcome["text"]
    assert welcome["text"].startswith(said)


def test_the_warning_keeps_the_cards_buttons_current_until_the_card_is_posted(workspace: Workspace) -> None:
    """A redraw that still cannot post the card redraws the warning with it: an initiative put on
    hold offers no Submit for review in the DM either, and gets it back once resumed."""
    ws = workspace
    registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    assert ws.command(OWNER, f"hold {ref} waiting for the data contract").status == 200
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert welcome["text"].startswith(f"You registered *Spare-parts demand forecast* as {ref}.")
    assert "could not post the card" in welcome["text"]
    assert has_button(welcome, ids.ACTION_OPEN_QUESTIONNAIRE)
    assert not has_button(welcome, ids.ACTION_SUBMIT_REVIEW)
    assert ws.command(OWNER, f"resume {ref}").status == 200
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert has_button(welcome, ids.ACTION_SUBMIT_REVIEW)


def test_a_warning_of_its_own_says_where_the_card_is_once_it_is_posted(workspace: Workspace) -> None:
    ws = workspace
    registry = registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    notifier = SlackNotifier(
        ws.services, ws.api.web_client(retry_handlers=[]), MessageRefs(ws.services.database)
    )
    notifier(SimpleNamespace(kind="answers.recorded", payload={"ref": ref}))  # before the registration
    [told] = owner_dms(ws)
    assert told["text"].startswith(":warning:")
    assert registry.members is not None
    registry.members.add(ws.api.state.bot_user_id)
    notifier(SimpleNamespace(kind="answers.recorded", payload={"ref": ref}))
    [card] = ws.messages_in(registry.id)
    [told, *_] = owner_dms(ws)
    assert told["text"].startswith(
        f":white_check_mark: The card of {ref} is posted now in <#{registry.id}>: "
    )
    assert f"/archives/{registry.id}/p{card['ts'].replace('.', '')}" in told["text"]  # the card's permalink
    assert [block["type"] for block in told["blocks"]] == ["section"]  # no buttons left


def test_an_archived_or_missing_registry_channel_is_named_with_its_fix(workspace: Workspace) -> None:
    ws = workspace
    ws.api.faults.fail("chat.postMessage", "is_archived")  # the emulator has no archived channels
    register_low_risk(ws, OWNER, SPONSOR, name="Archived")
    ws.deliver()
    ws.services.settings.registry_channel = "C0NOSUCH1"
    register_low_risk(ws, OWNER, SPONSOR, name="Missing")
    ws.deliver()

    archived, missing = warnings_in(owner_dms(ws))
    assert f"in <#{ws.registry}>: the channel is archived" in archived["text"]
    assert "unarchive" in archived["text"]
    assert "in `C0NOSUCH1`: Slack cannot find it" in missing["text"]
    assert "SHEPHERD_REGISTRY_CHANNEL" in missing["text"] and "shepherd doctor" in missing["text"]


@pytest.mark.parametrize(
    "refusal",
    ["restricted_action_read_only_channel", "restricted_action_thread_only_channel", "restricted_action"],
)
def test_a_registry_channel_where_shepherd_may_not_post_is_told_to_the_owner_in_the_welcome(
    workspace: Workspace, refusal: str
) -> None:
    """A registry channel whose posting permissions leave Shepherd out (read-only, threads only,
    a workspace preference): the welcome goes out at once and says so, as for a channel
    Shepherd is not in, instead of the registration being retried until given up, unannounced."""
    ws = workspace
    ws.api.faults.fail("chat.postMessage", refusal)  # the card's post
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert f"You registered *Spare-parts demand forecast* as {ref}" in welcome["text"]
    assert (
        f"could not post the card of {ref} in <#{ws.registry}>: Shepherd may not post there"
        in (welcome["text"])
    )
    assert "posting permissions" in welcome["text"]
    assert has_button(welcome, ids.ACTION_OPEN_QUESTIONNAIRE)
    assert outbox_counts(ws.services.database) == {"delivered": 1}


def test_a_redraw_delivered_before_the_registration_tells_the_owner_and_the_welcome_does_not_repeat_it(
    workspace: Workspace,
) -> None:
    # At-least-once delivery in parallel workers can redraw a card before its registration is
    # delivered (or for an initiative registered before owners were told): the redraw tells.
    ws = workspace
    registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    notifier = SlackNotifier(
        ws.services, ws.api.web_client(retry_handlers=[]), MessageRefs(ws.services.database)
    )
    for _ in range(2):
        notifier(SimpleNamespace(kind="answers.recorded", payload={"ref": ref}))
    [told] = owner_dms(ws)
    assert told["text"].startswith(":warning: Shepherd could not post the card of")
    assert has_button(told, ids.ACTION_OPEN_QUESTIONNAIRE)

    ws.deliver()  # the registration
    told_again, welcome = owner_dms(ws)
    assert (told_again["ts"], told_again["text"]) == (told["ts"], told["text"])  # redrawn, not repeated
    assert welcome["text"].startswith("You registered") and "could not post" not in welcome["text"]


def test_a_card_posted_at_once_gets_no_warning(workspace: Workspace) -> None:
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    assert len(ws.messages_in(ws.registry)) == 1
    [welcome] = owner_dms(ws)
    assert ref in welcome["text"] and not warnings_in([welcome])


def test_a_warning_that_slack_would_not_update_when_the_card_was_posted_is_updated_at_the_next_redraw(
    workspace: Workspace,
) -> None:
    ws = workspace
    registry = registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    notifier = SlackNotifier(
        ws.services, ws.api.web_client(retry_handlers=[]), MessageRefs(ws.services.database)
    )
    redraw = SimpleNamespace(kind="answers.recorded", payload={"ref": ref})
    notifier(redraw)  # the warning
    assert registry.members is not None
    registry.members.add(ws.api.state.bot_user_id)
    ws.api.faults.fail("chat.update", "internal_error")  # once: the warning's update
    with pytest.raises(Unavailable):
        notifier(redraw)  # Slack's own error: the outbox waits it out and tries again later
    assert len(ws.messages_in(registry.id)) == 1  # the card is posted, remembered, never posted twice
    assert owner_dms(ws)[0]["text"].startswith(":warning:")

    notifier(redraw)
    [told] = owner_dms(ws)
    assert told["text"].startswith(f":white_check_mark: The card of {ref} is posted now")
    updates = len(ws.api.calls("chat.update"))
    notifier(redraw)  # said once: later redraws update the card alone
    assert len(ws.api.calls("chat.update")) == updates + 1
    assert len(ws.messages_in(registry.id)) == 1


def test_the_welcome_of_a_retired_initiative_no_longer_points_to_a_next_gate(workspace: Workspace) -> None:
    ws = workspace
    registry_without_the_bot(ws)
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert "\nNext: answer the *" in welcome["text"]
    assert ws.command(OWNER, f"retire {ref} the supplier changed the data contract").status == 200
    ws.deliver()
    [welcome] = owner_dms(ws)
    assert welcome["text"].startswith(
        f"You registered *Spare-parts demand forecast* as {ref}.\nAsk me anytime"
    )
    assert "could not post the card" in welcome["text"]


def delete_the_card(ws: Workspace) -> tuple[str, dict[str, Any]]:
    """Delete the one card in the registry channel, as someone (or a retention policy) can in
    Slack; returns the channel's id and the deleted card."""
    registry = ws.api.state.resolve_channel(ws.registry).id
    [deleted] = ws.messages_in(registry)
    with ws.api.state.lock:
        del ws.api.state.messages[registry][deleted["ts"]]
    return registry, deleted


def test_a_card_deleted_in_slack_is_posted_again_and_its_owner_told_where(workspace: Workspace) -> None:
    """Someone (or a retention policy) deleted the card: the next change posts it again in the
    registry channel and tells the owner where, instead of every redraw being refused with
    message_not_found and the initiative left without its card, nobody told."""
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    registry, deleted = delete_the_card(ws)
    assert ws.command(OWNER, f"hold {ref} waiting for the data contract").status == 200
    ws.deliver()
    [card] = ws.messages_in(registry)
    assert ref in str(card["blocks"]) and card["ts"] != deleted["ts"]
    assert has_button(card, ids.ACTION_OPEN_QUESTIONNAIRE)
    [told] = [m for m in owner_dms(ws) if "deleted" in m.get("text", "")]
    assert (
        ref in told["text"]
        and f"<#{registry}>" in told["text"]
        and card["ts"].replace(".", "") in told["text"]
    )
    # Later changes update the card posted again: no third card, no second notice.
    assert ws.command(OWNER, f"resume {ref}").status == 200
    ws.deliver()
    assert [m["ts"] for m in ws.messages_in(registry)] == [card["ts"]]
    assert len([m for m in owner_dms(ws) if "deleted" in m.get("text", "")]) == 1
    assert outbox_counts(ws.services.database).get("dead", 0) == 0


def test_a_card_deleted_before_its_review_opened_gets_the_request_in_the_thread_of_the_new_card(
    workspace: Workspace,
) -> None:
    """The card is deleted in Slack; its owner submits it for review from App Home. The request
    (with its buttons) belongs in the thread of the card posted again, where the decision notes
    go too, not only in the deleted card's thread, where nobody reads it any more."""
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN", ws.clock()
    )
    ws.deliver()
    registry, deleted = delete_the_card(ws)
    usecases.submit(ws.services.pipeline, ws.services.uow(), ref, OWNER, ws.clock())
    ws.deliver()
    [card] = ws.messages_in(registry)
    assert card["ts"] != deleted["ts"]
    [request] = [m for m in ws.api.state.thread(registry, card["ts"]) if has_button(m, ids.ACTION_APPROVE)]
    assert ref in str(request["blocks"])

    # Approved from there: the request in the thread shows the outcome, its buttons gone.
    assert ws.click(SPONSOR, request, registry, ids.ACTION_APPROVE).status == 200
    ws.inbox.drain()
    ws.deliver()
    replies = ws.api.state.thread(registry, card["ts"])
    assert not [m for m in replies if has_button(m, ids.ACTION_APPROVE)]
    assert outbox_counts(ws.services.database).get("dead", 0) == 0


def test_a_card_deleted_in_slack_and_posted_again_on_a_retry_still_tells_its_owner(
    workspace: Workspace,
) -> None:
    """The redraw that found the card deleted could not post it again (Slack failed): the retry
    that posts it must still tell the owner where it is, not post it silently because the
    deleted card was already forgotten."""
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    ws.deliver()
    registry, deleted = delete_the_card(ws)
    assert ws.command(OWNER, f"hold {ref} waiting for the data contract").status == 200
    ws.api.faults.server_error("chat.postMessage", times=None)
    assert ws.deliver() == 0
    ws.api.faults.clear()
    ws.clock.advance(minutes=20)
    ws.deliver()
    [card] = ws.messages_in(registry)
    assert card["ts"] != deleted["ts"]
    [told] = [m for m in owner_dms(ws) if "deleted" in m.get("text", "")]
    assert card["ts"].replace(".", "") in told["text"]
    assert outbox_counts(ws.services.database).get("dead", 0) == 0
