"""Small pieces every listener uses: who and where a payload came from, and safe replies."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.bootstrap import Services
from gates.ports import UnitOfWork

logger = logging.getLogger("shepherd.listeners")

PENDING_WRITES = "shepherd_pending_writes"
"""Context key: where the HTTP server collects inbox writes it awaits before answering Slack."""


def store_before_ack(services: Services, context: Any, kind: str, payload: dict[str, Any]) -> None:
    """Put a request in the inbox so that it is durable before Slack hears "OK".

    Under the HTTP server (``bot.server``) the wait happens there, after the listener returns and
    off any thread, so many requests share one commit; elsewhere (Socket Mode) it happens here.

    Raises:
        DatabaseUnavailable: it could not be stored (Slack is then told the request failed).
    """
    stored = services.inbox.submit(kind, payload)
    pending = context.get(PENDING_WRITES) if context is not None else None
    if pending is not None:
        pending.append(stored)
    else:
        services.inbox.wait(stored)


def user_of(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id", ""))
    return str(body.get("user_id") or user or "")


def channel_of(body: dict[str, Any]) -> str | None:
    channel = body.get("channel")
    if isinstance(channel, dict):
        return channel.get("id")
    return body.get("channel_id") or (body.get("container") or {}).get("channel_id")


def tell_later(services: Services, user: str, text: str, channel: str | None = None) -> None:
    """Queue a private message to ``user`` through the outbox (delivered after the ack, retried)."""
    with services.uow() as uow:
        queue_private_message(uow, user, text, channel, services.now())
        uow.commit()


def queue_private_message(uow: UnitOfWork, user: str, text: str, channel: str | None, at: datetime) -> None:
    """Put a private message to ``user`` in the outbox of the caller's transaction (shown in
    ``channel`` when Slack allows, otherwise by DM)."""
    uow.outbox.put("ephemeral", {"user": user, "channel": channel, "text": text}, at)
