"""Shepherd's listener matching picks the same listeners as Bolt's own, for every kind of request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.listener_matcher.custom_listener_matcher import CustomListenerMatcher
from slack_bolt.middleware.custom_middleware import CustomMiddleware

from bot import app as app_module
from bot import ids
from bot.app import build_app
from bot.listener_matching import BodyMatcher
from bot.settings import Settings


def _command(text: str) -> dict[str, Any]:
    return {"command": ids.COMMAND, "text": text, "user_id": "U1", "channel_id": "C1"}


def _click(action_id: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U1"},
        "actions": [{"action_id": action_id, "block_id": "b"}],
    }


def _view(kind: str, callback_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "user": {"id": "U1"},
        "view": {"type": "modal", "callback_id": callback_id, "id": "V1"},
    }


def _event(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event_callback", "event_id": "Ev1", "event": {"user": "U1", "channel": "C1", **event}}


BODIES = [
    *(
        _command(text)
        for text in ("", "help", "status AI-0001", "new", "ask what next?", "portfolio", "roles")
    ),
    {"type": "shortcut", "callback_id": ids.SHORTCUT_NEW, "user": {"id": "U1"}},
    *(
        _click(action)
        for action in (
            ids.ACTION_OPEN_QUESTIONNAIRE,
            ids.ACTION_SUBMIT_REVIEW,
            ids.ACTION_APPROVE,
            ids.ACTION_REJECT,
            ids.ACTION_REQUEST_CHANGES,
            ids.ACTION_VIEW_EVIDENCE,
            ids.ACTION_FEEDBACK_HELPFUL,
            ids.ACTION_HOME_PAGE,
            ids.ACTION_NOOP_LINK,
            ids.ACTION_EXTEND_TIME_BOX,
            "not_ours",
        )
    ),
    *(
        _view("view_submission", view)
        for view in (
            ids.VIEW_INTAKE,
            ids.VIEW_QUESTIONNAIRE,
            ids.VIEW_REASON,
            ids.VIEW_EXCEPTION,
            ids.VIEW_STOP,
            ids.VIEW_OPERATIONS_REVIEW,
            "not_ours",
        )
    ),
    _view("view_closed", ids.VIEW_QUESTIONNAIRE),
    _view("view_closed", ids.VIEW_INTAKE),
    _event({"type": "app_mention", "text": "<@B1> what next?"}),
    _event({"type": "message", "channel_type": "im", "text": "hello"}),
    _event({"type": "message", "channel_type": "channel", "text": "hello"}),
    _event({"type": "app_home_opened", "tab": "home"}),
    _event({"type": "reaction_added"}),
]


def _app(tmp_path: Path, name: str) -> App:
    settings = Settings(
        data_dir=tmp_path / name,
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        slack_api_url="http://127.0.0.1:9/api/",
        embeddings="none",
    )
    return build_app(settings)


def _matching(app: App, body: dict[str, Any]) -> list[int]:
    request = BoltRequest(body=body, mode="socket_mode")
    response = BoltResponse(status=200)
    return [i for i, listener in enumerate(app._listeners) if listener.matches(req=request, resp=response)]


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> tuple[App, App]:
    """Shepherd's app, and the same app left to Bolt's own matching."""
    tmp_path = tmp_path_factory.mktemp("apps")
    ours = _app(tmp_path, "ours")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "match_by_body", lambda app: 0)
        bolts = _app(tmp_path, "bolts")
    return ours, bolts


def test_every_listener_starts_with_a_body_matcher(apps: tuple[App, App]) -> None:
    # If a Bolt upgrade moves its listeners, matching silently falls back to Bolt's (slower):
    # this says so.
    ours, bolts = apps
    assert ours._listeners and all(
        isinstance(listener.matchers[0], BodyMatcher) for listener in ours._listeners
    )
    assert not any(isinstance(m, BodyMatcher) for listener in bolts._listeners for m in listener.matchers)


def test_no_matcher_or_middleware_of_ours_goes_through_argument_injection(apps: tuple[App, App]) -> None:
    # Bolt builds every listener argument for each of these on every request it tries them on.
    ours, _ = apps
    assert not [
        listener
        for listener in ours._listeners
        for matcher in listener.matchers
        if isinstance(matcher, CustomListenerMatcher)
    ]
    assert not [m for m in ours._middleware_list if isinstance(m, CustomMiddleware)]


@pytest.mark.parametrize("body", BODIES, ids=lambda body: str(body.get("command") or body.get("type")))
def test_the_same_listeners_match_as_with_bolts_own_matching(
    apps: tuple[App, App], body: dict[str, Any]
) -> None:
    ours, bolts = apps
    assert _matching(ours, body) == _matching(bolts, body)


def test_requests_of_each_kind_match_one_of_our_listeners(apps: tuple[App, App]) -> None:
    ours, _ = apps
    unmatched = [body for body in BODIES if not _matching(ours, body)]
    # Only what Shepherd does not handle: an unknown action, an unknown view, another event.
    assert len(unmatched) == 3
