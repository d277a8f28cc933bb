"""App Home: my initiatives, approvals waiting for me, recent decisions; the portfolio for
governance leads."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot import blocks
from bot.blocks.portfolio import home_governance_section
from bot.bootstrap import Services
from bot.usergroups import MembershipUnavailable
from gates import usecases
from gates.errors import GateError, ShepherdError
from gates.lifecycle import Status
from gates.portfolio import load_portfolio

logger = logging.getLogger("shepherd.home")

# Who has opened App Home, remembered in ``storage.slack_messages`` (target ``home:<user>``, this
# kind): their tab is published again when a review they may decide moves on (``bot.notify``).
HOME_KIND = "home"


def home_target(user: str) -> str:
    return f"home:{user}"


def publish_home(services: Services, client: WebClient, user: str, page: int = 0) -> None:
    pipeline = services.pipeline
    now = services.now()
    mine = usecases.list_initiatives(pipeline, services.read_uow(), now, owner_id=user, limit=100)
    my_rows = []
    for initiative in mine:
        report = None
        if initiative.status is not Status.RETIRED and usecases.next_gate(pipeline, initiative) is not None:
            try:
                report = usecases.check_readiness(pipeline, services.read_uow(), initiative.ref)
            except GateError:
                report = None
        my_rows.append((initiative, report))
    try:
        through_groups = services.group_roles.roles_of(pipeline, user, client)
    except MembershipUnavailable:  # the tab still shows what the stored roles give
        logger.warning("App Home of %s: Slack user groups could not be read", user, exc_info=True)
        through_groups = set()
    with services.read_uow() as uow:
        roles = usecases.roles_of(pipeline, uow, user) | through_groups
        pending = []
        for review in uow.reviews.pending_for(sorted(roles)):
            if review.can_decide(user, roles):
                pending.append((review, uow.initiatives.get(review.initiative_ref)))
        recent = []
        for initiative in mine[:20]:
            for review in uow.reviews.for_initiative(initiative.ref):
                if not review.is_open and review.decisions:
                    recent.append((review, initiative))
    recent.sort(key=lambda pair: pair[0].closed_at or pair[0].submitted_at, reverse=True)
    governance = None
    if services.settings.sees_portfolio(user):
        try:
            governance = home_governance_section(load_portfolio(pipeline, services.read_uow(), now))
        except ShepherdError:  # a database hiccup must not take the whole tab down
            logger.exception("could not compute the portfolio for App Home")
    client.views_publish(
        user_id=user,
        view=blocks.home_view(
            user,
            my_rows,
            pending,
            recent[:10],
            page=page,
            governance=governance,
            pipeline=pipeline,
            stalled={i.ref for i in mine if usecases.is_stalled(pipeline, i, now)},
        ),
    )
