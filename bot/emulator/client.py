"""Send requests into an app's HTTP endpoint exactly as Slack does: encoded and signed.

Slack signs every request with ``X-Slack-Signature: v0=<hex hmac-sha256(signing_secret,
"v0:{timestamp}:{body}")>`` and ``X-Slack-Request-Timestamp``; apps reject a bad signature or a
timestamp more than five minutes away. Slash commands arrive form-encoded, interactive payloads
as a form field ``payload`` holding JSON, events as a JSON body. :class:`SlackClient` does all
three and can also break the signature on purpose, to test that the app refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

Signing = Literal["valid", "forged", "unsigned", "stale"]

STALE_AFTER_SECONDS = 5 * 60


def compute_signature(signing_secret: str, timestamp: str, body: bytes | str) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + timestamp.encode() + b":" + raw
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def encode_command(fields: Mapping[str, str]) -> bytes:
    """A slash command body (``application/x-www-form-urlencoded``)."""
    return urlencode(dict(fields)).encode()


def encode_interaction(payload: Mapping[str, Any]) -> bytes:
    """An interactive payload body: form field ``payload`` with the JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def encode_event(envelope: Mapping[str, Any]) -> bytes:
    """An Events API body (JSON)."""
    return json.dumps(envelope).encode()


@dataclass(frozen=True)
class HttpResult:
    """What the app answered."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``response_action`` answers to view submissions ...).

        Raises:
            ValueError: the body is empty or not JSON.
        """
        if not self.body:
            raise ValueError(f"empty body (status {self.status})")
        return json.loads(self.body)


class SlackClient:
    """Posts signed Slack requests to one endpoint (e.g. ``http://127.0.0.1:3000/slack/events``).

    Args:
        endpoint_url: the app's Request URL.
        signing_secret: the app's signing secret.
        timeout: seconds to wait for the app's answer (Slack gives up after 3).
        clock: seconds since the epoch, for the timestamp header.
    """

    def __init__(
        self,
        endpoint_url: str,
        signing_secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.signing_secret = signing_secret
        self.timeout = timeout
        self.clock = clock

    def signed_headers(
        self, body: bytes, content_type: str, *, signing: Signing = "valid", timestamp: int | None = None
    ) -> dict[str, str]:
        """The headers Slack sends with ``body``, signed (or broken) as asked."""
        if timestamp is None:
            timestamp = int(self.clock())
            if signing == "stale":
                timestamp -= STALE_AFTER_SECONDS + 60
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(timestamp),
        }
        if signing != "unsigned":
            secret = self.signing_secret if signing != "forged" else self.signing_secret + "-forged"
            headers["X-Slack-Signature"] = compute_signature(secret, str(timestamp), body)
        return headers

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        signing: Signing = "valid",
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """Post a raw body with Slack's headers; returns the app's answer (any status)."""
        all_headers = self.signed_headers(body, content_type, signing=signing, timestamp=timestamp)
        all_headers.update(headers or {})
        request = urllib.request.Request(self.endpoint_url, data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return HttpResult(response.status, response.read(), dict(response.headers.items()))
        except urllib.error.HTTPError as error:
            return HttpResult(error.code, error.read(), dict(error.headers.items()))

    def send_command(
        self, fields: Mapping[str, str], *, signing: Signing = "valid", timestamp: int | None = None
    ) -> HttpResult:
        """Send a slash command (see :func:`bot.emulator.payloads.slash_command`)."""
        return self.post(
            encode_command(fields),
            "application/x-www-form-urlencoded",
            signing=signing,
            timestamp=timestamp,
        )

    def send_interaction(
        self, payload: Mapping[str, Any], *, signing: Signing = "valid", timestamp: int | None = None
    ) -> HttpResult:
        """Send a block action, view submission, view closed or shortcut payload."""
        return self.post(
            encode_interaction(payload),
            "application/x-www-form-urlencoded",
            signing=signing,
            timestamp=timestamp,
        )

    def send_event(
        self,
        envelope: Mapping[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        signing: Signing = "valid",
        timestamp: int | None = None,
    ) -> HttpResult:
        """Send an Events API envelope; ``retry_num`` marks it as Slack's n-th redelivery."""
        extra: dict[str, str] = {}
        if retry_num is not None:
            extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.post(
            encode_event(envelope),
            "application/json",
            signing=signing,
            timestamp=timestamp,
            headers=extra,
        )

    def send(
        self, payload: Mapping[str, Any], *, signing: Signing = "valid", timestamp: int | None = None
    ) -> HttpResult:
        """Send any payload built by ``bot.emulator.payloads``, encoded by its kind."""
        if "command" in payload and "type" not in payload:
            return self.send_command(payload, signing=signing, timestamp=timestamp)
        if payload.get("type") in {"event_callback", "url_verification", "app_rate_limited"}:
            return self.send_event(payload, signing=signing, timestamp=timestamp)
        return self.send_interaction(payload, signing=signing, timestamp=timestamp)
