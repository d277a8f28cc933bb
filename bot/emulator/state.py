"""What the fake workspace holds: people, channels, messages, views, files, trigger ids.

This module knows nothing of HTTP. The Web API methods (``methods.py``) read and change it under
its lock; the playground reads it to draw the workspace and adds what people type through
:meth:`SlackState.post_user_message`. Messages and views are kept as the JSON dicts Slack itself
returns, so what a test asserts on is what the bot would get back from Slack.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_MESSAGE_TEXT = 40_000


class SlackApiFailure(Exception):  # noqa: N818 - named after what Slack answers, not a bug
    """A Web API call fails the way Slack fails it: ``ok: false`` with ``error``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def response(self) -> dict[str, Any]:
        """The JSON body Slack answers with."""
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class User:
    """A person (or bot) in the workspace."""

    id: str
    name: str
    real_name: str
    team_id: str
    email: str | None = None
    is_bot: bool = False
    is_admin: bool = False
    tz: str = "Europe/Amsterdam"
    deleted: bool = False  # a deactivated account

    def to_api(self) -> dict[str, Any]:
        """The user object ``users.info`` returns."""
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "display_name": self.name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.name,
            "team": self.team_id,
        }
        if self.email:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": profile,
        }


@dataclass
class Channel:
    """A public or private channel, or a DM with the bot (``is_im``)."""

    id: str
    name: str
    created: int
    is_im: bool = False
    is_private: bool = False
    im_user: str | None = None
    # None means everyone is a member, like #general.
    members: set[str] | None = None

    def has_member(self, user_id: str) -> bool:
        """Whether ``user_id`` can see this conversation."""
        return self.members is None or user_id in self.members

    def to_api(self) -> dict[str, Any]:
        """The conversation object ``conversations.info`` returns."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": False,
            "is_general": False,
            "is_member": True,
            "name_normalized": self.name,
            "num_members": len(self.members) if self.members is not None else 0,
        }


@dataclass
class Trigger:
    """A trigger id handed out with an interactive payload: single use, short lived."""

    user_id: str | None
    expires_at: float
    used: bool = False


@dataclass
class ResponseUrl:
    """A ``response_url``: 5 uses within 30 minutes, tied to a channel and user."""

    channel_id: str
    user_id: str
    message_ts: str | None
    expires_at: float
    uses_left: int = 5


@dataclass
class UploadedFile:
    """A file announced by ``files.getUploadURLExternal``; ``data`` arrives at the upload URL."""

    id: str
    filename: str
    length: int
    created: int
    user: str
    title: str | None = None
    data: bytes | None = None
    shares: list[str] = field(default_factory=list)


class SlackState:
    """The whole fake workspace, safe to use from several threads through :attr:`lock`.

    Args:
        team_id, team_domain, team_name: the workspace.
        bot_user_id, bot_id, app_id, bot_name: who the app is (``auth.test`` answers with them).
        tokens: tokens the Web API accepts; anything else gets ``invalid_auth``.
        app_tokens: app-level tokens (Socket Mode's ``apps.connections.open``) and their scopes.
        bot_scopes: the scopes the bot tokens hold, which Slack names in each answer's
            ``x-oauth-scopes`` header; None leaves the header out.
        trigger_ttl: seconds a trigger id lives (Slack: 3).
        socket_mode_url: the WebSocket address ``apps.connections.open`` hands out; by default
            one like Slack's, where nothing listens.
        clock: seconds since the epoch; injectable for tests about expiry.
    """

    def __init__(
        self,
        *,
        team_id: str = "T0SHEPHERD",
        team_domain: str = "shepherd-demo",
        team_name: str = "Shepherd Demo",
        bot_user_id: str = "U0SHEPBOT",
        bot_id: str = "B0SHEPBOT",
        app_id: str = "A0SHEPHERD",
        bot_name: str = "shepherd",
        tokens: Iterable[str] = ("xoxb-shepherd-test",),
        app_tokens: Mapping[str, Iterable[str]] | None = None,
        bot_scopes: Iterable[str] | None = None,
        trigger_ttl: float = 3.0,
        clock: Callable[[], float] = time.time,
        socket_mode_url: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_name = bot_name
        self.tokens = set(tokens)
        self.app_tokens: dict[str, frozenset[str]] = {
            token: frozenset(scopes)
            for token, scopes in (app_tokens or {"xapp-1-A0SHEPHERD-1-secret": ["connections:write"]}).items()
        }
        self.bot_scopes = frozenset(bot_scopes) if bot_scopes is not None else None
        # Token rotation: refresh token -> the bot token it replaces. Slack revokes a refresh
        # token (and its old access token) once it has been used.
        self.refresh_tokens: dict[str, str] = {}
        self.rotations = 0  # numbers the rotated tokens, so a revoked one is never issued again
        # OAuth installs: the code Slack hands the app's redirect -> the workspace and token it
        # grants (``approve_install``). A code is good once, as at Slack.
        self.install_codes: dict[str, tuple[str, str]] = {}
        self.trigger_ttl = trigger_ttl
        self.clock = clock
        self.socket_mode_url = socket_mode_url
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        # channel id -> ts -> message (top-level messages and thread replies alike)
        self.messages: dict[str, dict[str, dict[str, Any]]] = {}
        # ephemeral messages: only their recipient sees them, and the API cannot fetch them
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, str] = {}  # user id -> view id
        self.modal_stacks: dict[str, list[str]] = {}  # user id -> view ids, root first
        self.files: dict[str, UploadedFile] = {}
        self.triggers: dict[str, Trigger] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.assistant_threads: dict[tuple[str, str], dict[str, Any]] = {}
        self.view_owners: dict[str, str | None] = {}  # view id -> user it was opened for
        # (channel id, ts) -> {"state": "in_progress" | "completed", "chunks": [...]}
        self.streams: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._last_micros = 0
        self.add_user(bot_user_id, bot_name, "Shepherd", is_bot=True)

    # ids and timestamps -------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh Slack-looking id (``C``, ``D``, ``V``, ``F`` ... followed by 10 characters)."""
        with self.lock:
            return f"{prefix}0EMU{next(self._ids):06d}"

    def new_ts(self) -> str:
        """A message timestamp: unique and increasing, ``1700000000.000100`` style."""
        with self.lock:
            micros = max(self._last_micros + 1, int(self.clock() * 1_000_000))
            self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def now(self) -> int:
        """Whole seconds, as Slack's ``created`` fields."""
        return int(self.clock())

    def approve_install(self, team_id: str, token: str) -> str:
        """A workspace admin approving the app's install in ``team_id``: the code Slack sends to
        the app's redirect URL, which ``oauth.v2.access`` exchanges for ``token``."""
        with self.lock:
            code = f"code-{next(self._ids)}"
            self.install_codes[code] = (team_id, token)
        return code

    # people and conversations -----------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        email: str | None = None,
        is_bot: bool = False,
        is_admin: bool = False,
        deleted: bool = False,
    ) -> User:
        """Add (or replace) a person in the workspace (``deleted``: deactivated)."""
        user = User(user_id, name, real_name or name, self.team_id, email, is_bot, is_admin, deleted=deleted)
        with self.lock:
            self.users[user_id] = user
        return user

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        is_private: bool = False,
        members: Iterable[str] | None = None,
        bot_is_member: bool = True,
    ) -> Channel:
        """Add a channel. ``members=None`` lets everyone in; the bot joins unless told not to."""
        with self.lock:
            member_set = set(members) if members is not None else None
            if member_set is not None and bot_is_member:
                member_set.add(self.bot_user_id)
            if member_set is None and not bot_is_member:
                member_set = set(self.users) - {self.bot_user_id}
            channel = Channel(
                channel_id or self.new_id("C"),
                name.lstrip("#"),
                self.now(),
                is_private=is_private,
                members=member_set,
            )
            self.channels[channel.id] = channel
            self.messages.setdefault(channel.id, {})
            return channel

    def add_usergroup(self, usergroup_id: str, handle: str, users: Iterable[str]) -> None:
        """Add a user group (``@risk-officers``) with its members."""
        with self.lock:
            self.usergroups[usergroup_id] = {"id": usergroup_id, "handle": handle, "users": list(users)}

    def open_dm(self, user_id: str) -> tuple[Channel, bool]:
        """The bot's DM with ``user_id``, created on first use. Returns (channel, already_open)."""
        with self.lock:
            if user_id not in self.users:
                raise SlackApiFailure("user_not_found")
            for channel in self.channels.values():
                if channel.is_im and channel.im_user == user_id:
                    return channel, True
            channel = Channel(
                self.new_id("D"),
                user_id,
                self.now(),
                is_im=True,
                im_user=user_id,
                members={user_id, self.bot_user_id},
            )
            self.channels[channel.id] = channel
            self.messages[channel.id] = {}
            return channel, False

    def resolve_channel(self, reference: Any) -> Channel:
        """Find a conversation by id, ``#name``, or a user id (meaning the DM with that user).

        Raises:
            SlackApiFailure: ``channel_not_found``.
        """
        ref = str(reference or "").strip()
        with self.lock:
            if ref in self.channels:
                return self.channels[ref]
            if ref.startswith(("U", "W")) and ref in self.users:
                return self.open_dm(ref)[0]
            name = ref.lstrip("#")
            for channel in self.channels.values():
                if not channel.is_im and channel.name == name:
                    return channel
        raise SlackApiFailure("channel_not_found")

    def channel_by_name(self, name: str) -> Channel:
        """A channel by its name, for tests and the playground."""
        return self.resolve_channel("#" + name.lstrip("#"))

    # messages -------------------------------------------------------------------------------

    def store_message(self, channel: Channel, message: dict[str, Any]) -> dict[str, Any]:
        """Store a message in ``channel`` (as a thread reply when it has ``thread_ts``)."""
        with self.lock:
            ts = message.setdefault("ts", self.new_ts())
            if len(message.get("text") or "") > MAX_MESSAGE_TEXT:
                message["text"] = message["text"][:MAX_MESSAGE_TEXT]
            stored = self.messages.setdefault(channel.id, {})
            thread_ts = message.get("thread_ts")
            if thread_ts and thread_ts != ts and thread_ts in stored:
                parent = stored[thread_ts]
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
                users = parent.setdefault("reply_users", [])
                if message.get("user") not in users:
                    users.append(message.get("user"))
            stored[ts] = message
            return message

    def post_user_message(
        self, channel_id: str, user_id: str, text: str, *, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """Record what a person typed (the playground's composer; tests of threads).

        Returns the stored message; send the matching event to the bot with the client.
        """
        channel = self.resolve_channel(channel_id)
        message: dict[str, Any] = {
            "type": "message",
            "user": user_id,
            "text": text,
            "team": self.team_id,
            "client_msg_id": secrets.token_hex(16),
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        return copy.deepcopy(self.store_message(channel, message))

    def message(self, channel_id: str, ts: str) -> dict[str, Any]:
        """A stored message.

        Raises:
            SlackApiFailure: ``channel_not_found`` or ``message_not_found``.
        """
        channel = self.resolve_channel(channel_id)
        with self.lock:
            found = self.messages.get(channel.id, {}).get(str(ts))
            if found is None:
                raise SlackApiFailure("message_not_found")
            return found

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel, oldest first (copies)."""
        channel = self.resolve_channel(channel_id)
        with self.lock:
            messages = self.messages.get(channel.id, {}).values()
            top = [m for m in messages if m.get("thread_ts") in (None, m["ts"])]
            return copy.deepcopy(sorted(top, key=lambda m: float(m["ts"])))

    def thread(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        """A thread's parent then its replies, oldest first (copies)."""
        channel = self.resolve_channel(channel_id)
        with self.lock:
            messages = self.messages.get(channel.id, {}).values()
            found = [m for m in messages if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
            return copy.deepcopy(sorted(found, key=lambda m: float(m["ts"])))

    def ephemeral_for(self, user_id: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages shown to ``user_id`` (optionally in one channel), oldest first."""
        with self.lock:
            return copy.deepcopy(
                [
                    e
                    for e in self.ephemerals
                    if e["user"] == user_id and (channel_id is None or e["channel"] == channel_id)
                ]
            )

    # trigger ids and response urls -----------------------------------------------------------

    def mint_trigger_id(self, user_id: str | None = None) -> str:
        """Issue a trigger id as Slack does with every interactive payload."""
        trigger_id = f"{self.now()}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        with self.lock:
            self.triggers[trigger_id] = Trigger(user_id, self.clock() + self.trigger_ttl)
        return trigger_id

    def consume_trigger_id(self, trigger_id: Any) -> Trigger:
        """Use a trigger id once.

        Raises:
            SlackApiFailure: ``invalid_trigger_id`` when unknown, ``expired_trigger_id`` when
                older than its lifetime or already used.
        """
        with self.lock:
            trigger = self.triggers.get(str(trigger_id or ""))
            if trigger is None:
                raise SlackApiFailure("invalid_trigger_id")
            if trigger.used or self.clock() > trigger.expires_at:
                raise SlackApiFailure("expired_trigger_id")
            trigger.used = True
            return trigger

    def mint_response_url(self, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        """Issue a response_url key (the server turns it into a URL it serves)."""
        key = secrets.token_urlsafe(18)
        with self.lock:
            self.response_urls[key] = ResponseUrl(channel_id, user_id, message_ts, self.clock() + 30 * 60)
        return key

    # views ----------------------------------------------------------------------------------

    def new_view_hash(self) -> str:
        """A fresh view hash, ``1596530361.3wRYuk3R`` style."""
        return f"{self.now()}.{secrets.token_urlsafe(6)}"

    def view(self, view_id: str) -> dict[str, Any]:
        """A stored view (a copy).

        Raises:
            SlackApiFailure: ``not_found``.
        """
        with self.lock:
            if view_id not in self.views:
                raise SlackApiFailure("not_found")
            return copy.deepcopy(self.views[view_id])

    def modal_stack(self, user_id: str) -> list[dict[str, Any]]:
        """The modals open for ``user_id``, root first (copies)."""
        with self.lock:
            return [copy.deepcopy(self.views[v]) for v in self.modal_stacks.get(user_id, [])]

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The App Home published for ``user_id``, if any (a copy)."""
        with self.lock:
            view_id = self.home_views.get(user_id)
            return copy.deepcopy(self.views[view_id]) if view_id else None

    def close_modals(self, user_id: str, view_id: str | None = None) -> None:
        """Close the top modal (``view_id`` given: that one and those above it), or all."""
        with self.lock:
            stack = self.modal_stacks.get(user_id, [])
            if view_id is None:
                stack.clear()
            elif view_id in stack:
                del stack[stack.index(view_id) :]

    # what a person sees (the playground draws the workspace from these) ------------------------

    def conversations_for(self, user_id: str) -> list[Channel]:
        """Channels ``user_id`` belongs to, by name, then their DM with the bot (opened if needed)."""
        with self.lock:
            channels = sorted(
                (c for c in self.channels.values() if not c.is_im and c.has_member(user_id)),
                key=lambda c: c.name,
            )
            dm, _ = self.open_dm(user_id)
            return [*channels, dm]

    def ephemeral(self, user_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        """One ephemeral message shown to ``user_id`` (a copy).

        Raises:
            SlackApiFailure: ``message_not_found``.
        """
        with self.lock:
            for message in self.ephemerals:
                if message["user"] == user_id and message["channel"] == channel_id and message["ts"] == ts:
                    return copy.deepcopy(message)
        raise SlackApiFailure("message_not_found")

    def dismiss_ephemeral(self, user_id: str, channel_id: str, ts: str) -> bool:
        """Remove an ephemeral message, as its recipient's "Dismiss" does; False when not there."""
        with self.lock:
            before = len(self.ephemerals)
            self.ephemerals[:] = [
                e
                for e in self.ephemerals
                if not (e["user"] == user_id and e["channel"] == channel_id and e["ts"] == ts)
            ]
            return len(self.ephemerals) < before
