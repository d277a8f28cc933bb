"""A running Shepherd wired to the Slack emulator, driven the way Slack drives it.

``Workspace`` starts the real Bolt app behind the real ASGI server, points its WebClient at the
emulator, and offers the moves a person makes in Slack (a slash command, a button, a modal
submission, a mention), each sent as a signed HTTP request. Requests the app accepted into its
inbox are applied by the real inbox processor as soon as the move's response is back (the
worker process does this in production). Notifications are delivered by the real outbox worker
when the test calls ``deliver()``, so tests control the order of events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot import ids
from bot.app import build_app
from bot.bootstrap import Services, bootstrap
from bot.emulator import SlackApiFailure, payloads
from bot.emulator.client import SlackClient
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.inbox import processor as inbox_processor
from bot.notify import SlackNotifier
from bot.server import asgi_app
from bot.settings import Settings
from bot.slack_client import make_client
from gates import usecases
from storage.inbox import InboxProcessor
from storage.outbox import OutboxWorker
from storage.slack_messages import MessageRefs

REPO = Path(__file__).resolve().parents[2]

SIGNING_SECRET = "test-signing-secret"


@dataclass
class Clock:
    """A clock the test moves by hand (time boxes, outbox backoff)."""

    at: datetime = field(default_factory=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Workspace:
    api: FakeSlackWebAPI
    services: Services
    client: SlackClient
    registry: str
    clock: Clock
    worker: OutboxWorker
    inbox: InboxProcessor

    # -- what people do -------------------------------------------------------------------

    def command(self, user: str, text: str, channel: str | None = None) -> Any:
        payload = payloads.slash_command(
            ids.COMMAND,
            text,
            user_id=user,
            channel_id=channel or self.registry,
            trigger_id=self.api.mint_trigger_id(user),
            response_url=self.api.response_url(channel or self.registry, user),
        )
        response = self._applied(self.client.send(payload))
        # What the ack carried is shown as Slack shows it, after Slack's own checks of its blocks.
        if response.status == 200:
            shown = self.api.apply_command_response(channel or self.registry, user, response.body)
            assert shown is None or shown.get("ok"), f"Slack would refuse the command's answer: {shown}"
        return response

    def click(self, user: str, message: dict[str, Any], channel: str, action_id: str) -> Any:
        value = find_button(message, action_id)["value"]
        payload = payloads.block_actions_on_message(
            message,
            action_id,
            user_id=user,
            channel_id=channel,
            value=value,
            trigger_id=self.api.mint_trigger_id(user),
            response_url=self.api.response_url(channel, user, message.get("ts")),
        )
        return self._applied(self.client.send(payload))

    def submit_view(self, user: str, view: dict[str, Any], values: dict[str, Any]) -> Any:
        response = self._applied(
            self.client.send(payloads.view_submission(view, user_id=user, values=values))
        )
        # A modal the fake opened takes the answer as Slack would, checking any view it brings.
        if response.status == 200 and view.get("id") in self.api.state.views:
            answer = json.loads(response.body) if response.body.strip() else None
            try:
                self.api.apply_view_response(user, view["id"], answer)
            except SlackApiFailure as failure:
                raise AssertionError(f"Slack would refuse the answer to the submission: {failure}") from None
        return response

    def mention(self, user: str, text: str, channel: str, thread_ts: str | None = None, **kw: Any) -> Any:
        event = payloads.app_mention_event(
            f"<@{self.api.state.bot_user_id}> {text}", user_id=user, channel_id=channel, thread_ts=thread_ts
        )
        return self._applied(self.client.send_event(payloads.event_callback(event, **kw)))

    def _applied(self, response: Any) -> Any:
        """What the worker does right after: apply what this move put in the inbox."""
        self.inbox.drain()
        return response

    # -- what the test observes -------------------------------------------------------------

    def opened_view(self, action: Any) -> dict[str, Any]:
        """Do ``action`` (a callable), then return the view the bot opened in response."""
        before = len(self.api.calls("views.open"))
        response = action()
        assert response.status == 200, response.text
        self.api.wait_for("views.open", count=before + 1, timeout=10)
        call = self.api.calls("views.open")[before]
        assert call.ok, f"views.open failed: {call.response}"
        return call.response["view"]

    def deliver(self) -> int:
        """Run the outbox worker until nothing is due; returns how many it delivered."""
        total = 0
        for _ in range(50):
            delivered = self.worker.run_once(100)
            total += delivered
            if delivered == 0:
                return total
        return total

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        return list(self.api.state.channel_messages(channel))

    def dm_with(self, user: str) -> str:
        return self.api.state.open_dm(user)[0].id

    def wait(self, predicate: Any, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError("condition not met in time")


def register_low_risk(
    ws: Workspace, owner: str, sponsor: str, name: str = "Spare-parts demand forecast"
) -> str:
    """Register an initiative with the example low-risk intake answers (through the use case, as
    setup: the modal has tests of its own); returns its reference."""
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    answers |= {"business_sponsor": sponsor, "initiative_owner": owner}
    services = ws.services
    initiative = usecases.register(
        services.pipeline,
        services.uow(),
        name=name,
        owner_id=owner,
        answers=answers,
        actor_id=owner,
        now=ws.clock(),
    )
    return initiative.ref


@contextmanager
def workspace_with_initiative(
    data_dir: Path, people: dict[str, str], owner: str, sponsors: list[str]
) -> Iterator[Workspace]:
    """A running workspace with ``people`` (id -> name), ``sponsors`` holding the sponsor role,
    and one low-risk initiative registered by ``owner`` with the first sponsor named."""
    api = FakeSlackWebAPI()
    for user, name in people.items():
        api.state.add_user(user, name)
    with api, running_workspace(api, data_dir) as ws:
        services = ws.services
        usecases.set_role_holders(
            services.pipeline, services.uow(), "sponsor", sponsors, "U0ADMIN01", ws.clock()
        )
        register_low_risk(ws, owner, sponsors[0])
        yield ws


def only_ref(ws: Workspace) -> str:
    """The reference of the workspace's one initiative."""
    [initiative] = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    return initiative.ref


def find_button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message.get("blocks", []):
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        accessory = block.get("accessory")
        for element in [*elements, *([accessory] if accessory else [])]:
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button in {[b.get('type') for b in message.get('blocks', [])]}")


def has_button(message: dict[str, Any], action_id: str) -> bool:
    try:
        find_button(message, action_id)
    except AssertionError:
        return False
    return True


@contextmanager
def running_workspace(
    api: FakeSlackWebAPI,
    data_dir: Path,
    database_url: str | None = None,
    *,
    slack_timeout: int | None = None,
    **overrides: Any,
) -> Iterator[Workspace]:
    """Shepherd on a fresh database, serving HTTP on a real port, talking to ``api``.

    ``slack_timeout``: seconds the app's WebClient waits for a Slack answer (15 by default), so
    that a test can make Slack slower than that without waiting 15 s.
    """
    registry = api.state.add_channel("ai-initiatives")
    clock = Clock()
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        slack_bot_token=api.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api.api_url,
        registry_channel=registry.id,
        embeddings="none",
        role_admins=["U0ADMIN01"],
        **overrides,
    )
    services = bootstrap(settings)
    services.clock = clock
    if not services.database.is_sqlite:
        services.database.upgrade()
    client = make_client(api.bot_token, api.api_url, timeout=slack_timeout) if slack_timeout else None
    app = build_app(settings, services, client)
    notifier = SlackNotifier(services, app.client, MessageRefs(services.database))
    worker = OutboxWorker(services.database, notifier, clock=services)
    with BackgroundASGIServer(asgi_app(app, services, run_worker=False)) as server:
        client = SlackClient(server.url + "/slack/events", SIGNING_SECRET)
        yield Workspace(
            api, services, client, registry.id, clock, worker, inbox_processor(services, app.client)
        )
    services.database.dispose()


@contextmanager
def workspace_of(people: dict[str, str], data_dir: Path, **overrides: Any) -> Iterator[Workspace]:
    """Shepherd serving HTTP on a fresh SQLite database, with a fake Slack that knows ``people``
    (user id -> name); ``overrides`` as for ``running_workspace`` (a pipeline file, say)."""
    api = FakeSlackWebAPI()
    for user, name in people.items():
        api.state.add_user(user, name)
    with api, running_workspace(api, data_dir, **overrides) as ws:
        yield ws
