"""Buttons: open a questionnaire, submit for review, decide, view evidence, feedback, paging."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import blocks, ids, inbox, parse
from bot.blocks.text import truncate
from bot.bootstrap import Services
from bot.home import publish_home
from bot.listeners.common import (
    channel_of,
    explain_later,
    lazily,
    queue_private_message,
    store_before_ack,
    user_of,
    workspace_of,
)
from bot.usergroups import MembershipUnavailable
from gates import usecases
from gates.errors import GateError, InvalidTransition, NotReady
from gates.lifecycle import DecisionKind
from storage.asked_answers import AskedAnswers

logger = logging.getLogger("shepherd.actions")

DOUBLE_CLICK_SECONDS = 10

KINDS = {
    ids.ACTION_APPROVE: DecisionKind.APPROVE,
    ids.ACTION_REJECT: DecisionKind.REJECT,
    ids.ACTION_REQUEST_CHANGES: DecisionKind.REQUEST_CHANGES,
}


class ActionListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    def register(self, app: App) -> None:
        app.action(ids.ACTION_OPEN_QUESTIONNAIRE)(
            ack=self.ack, lazy=lazily(self._services, self.open_questionnaire)
        )
        app.action(ids.ACTION_SUBMIT_REVIEW)(ack=self.ack, lazy=lazily(self._services, self.submit))
        app.action(ids.ACTION_APPROVE)(self.approve)
        app.action(ids.ACTION_REJECT)(ack=self.ack, lazy=lazily(self._services, self.ask_reason))
        app.action(ids.ACTION_REQUEST_CHANGES)(ack=self.ack, lazy=lazily(self._services, self.ask_reason))
        app.action(ids.ACTION_VIEW_EVIDENCE)(ack=self.ack, lazy=lazily(self._services, self.view_evidence))
        app.action(ids.ACTION_FEEDBACK_HELPFUL)(self.feedback)
        app.action(ids.ACTION_FEEDBACK_UNHELPFUL)(self.feedback)
        app.action(ids.ACTION_HOME_PAGE)(ack=self.ack, lazy=lazily(self._services, self.home_page))
        app.action(ids.ACTION_NOOP_LINK)(self.ack)

    def ack(self, ack: Ack) -> None:
        ack()

    # -- questionnaire and submission (Slack calls: lazy) -------------------------------------

    def open_questionnaire(self, body: dict[str, Any], client: WebClient) -> None:
        services = self._services
        try:
            ref = parse.action_ref(body)
            with services.read_uow() as uow:
                state = uow.reviews.initiative_state(ref)  # one round trip on PostgreSQL
            initiative, open_review = state.initiative, state.open_review
            answers = state.values
            # Said before anyone types: a page saved now would be refused (retired, or frozen).
            usecases.refuse_if_retired(initiative)  # from an offer or a card drawn before
            gate = usecases.next_gate(services.pipeline, initiative)
            if gate is None:
                raise GateError(f"{ref} is in its last stage; there is no questionnaire left.")
            try:
                usecases.refuse_while_under_review(ref, gate.id, open_review)
            except InvalidTransition as frozen:
                raise GateError(
                    f"{frozen} `{ids.COMMAND} withdraw {ref}` takes it back (its submitter or the owner)."
                ) from None
        except (GateError, ValueError) as error:
            explain_later(services, body, error)
            return
        client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.questionnaire_modal(services.pipeline, initiative, gate.id, answers, page=0),
        )

    def submit(self, body: dict[str, Any], client: WebClient) -> None:
        services = self._services
        user = user_of(body)
        try:
            ref = parse.action_ref(body)
        except ValueError as error:
            explain_later(services, body, error)
            return
        try:
            usecases.submit(
                services.pipeline,
                services.uow(),
                ref,
                user,
                services.now(),
                steward=services.settings.is_steward(user),
            )
        except NotReady as not_ready:
            gate = services.pipeline.model.gate(not_ready.gate_id)
            if gate is not None and gate.allow_exceptions and self._only_criteria(ref):
                metadata = json.dumps({"ref": ref, "channel": channel_of(body)})
                client.views_open(
                    trigger_id=body["trigger_id"],
                    view=blocks.exception_modal(ref, gate.title, not_ready.reasons, metadata),
                )
                return
            explain_later(services, body, not_ready)
        except GateError as error:
            if self._just_submitted(ref, user):
                return  # a double click: the first click opened the review, say nothing twice
            explain_later(services, body, error)

    def _just_submitted(self, ref: str, user: str) -> bool:
        with self._services.read_uow() as uow:
            review = uow.reviews.open_for(ref)
        return (
            review is not None
            and review.submitted_by == user
            and (self._services.now() - review.submitted_at).total_seconds() < DOUBLE_CLICK_SECONDS
        )

    def _only_criteria(self, ref: str) -> bool:
        report = usecases.check_readiness(self._services.pipeline, self._services.read_uow(), ref)
        return not (report.missing or report.invalid or report.tier_unknown) and bool(report.blocking_unmet)

    # -- decisions --------------------------------------------------------------------------

    def approve(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        """Stored in the inbox before the response goes back, so an acknowledged approval is
        never lost; the worker records it (``bot.inbox``) and everything Slack should show
        afterwards goes through the outbox."""
        services = self._services
        user = user_of(body)
        try:
            review_id = parse.review_id(parse.action_value(body))
        except ValueError as error:
            ack()
            explain_later(services, body, error)
            return
        # If the inbox cannot store it, Slack is answered with an error: the click shows as failed.
        store_before_ack(
            services,
            context,
            inbox.DECISION,
            inbox.decision_request(
                review_id, user, DecisionKind.APPROVE, channel_of(body), workspace=workspace_of(body)
            ),
        )
        ack()

    def ask_reason(self, body: dict[str, Any], client: WebClient) -> None:
        """Reject and request changes need a reason. The form opens first, while the click's
        trigger is fresh (it expires 3 s after the click, and asking Slack who is in a user group
        can take longer); if the person may not decide, the form then says why instead, and the
        attempt is audited as for a click."""
        services = self._services
        user = user_of(body)
        action_id = (body.get("actions") or [{}])[0].get("action_id", "")
        kind = KINDS[action_id]
        try:
            review_id = parse.review_id(parse.action_value(body))
            with services.read_uow() as uow:
                review = uow.reviews.get(review_id)
                initiative = uow.initiatives.get(review.initiative_ref)
                roles = usecases.roles_of(services.pipeline, uow, user)
        except (GateError, ValueError) as error:
            explain_later(services, body, error)
            return
        metadata = json.dumps({"review": review_id, "kind": kind.value, "channel": channel_of(body)})
        opened = client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.reason_modal(review_id, kind, initiative.name, initiative.ref, metadata),
        )
        try:
            groups = services.group_roles.roles_of(services.pipeline, user, client, recheck_absent=True)
        except MembershipUnavailable:
            return  # the form stays open: once sent, the worker asks Slack again and judges it
        if review.can_decide(user, roles | groups):
            return
        try:
            # Let the domain explain why, and audit the attempt, exactly as for a click; judged
            # again on fresh roles, and never recording a decision the person has not sent.
            usecases.audit_if_refused(
                services.pipeline, services.uow(), review_id, user, kind, services.now(), groups
            )
        except GateError as error:
            client.views_update(
                view_id=opened["view"]["id"], view=blocks.refused_modal(initiative.ref, str(error))
            )

    def view_evidence(self, body: dict[str, Any], client: WebClient) -> None:
        """The evidence a review was decided on: the answers and links as they stood when it was
        submitted, which its evidence hash covers, whatever the team changed since."""
        services = self._services
        try:
            review_id = parse.review_id(parse.action_value(body))
            evidence = usecases.evidence_as_submitted(services.read_uow(), review_id)
        except (GateError, ValueError) as error:
            explain_later(services, body, error)
            return
        review = evidence.review
        client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.evidence_modal(
                services.pipeline,
                evidence.initiative,
                review,
                review.gate_id,
                evidence.answers,
                evidence.links,
            ),
        )

    # -- feedback and home ------------------------------------------------------------------

    def feedback(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Record a person's vote on an answer. They may change their mind: each vote is
        recorded and the latest one stands; the same vote again is counted once."""
        ack()
        services = self._services
        action = (body.get("actions") or [{}])[0]
        helpful = action.get("action_id") == ids.ACTION_FEEDBACK_HELPFUL
        user = user_of(body)
        key = str(action.get("value", ""))[:100]
        # With the answer it judges, so that a review of the feedback needs nothing else: as kept
        # when it was posted (a click on an ephemeral answer, /shepherd ask's, comes without the
        # message), and as Slack shows it when the click brings it along.
        message = body.get("message") or {}
        kept = AskedAnswers(services.database).get(key)
        shown = str(message.get("text", "")) or (kept.answer if kept else "")
        record = {
            "helpful": helpful,
            "question": kept.question if kept else None,
            "answer": truncate(shown, 1000),  # as posted (mrkdwn)
            "sources": list(kept.sources) if kept else [],
            "channel": channel_of(body),
            "ts": message.get("ts"),
        }
        with_answer = bool(shown)
        # A second try only when a concurrent click by the same person took this vote's turn.
        for _ in range(2):
            with services.uow() as uow:
                votes = [
                    entry.detail.get("helpful")
                    for entry in uow.audit.timeline(key)
                    if entry.action == "ask.feedback" and entry.actor_id == user
                ]
                if votes and votes[-1] is helpful:
                    return  # the vote they already gave (a double click, Slack's retry): counted once
                # One claim per turn: of two clicks racing for the same turn, the database lets one
                # through, and the other looks again at what was recorded.
                if not uow.dedupe.first_time(f"feedback:{key}:{user}:{len(votes)}", services.now()):
                    continue
                uow.audit.append(user, "ask.feedback", key, record, services.now())
                queue_private_message(
                    uow,
                    user,
                    _feedback_thanks(helpful, changed=bool(votes), with_answer=with_answer),
                    channel_of(body),
                    services.now(),
                    workspace=workspace_of(body),
                )
                uow.commit()
                return

    def home_page(self, body: dict[str, Any], client: WebClient) -> None:
        try:
            page = max(0, int(parse.action_value(body)))
        except ValueError:
            page = 0
        publish_home(self._services, client, user_of(body), page)


def _feedback_thanks(helpful: bool, changed: bool, with_answer: bool = True) -> str:
    if not with_answer:
        # Answers are kept for SHEPHERD_RETENTION_DAYS (``storage.retention``), and only since
        # Shepherd started keeping them; this one is older.
        said = "helpful" if helpful else "not helpful"
        thanks = f"Changed: now marked as {said}." if changed else f"Thanks: marked as {said}."
        return (
            f"{thanks} Shepherd no longer has the answer you judged (it is older than the answers "
            "it keeps), so your vote is recorded without it."
        )
    said = "helpful" if helpful else "not helpful, and recorded with the answer for the governance team"
    return f"Changed: now marked as {said}." if changed else f"Thanks: marked as {said}."
