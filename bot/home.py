"""App Home: my initiatives, approvals waiting for me, recent decisions; the portfolio for
governance leads."""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import blocks
from bot.blocks.home import HOME_PAGE_SIZE, home_page
from bot.blocks.portfolio import home_governance_section
from bot.bootstrap import Services
from bot.usergroups import MembershipUnavailable
from gates import usecases
from gates.errors import GateError, ShepherdError
from gates.lifecycle import Status
from gates.portfolio import load_portfolio
from gates.ports import InitiativeFilter
from storage.slack_messages import MessageRefs

logger = logging.getLogger("shepherd.home")

# Who has opened App Home, and the page their tab shows, remembered in ``storage.slack_messages``
# (target ``home:<user>``, this kind): their tab is published again when a review they may decide
# moves on (``bot.notify``).
HOME_KIND = "home"


def home_target(user: str) -> str:
    return f"home:{user}"


def publish_home(services: Services, client: WebClient, user: str, page: int | None = None) -> None:
    """Publish ``user``'s Home tab at ``page`` (clamped to the pages there are), by default the
    page it showed last, and remember the page shown: opening the tab again, or its refresh
    after a decision (``bot.notify``), keeps an approver working through page 3 on page 3.

    Reads only what the page shows: how many initiatives the user owns or sponsors and those of
    this page (an owner of hundreds gets a true count and every page), the approvals waiting for
    them (all of them: whether the user may decide one is known only once it is loaded) and the
    latest decisions, newest first across all of their initiatives. Sponsored ones count as
    theirs, as in `/shepherd status`: a sponsor often registers one on its owner's behalf.
    """
    pipeline = services.pipeline
    now = services.now()
    refs = MessageRefs(services.database)
    shown = refs.pages([home_target(user)], HOME_KIND).get(home_target(user))
    if page is None:
        page = shown or 0
    try:
        through_groups = services.group_roles.roles_of(pipeline, user, client)
    except MembershipUnavailable:  # the tab still shows what the stored roles give
        logger.warning("App Home of %s: Slack user groups could not be read", user, exc_info=True)
        through_groups = set()
    with services.read_uow() as uow:
        roles = usecases.roles_of(pipeline, uow, user) | through_groups
        waiting = [
            review for review in uow.reviews.pending_for(sorted(roles)) if review.can_decide(user, roles)
        ]
        decided_ids = uow.reviews.recently_decided_ids(user, HOME_PAGE_SIZE)
        decided = uow.reviews.get_many(decided_ids)
        latest = [decided[review_id] for review_id in decided_ids if review_id in decided]
        owned = uow.initiatives.count(InitiativeFilter(involving=user))
        page = home_page(page, HOME_PAGE_SIZE, owned, len(waiting), len(latest))
        mine = uow.initiatives.list(
            InitiativeFilter(involving=user, limit=HOME_PAGE_SIZE, offset=page * HOME_PAGE_SIZE)
        )
        named = uow.initiatives.get_many(review.initiative_ref for review in (*waiting, *latest))
    my_rows = []
    for initiative in mine:
        report = None
        if initiative.status is not Status.RETIRED and usecases.next_gate(pipeline, initiative) is not None:
            try:
                report = usecases.check_readiness(pipeline, services.read_uow(), initiative.ref)
            except GateError:
                report = None
        my_rows.append((initiative, report))
    governance = None
    if services.settings.sees_portfolio(user):
        try:
            governance = home_governance_section(load_portfolio(pipeline, services.read_uow(), now))
        except ShepherdError:  # a database hiccup must not take the whole tab down
            logger.exception("could not compute the portfolio for App Home")
    # Before publishing: the person may page on from the tab the moment it shows. A write only
    # when the page moved, so a refresh after each decision writes nothing.
    if page != shown:
        _remember_page(refs, user, page, now)
    client.views_publish(
        user_id=user,
        view=blocks.home_view(
            user,
            my_rows,
            [(review, named[review.initiative_ref]) for review in waiting],
            [(review, named[review.initiative_ref]) for review in latest],
            page=page,
            page_size=HOME_PAGE_SIZE,
            governance=governance,
            pipeline=pipeline,
            stalled={i.ref for i in mine if usecases.is_stalled(pipeline, i, now)},
            my_count=owned,
        ),
    )


def _remember_page(refs: MessageRefs, user: str, page: int, now: datetime) -> None:
    """Best effort: the database failing here costs the person their page at the next refresh,
    not the tab itself, nor the refresh of the other people's tabs."""
    try:
        refs.remember_page(home_target(user), HOME_KIND, user, page, now)
    except (SQLAlchemyError, ShepherdError):
        logger.warning("App Home of %s: the page shown could not be remembered", user, exc_info=True)
