"""``build_app(settings)``: the one place the Bolt app is assembled.

The app runs with ``process_before_response=True``: each listener's quick half (the ack, plus
database work that must be durable before Slack hears "OK", such as an approval) runs before
the HTTP response; everything that calls Slack or the LLM runs in Bolt's lazy listeners or in
the outbox worker. The ack therefore never waits for Slack (measured in benchmarks/bench_slack.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.bootstrap import Services, bootstrap
from bot.installations import Revocations, installation_store
from bot.listener_matching import match_by_body
from bot.listeners.actions import ActionListeners
from bot.listeners.commands import CommandListeners
from bot.listeners.common import ErrorReporter
from bot.listeners.events import EventListeners
from bot.listeners.operations import OperationsListeners
from bot.listeners.views import ViewListeners
from bot.request_signature import verify_piecewise
from bot.settings import Settings
from bot.slack_client import make_client
from gates.errors import ShepherdError
from storage.slack_messages import MessageRefs

logger = logging.getLogger("shepherd.app")

BOT_SCOPES = [
    "app_mentions:read",
    "chat:write",
    "commands",
    "im:history",
    "im:read",
    "im:write",
    "users:read",
    "usergroups:read",
    "files:write",
    "assistant:write",
    "channels:read",  # conversations.info: `shepherd doctor` checks the registry channel
    "groups:read",  # the same, for a private registry channel
]

# Threads for Bolt's lazy listeners (Bolt's default is 5): opening a modal, publishing App Home,
# asking Slack who is in a user group, posting a question's placeholder. Each is a Slack call or
# two; a thread costs nothing until it is needed.
LISTENER_THREADS = 20


class ConfigurationError(ShepherdError):
    """Settings that cannot make a working Slack app; the message says which and how to fix it
    (an expected error: the command prints it as one line)."""


def app_token_refused(error: SlackApiError) -> tuple[str, str]:
    """What Slack's refusal of ``apps.connections.open`` means for SLACK_APP_TOKEN, and the fix."""
    code = str(error.response.get("error") or "unknown_error")
    needed = error.response.get("needed")
    why = f"{code}: it needs the {needed} scope" if code == "missing_scope" and needed else code
    return (
        f"Slack refused SLACK_APP_TOKEN ({why}), so Socket Mode cannot connect.",
        "Create an app-level token with the connections:write scope at api.slack.com/apps > your "
        "app > Basic Information > App-Level Tokens, and put it in SLACK_APP_TOKEN.",
    )


def check_slack_settings(settings: Settings) -> None:
    """Refuse settings that cannot serve Slack, naming what to set (``Settings.slack_missing``).

    Raises:
        ConfigurationError: no signing secret (HTTP mode), neither a bot token nor OAuth
            credentials, or a token of the wrong kind (a user token as the bot token, say).
    """
    missing = settings.slack_missing
    if missing is not None:
        raise ConfigurationError(f"Slack is not connected: set {missing}.")
    wrong = settings.wrong_slack_token
    if wrong is not None:
        raise ConfigurationError(" ".join(wrong))


def build_app(settings: Settings, services: Services | None = None, client: WebClient | None = None) -> App:
    """Build the configured Bolt app.

    Args:
        settings: Slack credentials and the rest of the configuration.
        services: already-built services (tests, ``shepherd serve``); built from settings if None.
        client: a ready WebClient; by default one pointed at ``SLACK_API_URL`` with retry handlers.

    Raises:
        ConfigurationError: no signing secret, or neither a bot token nor OAuth credentials.
    """
    check_slack_settings(settings)
    services = services or bootstrap(settings)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    options: dict[str, Any] = {
        "signing_secret": settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret
        else "",
        "process_before_response": True,
        "token_verification_enabled": False,
        "raise_error_for_unhandled_request": False,
    }
    if settings.oauth_enabled:
        assert settings.slack_client_id and settings.slack_client_secret
        installations = installation_store(settings, services.database)
        states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=services.database.engine)
        options["client"] = client or make_client(None, settings.slack_api_url)
        options["oauth_settings"] = OAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=BOT_SCOPES,
            installation_store=installations,
            state_store=states,
        )
    else:
        assert token, "check_slack_settings asks for it"
        # The client carries the token; Bolt reads it from there.
        options["client"] = client or make_client(token, settings.slack_api_url)

    # Bolt runs every lazy listener (after the ack) on this pool. Answering questions has a pool
    # of its own (``bot.answering``), so these threads only make quick Slack calls; enough of
    # them that a click opening a modal never waits behind another past its trigger's 3 s.
    options["listener_executor"] = ThreadPoolExecutor(
        max_workers=LISTENER_THREADS, thread_name_prefix="shepherd-listener"
    )
    answers = services.answers
    app = App(**options)
    if options["signing_secret"]:
        verify_piecewise(app, options["signing_secret"])
    messages = MessageRefs(services.database)
    app.middleware(_Dedupe(services))
    CommandListeners(services, answers).register(app)
    ActionListeners(services).register(app)
    ViewListeners(services).register(app)
    EventListeners(services, messages, answers).register(app)
    OperationsListeners(services).register(app)
    if settings.oauth_enabled:
        # An uninstalled workspace's token must not be used any more, by Bolt nor the outbox.
        revocations = Revocations(options["oauth_settings"].installation_store)
        app.event("app_uninstalled")(revocations.app_uninstalled)
        app.event("tokens_revoked")(revocations.tokens_revoked)
    app.error(ErrorReporter(services).handle)
    match_by_body(app)
    return app


class _Dedupe(Middleware):
    """Drop events Slack delivers again (its retries repeat the ``event_id``) before any listener
    sees them. The claim is a unique row in the database, so it holds across replicas.

    A ``Middleware`` rather than a function: Bolt calls a function middleware through its
    argument injection, which builds every argument a listener could ask for (7 µs with timeit,
    more under load) on every request, to pass the body.
    """

    def __init__(self, services: Services) -> None:
        self._services = services

    @property
    def name(self) -> str:
        return "shepherd_dedupe"

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        key = _dedupe_key(req.body)
        if key is not None and not self._services.database.claim(key, self._services.now()):
            logger.info("duplicate delivery dropped: %s", key)
            return BoltResponse(status=200, body="")
        return next()


def _dedupe_key(body: dict[str, Any]) -> str | None:
    # Double clicks are handled where their meaning is known: a repeated decision is a no-op in
    # the domain, a repeated submission is recognised by the submit listener.
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    return None
