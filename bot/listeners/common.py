"""Small pieces every listener uses: who and where a payload came from, and safe replies."""

from __future__ import annotations

import logging
from typing import Any

from bot.bootstrap import Services

logger = logging.getLogger("shepherd.listeners")


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
        uow.outbox.put("ephemeral", {"user": user, "channel": channel, "text": text}, services.now())
        uow.commit()
