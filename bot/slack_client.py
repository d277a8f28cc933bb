"""The WebClient Shepherd uses: Slack's base URL from settings and slack_sdk's retry handlers."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

DEFAULT_API_URL = "https://slack.com/api/"


def make_client(token: str | None, api_url: str | None = None, *, timeout: int = 15) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and dropped connections.

    Retries are bounded: a longer outage surfaces as an error, and the outbox retries the whole
    notification later with backoff, so nothing is lost and nothing waits forever.
    """
    base_url = (api_url or DEFAULT_API_URL).rstrip("/") + "/"
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )
