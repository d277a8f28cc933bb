"""Shepherd and the Slack emulator in one process, driven by what a visitor does on the page.

:class:`Playground` starts the emulator's Web API, Shepherd's real Bolt app behind its real ASGI
server (on an internal port, signing secret and bot token generated at start, ``SLACK_API_URL``
pointed at the emulator) and the outbox worker. Every move a visitor makes (typing, clicking,
submitting a modal) becomes the request Slack would send, signed, into ``/slack/events``; every
answer the bot gives lands in the emulator's state, which the page draws. Nothing is faked on
the bot's side of the wire.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from bot import ids
from bot.app import build_app
from bot.bootstrap import Services, bootstrap
from bot.emulator import payloads
from bot.emulator.client import HttpResult, SlackClient
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.state import SlackApiFailure, SlackState
from bot.emulator.webapi import FakeSlackWebAPI
from bot.inbox import start_processor
from bot.playground.demo import PEOPLE, REGISTRY_CHANNEL, Person, seed_people
from bot.server import asgi_app, start_outbox_worker
from bot.settings import Settings
from gates import usecases
from knowledge import KnowledgeBase

logger = logging.getLogger("shepherd.playground")

LONG_POLL_SECONDS = 20.0
_MENTION = re.compile(r"(?<!\w)@([A-Za-z][\w.\-]*)")


class ActError(ValueError):
    """A move the page asked for cannot be made; the message says why, for the visitor."""


class Changes:
    """A version number that grows with every change, and a way to wait for the next one."""

    def __init__(self) -> None:
        self._version = 0
        self._closed = False
        self._condition = threading.Condition()

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    def bump(self) -> None:
        """Something changed: wake everyone waiting."""
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, since: int, timeout: float) -> int:
        """Block until the version passes ``since`` (or ``timeout``, or close); returns it."""
        with self._condition:
            self._condition.wait_for(lambda: self._version > since or self._closed, timeout)
            return self._version

    def close(self) -> None:
        """Release every waiter for good (shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()


def slack_text(text: str, state: SlackState) -> str:
    """What Slack's composer sends: the text escaped (so a typed ``x<y`` stays text), then
    ``@Shepherd`` and ``@name`` as ``<@U...>`` mentions."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).rstrip(".-").lower()
        trailing = match.group(1)[len(name) :]
        if name in (state.bot_name.lower(), "shepherd"):
            return f"<@{state.bot_user_id}>{trailing}"
        for user in state.users.values():
            first = user.real_name.split()[0].lower() if user.real_name else ""
            if name in (user.name.lower(), first):
                return f"<@{user.id}>{trailing}"
        return match.group(0)

    with state.lock:
        return _MENTION.sub(replace, payloads.escaped_typed_text(text))


class Playground:
    """The whole playground: emulator, bot and worker. ``start()`` / ``stop()`` or a ``with``.

    Args:
        settings: the person's settings; the playground keeps its data in
            ``settings.data_dir / "playground"`` (a fresh SQLite database at each start) and
            ignores any Slack credentials in them.
        knowledge_factory: opens the policy knowledge base; by default the one in the
            playground's data directory (``shepherd run`` passes the one it already ingested).
        people: the demo people (see :mod:`bot.playground.demo`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        knowledge_factory: Callable[[], KnowledgeBase | None] | None = None,
        people: tuple[Person, ...] = PEOPLE,
    ) -> None:
        self.people = people
        self.data_dir = settings.data_dir / "playground"
        self.token = "xoxb-playground-" + secrets.token_hex(12)
        self.signing_secret = secrets.token_hex(16)
        self.state = SlackState(tokens=[self.token], team_name="Shepherd Playground")
        seed_people(self.state, people)
        self.registry = self.state.channel_by_name(REGISTRY_CHANNEL)
        self.api = FakeSlackWebAPI(self.state)
        self.changes = Changes()
        self.acting_user = people[0].id
        self.run = secrets.token_hex(8)  # tells a page left open across a restart that all is new
        self.modal_errors: dict[str, dict[str, str]] = {}  # view id -> block id -> message
        self._base_settings = settings
        self._knowledge_factory = knowledge_factory
        self._bot_server: BackgroundASGIServer | None = None
        self._stop_worker = threading.Event()
        self.services: Services | None = None
        self.client: SlackClient | None = None
        self.api.on_call(lambda _call: self.changes.bump())

    # lifecycle ------------------------------------------------------------------------------

    def bot_settings(self) -> Settings:
        """The settings Shepherd runs with here: emulator URL, generated secrets, own database."""
        admins = [p.id for p in self.people if p.role_admin]
        return self._base_settings.model_copy(
            update={
                "data_dir": self.data_dir,
                "database_url": None,
                "slack_bot_token": SecretStr(self.token),
                "slack_signing_secret": SecretStr(self.signing_secret),
                "slack_app_token": None,
                "slack_client_id": None,
                "slack_client_secret": None,
                "slack_api_url": self.api.api_url,
                "registry_channel": self.registry.id,
                "role_admins": admins,
            }
        )

    def start(self) -> Playground:
        """Start the emulator, Shepherd (fresh database, demo roles) and the outbox worker."""
        self.api.start()
        # The emulator's workspace is new at every start, so old cards would point nowhere.
        database = self.data_dir / "shepherd.db"
        database.unlink(missing_ok=True)
        settings = self.bot_settings()
        services = bootstrap(settings)
        if self._knowledge_factory is not None:
            services.knowledge_factory = self._knowledge_factory
        self.services = services
        self._seed_roles(services)
        app = build_app(settings, services)
        self._bot_server = BackgroundASGIServer(asgi_app(app, services, run_worker=False)).start()
        start_processor(services, app.client, self._stop_worker)
        start_outbox_worker(app, services, self._stop_worker)
        self.client = SlackClient(self._bot_server.url + "/slack/events", self.signing_secret)
        return self

    def stop(self) -> None:
        """Stop the worker, the bot and the emulator; release every waiting page."""
        self.changes.close()
        self._stop_worker.set()
        if self._bot_server is not None:
            self._bot_server.stop()
            self._bot_server = None
        self.api.stop()
        if self.services is not None:
            self.services.database.dispose()

    def __enter__(self) -> Playground:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _seed_roles(self, services: Services) -> None:
        roles = services.pipeline.model.roles
        admin = next((p.id for p in self.people if p.role_admin), self.people[0].id)
        for role in dict.fromkeys(p.role for p in self.people if p.role):
            if role not in roles:
                logger.info("the pipeline has no role %r; the demo person holding it approves nothing", role)
                continue
            holders = [p.id for p in self.people if p.role == role]
            usecases.set_role_holders(services.pipeline, services.uow(), role, holders, admin, services.now())

    # what the page shows ---------------------------------------------------------------------

    def snapshot(self, user_id: str | None = None) -> dict[str, Any]:
        """Everything the page draws for ``user_id`` (default: the acting user)."""
        user = self._person_id(user_id or self.acting_user)
        state = self.state
        version = self.changes.version
        with state.lock:
            conversations = state.conversations_for(user)
            channels = []
            messages: dict[str, list[dict[str, Any]]] = {}
            for channel in conversations:
                channels.append(
                    {
                        "id": channel.id,
                        "name": "Shepherd" if channel.is_im else channel.name,
                        "kind": "dm" if channel.is_im else "channel",
                    }
                )
                stored = state.messages.get(channel.id, {}).values()
                messages[channel.id] = sorted(stored, key=lambda m: float(m["ts"]))
            people = [
                {
                    "id": u.id,
                    "name": u.name,
                    "real_name": u.real_name,
                    "is_bot": u.is_bot,
                    "title": (p.title if (p := self._person(u.id)) else ("App" if u.is_bot else "")),
                }
                for u in state.users.values()
            ]
            modals = state.modal_stack(user)
            result = {
                "run": self.run,
                "version": version,
                "me": user,
                "team": state.team_name,
                "bot": {"id": state.bot_user_id, "name": "Shepherd"},
                "registry": self.registry.id,
                "people": people,
                "actors": [p.id for p in self.people],
                "channels": channels,
                "messages": messages,
                "ephemerals": state.ephemeral_for(user),
                "home": state.home_view(user),
                "modals": modals,
                "modal_errors": {m["id"]: self.modal_errors.get(m["id"], {}) for m in modals},
            }
            # One deep copy under the lock: the page's JSON must not change while it is encoded.
            return copy.deepcopy(result)

    def _person(self, user_id: str) -> Person | None:
        return next((p for p in self.people if p.id == user_id), None)

    def _person_id(self, user_id: Any) -> str:
        user = str(user_id or "")
        if self._person(user) is None:
            raise ActError(f"Unknown person {user!r}; pick someone from the list.")
        return user

    # what a person does ---------------------------------------------------------------------

    def act(self, move: dict[str, Any]) -> dict[str, Any]:
        """Make one move (``type`` names it); returns what the page needs to know.

        Raises:
            ActError: the move is malformed or impossible; the message is for the visitor.
        """
        kind = str(move.get("type") or "")
        handler = _MOVES.get(kind)
        if handler is None:
            raise ActError(f"Unknown move {kind!r}; expected one of {', '.join(sorted(_MOVES))}.")
        user = self._person_id(move.get("user") or self.acting_user)
        try:
            result = handler(self, user, move)
        except SlackApiFailure as failure:
            raise ActError(f"Slack refused that: {failure.error}") from failure
        except (KeyError, ValueError) as error:
            if isinstance(error, ActError):
                raise
            raise ActError(str(error).strip("'\"")) from error
        finally:
            self.changes.bump()
        return result

    def switch_user(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        self.acting_user = user
        return {"ok": True, "me": user}

    def send(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """A line typed into a composer: a slash command, or a message (with mentions)."""
        text = str(move.get("text") or "").strip()
        if not text:
            raise ActError("Type something first.")
        channel = self._channel_for(user, move.get("channel"))
        thread_ts = str(move["thread_ts"]) if move.get("thread_ts") else None
        if text.startswith("/"):
            return self._command(user, channel, text)
        typed = slack_text(text, self.state)
        # The thread first: a reply to a message that is not there is refused before it is kept.
        parent_user = self.state.message(channel.id, thread_ts).get("user") if thread_ts else None
        stored = self.state.post_user_message(channel.id, user, typed, thread_ts=thread_ts)
        event: dict[str, Any] | None = None
        common: dict[str, Any] = {
            "user_id": user,
            "channel_id": channel.id,
            "ts": stored["ts"],
            "thread_ts": thread_ts,
            "parent_user_id": parent_user,
        }
        # Shepherd subscribes to app_mention and message.im only (see slack-manifest.yaml).
        if channel.is_im:
            event = payloads.message_event(typed, channel_type="im", **common)
        elif f"<@{self.state.bot_user_id}>" in typed:
            event = payloads.app_mention_event(typed, **common)
        if event is not None:
            self._expect_ok(self._client().send_event(payloads.event_callback(event)), "the message")
        return {"ok": True, "ts": stored["ts"]}

    def _command(self, user: str, channel: Any, text: str) -> dict[str, Any]:
        command, _, rest = text.partition(" ")
        if command != ids.COMMAND:
            raise ActError(f"{command} is not a command here. Try {ids.COMMAND} help.")
        # As Slack sends it with escaping on (the manifest's should_escape): @names as mentions.
        typed = payloads.escaped_command_text(rest.strip(), {u.name: u.id for u in self.state.users.values()})
        payload = payloads.slash_command(
            command,
            typed,
            user_id=user,
            channel_id=channel.id,
            channel_name=channel.name if not channel.is_im else "directmessage",
            user_name=self.state.users[user].name,
            trigger_id=self.api.mint_trigger_id(user),
            response_url=self.api.response_url(channel.id, user),
        )
        result = self._expect_ok(self._client().send(payload), text)
        self.api.apply_command_response(channel.id, user, result.body)
        return {"ok": True}

    def click(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """A button click or a selection, on a message, an ephemeral message, a modal or the Home."""
        action_id = str(move.get("action_id") or "")
        block_id = str(move["block_id"]) if move.get("block_id") else None
        value = move.get("value")
        surface = move.get("surface", "message")
        if surface == "view":
            view = self.state.view(str(move.get("view_id") or ""))
            if self.state.view_owners.get(view["id"]) != user:
                raise ActError("That view belongs to someone else.")
            payload = payloads.block_actions_in_view(
                view,
                action_id,
                user_id=user,
                value=value,
                values=_form(move.get("values")),
                block_id=block_id,
                trigger_id=self.api.mint_trigger_id(user),
            )
        else:
            channel = self._channel_for(user, move.get("channel"))
            ts = str(move.get("ts") or "")
            ephemeral = surface == "ephemeral"
            message = (
                self.state.ephemeral(user, channel.id, ts)
                if ephemeral
                else self.state.message(channel.id, ts)
            )
            payload = payloads.block_actions_on_message(
                message,
                action_id,
                user_id=user,
                channel_id=channel.id,
                value=value,
                block_id=block_id,
                channel_name=channel.name,
                user_name=self.state.users[user].name,
                is_ephemeral=ephemeral,
                trigger_id=self.api.mint_trigger_id(user),
                response_url=self.api.response_url(channel.id, user, ts),
            )
        self._expect_ok(self._client().send(payload), "the click")
        return {"ok": True}

    def submit_view(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """Submit the modal on top: the bot's answer closes, updates, pushes or shows errors."""
        view = self._own_modal(user, move.get("view_id"))
        payload = payloads.view_submission(
            view, user_id=user, values=_form(move.get("values")), user_name=self.state.users[user].name
        )
        result = self._expect_ok(self._client().send(payload), "the form")
        answer = _json_body(result)
        errors = self.api.apply_view_response(user, view["id"], answer)
        if errors:
            self.modal_errors[view["id"]] = errors
        else:
            self.modal_errors.pop(view["id"], None)
        return {"ok": not errors, "errors": errors}

    def close_view(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """Cancel the modal on top (it and anything pushed above it close)."""
        view = self._own_modal(user, move.get("view_id"))
        if view.get("notify_on_close"):
            payload = payloads.view_closed(view, user_id=user, user_name=self.state.users[user].name)
            self._expect_ok(self._client().send(payload), "closing the form")
        self.state.close_modals(user, view["id"])
        self.modal_errors.pop(view["id"], None)
        return {"ok": True}

    def open_home(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """Open Shepherd's App Home tab (the bot publishes it in answer)."""
        dm, _ = self.state.open_dm(user)
        event = payloads.app_home_opened_event(
            user, channel_id=dm.id, tab="home", view=self.state.home_view(user)
        )
        self._expect_ok(self._client().send_event(payloads.event_callback(event)), "the App Home")
        return {"ok": True}

    def dismiss(self, user: str, move: dict[str, Any]) -> dict[str, Any]:
        """Dismiss an ephemeral message."""
        channel = self._channel_for(user, move.get("channel"))
        return {"ok": self.state.dismiss_ephemeral(user, channel.id, str(move.get("ts") or ""))}

    # helpers --------------------------------------------------------------------------------

    def _client(self) -> SlackClient:
        if self.client is None:
            raise ActError("The playground is not running.")
        return self.client

    def _channel_for(self, user: str, channel_id: Any) -> Any:
        channel = self.state.resolve_channel(str(channel_id or ""))
        if not channel.has_member(user):
            raise ActError("You are not in that conversation.")
        return channel

    def _own_modal(self, user: str, view_id: Any) -> dict[str, Any]:
        stack = self.state.modal_stack(user)
        if not stack:
            raise ActError("No form is open.")
        top = stack[-1]
        if view_id and str(view_id) != top["id"]:
            raise ActError("That form is no longer on top; it was replaced or closed.")
        return top

    @staticmethod
    def _expect_ok(result: HttpResult, what: str) -> HttpResult:
        if result.status != 200:
            raise ActError(f"Shepherd did not accept {what} (HTTP {result.status}).")
        return result


def _form(values: Any) -> dict[str, Any]:
    """The page's form values, keyed by block id; empty strings mean left empty."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ActError("Form values must be an object keyed by block id.")
    return {str(k): (None if v in ("", []) else v) for k, v in values.items()}


def _json_body(result: HttpResult) -> dict[str, Any] | None:
    if not result.body.strip():
        return None
    try:
        answer = result.json()
    except ValueError as error:
        raise ActError("Shepherd answered the form with something that is not JSON.") from error
    return answer if isinstance(answer, dict) else None


_MOVES: dict[str, Callable[[Playground, str, dict[str, Any]], dict[str, Any]]] = {
    "switch_user": Playground.switch_user,
    "send": Playground.send,
    "click": Playground.click,
    "submit_view": Playground.submit_view,
    "close_view": Playground.close_view,
    "open_home": Playground.open_home,
    "dismiss": Playground.dismiss,
}
