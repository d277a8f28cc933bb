"""Roles held through Slack user groups (``roles.<id>.slack_usergroup`` in the pipeline).

``bot.notify`` asks the members of a role's user group to decide, with the decision buttons, so
their clicks must count: a person's roles are the pipeline's ``slack_users``, the holders role
admins stored, and the roles of the user groups they belong to. Membership lives in Slack
(``usergroups.users.list``). It is asked only after the ack (the inbox worker recording a click,
a lazy listener) and kept ``TTL_SECONDS`` per group, so a burst of clicks costs one call per
group, and someone removed from a group loses the role within that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.client import HTTPException

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from gates.errors import ShepherdError
from gates.loader import CompiledPipeline

TTL_SECONDS = 300.0

logger = logging.getLogger("shepherd.usergroups")


class MembershipUnavailable(ShepherdError):  # noqa: N818 - named like storage.errors.DatabaseUnavailable
    """Slack could not say who is in a user group (an outage, a missing scope)."""


class GroupRoles:
    """Who is in each role's user group, remembered per process for ``ttl`` seconds."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def groups(pipeline: CompiledPipeline) -> dict[str, str]:
        """role -> user group id, for the roles that name one."""
        return {
            role: spec.slack_usergroup for role, spec in pipeline.model.roles.items() if spec.slack_usergroup
        }

    def roles_of(
        self,
        pipeline: CompiledPipeline,
        user: str,
        client: WebClient | None,
        *,
        recheck_absent: bool = False,
        asked: set[str] | None = None,
    ) -> set[str]:
        """The roles ``user`` holds through user groups (none if the pipeline names no group).

        ``client`` None: only what is remembered, for an ack, which must not wait on Slack.
        ``recheck_absent``: a group remembered without ``user`` is asked again (with a client),
        for judging a decision: someone just added to a group may already have been asked to
        decide (``bot.notify`` asks its members as they are), and must not be refused on a list
        from before. Only then: App Home, opened by everyone, would cost a call per group each.
        ``asked``: the groups asked of Slack so far for one round of decisions (added to): each
        is asked at most once for the round, however many of its clickers it leaves out, so that
        a round of a few dozen clicks stays within Slack's rate limit for listing a group.

        Raises:
            MembershipUnavailable: Slack did not answer (or, without a client, a group's members
                are not remembered); the caller decides whether to retry.
        """
        roles = set()
        for role, group in self.groups(pipeline).items():
            members, remembered = self._members_of(group, client)
            if not remembered and asked is not None:
                asked.add(group)
            stale = remembered and (asked is None or group not in asked)  # not asked this round
            if user not in members and stale and recheck_absent and client is not None:
                try:
                    members, _ = self._members_of(group, client, fresh=True)
                except MembershipUnavailable:
                    # The remembered list still holds: a Slack outage must not hold up the
                    # decisions it already answers for (a role held directly, say), as it did
                    # not before rechecks were asked for.
                    logger.warning("user group %s not listed again; its remembered members count", group)
                if asked is not None:
                    asked.add(group)
            if user in members:
                roles.add(role)
        return roles

    def _members_of(
        self, group: str, client: WebClient | None, *, fresh: bool = False
    ) -> tuple[frozenset[str], bool]:
        """The group's members, and whether they were remembered rather than asked of Slack now."""
        now = self._clock()
        with self._lock:
            known = self._members.get(group)
        if known is not None and now - known[0] < self._ttl and not fresh:
            return known[1], True
        if client is None:
            raise MembershipUnavailable(f"The members of user group {group} are not known yet.")
        try:
            members = frozenset(client.usergroups_users_list(usergroup=group)["users"])
        except (SlackApiError, OSError, HTTPException) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else type(error).__name__
            raise MembershipUnavailable(
                f"Slack could not list the members of user group {group} ({code}), so your roles "
                "could not be checked."
            ) from error
        with self._lock:
            self._members[group] = (now, members)
        return members, False
