"""The Web API methods: Slack's semantics and errors over :class:`SlackState`, no HTTP.

Each method takes the parsed parameters of one call and returns Slack's JSON answer, or raises
:class:`SlackApiFailure` with the error code Slack would give. ``WebApiMethods.call`` is the one
entry point; the HTTP server in ``webapi.py`` only parses requests and serialises answers.
"""

from __future__ import annotations

import base64
import copy
import json
import mimetypes
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from bot.emulator.blockkit import (
    MAX_MESSAGE_BLOCKS,
    block_errors,
    ensure_ids,
    view_errors,
)
from bot.emulator.state import Channel, SlackApiFailure, SlackState, UploadedFile

MAX_STREAM_TEXT = 12_000

# Parameters that carry JSON; form-encoded requests send them as strings.
_JSON_PARAMS = {
    "blocks",
    "attachments",
    "view",
    "files",
    "prompts",
    "chunks",
    "metadata",
    "loading_messages",
}

Handler = Callable[["WebApiMethods", dict[str, Any]], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for a Web API method name."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[name] = handler
        return handler

    return register


def supported_methods() -> list[str]:
    """Every method the emulator answers, sorted."""
    return sorted(_HANDLERS)


def _require(params: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise SlackApiFailure(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
            )


def _flag(value: Any) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


def _paginate(items: list[Any], params: Mapping[str, Any], default: int = 100) -> tuple[list[Any], str]:
    """Slice ``items`` by Slack's ``limit`` / ``cursor``; returns (page, next_cursor)."""
    try:
        limit = int(params.get("limit") or default)
        cursor = str(params.get("cursor") or "")
        start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise SlackApiFailure("invalid_cursor") from error
    end = start + max(1, limit)
    next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], next_cursor


class WebApiMethods:
    """Answers Web API calls against one :class:`SlackState`.

    Args:
        state: the workspace.
        public_url: the server's base URL (``http://127.0.0.1:PORT``), used in upload URLs,
            file URLs and permalinks.
    """

    def __init__(self, state: SlackState, public_url: str = "http://127.0.0.1") -> None:
        self.state = state
        self.public_url = public_url

    @staticmethod
    def parse_json_params(params: dict[str, Any]) -> dict[str, Any]:
        """Decode JSON-valued parameters that arrived as form strings.

        Raises:
            SlackApiFailure: ``invalid_blocks_format`` / ``invalid_arguments`` on bad JSON.
        """
        parsed = dict(params)
        for name in _JSON_PARAMS & parsed.keys():
            value = parsed[name]
            if isinstance(value, str):
                if value == "":
                    parsed[name] = None
                    continue
                try:
                    parsed[name] = json.loads(value)
                except json.JSONDecodeError as error:
                    code = "invalid_blocks_format" if name == "blocks" else "invalid_arguments"
                    raise SlackApiFailure(code) from error
        return parsed

    def authenticate(self, token: str | None) -> None:
        """Check a token as Slack does.

        Raises:
            SlackApiFailure: ``not_authed`` without a token, ``invalid_auth`` for an unknown one.
        """
        if not token:
            raise SlackApiFailure("not_authed")
        if token not in self.state.tokens:
            raise SlackApiFailure(
                "not_allowed_token_type" if token in self.state.app_tokens else "invalid_auth"
            )

    def authenticate_app(self, token: str | None) -> None:
        """Check an app-level token as ``apps.connections.open`` does.

        Raises:
            SlackApiFailure: ``not_authed`` without a token, ``not_allowed_token_type`` for a bot
                token, ``invalid_auth`` for an unknown one, ``missing_scope`` without
                connections:write.
        """
        if not token:
            raise SlackApiFailure("not_authed")
        scopes = self.state.app_tokens.get(token)
        if scopes is None:
            raise SlackApiFailure("not_allowed_token_type" if token in self.state.tokens else "invalid_auth")
        if "connections:write" not in scopes:
            raise SlackApiFailure(
                "missing_scope", needed="connections:write", provided=",".join(sorted(scopes))
            )

    def call(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one method; returns Slack's JSON answer (``ok: false`` included).

        Parameters are expected already authenticated and JSON-decoded.
        """
        handler = _HANDLERS.get(name)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": name}
        try:
            with self.state.lock:
                return handler(self, params)
        except SlackApiFailure as failure:
            return failure.response()

    # helpers shared by the handlers ----------------------------------------------------------

    def bot_profile(self) -> dict[str, Any]:
        """The ``bot_profile`` Slack attaches to the app's messages."""
        return {
            "id": self.state.bot_id,
            "app_id": self.state.app_id,
            "name": self.state.bot_name,
            "team_id": self.state.team_id,
            "deleted": False,
        }

    def permalink(self, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
        """Slack's permalink shape for a message."""
        link = f"https://{self.state.team_domain}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel_id}"
        return link

    def bot_channel(self, reference: Any) -> Channel:
        """A conversation the bot may write to.

        Raises:
            SlackApiFailure: ``channel_not_found`` / ``not_in_channel``.
        """
        channel = self.state.resolve_channel(reference)
        if not channel.has_member(self.state.bot_user_id):
            raise SlackApiFailure("not_in_channel")
        return channel

    def message_content(self, params: Mapping[str, Any], *, require: bool = True) -> dict[str, Any]:
        """Validated ``text`` / ``blocks`` / ``attachments`` of a message.

        Raises:
            SlackApiFailure: ``no_text`` with nothing to show, ``invalid_blocks`` with blocks
                Slack would refuse.
        """
        content: dict[str, Any] = {}
        text = params.get("text")
        blocks = params.get("blocks")
        attachments = params.get("attachments")
        if blocks is not None:
            problems = block_errors(blocks, limit=MAX_MESSAGE_BLOCKS, pointer="/blocks")
            if problems:
                raise SlackApiFailure("invalid_blocks", response_metadata={"messages": problems})
            content["blocks"] = ensure_ids(blocks)
        if attachments:
            content["attachments"] = attachments
        if text not in (None, ""):
            content["text"] = str(text)
        elif "blocks" in content or "attachments" in content:
            content["text"] = ""
        if require and not (content.get("text") or content.get("blocks") or attachments):
            raise SlackApiFailure("no_text")
        return content

    def bot_message(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """A new message from the app, in the shape Slack stores it."""
        return {
            "type": "message",
            "user": self.state.bot_user_id,
            "bot_id": self.state.bot_id,
            "app_id": self.state.app_id,
            "team": self.state.team_id,
            "bot_profile": self.bot_profile(),
            **copy.deepcopy(dict(content)),
        }

    def post(
        self,
        channel: Channel,
        content: Mapping[str, Any],
        params: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Store a bot message in ``channel`` honouring thread and metadata parameters."""
        message = self.bot_message(content)
        thread_ts = params.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent_user = self._parent_user(channel, str(thread_ts))
            if parent_user:
                message["parent_user_id"] = parent_user
            if _flag(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
        return self.state.store_message(channel, message)

    def _parent_user(self, channel: Channel, thread_ts: str) -> str | None:
        parent = self.state.messages.get(channel.id, {}).get(thread_ts)
        return parent.get("user") if parent else None

    def own_message(self, params: Mapping[str, Any], ts_param: str = "ts") -> tuple[Channel, dict[str, Any]]:
        """The bot's message named by ``channel`` and ``ts``.

        Raises:
            SlackApiFailure: ``channel_not_found``, ``message_not_found``, ``cant_update_message``.
        """
        _require(params, "channel", ts_param)
        channel = self.state.resolve_channel(params["channel"])
        message = self.state.message(channel.id, str(params[ts_param]))
        if message.get("bot_id") != self.state.bot_id:
            raise SlackApiFailure("cant_update_message")
        return channel, message

    def store_view(
        self,
        view: dict[str, Any],
        *,
        user_id: str | None,
        view_id: str | None = None,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a view in the shape Slack returns it, with ids filled and a fresh hash."""
        problems = view_errors(view)
        if problems is not None:
            code, messages = problems
            raise SlackApiFailure(code, response_metadata={"messages": messages})
        new_id = view_id or self.state.new_id("V")
        stored = {
            "id": new_id,
            "team_id": self.state.team_id,
            "type": view["type"],
            "blocks": ensure_ids(view["blocks"]),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.state.new_view_hash(),
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": previous_view_id,
            "root_view_id": root_view_id or new_id,
            "app_id": self.state.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.state.team_id,
            "bot_id": self.state.bot_id,
        }
        if view.get("submit_disabled") is not None:
            stored["submit_disabled"] = bool(view["submit_disabled"])
        self.state.views[new_id] = stored
        self.state.view_owners[new_id] = user_id
        return copy.deepcopy(stored)

    def find_view(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The stored view named by ``view_id`` or ``external_id``.

        Raises:
            SlackApiFailure: ``not_found``.
        """
        view_id = params.get("view_id")
        if view_id:
            if view_id not in self.state.views:
                raise SlackApiFailure("not_found")
            return self.state.views[str(view_id)]
        external_id = params.get("external_id")
        for view in self.state.views.values():
            if external_id and view.get("external_id") == external_id:
                return view
        raise SlackApiFailure("not_found")

    def file_object(self, file_id: str) -> dict[str, Any]:
        """A file in the shape ``files.info`` returns it."""
        upload = self.state.files[file_id]
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        url = f"{self.public_url}/files/{upload.id}/{upload.filename}"
        return {
            "id": upload.id,
            "created": upload.created,
            "timestamp": upload.created,
            "name": upload.filename,
            "title": upload.title or upload.filename,
            "mimetype": mimetype,
            "filetype": upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "text",
            "user": upload.user,
            "size": len(upload.data or b""),
            "url_private": url,
            "url_private_download": url,
            "permalink": f"https://{self.state.team_domain}.slack.com/files/{upload.user}/{upload.id}",
            "channels": list(upload.shares),
        }


# auth, users, groups --------------------------------------------------------------------------


@method("api.test")
def _api_test(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "args": {k: v for k, v in params.items() if k != "token"}}


@method("oauth.v2.access")
def _oauth_v2_access(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    """The install-code grant (a code from ``SlackState.approve_install``) and the refresh-token
    grant of token rotation."""
    if params.get("grant_type") != "refresh_token":
        return _install_grant(api, params)
    state = api.state
    with state.lock:
        old = state.refresh_tokens.pop(str(params.get("refresh_token", "")), None)
        if old is None:
            raise SlackApiFailure("invalid_refresh_token")
        state.tokens.discard(old)
        state.rotations += 1
        token, refresh = f"xoxe.xoxb-rotated-{state.rotations}", f"xoxe-1-refresh-{state.rotations}"
        state.tokens.add(token)
        state.refresh_tokens[refresh] = token
    return {
        "ok": True,
        "access_token": token,
        "refresh_token": refresh,
        "expires_in": 43200,
        "token_type": "bot",
        "scope": "chat:write",
        "bot_user_id": state.bot_user_id,
        "app_id": state.app_id,
        "team": {"id": state.team_id, "name": state.team_name},
    }


def _install_grant(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    state = api.state
    granted = state.install_codes.pop(str(params.get("code", "")), None)
    if granted is None:
        raise SlackApiFailure("invalid_code")
    team_id, token = granted
    state.tokens.add(token)
    return {
        "ok": True,
        "access_token": token,
        "token_type": "bot",
        "scope": "chat:write,commands",
        "bot_user_id": state.bot_user_id,
        "app_id": state.app_id,
        "team": {"id": team_id, "name": team_id},
        "enterprise": None,
        "is_enterprise_install": False,
        "authed_user": {"id": "U0ADMIN01"},
    }


@method("apps.connections.open")
def _apps_connections_open(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    # The token was checked as an app-level one (``authenticate_app``). Unless a test serves
    # Socket Mode itself (``socket_mode_url``), nothing listens at the URL: the fake hands out
    # the address, as Slack does, for a check that the token works.
    url = api.state.socket_mode_url or "wss://wss-primary.slack.com/link/"
    return {"ok": True, "url": f"{url}?ticket={secrets.token_hex(8)}"}


@method("auth.test")
def _auth_test(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    state = api.state
    return {
        "ok": True,
        "url": f"https://{state.team_domain}.slack.com/",
        "team": state.team_name,
        "user": state.bot_name,
        "team_id": state.team_id,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "app_id": state.app_id,
        "is_enterprise_install": False,
    }


@method("users.info")
def _users_info(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "user")
    user = api.state.users.get(str(params["user"]))
    if user is None:
        raise SlackApiFailure("user_not_found")
    return {"ok": True, "user": user.to_api()}


@method("users.list")
def _users_list(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    members = [u.to_api() for u in api.state.users.values()]
    page, cursor = _paginate(members, params, default=200)
    return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}


@method("users.lookupByEmail")
def _users_lookup(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "email")
    for user in api.state.users.values():
        if user.email and user.email.lower() == str(params["email"]).lower():
            return {"ok": True, "user": user.to_api()}
    raise SlackApiFailure("users_not_found")


@method("usergroups.users.list")
def _usergroup_users(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "usergroup")
    group = api.state.usergroups.get(str(params["usergroup"]))
    if group is None:
        raise SlackApiFailure("no_such_subteam")
    return {"ok": True, "users": list(group["users"])}


# conversations ---------------------------------------------------------------------------------


@method("conversations.open")
def _conversations_open(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("channel"):
        channel = api.state.resolve_channel(params["channel"])
        return {"ok": True, "channel": {"id": channel.id}}
    _require(params, "users")
    users = [u.strip() for u in str(params["users"]).split(",") if u.strip()]
    if len(users) != 1:
        # Group DMs are not part of this workspace model.
        raise SlackApiFailure("not_enough_users" if not users else "too_many_users")
    person = api.state.users.get(users[0])
    if person is not None and person.deleted:
        raise SlackApiFailure("user_disabled")  # Slack opens no DM with a deactivated account
    channel, already_open = api.state.open_dm(users[0])
    body: dict[str, Any] = {
        "ok": True,
        "channel": channel.to_api() if _flag(params.get("return_im")) else {"id": channel.id},
    }
    if already_open:
        body["no_op"] = True
        body["already_open"] = True
    return body


@method("conversations.info")
def _conversations_info(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel")
    channel = api.state.resolve_channel(params["channel"])
    info = channel.to_api()
    if not channel.is_im:
        info["is_member"] = channel.has_member(api.state.bot_user_id)  # asked with the bot's token
    return {"ok": True, "channel": info}


@method("conversations.members")
def _conversations_members(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel")
    channel = api.state.resolve_channel(params["channel"])
    members = sorted(channel.members if channel.members is not None else api.state.users)
    page, cursor = _paginate(members, params)
    return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}


def _in_window(message: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    ts = float(message["ts"])
    inclusive = _flag(params.get("inclusive"))
    if params.get("oldest"):
        oldest = float(params["oldest"])
        if ts < oldest or (ts == oldest and not inclusive):
            return False
    if params.get("latest"):
        latest = float(params["latest"])
        if ts > latest or (ts == latest and not inclusive):
            return False
    return True


@method("conversations.history")
def _conversations_history(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel")
    messages = [m for m in reversed(api.state.channel_messages(params["channel"])) if _in_window(m, params)]
    page, cursor = _paginate(messages, params)
    return {
        "ok": True,
        "messages": page,
        "has_more": bool(cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


@method("conversations.replies")
def _conversations_replies(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel", "ts")
    thread = api.state.thread(params["channel"], str(params["ts"]))
    if not thread:
        raise SlackApiFailure("thread_not_found")
    page, cursor = _paginate([m for m in thread if _in_window(m, params)], params, default=1000)
    return {
        "ok": True,
        "messages": page,
        "has_more": bool(cursor),
        "response_metadata": {"next_cursor": cursor},
    }


# chat ------------------------------------------------------------------------------------------


@method("chat.postMessage")
def _chat_post_message(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel")
    channel = api.bot_channel(params["channel"])
    content = api.message_content(params)
    message = api.post(channel, content, params)
    return {"ok": True, "channel": channel.id, "ts": message["ts"], "message": copy.deepcopy(message)}


@method("chat.update")
def _chat_update(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    channel, message = api.own_message(params)
    content = api.message_content(params, require=False)
    if "blocks" in params and not params.get("blocks"):
        message.pop("blocks", None)  # an empty list removes the blocks
    if not (content.get("text") or content.get("blocks") or "blocks" in params):
        raise SlackApiFailure("no_text")
    message.update(content)
    if params.get("metadata"):
        message["metadata"] = params["metadata"]
    message["edited"] = {"user": api.state.bot_user_id, "ts": api.state.new_ts()}
    return {
        "ok": True,
        "channel": channel.id,
        "ts": message["ts"],
        "text": message.get("text", ""),
        "message": copy.deepcopy(message),
    }


@method("chat.postEphemeral")
def _chat_post_ephemeral(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel", "user")
    channel = api.bot_channel(params["channel"])
    user_id = str(params["user"])
    if user_id not in api.state.users:
        raise SlackApiFailure("user_not_found")
    if not channel.has_member(user_id):
        raise SlackApiFailure("user_not_in_channel")
    message = api.bot_message(api.message_content(params))
    message.update({"ts": api.state.new_ts(), "channel": channel.id, "user": user_id})
    message["sender"] = api.state.bot_user_id
    if params.get("thread_ts"):
        message["thread_ts"] = str(params["thread_ts"])
    api.state.ephemerals.append(message)
    return {"ok": True, "message_ts": message["ts"]}


@method("chat.delete")
def _chat_delete(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    try:
        channel, message = api.own_message(params)
    except SlackApiFailure as failure:
        if failure.error == "cant_update_message":
            raise SlackApiFailure("cant_delete_message") from failure
        raise
    del api.state.messages[channel.id][message["ts"]]
    return {"ok": True, "channel": channel.id, "ts": message["ts"]}


@method("chat.getPermalink")
def _chat_get_permalink(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel", "message_ts")
    channel = api.state.resolve_channel(params["channel"])
    message = api.state.message(channel.id, str(params["message_ts"]))
    link = api.permalink(channel.id, message["ts"], message.get("thread_ts"))
    return {"ok": True, "channel": channel.id, "permalink": link}


@method("reactions.add")
def _reactions_add(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel", "timestamp", "name")
    channel = api.state.resolve_channel(params["channel"])
    message = api.state.message(channel.id, str(params["timestamp"]))
    name = str(params["name"]).strip(":")
    if not name or " " in name:
        raise SlackApiFailure("invalid_name")
    reactions = message.setdefault("reactions", [])
    for reaction in reactions:
        if reaction["name"] == name:
            if api.state.bot_user_id in reaction["users"]:
                raise SlackApiFailure("already_reacted")
            reaction["users"].append(api.state.bot_user_id)
            reaction["count"] += 1
            return {"ok": True}
    reactions.append({"name": name, "users": [api.state.bot_user_id], "count": 1})
    return {"ok": True}


# streaming -------------------------------------------------------------------------------------


def _stream_text(params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Markdown text carried by ``markdown_text`` and ``markdown_text`` chunks, plus all chunks."""
    text = str(params.get("markdown_text") or "")
    chunks = list(params.get("chunks") or [])
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
    if len(text) > MAX_STREAM_TEXT:
        raise SlackApiFailure("msg_too_long")
    return text, chunks


def _open_stream(api: WebApiMethods, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    _require(params, "channel", "ts")
    channel, message = api.own_message(params)
    stream = api.state.streams.get((channel.id, message["ts"]))
    if stream is None or stream["state"] != "in_progress":
        raise SlackApiFailure("message_not_in_streaming_state")
    return message, stream


@method("chat.startStream")
def _chat_start_stream(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "channel", "thread_ts")
    channel = api.bot_channel(params["channel"])
    if not channel.is_im:
        # Streaming into a channel needs to know whom the stream is for.
        for name in ("recipient_team_id", "recipient_user_id"):
            if not params.get(name):
                raise SlackApiFailure(f"missing_{name}")
    text, chunks = _stream_text(params)
    message = api.post(channel, {"text": text}, params)
    api.state.streams[(channel.id, message["ts"])] = {"state": "in_progress", "chunks": chunks}
    return {"ok": True, "channel": channel.id, "ts": message["ts"]}


@method("chat.appendStream")
def _chat_append_stream(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    message, stream = _open_stream(api, params)
    text, chunks = _stream_text(params)
    message["text"] = message.get("text", "") + text
    stream["chunks"].extend(chunks)
    return {"ok": True, "channel": params["channel"], "ts": message["ts"]}


@method("chat.stopStream")
def _chat_stop_stream(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    message, stream = _open_stream(api, params)
    text, chunks = _stream_text(params)
    message["text"] = message.get("text", "") + text
    stream["chunks"].extend(chunks)
    if params.get("blocks"):
        content = api.message_content({"blocks": params["blocks"]}, require=False)
        message["blocks"] = content["blocks"]
    if params.get("metadata"):
        message["metadata"] = params["metadata"]
    stream["state"] = "completed"
    return {
        "ok": True,
        "channel": params["channel"],
        "ts": message["ts"],
        "message": copy.deepcopy(message),
    }


# assistant threads -----------------------------------------------------------------------------


def _assistant_thread(api: WebApiMethods, params: Mapping[str, Any]) -> dict[str, Any]:
    _require(params, "channel_id", "thread_ts")
    channel = api.state.resolve_channel(params["channel_id"])
    return api.state.assistant_threads.setdefault((channel.id, str(params["thread_ts"])), {})


@method("assistant.threads.setStatus")
def _assistant_set_status(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    if "status" not in params:
        _require(params, "status")
    thread = _assistant_thread(api, params)
    thread["status"] = str(params.get("status") or "")
    if params.get("loading_messages"):
        thread["loading_messages"] = params["loading_messages"]
    return {"ok": True}


@method("assistant.threads.setSuggestedPrompts")
def _assistant_set_prompts(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "prompts")
    prompts = params["prompts"]
    if not isinstance(prompts, list) or not prompts or len(prompts) > 4:
        raise SlackApiFailure("invalid_arguments")
    thread = _assistant_thread(api, params)
    thread["prompts"] = prompts
    if params.get("title"):
        thread["prompts_title"] = params["title"]
    return {"ok": True}


@method("assistant.threads.setTitle")
def _assistant_set_title(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "title")
    _assistant_thread(api, params)["title"] = str(params["title"])
    return {"ok": True}


# views -----------------------------------------------------------------------------------------


@method("views.open")
def _views_open(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "view")
    trigger = api.state.consume_trigger_id(params.get("trigger_id") or params.get("interactivity_pointer"))
    view = params["view"]
    if isinstance(view, dict) and view.get("type") != "modal":
        raise SlackApiFailure(
            "invalid_arguments",
            response_metadata={
                "messages": ["[ERROR] views.open only opens modals [json-pointer:/view/type]"]
            },
        )
    stored = api.store_view(view, user_id=trigger.user_id)
    if trigger.user_id:
        api.state.modal_stacks[trigger.user_id] = [stored["id"]]
    return {"ok": True, "view": stored}


@method("views.push")
def _views_push(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "view")
    trigger = api.state.consume_trigger_id(params.get("trigger_id") or params.get("interactivity_pointer"))
    stack = api.state.modal_stacks.setdefault(trigger.user_id or "", [])
    if len(stack) >= 3:
        raise SlackApiFailure("push_limit_reached")
    root = stack[0] if stack else None
    previous = stack[-1] if stack else None
    stored = api.store_view(
        params["view"], user_id=trigger.user_id, root_view_id=root, previous_view_id=previous
    )
    stack.append(stored["id"])
    return {"ok": True, "view": stored}


@method("views.update")
def _views_update(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "view")
    if not params.get("view_id") and not params.get("external_id"):
        raise SlackApiFailure("invalid_arguments")
    current = api.find_view(params)
    if params.get("hash") and params["hash"] != current["hash"]:
        raise SlackApiFailure("hash_conflict")
    stored = api.store_view(
        params["view"],
        user_id=api.state.view_owners.get(current["id"]),
        view_id=current["id"],
        root_view_id=current["root_view_id"],
        previous_view_id=current["previous_view_id"],
    )
    return {"ok": True, "view": stored}


@method("views.publish")
def _views_publish(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "user_id", "view")
    user_id = str(params["user_id"])
    if user_id not in api.state.users:
        raise SlackApiFailure("user_not_found")
    view = params["view"]
    if isinstance(view, dict) and view.get("type") != "home":
        raise SlackApiFailure(
            "invalid_arguments",
            response_metadata={
                "messages": ["[ERROR] views.publish only publishes home views [json-pointer:/view/type]"]
            },
        )
    existing_id = api.state.home_views.get(user_id)
    if existing_id and params.get("hash") and params["hash"] != api.state.views[existing_id]["hash"]:
        raise SlackApiFailure("hash_conflict")
    stored = api.store_view(view, user_id=user_id, view_id=existing_id)
    api.state.home_views[user_id] = stored["id"]
    return {"ok": True, "view": stored}


# files -----------------------------------------------------------------------------------------


@method("files.getUploadURLExternal")
def _files_get_upload_url(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "filename", "length")
    try:
        length = int(params["length"])
    except ValueError as error:
        raise SlackApiFailure("invalid_arguments") from error
    file_id = api.state.new_id("F")
    api.state.files[file_id] = _new_upload(api, file_id, str(params["filename"]), length)
    return {"ok": True, "upload_url": f"{api.public_url}/upload/v1/{file_id}", "file_id": file_id}


def _new_upload(api: WebApiMethods, file_id: str, filename: str, length: int) -> UploadedFile:
    return UploadedFile(file_id, filename, length, api.state.now(), api.state.bot_user_id)


@method("files.completeUploadExternal")
def _files_complete_upload(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "files")
    entries = params["files"]
    if not isinstance(entries, list) or not entries:
        raise SlackApiFailure("invalid_arguments")
    uploads = []
    for entry in entries:
        upload = api.state.files.get(str(entry.get("id")))
        if upload is None or upload.data is None:
            raise SlackApiFailure("file_not_found")
        upload.title = entry.get("title") or upload.filename
        uploads.append(upload)
    targets = [params["channel_id"]] if params.get("channel_id") else []
    targets += [c for c in str(params.get("channels") or "").split(",") if c]
    for target in targets:
        channel = api.bot_channel(target)
        for upload in uploads:
            upload.shares.append(channel.id)
        content = {
            "text": str(params.get("initial_comment") or ""),
            "files": [api.file_object(u.id) for u in uploads],
            "upload": True,
        }
        api.post(channel, content, params)
    return {"ok": True, "files": [api.file_object(u.id) for u in uploads]}


@method("files.info")
def _files_info(api: WebApiMethods, params: dict[str, Any]) -> dict[str, Any]:
    _require(params, "file")
    if str(params["file"]) not in api.state.files:
        raise SlackApiFailure("file_not_found")
    return {"ok": True, "file": api.file_object(str(params["file"]))}


# response_url ----------------------------------------------------------------------------------


def respond(api: WebApiMethods, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a POST to a ``response_url`` as Slack does.

    ``response_type: in_channel`` posts to the channel, anything else shows an ephemeral message
    to the person who acted; ``replace_original`` / ``delete_original`` change the message the
    action came from. A URL works 5 times within 30 minutes.

    Raises:
        SlackApiFailure: ``expired_url`` for an unknown, used-up or expired URL; ``no_text`` /
            ``invalid_blocks`` for bad content.
    """
    with api.state.lock:
        target = api.state.response_urls.get(key)
        if target is None or target.uses_left <= 0 or api.state.clock() > target.expires_at:
            raise SlackApiFailure("expired_url")
        body = api.parse_json_params(dict(body))
        channel = api.state.resolve_channel(target.channel_id)
        if _flag(body.get("delete_original")):
            target.uses_left -= 1
            if target.message_ts:
                _remove_original(api, channel, target.message_ts)
            return {"ok": True}
        content = api.message_content(body)
        target.uses_left -= 1
        if _flag(body.get("replace_original")) and target.message_ts:
            original = _find_original(api, channel, target.message_ts)
            original.pop("blocks", None)
            original.update(content)
            return {"ok": True}
        if body.get("response_type") == "in_channel":
            api.post(channel, content, body)
            return {"ok": True}
        message = api.bot_message(content)
        message.update({"ts": api.state.new_ts(), "channel": channel.id, "user": target.user_id})
        message["sender"] = api.state.bot_user_id
        if body.get("thread_ts"):
            message["thread_ts"] = str(body["thread_ts"])
        api.state.ephemerals.append(message)
        return {"ok": True}


def command_response(api: WebApiMethods, channel_id: str, user_id: str, body: bytes) -> dict[str, Any] | None:
    """Show what an app answered to a slash command in its HTTP response, as Slack does.

    A JSON body is a message (ephemeral to the person, or in the channel with
    ``response_type: in_channel``); any other non-empty body is shown as plain text; an empty
    body shows nothing. Slack treats it like a first post to the command's ``response_url``.

    Returns:
        Slack's answer to that post, or None for an empty body.

    Raises:
        SlackApiFailure: ``no_text`` / ``invalid_blocks`` for content Slack would refuse.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = {"text": text}
    if not isinstance(parsed, dict):
        parsed = {"text": text}
    if not (parsed.get("text") or parsed.get("blocks")):
        return None
    key = api.state.mint_response_url(channel_id, user_id)
    return respond(api, key, parsed)


def _find_original(api: WebApiMethods, channel: Channel, ts: str) -> dict[str, Any]:
    for ephemeral in api.state.ephemerals:
        if ephemeral["channel"] == channel.id and ephemeral["ts"] == ts:
            return ephemeral
    return api.state.message(channel.id, ts)


def _remove_original(api: WebApiMethods, channel: Channel, ts: str) -> None:
    api.state.ephemerals[:] = [
        e for e in api.state.ephemerals if not (e["channel"] == channel.id and e["ts"] == ts)
    ]
    api.state.messages.get(channel.id, {}).pop(ts, None)


# view submission answers --------------------------------------------------------------------------


def apply_view_response(
    api: WebApiMethods, user_id: str, view_id: str, answer: Mapping[str, Any] | None
) -> dict[str, str]:
    """Do what Slack does with an app's answer to a ``view_submission``.

    An empty answer closes the submitted modal (and those pushed above it); ``clear`` closes
    them all; ``update`` replaces the submitted view; ``push`` stacks a new one; ``errors``
    leaves the modal open and returns the errors to show under each block.

    Returns:
        ``{block_id: message}`` for ``errors``, else an empty dict.

    Raises:
        SlackApiFailure: ``not_found`` for an unknown view; ``invalid_blocks`` /
            ``invalid_arguments`` for a view Slack would refuse; ``push_limit_reached``.
    """
    with api.state.lock:
        current = api.find_view({"view_id": view_id})
        action = (answer or {}).get("response_action")
        if action is None:
            api.state.close_modals(user_id, view_id)
        elif action == "clear":
            api.state.close_modals(user_id)
        elif action == "errors":
            return {str(k): str(v) for k, v in dict((answer or {}).get("errors", {})).items()}
        elif action == "update":
            api.store_view(
                dict((answer or {})["view"]),
                user_id=user_id,
                view_id=current["id"],
                root_view_id=current["root_view_id"],
                previous_view_id=current["previous_view_id"],
            )
        elif action == "push":
            stack = api.state.modal_stacks.setdefault(user_id, [])
            if len(stack) >= 3:
                raise SlackApiFailure("push_limit_reached")
            stored = api.store_view(
                dict((answer or {})["view"]),
                user_id=user_id,
                root_view_id=current["root_view_id"],
                previous_view_id=current["id"],
            )
            stack.append(stored["id"])
        else:
            raise SlackApiFailure(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] unknown response_action {action!r}"]},
            )
        return {}
