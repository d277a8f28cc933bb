"""Builders for the requests Slack sends to an app, with the fields Slack really sends.

Shapes follow Slack's documentation and bolt-python's scenario tests (slash commands,
``block_actions``, ``view_submission``, ``view_closed``, shortcuts, Events API envelopes). Each
builder is a function from plain values to a dict; :class:`bot.emulator.client.SlackClient`
encodes and signs it. Ids that Slack would generate (``trigger_id``, ``event_id``, ``ts``) get
fresh values when omitted; pass the emulator's minted ``trigger_id`` and ``response_url`` when
the bot will use them (``views.open`` refuses unknown trigger ids, as Slack does).
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emulator.blockkit import action_payload, build_state_values, element_value, ensure_ids, find_element


@dataclass(frozen=True)
class WorkspaceInfo:
    """Who is sending: the workspace and the app, as they appear in every payload."""

    team_id: str = "T0SHEPHERD"
    team_domain: str = "shepherd-demo"
    api_app_id: str = "A0SHEPHERD"
    bot_user_id: str = "U0SHEPBOT"
    bot_id: str = "B0SHEPBOT"
    verification_token: str = "verification-token-shepherd"
    enterprise_id: str | None = None


DEFAULT_WORKSPACE = WorkspaceInfo()

_ts_lock = threading.Lock()
_last_ts = 0


def new_ts() -> str:
    """A fresh, increasing Slack timestamp (``1700000000.000100`` style)."""
    global _last_ts
    with _ts_lock:
        micros = max(_last_ts + 1, int(time.time() * 1_000_000))
        _last_ts = micros
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def new_trigger_id() -> str:
    """A trigger id in Slack's format (not registered with any emulator)."""
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def new_event_id() -> str:
    """An Events API ``event_id`` (``Ev`` followed by 9 characters)."""
    return "Ev" + secrets.token_hex(5).upper()[:9]


def _user(user_id: str, user_name: str | None, workspace: WorkspaceInfo) -> dict[str, Any]:
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": workspace.team_id}


def _team(workspace: WorkspaceInfo) -> dict[str, Any]:
    return {"id": workspace.team_id, "domain": workspace.team_domain}


def _interactive_base(
    kind: str, user_id: str, user_name: str | None, workspace: WorkspaceInfo
) -> dict[str, Any]:
    return {
        "type": kind,
        "user": _user(user_id, user_name, workspace),
        "api_app_id": workspace.api_app_id,
        "token": workspace.verification_token,
        "team": _team(workspace),
        "enterprise": {"id": workspace.enterprise_id} if workspace.enterprise_id else None,
        "is_enterprise_install": False,
    }


# slash commands and shortcuts ---------------------------------------------------------------------


def slash_command(
    command: str,
    text: str = "",
    *,
    user_id: str,
    channel_id: str,
    channel_name: str = "",
    user_name: str | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, str]:
    """The form fields of a slash command (Slack posts them form-encoded)."""
    fields = {
        "token": workspace.verification_token,
        "team_id": workspace.team_id,
        "team_domain": workspace.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or ("directmessage" if channel_id.startswith("D") else ""),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command if command.startswith("/") else "/" + command,
        "text": text,
        "api_app_id": workspace.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{workspace.team_id}/{secrets.randbelow(10**12)}/x",
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if workspace.enterprise_id:
        fields["enterprise_id"] = workspace.enterprise_id
    return fields


_TYPED_MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)")


def escaped_typed_text(typed: str) -> str:
    """What a person typed as Slack sends it: ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;``.

    Slack does this for every message and escaping command, so a ``<`` typed is never read as
    the start of a link or mention; the ``<...>`` tokens in what it sends are its own.
    """
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escaped_command_text(typed: str, people: Mapping[str, str] | None = None) -> str:
    """A command's text as Slack sends it when the command escapes (``should_escape: true``).

    ``&``, ``<`` and ``>`` arrive as ``&amp;``, ``&lt;`` and ``&gt;``; ``@name`` of a person in
    ``people`` (name -> user id) as ``<@U123|name>``; ``@here``, ``@channel`` and ``@everyone``
    as ``<!here>`` and so on. Any other ``@word`` stays as typed, as Slack leaves it.
    """
    known = {name.lower(): user for name, user in (people or {}).items()}

    def mention(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.lower() in ("here", "channel", "everyone"):
            return f"<!{name.lower()}>"
        user = known.get(name.lower())
        return f"<@{user}|{name}>" if user else match.group(0)

    return _TYPED_MENTION.sub(mention, escaped_typed_text(typed))


def global_shortcut(
    callback_id: str,
    *,
    user_id: str,
    user_name: str | None = None,
    trigger_id: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A global shortcut (lightning menu) payload."""
    payload = _interactive_base("shortcut", user_id, user_name, workspace)
    payload.update(
        {"callback_id": callback_id, "trigger_id": trigger_id or new_trigger_id(), "action_ts": new_ts()}
    )
    return payload


def message_shortcut(
    callback_id: str,
    message: Mapping[str, Any],
    *,
    user_id: str,
    channel_id: str,
    channel_name: str = "",
    user_name: str | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A message shortcut (``message_action``) on ``message``."""
    payload = _interactive_base("message_action", user_id, user_name, workspace)
    payload.update(
        {
            "callback_id": callback_id,
            "trigger_id": trigger_id or new_trigger_id(),
            "action_ts": new_ts(),
            "message_ts": message["ts"],
            "message": copy.deepcopy(dict(message)),
            "channel": {"id": channel_id, "name": channel_name},
            "response_url": response_url or _fake_response_url(workspace),
        }
    )
    return payload


def _fake_response_url(workspace: WorkspaceInfo) -> str:
    return f"https://hooks.slack.com/actions/{workspace.team_id}/{secrets.randbelow(10**12)}/x"


# block actions -------------------------------------------------------------------------------------


def block_actions_on_message(
    message: Mapping[str, Any],
    action_id: str,
    *,
    user_id: str,
    channel_id: str,
    value: Any = None,
    block_id: str | None = None,
    channel_name: str = "",
    user_name: str | None = None,
    is_ephemeral: bool = False,
    trigger_id: str | None = None,
    response_url: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A click (or selection) on an element of a message.

    Args:
        message: the message as the bot posted it (``chat.postMessage``'s ``message``, or the
            emulator's stored copy): its ``blocks`` and ``ts`` are used.
        action_id: the element's ``action_id`` (or its block's ``block_id``).
        value: for selects and pickers, what was chosen (an option value, a user id ...);
            buttons ignore it.
        block_id: the block the element is in, when its ``action_id`` repeats.

    Raises:
        KeyError: no element with that id in the message.
    """
    blocks = ensure_ids(message.get("blocks", []))
    block, element = find_element(blocks, action_id, block_id)
    payload = _interactive_base("block_actions", user_id, user_name, workspace)
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if message.get("thread_ts") and message.get("thread_ts") != message["ts"]:
        container["thread_ts"] = message["thread_ts"]
    payload.update(
        {
            "container": container,
            "trigger_id": trigger_id or new_trigger_id(),
            "channel": {"id": channel_id, "name": channel_name},
            "state": {"values": build_state_values(blocks)},
            "response_url": response_url or _fake_response_url(workspace),
            "actions": [action_payload(block, element, value, new_ts())],
        }
    )
    if not is_ephemeral:
        payload["message"] = {**copy.deepcopy(dict(message)), "blocks": blocks}
    return payload


def block_actions_in_view(
    view: Mapping[str, Any],
    action_id: str,
    *,
    user_id: str,
    value: Any = None,
    values: Mapping[str, Any] | None = None,
    block_id: str | None = None,
    user_name: str | None = None,
    trigger_id: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A click (or selection) inside a modal or the App Home.

    Args:
        view: the view as stored (``views.open`` / ``views.publish`` answer, or emulator copy).
        value: what the acted-on element was set to (selects, pickers).
        values: the rest of the form as the person left it, keyed by action_id or block_id.
        block_id: the block the element is in, when its ``action_id`` repeats.
    """
    full = complete_view(view, workspace)
    block, element = find_element(full["blocks"], action_id, block_id)
    state = build_state_values(full, values)
    if element.get("type") not in {"button", "overflow"} and value is not None:
        # Set by (block, action) rather than by key: the action_id may repeat across blocks.
        state.setdefault(block["block_id"], {})[element["action_id"]] = element_value(element, value)
    full["state"] = {"values": state}
    payload = _interactive_base("block_actions", user_id, user_name, workspace)
    payload.update(
        {
            "container": {"type": "view", "view_id": full["id"]},
            "trigger_id": trigger_id or new_trigger_id(),
            "view": full,
            "actions": [action_payload(block, element, value, new_ts())],
        }
    )
    return payload


# views -------------------------------------------------------------------------------------------


def complete_view(view: Mapping[str, Any], workspace: WorkspaceInfo = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """A view with every field Slack includes, ids filled; stored views pass through intact."""
    full = copy.deepcopy(dict(view))
    view_id = full.get("id") or "V" + secrets.token_hex(5).upper()
    defaults: dict[str, Any] = {
        "id": view_id,
        "team_id": workspace.team_id,
        "type": "modal",
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_urlsafe(6)}",
        "title": None,
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": workspace.api_app_id,
        "external_id": "",
        "app_installed_team_id": workspace.team_id,
        "bot_id": workspace.bot_id,
    }
    for key, default in defaults.items():
        full.setdefault(key, default)
    full["blocks"] = ensure_ids(full.get("blocks", []))
    return full


def view_submission(
    view: Mapping[str, Any],
    *,
    user_id: str,
    values: Mapping[str, Any] | None = None,
    user_name: str | None = None,
    trigger_id: str | None = None,
    response_urls: Sequence[Mapping[str, Any]] = (),
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A modal submitted with ``values`` (keyed by action_id or block_id).

    ``view.state.values`` is built by :func:`bot.emulator.blockkit.build_state_values`: every
    input keeps its pre-filled value unless ``values`` sets it.

    Raises:
        KeyError / ValueError: a value names no element or does not fit it.
    """
    full = complete_view(view, workspace)
    full["state"] = {"values": build_state_values(full, values)}
    payload = _interactive_base("view_submission", user_id, user_name, workspace)
    payload.update(
        {
            "trigger_id": trigger_id or new_trigger_id(),
            "view": full,
            "response_urls": [dict(r) for r in response_urls],
        }
    )
    return payload


def view_closed(
    view: Mapping[str, Any],
    *,
    user_id: str,
    is_cleared: bool = False,
    user_name: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A modal closed with Cancel (sent only for views with ``notify_on_close``)."""
    full = complete_view(view, workspace)
    payload = _interactive_base("view_closed", user_id, user_name, workspace)
    payload.update({"view": full, "is_cleared": is_cleared})
    return payload


# events ------------------------------------------------------------------------------------------


def event_callback(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """The Events API envelope around ``event``."""
    return {
        "token": workspace.verification_token,
        "team_id": workspace.team_id,
        "context_team_id": workspace.team_id,
        "context_enterprise_id": workspace.enterprise_id,
        "api_app_id": workspace.api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": workspace.enterprise_id,
                "team_id": workspace.team_id,
                "user_id": workspace.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """The ``rich_text`` block Slack attaches to a typed message (mentions as user elements)."""
    elements: list[dict[str, Any]] = []
    position = 0
    for match in _MENTION.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_urlsafe(3),
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def _typed_message(
    kind: str,
    text: str,
    user_id: str,
    channel_id: str,
    ts: str | None,
    thread_ts: str | None,
    parent_user_id: str | None,
    workspace: WorkspaceInfo,
) -> dict[str, Any]:
    stamp = ts or new_ts()
    event: dict[str, Any] = {
        "type": kind,
        "user": user_id,
        "text": text,
        "ts": stamp,
        "client_msg_id": secrets.token_hex(16),
        "team": workspace.team_id,
        "blocks": rich_text_blocks(text),
        "channel": channel_id,
        "event_ts": stamp,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        if parent_user_id:
            event["parent_user_id"] = parent_user_id
    return event


def app_mention_event(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """An ``app_mention`` event; ``text`` should contain ``<@BOT_USER_ID>`` as Slack's does."""
    return _typed_message("app_mention", text, user_id, channel_id, ts, thread_ts, parent_user_id, workspace)


def message_event(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    channel_type: str = "im",
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """A ``message`` event (``message.im`` by default; ``channel``, ``group`` ... otherwise)."""
    event = _typed_message("message", text, user_id, channel_id, ts, thread_ts, parent_user_id, workspace)
    event["channel_type"] = channel_type
    return event


def app_home_opened_event(
    user_id: str,
    *,
    channel_id: str,
    tab: str = "home",
    view: Mapping[str, Any] | None = None,
    workspace: WorkspaceInfo = DEFAULT_WORKSPACE,
) -> dict[str, Any]:
    """``app_home_opened``: ``tab`` is ``home`` or ``messages`` (the agent / DM surface).

    Slack includes the currently published Home ``view`` when the Home tab has one.
    """
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel_id,
        "tab": tab,
        "event_ts": new_ts(),
    }
    if tab == "home" and view is not None:
        event["view"] = complete_view({**view, "type": "home"}, workspace)
    return event


def url_verification(challenge: str, workspace: WorkspaceInfo = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """The handshake Slack sends when the Request URL is configured."""
    return {"token": workspace.verification_token, "challenge": challenge, "type": "url_verification"}
