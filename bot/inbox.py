"""What the worker does with requests the HTTP process accepted into the inbox (``storage.inbox``).

The HTTP process validates what it can answer at once (a malformed button value, a modal's
fields), stores the request and acks; the work that takes milliseconds of CPU (loading the
review, the domain rules, the audit chain) happens here, in the worker process. Refusals are told
to the person privately, in the same transaction that marks the request applied, so the
explanation is neither lost nor sent twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from slack_sdk import WebClient

from bot.blocks.text import clip, escape
from bot.bootstrap import Services
from bot.installations import NotInstalled, current_client
from bot.listeners.common import queue_private_message, workspace_of
from bot.slack_client import unavailable
from bot.usergroups import GroupRoles, MembershipUnavailable
from gates import usecases
from gates.errors import GateError, NotAnApprover, UnknownReview
from gates.lifecycle import DecisionKind
from gates.ports import UnitOfWork
from storage.inbox import BatchHandler, Handler, InboxItem, InboxProcessor, UnitOfWorkFactory

DECISION = "decision"

log = logging.getLogger(__name__)


def decision_request(
    review_id: int,
    user: str,
    kind: DecisionKind,
    channel: str | None,
    reason: str | None = None,
    workspace: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The inbox payload for one decision (see ``apply_decisions``); ``workspace``: where the
    click came from (``workspace_of``), where a refusal is told."""
    request = {"review": review_id, "user": user, "kind": kind.value, "channel": channel, "reason": reason}
    return request | (workspace or {})


def handlers(services: Services, slack: Callable[[], WebClient]) -> Mapping[str, Handler]:
    def decision(item: InboxItem, uows: UnitOfWorkFactory) -> None:
        # Through the batch path too: a refusal's explanation then commits with the mark.
        apply_decisions(services, [item], uows, slack)

    return {DECISION: decision}


def batch_handlers(services: Services, slack: Callable[[], WebClient]) -> Mapping[str, BatchHandler]:
    def decisions(items: Sequence[InboxItem], uows: UnitOfWorkFactory) -> None:
        apply_decisions(services, items, uows, slack)

    return {DECISION: decisions}


def apply_decisions(
    services: Services, items: Sequence[InboxItem], uows: UnitOfWorkFactory, slack: Callable[[], WebClient]
) -> None:
    """Record clicks in one transaction, as of the moment of each click; each refusal is explained
    to its clicker in that same transaction, so the explanation is neither lost nor sent twice.

    Roles held through Slack user groups are asked of ``slack()`` first (``bot.usergroups``); if
    Slack is unavailable, this raises ``Unavailable`` and the inbox applies the clicks once it
    answers, so none is refused for it (nor given up on within the inbox's day of outage). If
    Slack refuses to list it for good (a missing scope, a revoked token), or Shepherd is no longer
    installed there (``NotInstalled``), each click is judged on the roles Shepherd stores, and a
    refusal says that the groups could not be read.

    Raises:
        Unavailable: Slack could not list a user group because it is down, rate limiting or
            unreachable.
    """
    pipeline = services.pipeline
    group_roles: dict[str, frozenset[str]] = {}
    unlisted: dict[str, str] = {}  # person -> why Slack would not say which groups they are in
    client: WebClient | None = None
    if GroupRoles.groups(pipeline):
        try:
            client = slack()
        except NotInstalled as error:
            # Shepherd was uninstalled or its token revoked (with OAuth): as with a token Slack
            # refuses, no retry gets an answer until someone reinstalls it, and retrying would
            # give up on every click, even those of people whose roles Shepherd stores itself.
            log.warning("judging decisions on the roles Shepherd stores: %s", error)
            why = (
                "Shepherd has been removed from Slack (or its access revoked), so the roles you hold "
                "through Slack user groups could not be checked."
            )
            unlisted = dict.fromkeys((str(item.payload["user"]) for item in items), why)
    if client is not None:
        asked: set[str] = set()  # each group is asked of Slack once for the round
        for user in {str(item.payload["user"]) for item in items}:
            try:
                group_roles[user] = frozenset(
                    services.group_roles.roles_of(pipeline, user, client, recheck_absent=True, asked=asked)
                )
            except MembershipUnavailable as error:
                outage = unavailable(error.__cause__, str(error)) if error.__cause__ is not None else None
                if outage is not None:
                    raise outage from error
                # Slack refused for good (a missing scope, a revoked token): no retry would get
                # an answer, and the person would at last hear only "try again", their reason
                # lost. Judged on the roles Shepherd stores; a refusal says why groups did not count.
                unlisted[user] = str(error)
    requests = [
        usecases.DecisionRequest(
            int(item.payload["review"]),
            str(item.payload["user"]),
            DecisionKind(item.payload["kind"]),
            item.payload.get("reason"),
            item.received_at,
            group_roles.get(str(item.payload["user"]), frozenset()),
        )
        for item in items
    ]
    channels = {
        id(request): item.payload.get("channel") for request, item in zip(requests, items, strict=True)
    }
    workspaces = {
        id(request): workspace_of(item.payload) for request, item in zip(requests, items, strict=True)
    }

    def refused(uow: UnitOfWork, request: usecases.DecisionRequest, error: GateError) -> None:
        text = escape(str(error))  # the domain's words are plain text
        if isinstance(error, NotAnApprover) and request.user_id in unlisted:
            text = f"{text} {escape(unlisted[request.user_id])} Tell your Shepherd administrators."
        # A click repeated before the first explanation went out is told once (every attempt is
        # still audited). A reason form cannot be sent twice, and each reason is given back.
        merge_key: str | None = (
            f"refused:{request.review_id}:{request.user_id}:{request.kind.value}:{type(error).__name__}"
        )
        if request.reason:
            # The form closed when it was accepted: give the reason back, so it is not lost.
            text = f"{text} Your reason, for the record: \u201c{clip(request.reason, 2500)}\u201d"
            merge_key = None
            if not isinstance(error, UnknownReview):
                text = f"{uow.reviews.get(request.review_id).initiative_ref}: {text}"
        queue_private_message(
            uow,
            request.user_id,
            text,
            channels[id(request)],
            services.now(),
            merge_key,
            workspaces[id(request)],
        )

    usecases.decide_many(services.pipeline, uows(), requests, refused)


def tell_not_recorded(services: Services) -> Callable[[InboxItem, str], None]:
    """What the worker does when it gives up on a request: the person was told "OK", so they
    hear that it was not recorded after all (the error itself is in the log and the inbox)."""

    def tell(item: InboxItem, error: str) -> None:
        payload = item.payload
        what = "Your decision" if item.kind == DECISION else "Your request"
        text = (
            f"{what} could not be recorded after several tries, so nothing was saved. "
            "Please try again; if it keeps failing, tell your Shepherd administrators."
        )
        reason = payload.get("reason")
        with services.uow() as uow:
            if reason:
                # The reason form closed when it was accepted: give the reason back, as a refusal
                # does, so that trying again does not mean writing it again from memory.
                text = f"{text} Your reason, for the record: \u201c{clip(str(reason), 2500)}\u201d"
                with suppress(GateError, KeyError, TypeError, ValueError):  # else said without it
                    text = f"{uow.reviews.get(int(payload['review'])).initiative_ref}: {text}"
            queue_private_message(
                uow,
                str(payload.get("user", "")),
                text,
                payload.get("channel"),
                services.now(),
                workspace=workspace_of(payload),
            )
            uow.commit()

    return tell


# Clicks claimed per round, when that many are waiting: each round's decisions share one
# transaction and one audit append. Measured on PostgreSQL draining a backlog of Approve clicks
# under load: 50 -> 350, 500 -> 385, 1000 -> 540, 2000 -> 708 decisions/s; a round of 2000 takes
# about 3 s, well inside the 2-minute lease. On SQLite a round holds the one write lock that
# every acknowledgement needs (the inbox rows, questionnaire pages), so rounds stay short there,
# and the worker steps aside after each transaction so that waiting acks get the lock. Measured
# at 50 connections of Approve (p99 ack, decisions/s): 50 clicks a round, no pause: 94-110 ms,
# 1,180-1,210; with 3 ms pauses: 65-74 ms, 1,260-1,280; and with the round's reads batched
# (``decide_many``): 16 clicks 60-66 ms, 710-730; 25 clicks 55-58 ms, 900-930; 50 clicks 61-68
# ms, 1,360-1,390. On a faster machine, four runs each, with pages batched as they are now: 20
# clicks 41-52 ms, 791-896; 25 clicks 48-62 ms, 881-1,010; and three alternating pairs there
# later, busier: 20 clicks 63-69 ms, 652-752; 25 clicks 70-71 ms, 751-828. 12 clicks gave 46-48
# ms but 511-521, too close to the 500 decisions a second Shepherd must keep up with.
INBOX_BATCH = {"sqlite": 20, "postgresql": 2000}
SQLITE_STEP_ASIDE = 0.003


def processor(services: Services, client: WebClient, claimant: str = "") -> InboxProcessor:
    """The inbox processor; ``client`` asks Slack who is in the pipeline's user groups (with
    OAuth, with the installation's current token)."""
    slack = current_client(services.settings, services.database, client)
    return InboxProcessor(
        services.database,
        handlers(services, slack),
        clock=services,
        batch_handlers=batch_handlers(services, slack),
        batch_size=INBOX_BATCH["sqlite" if services.database.is_sqlite else "postgresql"],
        on_dead=tell_not_recorded(services),
        step_aside=SQLITE_STEP_ASIDE if services.database.is_sqlite else 0.0,
        claimant=claimant,
    )


def start_processor(
    services: Services, client: WebClient, stop: threading.Event, claimant: str = ""
) -> threading.Thread:
    """A thread applying accepted requests until ``stop`` is set."""
    thread = threading.Thread(
        target=processor(services, client, claimant).run_forever,
        args=(stop,),
        name="shepherd-inbox",
        daemon=True,
    )
    thread.start()
    return thread
