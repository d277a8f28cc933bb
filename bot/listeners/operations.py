"""Extend a time box, stop an initiative, record a periodic operations review.

Buttons come from the scheduler's DMs (bot/notify.py); they open modals in the lazy half (a
Slack call). Modal submissions run before the response, so problems show inside the modal; they
never wait on Slack: an answer later than Slack's 3 seconds shows the person an error, though
what they submitted may have been recorded.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import ids, parse
from bot.blocks import operations as operations_blocks
from bot.bootstrap import Services
from bot.listeners.common import (
    channel_of,
    explain_later,
    lazily,
    tell_later,
    user_of,
    workspace_of,
)
from bot.usergroups import MembershipUnavailable
from gates import operations, usecases
from gates.errors import GateError, InvalidAnswer, NotPermitted
from gates.ports import OperationsReview

logger = logging.getLogger("shepherd.operations")


class OperationsListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    def register(self, app: App) -> None:
        app.action(ids.ACTION_EXTEND_TIME_BOX)(ack=self.ack, lazy=lazily(self._services, self.open_extend))
        app.action(ids.ACTION_STOP_INITIATIVE)(ack=self.ack, lazy=lazily(self._services, self.open_stop))
        app.action(ids.ACTION_OPEN_OPERATIONS_REVIEW)(
            ack=self.ack, lazy=lazily(self._services, self.open_review)
        )
        app.view(ids.VIEW_EXTEND)(self.extend)
        app.view(ids.VIEW_STOP)(self.stop)
        app.view(ids.VIEW_OPERATIONS_REVIEW)(
            ack=self.review, lazy=lazily(self._services, self.remember_user_groups)
        )

    def ack(self, ack: Ack) -> None:
        ack()

    # -- buttons (lazy: they call Slack) ------------------------------------------------------

    def open_extend(self, body: dict[str, Any], client: WebClient) -> None:
        services = self._services
        user = user_of(body)
        try:
            ref = parse.action_ref(body)
            initiative = self._own_initiative(ref, user, "extend its time box")
            # Held or retired since the notice: said now, not once the reason is typed.
            ends = operations.require_time_box(services.pipeline, initiative)
        except (GateError, ValueError) as error:
            explain_later(services, body, error)
            return
        view = operations_blocks.extend_modal(initiative, ends, services.now(), channel_of(body))
        client.views_open(trigger_id=body["trigger_id"], view=view)

    def open_stop(self, body: dict[str, Any], client: WebClient) -> None:
        services = self._services
        user = user_of(body)
        try:
            ref = parse.action_ref(body)
            initiative = self._own_initiative(ref, user, "stop it")
            operations.require_stoppable(initiative)
        except (GateError, ValueError) as error:
            explain_later(services, body, error)
            return
        client.views_open(
            trigger_id=body["trigger_id"], view=operations_blocks.stop_modal(initiative, channel_of(body))
        )

    def open_review(self, body: dict[str, Any], client: WebClient) -> None:
        """Refused here, before anyone types, if the system has no review now (held, retired) or
        the person may not record it (as for a Reject click); the operations owner and members of the operations role's Slack user
        group may."""
        services = self._services
        user = user_of(body)
        try:
            ref = parse.action_ref(body)
            with services.read_uow() as uow:
                initiative = uow.initiatives.get(ref)
                roles = usecases.roles_of(services.pipeline, uow, user)
                named = operations.operations_owner(services.pipeline, uow, ref)
            operations.require_reviewable(services.pipeline, initiative)
            may = operations.may_record_operations_review
            if not may(services.pipeline, initiative, user, roles, named):
                roles |= services.group_roles.roles_of(services.pipeline, user, client)
                if not may(services.pipeline, initiative, user, roles, named):
                    raise NotPermitted(operations.OPERATIONS_REVIEWERS_ONLY)
        except (GateError, MembershipUnavailable, ValueError) as error:
            explain_later(services, body, error)
            return
        view = operations_blocks.operations_review_modal(services.pipeline, initiative, channel_of(body))
        client.views_open(trigger_id=body["trigger_id"], view=view)

    # -- modal submissions (before the response) ------------------------------------------------

    def extend(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        services = self._services
        state = view.get("state", {}).get("values", {})
        ref = str(parse.metadata(view).get("ref", ""))
        until = _date(state, ids.EXTEND_UNTIL_BLOCK)
        reason = parse.reason_from_state(state)
        errors = {}
        if until is None:
            errors[ids.EXTEND_UNTIL_BLOCK] = "Pick the new end date."
        if not reason:
            errors[ids.REASON_BLOCK] = "Say why more time is needed."
        if errors or until is None or reason is None:
            ack(response_action="errors", errors=errors)
            return
        try:
            operations.extend_time_box(
                services.pipeline, services.uow(), ref, until, reason, body["user"]["id"], services.now()
            )
        except GateError as error:
            block = ids.REASON_BLOCK if "why" in str(error).lower() else ids.EXTEND_UNTIL_BLOCK
            ack(response_action="errors", errors={block: str(error)[:150]})
            return
        ack()

    def stop(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        services = self._services
        ref = str(parse.metadata(view).get("ref", ""))
        reason = parse.reason_from_state(view.get("state", {}).get("values", {}))
        if not reason:
            ack(response_action="errors", errors={ids.REASON_BLOCK: "A reason is required."})
            return
        try:
            operations.stop(services.uow(), ref, body["user"]["id"], reason, services.now())
        except GateError as error:
            ack(response_action="errors", errors={ids.REASON_BLOCK: str(error)[:150]})
            return
        ack()

    def review(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Recorded before the ack, with the roles of the person's Slack user groups as remembered
        (an ack must not wait on Slack); the same form sent again records nothing more."""
        services = self._services
        pipeline = services.pipeline
        ref = str(parse.metadata(view).get("ref", ""))
        state = view.get("state", {}).get("values", {})
        raw: dict[str, Any] = {}
        for question in operations.operations_questions(pipeline):
            entry = (state.get(ids.question_block_id(question.id)) or {}).get(ids.ANSWER_ACTION)
            if isinstance(entry, dict):
                raw[question.id] = parse.element_raw(entry, question)
        try:
            _, problems = operations.validate_operations_answers(pipeline, raw)
            if problems:
                ack(
                    response_action="errors",
                    errors={ids.question_block_id(q): m[:150] for q, m in problems.items()},
                )
                return
            recorded = self._record_review(ref, raw, body["user"]["id"], view.get("id") or None)
        except MembershipUnavailable:
            # remember_user_groups asks Slack right after this answer.
            self._refuse(
                ack,
                body,
                view,
                "Shepherd is checking your Slack user groups; submit again in a moment.",
                closed="Shepherd was checking your Slack user groups; start the review again in a moment.",
            )
            return
        except InvalidAnswer as error:
            ack(
                response_action="errors",
                errors={ids.question_block_id(error.question_id): error.reason[:150]},
            )
            return
        except GateError as error:
            self._refuse(ack, body, view, str(error))
            return
        ack()
        if recorded is not None:  # None: Slack sent a form recorded before, thanked for then
            tell_later(
                services,
                body["user"]["id"],
                f"Recorded the periodic operations review of {ref}. Thank you.",
                workspace=workspace_of(body),
            )

    def remember_user_groups(self, body: dict[str, Any], client: WebClient) -> None:
        """After a review form's answer: ask Slack who is in the pipeline's user groups if that is
        no longer remembered, so that the person told to submit again is then recognised."""
        services = self._services
        try:
            services.group_roles.roles_of(services.pipeline, user_of(body), client)
        except MembershipUnavailable as error:
            logger.warning("user groups not refreshed after a review form: %s", error)

    # -- helpers ------------------------------------------------------------------------------

    def _refuse(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], text: str, closed: str | None = None
    ) -> None:
        """Refuse a review form, saying ``text`` under its first field. Slack shows a form's
        errors only under its fields, and a review without questions has none: that form closes
        and the person is told by a private message (``closed``, if the wording must differ)."""
        first = next(iter(view.get("state", {}).get("values", {})), None)
        if first is not None:
            ack(response_action="errors", errors={first: text[:150]})
            return
        ack()
        channel = parse.metadata(view).get("channel")
        tell_later(
            self._services,
            body["user"]["id"],
            closed or text,
            channel if isinstance(channel, str) else None,
            workspace_of(body),
        )

    def _record_review(
        self, ref: str, raw: dict[str, Any], user: str, form: str | None
    ) -> OperationsReview | None:
        """``operations.record_operations_review``, counting the roles of the person's Slack user
        groups as remembered.

        Raises:
            MembershipUnavailable: only a user group could allow it, and who is in the groups is
                no longer remembered.
        """
        services = self._services
        pipeline = services.pipeline
        try:
            return operations.record_operations_review(
                pipeline, services.uow(), ref, raw, user, services.now(), form=form
            )
        except NotPermitted:
            # The button asked Slack when it opened this form, but a form kept open longer than
            # that is remembered finds it forgotten, and asking Slack now could outlast the 3
            # seconds Slack waits for this answer.
            extra = services.group_roles.roles_of(pipeline, user, None)
            if not extra:
                raise
            return operations.record_operations_review(
                pipeline, services.uow(), ref, raw, user, services.now(), extra, form
            )

    def _own_initiative(self, ref: str, user: str, action: str) -> Any:
        with self._services.read_uow() as uow:
            initiative = uow.initiatives.get(ref)
        if user not in (initiative.owner_id, initiative.sponsor_id):
            raise GateError(f"Only the owner or the sponsor of {ref} can {action}.")
        return initiative


def _date(state: dict[str, Any], block_id: str) -> date | None:
    entry = (state.get(block_id) or {}).get(ids.ANSWER_ACTION)
    value = parse.element_raw(entry) if isinstance(entry, dict) else None
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
