"""Bolt's listener matching, without building every listener argument for every listener tried.

Bolt tries an app's listeners in order until one matches. Each ``app.command`` / ``app.action`` /
``app.view`` / ``app.event`` listener starts with a built-in matcher, a ``func(body) -> bool``,
but Bolt calls it through ``build_required_kwargs``, which prepares every argument any listener
could ask for (client, say, respond, the payload in eight shapes ...) only to pass ``body``:
7 µs a call with timeit on an idle process, about 40 under a profiler. A questionnaire page is
tried against 15 listeners before its own. ``BodyMatcher`` calls the same function with the body
alone; what matches is unchanged (tests compare with Bolt's own). Our own ``matchers=[...]``
that take only ``body`` are called the same way: Bolt wraps each in a ``CustomListenerMatcher``,
which injects arguments the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.listener_matcher.builtins import BuiltinListenerMatcher
from slack_bolt.listener_matcher.custom_listener_matcher import CustomListenerMatcher
from slack_bolt.listener_matcher.listener_matcher import ListenerMatcher

logger = logging.getLogger("shepherd.app")


class BodyMatcher(ListenerMatcher):
    """A built-in matcher's ``func(body)``, called with the request body alone."""

    def __init__(self, func: Callable[..., bool]) -> None:
        self.func = func

    def matches(self, req: BoltRequest, resp: BoltResponse) -> bool:
        return bool(self.func(body=req.body))


def _takes_only_body(matcher: Any) -> bool:
    return type(matcher) in (BuiltinListenerMatcher, CustomListenerMatcher) and list(matcher.arg_names) == [
        "body"
    ]


def match_by_body(app: App) -> int:
    """Replace the app's matchers that only read the body; returns how many.

    Leaves everything as it is if this Bolt keeps its listeners elsewhere: matching is then
    slower, never different.
    """
    listeners = getattr(app, "_listeners", None)
    if not isinstance(listeners, list):
        logger.info("Bolt's listeners are not where expected; its own matching is used")
        return 0
    replaced = 0
    for listener in listeners:
        matchers = getattr(listener, "matchers", None)
        if not isinstance(matchers, list):
            continue
        for index, matcher in enumerate(matchers):
            if _takes_only_body(matcher):
                matchers[index] = BodyMatcher(matcher.func)
                replaced += 1
    return replaced
