"""Modal submissions: intake, questionnaire pages, decision reasons, exception justifications.

Everything here runs before the response goes back to Slack, so errors can be shown inside the
modal with ``response_action: errors``. Questionnaire pages are checked here and recorded before
the response (pages saved at the same moment share one transaction, ``Services.pages``);
decisions are checked here and stored in the inbox for the worker to record (``bot.inbox``), as
Approve clicks are. Slack messages that follow (cards, notifications) are queued in the outbox
by the use cases.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot import blocks, ids, inbox, parse
from bot.blocks.text import ELLIPSIS, truncate
from bot.bootstrap import Services
from bot.listeners.common import ack_once_saved, store_before_ack, workspace_of
from bot.slack_client import like
from bot.usergroups import MembershipUnavailable
from gates import usecases
from gates.answers import fingerprint
from gates.errors import GateDecided, GateError, InvalidAnswer, UnknownGate
from gates.lifecycle import DecisionKind, Initiative
from gates.loader import CompiledPipeline

logger = logging.getLogger("shepherd.views")


SLACKBOT = "USLACKBOT"  # not a bot to users.info, but no one Shepherd can message either

_ERROR_MAX = 150
"""The most Slack takes for one field's entry in ``response_action: errors``."""


def _fit(message: str) -> str:
    """``message`` within Slack's limit for a field's error: cut at a word, with an ellipsis to
    show it was cut."""
    if len(message) <= _ERROR_MAX:
        return message
    cut = message[: _ERROR_MAX - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space >= _ERROR_MAX // 2:  # a long unbroken run (a URL) is cut where it stands
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + ELLIPSIS


def _errors_for(error: GateError, fallback_block: str) -> dict[str, str]:
    """Modal errors for ``error``: on each question it names, else on ``fallback_block``."""
    if isinstance(error, InvalidAnswer):
        return {ids.question_block_id(q): _fit(m or str(error)) for q, m in error.problems.items()}
    if isinstance(error, GateDecided):
        # Nothing on this form can be saved any more: say where the questionnaire that can be is.
        return {
            fallback_block: _fit(
                f"The {error.gate_id} gate was decided while this form was open, so nothing was saved. "
                "Open the questionnaire again from the initiative's card."
            )
        }
    return {fallback_block: _fit(str(error))}


def _link_errors(link: tuple[str, str] | None) -> dict[str, str]:
    """The evidence link's error, on its own field, or nothing when the link is fine or absent.

    Checked apart from the page's answers: the link is not a question, and a pipeline may well
    have a question whose id is ``link``, whose errors belong under that question.
    """
    if link is None:
        return {}
    try:
        usecases.check_link(link[0])
    except InvalidAnswer as error:
        return {ids.LINK_URL_BLOCK: _fit(error.reason)}
    return {}


# How long the registration form waits for Slack to say who a person it names is: the whole
# answer must reach Slack within 3 seconds, and the check is skipped rather than miss them.
PERSON_CHECK_TIMEOUT = 1


def _unreachable_people(services: Services, client: WebClient, named: Mapping[str, str]) -> dict[str, str]:
    """Errors for the questions (id -> user id) naming a bot or a deactivated account: Shepherd
    could never message its owner or sponsor, who would never hear of it or act on it, and
    nothing changes them afterwards. A person Slack does not answer about in time is let
    through: the check must not stop a registration Slack is slow to help with."""
    if not named:
        return {}
    quick = like(client, [], timeout=PERSON_CHECK_TIMEOUT)
    errors: dict[str, str] = {}
    people: dict[str, dict[str, Any]] = {}
    # Waiting on Slack, this listener lets the next request's ack run (``bot.dispatch_limit``, as
    # for a wait on SQLite's write lock): other people's acks must not queue behind Slack.
    with services.database.while_waiting_for_lock():
        for user_id in dict.fromkeys(named.values()):
            try:
                people[user_id] = quick.users_info(user=user_id)["user"]
            except (SlackClientError, OSError) as error:  # refused, failing, too slow
                logger.warning("could not check %s named in the registration form: %s", user_id, error)
    for question, user_id in named.items():
        person = people.get(user_id)
        if person is None:
            continue
        who = person.get("real_name") or person.get("name") or "That account"
        if person.get("is_bot") or user_id == SLACKBOT:
            errors[ids.question_block_id(question)] = _fit(
                f"{who} is a bot, which Shepherd cannot ask or tell anything: name a person."
            )
        elif person.get("deleted"):
            errors[ids.question_block_id(question)] = _fit(
                f"{who} is deactivated, so Shepherd cannot reach them: name someone still here."
            )
    return errors


def _channel(meta: dict[str, Any]) -> str | None:
    """Where the modal was opened from, if its metadata says (private replies go there)."""
    channel = meta.get("channel")
    return channel if isinstance(channel, str) and channel else None


class ViewListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    def register(self, app: App) -> None:
        app.view(ids.VIEW_INTAKE)(self.intake)
        app.view(ids.VIEW_QUESTIONNAIRE)(self.questionnaire)
        app.view(ids.VIEW_REASON)(self.reason)
        app.view(ids.VIEW_EXCEPTION)(self.exception)
        app.view_closed(ids.VIEW_QUESTIONNAIRE)(self.closed)
        app.view_closed(ids.VIEW_INTAKE)(self.closed)

    def intake(self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        services = self._services
        pipeline = services.pipeline
        user = body["user"]["id"]
        state = view.get("state", {}).get("values", {})
        name = parse.name_from_state(state)
        raw = parse.answers_from_state(pipeline, pipeline.model.intake.id, state)
        errors: dict[str, str] = {}
        if not name:
            errors[ids.NAME_BLOCK] = "Give the initiative a name."
        typed: dict[str, Any] = {}
        try:
            typed, problems = usecases.validate_answers(pipeline, pipeline.model.intake.id, raw)
        except GateError as error:
            problems = {}
            errors[ids.NAME_BLOCK] = _fit(str(error))
        errors.update({ids.question_block_id(q): _fit(m) for q, m in problems.items()})
        if errors:
            ack(response_action="errors", errors=errors)
            return
        assert name  # an empty name is one of the errors above
        # The intake's owner and sponsor questions (if the pipeline has them) name them; without
        # an owner question or its answer, whoever registers owns the initiative. Someone
        # registering on another's behalf is still on the audit log as the actor.
        sponsor_question = usecases.sponsor_question(pipeline)  # a later answer there changes it too
        sponsor = typed.get(sponsor_question) if sponsor_question else None
        owner_question = usecases.owner_question(pipeline)
        owner = (typed.get(owner_question) if owner_question else None) or user
        named = {q: str(typed[q]) for q in (owner_question, sponsor_question) if q and typed.get(q)}
        unreachable = _unreachable_people(
            services, client, {q: who for q, who in named.items() if who != user}
        )
        if unreachable:
            ack(response_action="errors", errors=unreachable)
            return
        try:
            usecases.register(
                pipeline,
                services.uow(),
                name=name,
                owner_id=str(owner),
                answers=raw,
                actor_id=user,
                now=services.now(),
                sponsor_id=str(sponsor) if sponsor else None,
                form=view.get("id") or None,  # the same form sent again registers nothing more
                # The welcome and the confirmation go to people of this workspace, with its token.
                registered_from=workspace_of(body),
            )
        except GateError as error:
            ack(response_action="errors", errors=_errors_for(error, ids.NAME_BLOCK))
            return
        ack()

    def questionnaire(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        """Check the page, record it as evidence (who, when) and show the next page."""
        services = self._services
        pipeline = services.pipeline
        user = body["user"]["id"]
        meta = parse.metadata(view)
        ref, gate_id, page = (
            str(meta.get("ref", "")),
            str(meta.get("gate", "")),
            int(meta.get("page", 0) or 0),
        )
        state = view.get("state", {}).get("values", {})
        first_block = next(iter(state), ids.NAME_BLOCK)
        try:
            raw = parse.answers_from_state(pipeline, gate_id, state)
            link = parse.link_from_state(state)
        except parse.PayloadError as error:
            ack(response_action="errors", errors={error.block_id or first_block: _fit(str(error))})
            return
        except UnknownGate:
            # A pipeline deployed while the form was open renamed or removed its gate: said in
            # the form, rather than Slack's "trouble connecting" and an apology to try again,
            # which would fail the same way for as long as the form stays open.
            message = (
                f"The pipeline no longer has this form's {truncate(gate_id, 40, markup=False)} gate, "
                "so nothing was saved. Open the questionnaire again from the initiative's card."
            )
            ack(response_action="errors", errors={first_block: _fit(message)})
            return
        # A bad link is said together with whatever is wrong with the answers, each on its field.
        link_errors = _link_errors(link)
        shown = parse.shown_answers(pipeline, gate_id, meta)
        try:
            checked = usecases.check_page(
                pipeline,
                ref,
                gate_id,
                raw,
                user,
                services.now(),
                None if link_errors else link,
                shown,
                steward=services.settings.is_steward(user),
            )
        except GateError as error:
            ack(response_action="errors", errors={**_errors_for(error, first_block), **link_errors})
            return
        if link_errors:
            ack(response_action="errors", errors=link_errors)
            return
        # The intake's sponsor answer names the sponsor here too, checked as at registration; Slack
        # is asked only about one picked on this form, not on every save of its page.
        sponsor = usecases.sponsor_question(pipeline) if gate_id == pipeline.model.intake.id else None
        picked = raw.get(sponsor) if sponsor else None
        if (
            sponsor
            and isinstance(picked, str)
            and picked != user
            and shown.get(sponsor) != fingerprint(picked)
        ):
            unreachable = _unreachable_people(self._services, client, {sponsor: picked})
            if unreachable:
                ack(response_action="errors", errors=unreachable)
                return
        # Recorded (who, when, with its evidence link) before Slack hears back, so the next
        # page, a reopened questionnaire and Submit for review see it at once; pages saved at
        # the same moment share one transaction. The card's readiness line is redrawn by the
        # outbox, so the next page needs the answers only.
        ack_once_saved(
            services,
            context,
            ack,
            body,
            services.pages.submit(checked),
            lambda saved: _after_save(pipeline, saved.initiative, gate_id, saved.answers, page, state),
            lambda refused: {"response_action": "errors", "errors": _errors_for(refused, first_block)},
        )

    def reason(self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        """Checked at once (errors inside the form), then, like an Approve click, stored in the
        inbox for the worker to record; if a co-reviewer's decision lands first, the worker tells
        the person privately, with the reason they typed."""
        services = self._services
        user = body["user"]["id"]
        meta = parse.metadata(view)
        reason = parse.reason_from_state(view.get("state", {}).get("values", {}))
        if not reason:
            ack(response_action="errors", errors={ids.REASON_BLOCK: "A reason is required."})
            return
        try:
            kind = DecisionKind(str(meta.get("kind")))
            review_id = parse.review_id(str(meta.get("review", "")))
        except ValueError:
            ack(
                response_action="errors",
                errors={ids.REASON_BLOCK: "This form is out of date; close it and click the button again."},
            )
            return
        try:
            # Roles held through Slack user groups, as remembered when the form was opened: an
            # ack does not wait on Slack.
            group_roles: set[str] | None = services.group_roles.roles_of(services.pipeline, user, None)
        except MembershipUnavailable:
            group_roles = None  # not known here: the worker asks Slack and judges, as for Approve
        try:
            # Refused now (the review closed while the form was open): said inside the form,
            # where the reason is still in front of the person.
            if group_roles is not None:
                usecases.check_decision(
                    services.pipeline,
                    services.read_uow(),
                    review_id,
                    user,
                    kind,
                    reason,
                    services.now(),
                    extra_roles=group_roles,
                )
        except GateError as error:
            ack(response_action="errors", errors={ids.REASON_BLOCK: _fit(str(error))})
            return
        store_before_ack(
            services,
            context,
            inbox.DECISION,
            inbox.decision_request(review_id, user, kind, _channel(meta), reason, workspace_of(body)),
        )
        ack()

    def exception(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        services = self._services
        user = body["user"]["id"]
        meta = parse.metadata(view)
        justification = parse.reason_from_state(view.get("state", {}).get("values", {}))
        if not justification:
            ack(response_action="errors", errors={ids.REASON_BLOCK: "A justification is required."})
            return
        try:
            usecases.submit(
                services.pipeline,
                services.uow(),
                str(meta.get("ref", "")),
                user,
                services.now(),
                justification,
                steward=services.settings.is_steward(user),
            )
        except GateError as error:
            ack(response_action="errors", errors={ids.REASON_BLOCK: _fit(str(error))})
            return
        ack()

    def closed(self, ack: Ack) -> None:
        ack()


def _has_inputs(view: dict[str, Any]) -> bool:
    return any(block.get("type") == "input" for block in view.get("blocks", []))


def _after_save(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    gate_id: str,
    answers: Mapping[str, Any],
    page: int,
    submitted_state: Mapping[str, Any],
) -> dict[str, Any]:
    """The ack after a saved page: the same page again if the answers just given reveal
    questions on it (``show_if``), else the next page with something to answer, else close."""
    submitted = set(submitted_state)
    gate = pipeline.model.gate(gate_id)
    pages = blocks.questionnaire_pages(gate) if gate is not None else []
    if 0 <= page < len(pages) and any(q.show_if for q in pages[page]):
        same = blocks.questionnaire_modal(pipeline, initiative, gate_id, answers, page=page)
        revealed = {
            block["block_id"]
            for block in same["blocks"]
            if block.get("type") == "input" and ids.question_id_of(block.get("block_id", ""))
        } - submitted
        if revealed:
            return {"response_action": "update", "view": _drawn_afresh(same, submitted_state)}
    # Past the last page the modal closes; known from the page count, without drawing a page
    # (on a one-page questionnaire, drawing it was a sixth of a save's time).
    for following in range(page + 1, len(pages)):
        view = blocks.questionnaire_modal(pipeline, initiative, gate_id, answers, page=following)
        if _has_inputs(view):
            return {"response_action": "update", "view": view}
        # nothing applies on that page with these answers: try the next
    return {}


def _drawn_afresh(view: dict[str, Any], submitted_state: Mapping[str, Any]) -> dict[str, Any]:
    """``view`` (the page just saved, drawn again) with each input the person submitted under
    another action_id than it had. Slack keeps what a field held when an update has it under the
    same block_id and action_id, and would go on showing what this form opened with, not the
    answer saved: a teammate's newer one, which the form's ``shown`` fingerprints now expect,
    so saving the field untouched would put the stale answer back over it. ``parse`` reads a
    block's only element whatever its action_id."""
    for block in view["blocks"]:
        element = block.get("element") if block.get("type") == "input" else None
        held = submitted_state.get(block.get("block_id", ""))
        if element is not None and isinstance(held, Mapping):
            element["action_id"] = ids.ANSWER_ACTION if ids.ANSWER_ACTION not in held else _AFRESH_ACTION
    return view


_AFRESH_ACTION = f"{ids.ANSWER_ACTION}_again"
"""The action_id of a field drawn afresh (``_drawn_afresh``); drawn again, it is ``ANSWER_ACTION``."""
