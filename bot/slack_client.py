"""The WebClient Shepherd uses: Slack's base URL from settings and slack_sdk's retry handlers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from http.client import HTTPException, RemoteDisconnected
from urllib.error import HTTPError, URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from storage.leasing import Unavailable

DEFAULT_API_URL = "https://slack.com/api/"


def make_client(token: str | None, api_url: str | None = None, *, timeout: int = 15) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and dropped connections.

    Retries are bounded: a longer outage surfaces as an error (``unavailable`` tells it apart),
    and the outbox waits it out and tries the whole notification again, so nothing is lost.
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


def like(client: WebClient, retry_handlers: list[RetryHandler], timeout: int | None = None) -> WebClient:
    """``client`` (same token, URL, workspace) with other retry handlers, and timeout if given:
    built as Bolt builds each request's client from the app's."""
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout if timeout is None else timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=dict(client.headers),
        team_id=client.default_params.get("team_id"),
        logger=client.logger,
        retry_handlers=retry_handlers,
    )


def retrying_timeouts(client: WebClient) -> WebClient:
    """``client`` also retrying a read timeout, twice: only for a call that does the same however
    often Slack applies it, such as ``chat.update`` with the same message. (A timed-out post may
    have been posted: ``make_client`` does not retry those, or it would post twice.)"""
    timeouts = ConnectionErrorRetryHandler(
        max_retry_count=2, error_types=[URLError, ConnectionError, RemoteDisconnected, TimeoutError]
    )
    others = [
        handler for handler in client.retry_handlers if not isinstance(handler, ConnectionErrorRetryHandler)
    ]
    return like(client, [timeouts, *others])


# Slack error codes saying that Slack, not the request, failed (sent with HTTP 200 or a 5xx).
_SLACK_SIDE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def unavailable(error: BaseException, what: str | None = None) -> Unavailable | None:
    """``error`` as ``storage.Unavailable`` when it says Slack is unavailable rather than that the
    request is wrong: HTTP 5xx, 429 (with its ``Retry-After``), Slack's own server-side error
    codes, the same statuses from the file upload step of ``files_upload_v2``, and timeouts and
    connection failures, as they surface once ``make_client``'s retry handlers have given up. None for anything else (a refusal, a bug), which counts as a failure.

    Args:
        what: the message to give it (default: says what Slack answered).
    """
    if isinstance(error, SlackApiError):
        response = error.response
        status = int(getattr(response, "status_code", 200) or 200)
        code = _code(response)
        if status < 500 and status != 429 and code not in _SLACK_SIDE:
            return None
        method = str(getattr(response, "api_url", "")).rstrip("/").rsplit("/", 1)[-1]
        said = f"Slack answered HTTP {status} ({code or 'no error code'}) to {method or 'a call'}"
        return Unavailable(what or said, _retry_after(getattr(response, "headers", None)))
    if isinstance(error, HTTPError):
        # Raised by files_upload_v2's upload step (Slack's file servers, between two Web API
        # calls): a refusal such as 413 is not an outage, however it reached us.
        if error.code < 500 and error.code != 429:
            return None
        said = f"Slack's file servers answered HTTP {error.code} to a file upload"
        return Unavailable(what or said, _retry_after(dict(error.headers or {})))
    if isinstance(error, URLError | TimeoutError | ConnectionError | HTTPException):
        return Unavailable(what or f"Slack could not be reached ({type(error).__name__}: {error})")
    return None


def _code(response: object) -> str:
    try:
        return str(response["error"])  # type: ignore[index]
    except (KeyError, TypeError):
        return ""


def _retry_after(headers: object) -> timedelta | None:
    """Slack's ``Retry-After`` (seconds), if it sent one."""
    if not isinstance(headers, Mapping):
        return None
    value = headers.get("Retry-After", headers.get("retry-after"))
    if isinstance(value, list):  # some slack_sdk paths keep each header as a list
        value = value[0] if value else None
    try:
        return timedelta(seconds=max(0, int(value))) if value is not None else None
    except (TypeError, ValueError):
        return None
