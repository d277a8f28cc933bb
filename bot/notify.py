"""Deliver outbox messages to Slack: cards, review requests, decisions, stage changes.

The outbox worker calls ``SlackNotifier`` once per message and retries with backoff when it
raises, so a Slack outage delays notifications but loses none: a failure that says Slack is
unavailable (5xx, 429, unreachable) is raised as ``storage.Unavailable``, which the outbox waits
out for up to a day without using up the message's attempts. Delivery is at-least-once;
every step here is safe to repeat: new posts are remembered by (target, kind) and skipped when
already made, private messages likewise by their outbox message (``_ephemeral``), and updates
(``chat.update``) converge on the same result. What Slack refuses for
good (``_PERMANENT``: a channel Shepherd is not in, a person it cannot DM) is logged and skipped,
so it holds up neither the other recipients nor the rest of the delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks, ids
from bot.blocks import operations as operations_blocks
from bot.blocks.greeting import greeting
from bot.blocks.labels import role_label, stage_label
from bot.blocks.messages import UnmetCriteria, card_not_posted, card_posted_after_all
from bot.blocks.offers import next_gate_offer
from bot.blocks.text import escape, mention, usergroup
from bot.bootstrap import Services
from bot.home import HOME_KIND, home_target, publish_home
from bot.installations import REFUSED_TOKEN, NotInstalled, Workspace
from bot.slack_client import unavailable
from bot.system_card_post import offer_system_card
from gates import operations, usecases
from gates.errors import GateError
from gates.lifecycle import Initiative, Review, Status
from gates.schedule import NO_PLAN, moment_key, operations_review_due, operations_review_overdue
from storage.outbox import OutboxMessage
from storage.slack_messages import MessageRefs, PostInProgress, Reservation, outbox_target

logger = logging.getLogger("shepherd.notify")

# Slack errors that will not get better by retrying: give up on that one step, keep the rest.
_PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "user_disabled",  # a deactivated account: conversations.open refuses its DM
    "user_not_visible",
    "user_not_in_channel",  # an ephemeral to someone outside the channel: sent by DM instead
    "cannot_dm_bot",
    "message_not_found",
    "cant_update_message",
    "invalid_blocks",
    "msg_too_long",
    # The channel's posting permissions leave Shepherd out: read-only, threads only, replies
    # not allowed or locked, a workspace preference; fixed by an admin, not by retrying.
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "restricted_action_thread_locked",
    "posting_to_general_channel_denied",
}


# The outbox kind of a private message to one person (``bot.listeners.common.queue_private_message``).
EPHEMERAL = "ephemeral"

# The DM telling an initiative's owner its card could not be posted (kind, under its target).
# Remembered like any post, so it is sent once however many redraws fail after it.
CARD_NOT_POSTED = "card-not-posted"
# That DM once it says where the card is, after all (``SlackNotifier._say_card_posted``).
CARD_POSTED_AFTER_ALL = "card-posted-after-all"
# Where a card deleted in Slack was (kind, under its target), kept from when its redraw found it
# deleted until the card posted again is told to the owner and carries an open review's request
# in its thread (``SlackNotifier._after_repost``): a retry after Slack failed in between posts
# the card without knowing any more that it replaces one.
CARD_DELETED = "card-deleted"


class UnpostedCard(NamedTuple):
    """A card Slack refused for good in the registry channel."""

    channel: str
    error: str  # Slack's error code: not_in_channel, is_archived, channel_not_found...
    card: dict[str, Any]  # the message that was refused, buttons included


def initiative_target(ref: str) -> str:
    return f"initiative:{ref}"


def review_target(review_id: int | None) -> str:
    return f"review:{review_id}"


# How many times a card update is followed by another when the initiative changed meanwhile
# (``SlackNotifier._catch_up``).
CARD_CATCH_UPS = 3

# The request in the card's thread (and, after a card deleted in Slack was posted again,
# ``thread-request:<the new card's ts>`` in its thread).
THREAD_REQUEST = "thread-request"

# Outbox kinds whose delivery only redraws the initiative's card from its current state.
CARD_REDRAWS = frozenset({"answers.recorded", "initiative.held", "initiative.resumed"})


def supersedes(later: OutboxMessage, earlier: OutboxMessage) -> bool:
    """Whether delivering outbox message ``later`` makes ``earlier`` pointless: both only redraw
    the same initiative's card (``OutboxWorker(supersedes=...)``)."""
    return (
        earlier.kind in CARD_REDRAWS
        and later.kind in CARD_REDRAWS
        and later.payload.get("ref") == earlier.payload.get("ref")
    )


class SlackNotifier:
    """The outbox sender for Slack. ``__call__(message)`` raises to ask for a retry."""

    def __init__(
        self,
        services: Services,
        client: WebClient,
        messages: MessageRefs,
        elsewhere: Callable[[Workspace], AbstractContextManager[WebClient]] | None = None,
    ) -> None:
        """``elsewhere``: a client of another workspace Shepherd is installed in (OAuth,
        ``InstalledClients.sending``), for messages to its people; None: one workspace only."""
        self._services = services
        self._client = client
        self._elsewhere = elsewhere
        self._messages = messages
        self._handlers = {
            "initiative.registered": self._registered,
            "review.requested": self._review_requested,
            "roles.changed": self._roles_changed,
            "decision.recorded": self._decision_recorded,
            "stage.advanced": self._stage_advanced,
            "review.withdrawn": self._review_closed,
            "initiative.retired": self._retired,
            **dict.fromkeys(CARD_REDRAWS, self._refresh_card_only),
            "greeting": self._greeting,
            "timebox.extended": self._time_box_extended,
            "schedule.stalled": self._stalled,
            "schedule.review_reminder": self._review_reminder,
            "schedule.review_escalation": self._review_escalation,
            "schedule.operations_review_due": self._operations_review,
            "schedule.operations_review_overdue": self._operations_review,
            "operations.reviewed": self._operations_reviewed,
        }

    def __call__(self, message: Any) -> None:
        """Deliver ``message``.

        Raises:
            Unavailable: Slack is down, rate limiting or unreachable (``slack_client.unavailable``).
        """
        handler = self._handlers.get(message.kind)
        if handler is None and message.kind != EPHEMERAL:
            logger.warning("no Slack delivery for outbox message kind %r; skipped", message.kind)
            return
        try:
            if handler is not None:
                handler(dict(message.payload))
            else:  # a private message is about nothing but itself: kept by its outbox message
                self._ephemeral(message)
        except Exception as error:
            outage = unavailable(error)
            if outage is None:
                raise
            raise outage from error

    # -- handlers -----------------------------------------------------------------------------

    def _registered(self, payload: Mapping[str, Any]) -> None:
        initiative = self._initiative(payload["ref"])
        target = initiative_target(initiative.ref)
        # The owner hears about a card that could not be posted in this welcome, not in a DM
        # of its own just before it.
        unposted = self.refresh_card(initiative, tell_owner=False)
        card = self._messages.find(target, "card")
        link = self._permalink(card)
        welcome = self._welcome(initiative, link, payload.get("actor"))
        # The owner and the registrar are people of the workspace the form was sent from, which
        # only its own token reaches; the card above is the registry workspace's.
        with self._speaking_in(Workspace.of(payload.get("registered_from") or {})) as reachable:
            if not reachable:
                return
            self._confirm_registration(initiative, link, payload.get("actor"))
            if unposted is None or self._messages.find(target, CARD_NOT_POSTED) is not None:
                self._dm_once(target, "welcome", initiative.owner_id, text=welcome)
                return
            message = card_not_posted(initiative, *unposted, intro=welcome)
            self._dm_once(target, "welcome", initiative.owner_id, **message)
        # The welcome told it: later redraws that fail the same way must not tell it again.
        told = self._messages.find(target, "welcome")
        if told is not None:
            self._messages.remember(target, CARD_NOT_POSTED, *told, self._services.now())

    @contextmanager
    def _speaking_in(self, workspace: Workspace | None) -> Iterator[bool]:
        """Send with ``workspace``'s token inside the block (None, or a single workspace: this
        delivery's own). Yields False when Shepherd is no longer installed there (or Slack
        refuses its token midway, which ends the block): nobody there can be reached, and the
        rest of the delivery, in the registry workspace, is not held up for them."""
        if workspace is None or self._elsewhere is None:
            yield True
            return
        own, there = self._client, ExitStack()
        try:
            self._client = there.enter_context(self._elsewhere(workspace))
        except NotInstalled as error:
            logger.warning("nobody in %s can be told: %s", workspace, error)
            yield False
            return
        try:
            with there:
                yield True
        except NotInstalled as error:
            logger.warning("nobody in %s can be told: %s", workspace, error)
        finally:
            self._client = own

    def _confirm_registration(self, initiative: Initiative, link: str | None, actor: str | None) -> None:
        """Tell whoever registered ``initiative`` on its owner's behalf that it went through: they
        saw the form close and nothing else, while the welcome went to the owner."""
        if not actor or actor == initiative.owner_id:
            return  # the owner's welcome is their confirmation
        where = f" Its card is here: {link}" if link else ""
        text = (
            f"You registered *{escape(initiative.name)}* as {initiative.ref} for "
            f"{mention(initiative.owner_id)}, who owns it now and was sent a welcome.{where}\n"
            f"`{ids.COMMAND} status {initiative.ref}` shows where it stands."
        )
        self._dm_once(initiative_target(initiative.ref), "registered-by", actor, text=text)

    def _welcome(self, initiative: Initiative, link: str | None, registered_by: str | None = None) -> str:
        """The owner's welcome DM (mrkdwn): what they registered, where its card is, what next.

        ``registered_by``: who registered it (the registration's actor); read from the audit log
        when not given (the welcome redrawn with the card).
        """
        if registered_by is None:
            registered_by = self._registrar(initiative.ref)
        next_step = self._next_step(initiative)
        where = f" Its card is here: {link}" if link else ""
        # Someone may register an initiative on its owner's behalf: the owner did not register it.
        who = (
            f"{mention(registered_by)} registered"
            if registered_by and registered_by != initiative.owner_id
            else "You registered"
        )
        named = " and named you its owner" if who != "You registered" else ""
        lines = [
            f"{who} *{escape(initiative.name)}* as {initiative.ref}{named}.{where}",
            next_step,  # none past the last gate, once retired or in review (redrawn with the card)
            "Ask me anytime: _what do we need for the next gate?_",
        ]
        return "\n".join(line for line in lines if line)

    def _next_step(self, initiative: Initiative) -> str:
        """The welcome's "Next:" line, from what the intake form answered: none past the last
        gate, once retired, or while a review is open (the welcome is redrawn with the card)."""
        gate = usecases.next_gate(self._services.pipeline, initiative)
        if gate is None or initiative.status is Status.RETIRED:
            return ""
        with self._services.read_uow() as uow:
            if uow.reviews.open_for(initiative.ref) is not None:
                return ""
        title = escape(gate.title)
        report = self._readiness(initiative, gate.id) if initiative.status is Status.ACTIVE else None
        if report is not None and report.ready:
            # Everything was answered in the registration form: answering it again is not next.
            return f"Next: the *{title}* questions are all answered: submit it for review."
        left = len(report.missing) if report is not None else 0
        count = f" ({left} required question{'s' if left != 1 else ''} left)" if left else ""
        return f"Next: answer the *{title}* questionnaire{count}, then submit it for review."

    def _registrar(self, ref: str) -> str | None:
        """Who registered the initiative, as the audit log records it."""
        with self._services.read_uow() as uow:
            entries = uow.audit.timeline(ref)
        return next((e.actor_id for e in entries if e.action == "initiative.registered"), None)

    def _refresh_card_only(self, payload: Mapping[str, Any]) -> None:
        self.refresh_card(self._initiative(payload["ref"]))

    def _review_requested(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        if not review.is_open:
            self._update_review_messages(review, initiative)
            return
        unread: dict[str, tuple[str, str]] = {}
        approvers, message = self._request(review, initiative, unread)
        card = self._messages.find(initiative_target(initiative.ref), "card")
        if card is not None:
            self._post_once(review_target(review.id), THREAD_REQUEST, card[0], thread_ts=card[1], **message)
            offer_system_card(self._services, self._client, self._messages, review, initiative, card)
        self._ask(review, approvers, message)
        if unread:
            self._tell_groups_unread(review, initiative, card, unread)
        self.refresh_card(initiative)

    def _tell_groups_unread(
        self,
        review: Review,
        initiative: Initiative,
        card: tuple[str, str] | None,
        unread: Mapping[str, tuple[str, str]],
    ) -> None:
        """Say in the card's thread, and to whoever submitted the review and the owner, once each,
        which roles' user groups Slack would not list (``_holders``): their members were not asked,
        and only a Slack admin can fix it, so nobody must wait on a request that never went out."""
        pipeline = self._services.pipeline
        groups = "; ".join(
            f"the *{escape(role_label(pipeline, role))}* role's group {usergroup(group)} (Slack said `{escape(code)}`)"
            for role, (group, code) in unread.items()
        )
        one = len(unread) == 1
        text = (
            f"{initiative.ref}: Shepherd could not read who is in {groups}, so "
            f"{'its members were' if one else 'their members were'} not asked to review it; only "
            f"those who hold {'the role' if one else 'those roles'} in Shepherd itself were. A Slack "
            "workspace admin must add the `usergroups:read` scope to the Shepherd app and reinstall "
            f"it; then withdraw the review and submit it again to ask {'the group' if one else 'the groups'}' members."
        )
        target = review_target(review.id)
        if card is not None:
            self._post_once(target, "groups-unread", card[0], thread_ts=card[1], text=text)
        for user in dict.fromkeys((review.submitted_by, initiative.owner_id)):
            self._dm_once(target, f"groups-unread:{user}", user, text=text)

    def _roles_changed(self, payload: Mapping[str, Any]) -> None:
        """A role the review waits on changed hands (``usecases.set_role_holders``): its messages
        show who can decide now (a former holder's buttons go), those not asked yet are asked,
        and the former holders' App Home drops it."""
        review, initiative = self._review(payload["review"])
        self._update_review_messages(review, initiative)
        if review.is_open:
            self._ask(review, *self._request(review, initiative))
        self._refresh_homes(list(payload.get("removed") or []))

    def _request(
        self, review: Review, initiative: Initiative, unread: dict[str, tuple[str, str]] | None = None
    ) -> tuple[list[str], dict[str, Any]]:
        """Who can decide ``review`` now, and the request that asks them; ``unread`` as for
        ``_holders``."""
        approvers = self.approvers_for(review, initiative, unread)
        report = self._unmet_at_submission(review, initiative)
        return approvers, blocks.review_request(
            self._services.pipeline, initiative, review, report, approvers
        )

    def _ask(self, review: Review, approvers: list[str], message: Mapping[str, Any]) -> None:
        """DM the request to each of ``approvers`` not asked yet (kept per review and person)."""
        for user in approvers:  # one Slack cannot DM (gone, deactivated) is skipped, not waited for
            self._dm_approver(review, f"request:{user}", user, message)

    def _dm_approver(self, review: Review, kind: str, user: str, message: Mapping[str, Any]) -> None:
        """``_dm_once`` to an approver of ``review``; if their account is deactivated, whoever
        submitted it and the owner are told (once per approver), instead of waiting on someone
        who will never see the request, its reminders, or a button to click."""
        if self._dm_once(review_target(review.id), kind, user, **message) != "user_disabled":
            return
        initiative = self._initiative(review.initiative_ref)
        text = (
            f"{initiative.ref}: Shepherd could not ask <@{user}> to decide on the review of "
            f"*{escape(initiative.name)}*: Slack says their account is deactivated, so they cannot "
            "decide. If the review needs them, ask a role admin to give their role to someone else."
        )
        for person in dict.fromkeys((review.submitted_by, initiative.owner_id)):
            if person != user:
                self._dm_once(review_target(review.id), f"unreachable:{user}:{person}", person, text=text)

    def _decision_recorded(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        self._update_review_messages(review, initiative)
        decision = review.decision_by(payload["approver"])
        if decision is None:
            return
        pipeline = self._services.pipeline
        gate = usecases.next_gate(pipeline, initiative)
        advanced = review.to_stage == initiative.stage and review.status.value == "approved"
        note = blocks.decision_notice(
            pipeline, initiative, review, decision, advanced, gate.title if gate else None
        )
        target = review_target(review.id)
        card = self._messages.find(initiative_target(initiative.ref), "card")
        if card is not None:
            self._post_once(target, f"note:{decision.approver_id}", card[0], thread_ts=card[1], text=note)
        if not review.is_open:
            self._tell_outcome(target, review, initiative, note)
        self.refresh_card(initiative)

    def _tell_outcome(self, target: str, review: Review, initiative: Initiative, note: str) -> None:
        """DM a closed review's outcome to whoever submitted it and to the owner, once each: when
        the sponsor or a steward submitted it, the owner still has the changes to make.
        The submitter's DM keeps its original kind, so one sent before owners were told too is
        not sent again."""
        self._dm_once(target, "outcome-dm", review.submitted_by, text=note)
        if initiative.owner_id != review.submitted_by:
            self._dm_once(target, f"outcome-dm:{initiative.owner_id}", initiative.owner_id, text=note)

    def _stage_advanced(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        self.refresh_card(initiative)
        self._close_stalled_notices(initiative, review.from_stage)
        gate = usecases.next_gate(self._services.pipeline, initiative)
        card = self._messages.find(initiative_target(initiative.ref), "card")
        if gate is None or card is None or initiative.status is Status.RETIRED:
            return
        text = (
            f"{initiative.ref} is now in the *{escape(stage_label(initiative.stage))}* stage. "
            f"Next: the *{escape(gate.title)}* questionnaire."
        )
        offer = next_gate_offer(initiative, gate.title, text)
        self._post_once(review_target(review.id), "next-gate", card[0], thread_ts=card[1], **offer)

    def _review_closed(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        self._update_review_messages(review, initiative)
        self.refresh_card(initiative)

    def _retired(self, payload: Mapping[str, Any]) -> None:
        initiative = self._initiative(payload["ref"])
        with self._services.read_uow() as uow:
            reviews = list(uow.reviews.for_initiative(initiative.ref))
        for review in reviews:
            self._update_review_messages(review, initiative)
            self._withdraw_offer(review, initiative)
        self._close_stalled_notices(initiative, initiative.stage)
        self.refresh_card(initiative)

    def _withdraw_offer(self, review: Review, initiative: Initiative) -> None:
        """Redraw the next gate's offer that ``review``'s approval posted (``_stage_advanced``), if
        any, without its button: a retired initiative's answers can no longer be saved."""
        offer = self._messages.find(review_target(review.id), "next-gate")
        gate = self._services.pipeline.model.gate_from(review.to_stage)
        if offer is None or gate is None:
            return
        text = (
            f"{initiative.ref} reached the *{escape(stage_label(review.to_stage))}* stage, then was retired: "
            f"the *{escape(gate.title)}* questionnaire can no longer be answered."
        )
        self._update(offer, next_gate_offer(initiative, gate.title, text, offered=False))

    def _close_stalled_notices(self, initiative: Initiative, stage: str) -> None:
        """Redraw the owner's stalled notices about ``stage`` (``_stalled``) without their buttons,
        now that the stage is over: Submit would submit the next stage's gate. Their kinds end
        with the stage (older ones, ``stalled:STAGE:DAY``, begin with it); one cut short for a
        very long stage id is left as it is."""
        for kind, channel, ts in self._messages.all_for(initiative_target(initiative.ref)):
            if kind.startswith("stalled:") and (
                kind.endswith(f":{stage}") or kind.startswith(f"stalled:{stage}:")
            ):
                self._update((channel, ts), operations_blocks.stalled_notice_closed(initiative, stage))

    def _greeting(self, payload: Mapping[str, Any]) -> None:
        user = payload["user"]
        if payload.get("channel"):
            self._post_once(f"user:{user}", "greeting", payload["channel"], **greeting())
        else:
            self._dm_once(f"user:{user}", "greeting", user, **greeting())

    def _ephemeral(self, message: OutboxMessage) -> None:
        """Tell one person something privately (``queue_private_message``), at most once.

        Reserved under its outbox message before it is sent, as ``_post`` reserves a post: a
        worker that stalls past its lease after sending it leaves it filled in (or reserved, if
        it is still sending), so the delivery that takes the message over does not send it again.

        A reservation left stale (its worker died between reserving and remembering) is not
        taken over, unlike ``_post``'s: nothing tells whether that worker sent it, and a private
        message is a passing explanation (why a click was refused) that a person can get again
        by trying again, whereas the same refusal shown twice reads as two refusals. So it is
        never sent twice, and in that rare case perhaps not at all (logged).

        Raises:
            PostInProgress: another delivery is sending it right now; this one is retried.
        """
        target, at = outbox_target(message.id), self._services.now()
        reservation = self._messages.reserve(target, EPHEMERAL, at, take_over=False)
        if reservation is Reservation.POSTED:
            return
        if reservation is Reservation.BUSY:
            raise PostInProgress(f"private message {message.id} is being sent by another delivery")
        if reservation is Reservation.ABANDONED:
            logger.warning(
                "private message %s was being sent by a delivery that stopped before saying it was "
                "sent; not sent again, so it may not have reached %s",
                message.id,
                message.payload.get("user"),
            )
            return
        try:
            sent = self._send_privately(message.payload)
        except BaseException:
            self._messages.release(target, EPHEMERAL, at)  # not sent: the next delivery may send it
            raise
        if sent is None:  # Slack will never let us reach this person: nothing to remember
            self._messages.release(target, EPHEMERAL, at)
            return
        self._messages.fill(target, EPHEMERAL, *sent, at)  # never taken over: always ours

    def _send_privately(self, payload: Mapping[str, Any]) -> tuple[str, str] | None:
        """Show ``text`` to ``user`` in ``channel`` when Slack allows, else by DM; where it went.
        None when Slack refuses the DM for good (the person left the workspace, was deactivated,
        is a bot): retrying would only use up the message's attempts and leave it dead."""
        channel, user, text = payload.get("channel"), payload["user"], payload["text"]
        try:
            if channel:
                response = self._client.chat_postEphemeral(channel=channel, user=user, text=text)
                return str(channel), str(response.get("message_ts") or "")
        except SlackApiError as error:
            if _error_code(error) not in _PERMANENT:
                raise
        try:
            response = self._client.chat_postMessage(channel=self._dm_channel(user), text=text)
        except SlackApiError as error:
            code = _error_code(error)
            if code not in _PERMANENT:
                raise
            logger.warning("could not tell %s privately (neither in the channel nor by DM): %s", user, code)
            return None
        return str(response["channel"]), str(response["ts"])

    # -- scheduled events (bot/scheduler.py) ----------------------------------------------------
    # Each re-reads the current state first: between the tick and the delivery the initiative may
    # have moved on, and a stale nudge is worse than none.

    def _stalled(self, payload: Mapping[str, Any]) -> None:
        initiative = self._initiative(payload["ref"])
        self.refresh_card(initiative)
        if initiative.status is not Status.ACTIVE or initiative.stage != payload["stage"]:
            return
        if not usecases.is_stalled(self._services.pipeline, initiative, self._services.now()):
            return
        ended = usecases.time_box_ends(self._services.pipeline, initiative)
        assert ended is not None
        target = initiative_target(initiative.ref)
        # Before notices were kept by the exact end, they were kept by its day: one posted under
        # that kind after this end was about this end (an earlier end of the same day, extended
        # to its evening, was told before this one was set).
        told = self._messages.posted_at(target, f"stalled:{initiative.stage}:{ended.date().isoformat()}")
        if told is not None and told > ended:
            return
        message = operations_blocks.stalled_notice(self._services.pipeline, initiative, ended)
        # The stage goes last, so that a long stage name cannot push the end out of the 64
        # characters a kind keeps (``slack_messages.fitted``).
        kind = f"stalled:{moment_key(ended)}:{initiative.stage}"
        self._dm_once(target, kind, initiative.owner_id, **message)

    def _time_box_extended(self, payload: Mapping[str, Any]) -> None:
        initiative = self._initiative(payload["ref"])
        self.refresh_card(initiative)
        if initiative.extended_until is None:
            return
        day = operations.picked_day(initiative.extended_until).isoformat()
        self._dm_once(
            initiative_target(initiative.ref),
            f"extended:{initiative.stage}:{day}",
            str(payload.get("actor") or initiative.owner_id),
            **operations_blocks.extended_notice(initiative, initiative.extended_until),
        )

    def _review_reminder(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        if not review.is_open:
            return
        message = operations_blocks.reminder_notice(
            self._services.pipeline, initiative, review, int(payload.get("days_waiting", 0))
        )
        for user in self.approvers_for(review, initiative):
            # One DM per reminder: the moment it fell due names it (its number repeats once the
            # interval changes); one queued by an older Shepherd says only its number.
            kind = f"reminder:{payload.get('due', payload['number'])}:{user}"
            self._dm_approver(review, kind, user, message)

    def _review_escalation(self, payload: Mapping[str, Any]) -> None:
        review, initiative = self._review(payload["review"])
        if not review.is_open:
            return
        pipeline = self._services.pipeline
        # Everyone asked to decide, user-group members included, less who decided already.
        holders = self._holders(_roles(review))
        deciders = _deciders(review, holders)
        remaining = review.remaining()
        for role, contact in dict(payload.get("contacts") or {}).items():
            if role not in remaining:
                continue
            approvers = [user for user in deciders if user in holders.get(role, [])]
            message = operations_blocks.escalation_notice(
                pipeline, initiative, review, role, int(payload.get("days_waiting", 0)), approvers
            )
            self._dm_once(review_target(review.id), f"escalation:{role}", contact, **message)

    def _operations_review(self, payload: Mapping[str, Any]) -> None:
        initiative = self._initiative(payload["ref"])
        pipeline = self._services.pipeline
        if initiative.status is not Status.ACTIVE or initiative.stage != pipeline.model.operations_stage:
            return
        with self._services.read_uow() as uow:
            latest = uow.operations.latest_reviews().get(initiative.ref)
            named = operations.operations_owner(pipeline, uow, initiative.ref)
            plan = operations.review_plans(pipeline, uow, [initiative]).get(initiative.ref, NO_PLAN)
        due = operations_review_due(pipeline, initiative, latest, plan)
        if due is None or due.isoformat() != payload["due"]:
            return  # reviewed meanwhile: the next one has another due date
        overdue = operations_review_overdue(pipeline, initiative, latest, self._services.now(), plan)
        target, day = initiative_target(initiative.ref), due.date().isoformat()
        word = "overdue" if overdue else "due"
        notice = operations_blocks.operations_review_notice(initiative, due, overdue, to_owner=True)
        self._dm_once(target, f"opsreview-{word}:{day}", initiative.owner_id, **notice)
        if named is not None and named != initiative.owner_id:
            # The operations owner is accountable for the review: the same notice, kept apart.
            self._dm_once(target, f"opsreview-{word}:{day}:{named}", named, **notice)
        section = pipeline.model.operations
        role = pipeline.model.roles.get(section.role) if section and section.role else None
        if overdue and role is not None and role.escalation_contact:
            self._dm_once(
                target,
                f"opsreview-escalation:{day}",
                role.escalation_contact,
                **operations_blocks.operations_review_notice(initiative, due, overdue, to_owner=False),
            )
        self.refresh_card(initiative)

    def _operations_reviewed(self, payload: Mapping[str, Any]) -> None:
        """Redraw the card, and every notice about the due date the review answered (to the
        owner, the operations owner and the escalation contact) as done: its Start the review
        button would otherwise have whoever did not record it type the same review again."""
        initiative = self._initiative(payload["ref"])
        self.refresh_card(initiative)
        if not payload.get("due"):  # queued by an older Shepherd, which did not say
            return
        due = datetime.fromisoformat(payload["due"])
        next_due = datetime.fromisoformat(payload["next_due"])
        day = due.astimezone(UTC).date().isoformat()
        done = operations_blocks.operations_review_recorded(
            initiative, due, str(payload["reviewer"]), next_due
        )
        kinds = tuple(f"opsreview-{word}:{day}" for word in ("due", "overdue", "escalation"))
        for kind, channel, ts in self._messages.all_for(initiative_target(initiative.ref)):
            if kind.startswith(kinds):
                self._update((channel, ts), done)

    # -- building blocks ------------------------------------------------------------------------

    def refresh_card(self, initiative: Initiative, *, tell_owner: bool = True) -> UnpostedCard | None:
        """Post the initiative's card (first time) or update it in place.

        A card Slack refuses for good in the registry channel (Shepherd not in it, archived,
        gone) leaves the initiative without its home in Slack: the owner is told once by DM, with
        the card's buttons, unless ``tell_owner`` is false (the caller tells them). Every redraw
        tries the post again, so the card appears once the channel is fixed.

        Returns:
            What was refused when the card could not be posted in the registry channel for good,
            else None.
        """
        card = self._card(initiative)
        target = initiative_target(initiative.ref)
        known = self._messages.find_kinds(
            target, ("card", "welcome", CARD_NOT_POSTED, CARD_POSTED_AFTER_ALL, CARD_DELETED)
        )
        existing = known.get("card")
        if existing is not None and self._update(existing, card) == "message_not_found":
            # Deleted in Slack (by someone, or a retention policy): every update would be refused
            # for good and the initiative left without its card. Posted again below; where it was
            # is kept first, so that a retry after a failure in between still tells it.
            self._messages.remember(target, CARD_DELETED, *existing, self._services.now())
            known.setdefault(CARD_DELETED, existing)
            self._messages.forget(target, "card", *existing)
            logger.warning("the card of %s was deleted in Slack: posting it again", initiative.ref)
            existing = None
        if existing is not None:
            self._catch_up(initiative.ref, existing, card)
            told = known.get(CARD_NOT_POSTED)
            if told is not None and CARD_POSTED_AFTER_ALL not in known:
                # The redraw that posted the card could not say so (Slack failed, or the worker
                # stopped in between): this one does.
                self._say_card_posted(initiative, target, told, existing, told == known.get("welcome"))
            deleted = known.get(CARD_DELETED)
            if deleted is not None:  # the redraw that posted it again stopped before telling it
                self._after_repost(initiative, target, deleted)
            return None
        registry = self._services.settings.registry_channel
        if not registry:  # the card is the owner's DM: no other way to tell them it failed
            self._dm_once(target, "card", initiative.owner_id, **card)
            return None
        error = self._post_once(target, "card", registry, **card)
        told = known.get(CARD_NOT_POSTED)
        if error is None:
            deleted = known.get(CARD_DELETED)
            if deleted is not None:
                self._after_repost(initiative, target, deleted)
            if told is not None:
                posted = self._messages.find(target, "card")
                self._say_card_posted(initiative, target, told, posted, told == known.get("welcome"))
            return None
        # The owner's DM saying the card is missing carries the card's buttons: it is redrawn
        # with the card, so that none of them goes stale (no Submit once the review is open).
        # In the welcome, that DM keeps its welcome.
        if told is not None:
            intro = self._welcome(initiative, None) if told == known.get("welcome") else ""
            self._update(told, card_not_posted(initiative, registry, error, card, intro=intro))
        elif tell_owner:
            self._dm_once(
                target,
                CARD_NOT_POSTED,
                initiative.owner_id,
                **card_not_posted(initiative, registry, error, card),
            )
        return UnpostedCard(registry, error, card)

    def _card(self, initiative: Initiative) -> dict[str, Any]:
        """The initiative's card as of now (with ``initiative`` as given)."""
        pipeline = self._services.pipeline
        with self._services.read_uow() as uow:
            open_review = uow.reviews.open_for(initiative.ref)
        report = None
        if initiative.status is not Status.RETIRED and usecases.next_gate(pipeline, initiative) is not None:
            report = self._readiness(initiative, None)
        stalled = usecases.is_stalled(pipeline, initiative, self._services.now())
        return blocks.initiative_card(pipeline, initiative, report, open_review, stalled=stalled)

    def _catch_up(self, ref: str, where: tuple[str, str], drawn: Mapping[str, Any]) -> None:
        """Update the card at ``where`` again while the initiative, read anew after the update,
        no longer looks as ``drawn``. With several delivery workers, one drawing the card from
        what it read before an approval could update it after the one drawing it approved, and
        leave it stale until the next change; each update followed by a read that matches it
        leaves the last update to land showing the latest state. A few times at most: each
        mismatch is a change committed meanwhile, whose own redraw follows anyway."""
        for _ in range(CARD_CATCH_UPS):
            latest = self._card(self._initiative(ref))
            if latest == drawn or self._update(where, latest) is not None:
                return
            drawn = latest

    def _after_repost(self, initiative: Initiative, target: str, deleted: tuple[str, str]) -> None:
        """Once the card deleted at ``deleted`` is posted again: tell the owner where, and post
        an open review's request in the new card's thread; then forget the deleted card. Each
        step is done once, so a retry after an outage midway does only what is left."""
        self._say_card_reposted(initiative, target, deleted)
        request = self._open_request(initiative)  # may ask Slack who is in a user group
        if request is not None:
            self._ask_again_in_thread(target, *request)
        self._messages.forget(target, CARD_DELETED, *deleted)

    def _say_card_reposted(self, initiative: Initiative, target: str, deleted: tuple[str, str]) -> None:
        """Tell the owner, once per deleted card, that their card (``deleted``) was deleted in
        Slack and where it is posted again: links to the old one lead nowhere."""
        card = self._messages.find(target, "card")
        if card is None:
            return
        where = self._permalink(card) or f"<#{card[0]}>"
        text = (
            f"The card of {initiative.ref} (*{escape(initiative.name)}*) was deleted in <#{deleted[0]}>, "
            f"so Shepherd posted it again: {where}"
        )
        self._dm_once(target, f"card-reposted:{deleted[1]}", initiative.owner_id, text=text)

    def _open_request(self, initiative: Initiative) -> tuple[Review, dict[str, Any]] | None:
        """The initiative's open review and its request as ``_review_requested`` posts it, if open."""
        with self._services.read_uow() as uow:
            review = uow.reviews.open_for(initiative.ref)
        return None if review is None else (review, self._request(review, initiative)[1])

    def _ask_again_in_thread(self, target: str, review: Review, request: Mapping[str, Any]) -> None:
        """Post an open review's request, with its buttons, in the thread of the card posted
        again: the one posted at submission stays in the deleted card's thread, where nobody
        reads any more, while decision notes go to the new thread. Kept per card, so that
        ``_update_review_messages`` redraws it too."""
        card = self._messages.find(target, "card")
        if card is not None:
            kind = f"{THREAD_REQUEST}:{card[1]}"
            self._post_once(review_target(review.id), kind, card[0], thread_ts=card[1], **request)

    def _say_card_posted(
        self,
        initiative: Initiative,
        target: str,
        told: tuple[str, str],
        card: tuple[str, str] | None,
        in_welcome: bool,
    ) -> None:
        """Turn the owner's "could not post the card" DM (``told``; the welcome if
        ``in_welcome``) into where the card (``card``) is now, without the buttons the card
        carries from now on; once done, remembered as done."""
        link = self._permalink(card)
        intro = self._welcome(initiative, link) if in_welcome else ""
        channel = card[0] if card is not None else None
        self._update(told, card_posted_after_all(initiative, channel, None if intro else link, intro))
        self._messages.remember(target, CARD_POSTED_AFTER_ALL, *told, self._services.now())

    def approvers_for(
        self, review: Review, initiative: Initiative, unread: dict[str, tuple[str, str]] | None = None
    ) -> list[str]:
        """Everyone who can still decide (``_deciders``), in role order; ``unread`` as for
        ``_holders``."""
        return _deciders(review, self._holders(_roles(review), unread=unread))

    def _holders(
        self,
        roles: Iterable[str],
        *,
        groups_needed: bool = True,
        unread: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, list[str]]:
        """Per role of ``roles``: its holders, then the members of its Slack user group.

        A group Slack refuses to list for good (the app lost its usergroups:read scope) leaves its
        members out, and is added to ``unread`` (role -> group, Slack's error) for the caller to
        tell: no retry would list it, and the role's direct holders must still be asked. A Slack
        outage, or a token Slack refuses altogether, raises, so that the delivery is retried.

        ``groups_needed`` false: an outage too only leaves the group's members out, for a caller
        that merely refreshes what they see."""
        pipeline = self._services.pipeline
        with self._services.read_uow() as uow:
            holders = usecases.role_holders(pipeline, uow)
        people: dict[str, list[str]] = {}
        for role in roles:
            members = list(holders.get(role, []))
            group = pipeline.model.roles[role].slack_usergroup if role in pipeline.model.roles else None
            if group:
                try:
                    members += self._usergroup_members(group)
                except SlackApiError as error:
                    code = _error_code(error)
                    if not groups_needed:
                        logger.warning(
                            "user group %s not listed (%s): its members' App Home is not refreshed",
                            group,
                            code,
                        )
                    elif unavailable(error) is not None or code in REFUSED_TOKEN:
                        raise
                    else:
                        logger.warning(
                            "user group %s of role %s not listed (%s): its members are not asked",
                            group,
                            role,
                            code,
                        )
                        if unread is not None:
                            unread[role] = (group, code)
            people[role] = list(dict.fromkeys(members))
        return people

    def _update_review_messages(self, review: Review, initiative: Initiative) -> None:
        """Every message carrying buttons for this review shows its current state."""
        pipeline = self._services.pipeline
        # A closed review's messages show its outcome, the same for all: who holds its roles only
        # decides whose App Home is refreshed, so a user group Slack will not list (the app lost
        # its usergroups:read scope) must not keep the outcome from the thread and the DMs.
        holders = self._holders(_roles(review), groups_needed=review.is_open)
        # An open review shows what its request showed (``_review_requested``): the criteria
        # unmet at submission and who can still decide. A closed one shows only its outcome.
        report: UnmetCriteria | None = None
        approvers: list[str] = []
        if review.is_open:
            report, approvers = self._unmet_at_submission(review, initiative), _deciders(review, holders)
            message = blocks.review_progress(pipeline, initiative, review, report, approvers)
        else:
            message = blocks.review_outcome(pipeline, initiative, review)
        asked: list[str] = []
        for kind, channel, ts in self._messages.all_for(review_target(review.id)):
            # The request in the thread, each approver's request DM and each reminder DM. A DM
            # is its approver's own: once they can no longer decide (they did, or the approvals
            # their roles give are all in), it keeps no decision buttons.
            if kind == THREAD_REQUEST or kind.startswith(f"{THREAD_REQUEST}:"):  # one per card
                self._update((channel, ts), message)
            elif kind.startswith(("request:", "reminder:")):
                viewer = kind.rsplit(":", 1)[1]
                asked.append(viewer)
                own = blocks.review_progress(
                    pipeline,
                    initiative,
                    review,
                    report,
                    approvers,
                    viewer_id=viewer,
                    viewer_roles=_roles_of(viewer, holders),
                )
                self._update((channel, ts), own)  # a closed review's outcome, the same for all
        # Those it asked too: a group member's tab is refreshed even when the group was not listed.
        self._refresh_homes(list(dict.fromkeys(_everyone(holders) + asked)))

    def _refresh_homes(self, people: list[str]) -> None:
        """App Home lists approvals waiting, with their buttons: publish it again for ``people``
        (the holders of the review's roles) who have opened it, so that no stale button stays
        live there."""
        viewers = self._messages.pages((home_target(user) for user in people), HOME_KIND)
        for user in people:
            if home_target(user) not in viewers:
                continue
            try:
                publish_home(self._services, self._client, user)  # on the page they last saw
            except SlackApiError as error:  # the next time they open the tab shows it anyway
                logger.warning("App Home of %s not refreshed: %s", user, _error_code(error))

    # -- Slack calls ------------------------------------------------------------------------------

    def _post_once(self, target: str, kind: str, channel: str, **message: Any) -> str | None:
        """Post unless already posted; returns Slack's error when it refused for good (the caller
        decides whether someone must hear of it), None when posted now or before."""
        if self._messages.find(target, kind) is not None:
            return None
        return self._post(target, kind, channel, message)

    def _dm_once(self, target: str, kind: str, user: str, **message: Any) -> str | None:
        """``_post_once`` in ``user``'s DM. A person Slack will never let us DM (left the
        workspace, deactivated, a bot) is skipped with a warning and their error returned, so that
        they hold up neither the others asked in the same delivery nor the rest of it (the card's
        redraw). The DM is opened only when not posted yet, so a retry after an outage opens none
        of those already sent; a skipped person is not remembered (no refused post is), so a
        retry of the same delivery tries them again."""
        if self._messages.find(target, kind) is not None:
            return None
        try:
            channel = self._dm_channel(user)
        except SlackApiError as error:
            code = _error_code(error)
            if code not in _PERMANENT:
                raise  # a rate limit, an outage: the outbox tries the whole delivery again
            logger.warning("could not open a DM with %s to post %s for %s: %s", user, kind, target, code)
            return code
        return self._post(target, kind, channel, message)

    def _post(self, target: str, kind: str, channel: str, message: Mapping[str, Any]) -> str | None:
        """Post and remember it; Slack's error when it refused for good, as for ``_post_once``.

        Reserved first (``MessageRefs.reserve``), so that two deliveries about the same thing at
        once (two workers, or one whose lease ran out) post it once.

        Raises:
            PostInProgress: another delivery is posting it right now; this one is retried.
        """
        at = self._services.now()
        reservation = self._messages.reserve(target, kind, at)
        if reservation is Reservation.POSTED:
            return None
        if reservation is Reservation.BUSY:
            raise PostInProgress(f"{kind} for {target} is being posted by another delivery")
        try:
            response = self._client.chat_postMessage(channel=channel, **message)
        except BaseException as error:
            self._messages.release(target, kind, at)  # not posted: the next delivery may post it
            code = _error_code(error) if isinstance(error, SlackApiError) else None
            if code in _PERMANENT:
                logger.warning("could not post %s for %s in %s: %s", kind, target, channel, code)
                return code
            raise
        if not self._messages.fill(target, kind, response["channel"], response["ts"], at):
            logger.warning(
                "%s for %s took so long to post that another delivery took it over: it may be in Slack twice",
                kind,
                target,
            )
        return None

    def _update(self, where: tuple[str, str], message: Mapping[str, Any]) -> str | None:
        """Update a message; Slack's error when it refused for good (logged), else None."""
        channel, ts = where
        try:
            self._client.chat_update(channel=channel, ts=ts, **message)
        except SlackApiError as error:
            code = _error_code(error)
            if code in _PERMANENT:
                logger.warning("could not update message %s in %s: %s", ts, channel, code)
                return code
            raise
        return None

    def _dm_channel(self, user_id: str) -> str:
        response = self._client.conversations_open(users=user_id)
        return str(response["channel"]["id"])

    def _usergroup_members(self, group: str) -> list[str]:
        """The group's members. Only a group Slack does not know counts as empty: any other
        failure (an outage, a rate limit, a missing scope) raises, for ``_holders`` to decide
        between retrying and telling that the group was not asked."""
        try:
            return list(self._client.usergroups_users_list(usergroup=group)["users"])
        except SlackApiError as error:
            if _error_code(error) != "no_such_subteam":
                raise
            logger.warning("user group %s does not exist in Slack: nobody in it is asked", group)
            return []

    def _permalink(self, where: tuple[str, str] | None) -> str | None:
        if where is None:
            return None
        try:
            return str(self._client.chat_getPermalink(channel=where[0], message_ts=where[1])["permalink"])
        except SlackApiError:
            return None

    # -- reading ----------------------------------------------------------------------------------

    def _initiative(self, ref: str) -> Initiative:
        with self._services.read_uow() as uow:
            return uow.initiatives.get(ref)

    def _review(self, review_id: int) -> tuple[Review, Initiative]:
        with self._services.read_uow() as uow:
            review = uow.reviews.get(int(review_id))
            return review, uow.initiatives.get(review.initiative_ref)

    def _unmet_at_submission(self, review: Review, initiative: Initiative) -> UnmetCriteria | None:
        """The criteria ``review``'s submission left unmet, as its audit entry records them: the
        pipeline may have changed since, and today's criteria with it. An entry written before
        it recorded them: recomputed while the pipeline is still the one it was submitted on
        (its answers to the gate are frozen while it is open), else not said rather than guessed."""
        with self._services.read_uow() as uow:
            entries = uow.audit.timeline(initiative.ref)
        for entry in entries:
            if entry.action == "review.submitted" and entry.detail.get("review") == review.id:
                unmet = entry.detail.get("unmet")
                if isinstance(unmet, Mapping):
                    return _Unmet(tuple(unmet.get("blocking") or ()), tuple(unmet.get("advisory") or ()))
        if review.pipeline_version != self._services.pipeline.version:
            return None
        report: UnmetCriteria | None = self._readiness(initiative, review.gate_id)
        return report

    def _readiness(self, initiative: Initiative, gate_id: str | None) -> Any:
        try:
            return usecases.check_readiness(
                self._services.pipeline, self._services.read_uow(), initiative.ref, gate_id
            )
        except GateError:
            return None


@dataclass(frozen=True, slots=True)
class _Unmet:
    """The criteria unmet at a review's submission, by id (``UnmetCriteria``)."""

    blocking_unmet: tuple[str, ...]
    advisory_unmet: tuple[str, ...]


def _everyone(holders: Mapping[str, list[str]]) -> list[str]:
    """Everyone in ``holders`` (``SlackNotifier._holders``), once each, in role order."""
    return list(dict.fromkeys(user for members in holders.values() for user in members))


def _roles(review: Review) -> list[str]:
    """The roles whose approvals ``review`` asks for, once each."""
    return list(dict.fromkeys(requirement.role for requirement in review.requirements))


def _roles_of(user: str, holders: Mapping[str, list[str]]) -> list[str]:
    """``user``'s roles among ``holders`` (the review's roles): all that ``Review.can_decide``
    weighs, as App Home and the decision click do."""
    return [role for role, members in holders.items() if user in members]


def _deciders(review: Review, holders: Mapping[str, list[str]]) -> list[str]:
    """Those of ``holders`` (``SlackNotifier._holders`` of the review's roles) whose decision
    ``review`` would accept now, by the rule its buttons and clicks follow (``Review.can_decide``):
    not the submitter or the owner, not who decided already, not who holds only roles whose
    approvals are all in."""
    return [user for user in _everyone(holders) if review.can_decide(user, _roles_of(user, holders))]


def _error_code(error: SlackApiError) -> str:
    response = getattr(error, "response", None)
    try:
        return str(response["error"]) if response is not None else ""
    except (KeyError, TypeError):
        return ""
