"""Ask Slack who the bot is when a process starts, not on the first request it serves.

With a bot token (one workspace), Bolt's authorization calls ``auth.test`` on the first request
each process serves, and every request arriving before the answer makes the call too, each
holding a dispatch thread meanwhile. With Slack taking 300 ms to answer, a second HTTP process
that had not yet served a request stalled its acks on the first requests sent its way: p99 ack
153-222 ms at 50 connections against 53 ms once warmed (``bench_slack --processes 2``).
"""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.middleware.authorization.single_team_authorization import SingleTeamAuthorization
from slack_sdk.errors import SlackClientError

logger = logging.getLogger("shepherd.app")


def warm_authorization(app: App) -> bool:
    """Fill in Bolt's ``auth.test`` answer now; returns whether it is in place.

    Never fatal: if Slack cannot be reached, Bolt asks again on the first request, as it would
    have anyway. OAuth installs (several workspaces) authorize per workspace from the
    installation store, so there is nothing to warm. This reads Bolt's private
    ``_middleware_list``; should a Bolt upgrade move it, nothing is warmed and Bolt's own lazy
    call remains.
    """
    for middleware in getattr(app, "_middleware_list", []):
        if not isinstance(middleware, SingleTeamAuthorization):
            continue
        if middleware.auth_test_result is not None:
            return True
        try:
            middleware.auth_test_result = app.client.auth_test()
        except (SlackClientError, OSError) as error:
            logger.warning(
                "Slack did not answer auth.test at start-up (%s); it is asked on the first request", error
            )
            return False
        return True
    return False
