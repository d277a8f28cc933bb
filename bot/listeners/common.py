"""Small pieces every listener uses: who and where a payload came from, and safe replies."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any, TypeVar, cast

from slack_bolt import Ack
from slack_bolt.request.internals import extract_enterprise_id, extract_is_enterprise_install, extract_team_id

from bot import metrics
from bot.blocks.text import MAX_MESSAGE_TEXT, escape, truncate
from bot.bootstrap import Services
from bot.parse import PayloadError
from gates.errors import GateError
from gates.ports import UnitOfWork
from storage.errors import DatabaseUnavailable

logger = logging.getLogger("shepherd.listeners")

PENDING_WRITES = "shepherd_pending_writes"
"""Context key: where the HTTP server collects inbox writes it awaits before answering Slack."""

DEFERRED_REPLY = "shepherd_deferred_reply"
"""Context key: where the HTTP server finds the ack a listener answers with once a write it
queued has committed (``ack_once_saved``)."""

Saved = TypeVar("Saved")

SAVE_WAIT_SECONDS = 10.0
"""How long a listener outside the HTTP server waits for its write (the server has its own budget)."""


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


def ack_once_saved(
    services: Services,
    context: Any,
    ack: Ack,
    body: dict[str, Any],
    saved: Future[Saved],
    reply: Callable[[Saved], dict[str, Any]],
    refused: Callable[[GateError], dict[str, Any]],
) -> None:
    """Acknowledge with ``reply(result)`` once ``saved`` has committed, or ``refused(error)``
    (errors inside the modal) if the write refused it.

    Under the HTTP server (``bot.server``) the listener returns at once and the server answers
    Slack when the reply is ready: the listener's thread takes the next request meanwhile, so
    writes made at the same moment can share one commit (``storage.group_commit``). Elsewhere
    (Socket Mode) it waits here. Anything else the write raised is reported as a listener error
    (logged, the person told) and Slack hears that the request failed, so the modal keeps what
    was typed.
    """
    replied: Future[dict[str, Any]] = Future()

    def finish(done: Future[Saved]) -> None:
        try:
            try:
                replied.set_result(reply(done.result()))
            except GateError as error:
                replied.set_result(refused(error))
        except Exception as error:
            ErrorReporter(services).handle(error, body)
            replied.set_exception(PersonTold(str(error)))

    saved.add_done_callback(finish)
    slot = context.get(DEFERRED_REPLY) if context is not None else None
    if slot is not None:
        slot.append(replied)
        ack()  # Bolt's own ack; the server answers with ``replied`` instead
        return
    try:
        ack(**replied.result(SAVE_WAIT_SECONDS))
    except FutureTimeout:
        raise DatabaseUnavailable(
            "The answers could not be saved in time; the database is too slow or down."
        ) from None


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


def workspace_of(body: Mapping[str, Any]) -> dict[str, str | None]:
    """The workspace a request came from, for an outbox payload answering it: the reply is sent
    with that workspace's token (``bot.installations.Workspace.of``). Read as Bolt's authorize
    reads it, so both find the same installation (an org-wide install has no team)."""
    payload = cast(dict[str, Any], body)  # Bolt's extractors only read it, but are typed Dict
    team = None if extract_is_enterprise_install(payload) else extract_team_id(payload)
    return {"team_id": team, "enterprise_id": extract_enterprise_id(payload)}


def explanation(error: Exception) -> str:
    """``error``'s message as mrkdwn, for the person whose request it refused. The domain's
    messages are plain text and may quote what someone typed (an answer that no longer fits its
    question), so they are escaped; a ``PayloadError``'s is mrkdwn already (``bot.parse``
    escapes what it echoes)."""
    return str(error) if isinstance(error, PayloadError) else escape(str(error))


def tell_later(
    services: Services,
    user: str,
    text: str,
    channel: str | None = None,
    workspace: dict[str, str | None] | None = None,
) -> None:
    """Queue a private message to ``user`` through the outbox (delivered after the ack, retried),
    sent as ``workspace`` (``workspace_of`` the request it answers)."""
    with services.uow() as uow:
        queue_private_message(uow, user, text, channel, services.now(), workspace=workspace)
        uow.commit()


def explain_later(services: Services, body: dict[str, Any], error: Exception) -> None:
    """``tell_later`` the person whose request ``body`` is why it was refused (``explanation``),
    where they made it and in their workspace."""
    tell_later(services, user_of(body), explanation(error), channel_of(body), workspace_of(body))


def queue_private_message(
    uow: UnitOfWork,
    user: str,
    text: str,
    channel: str | None,
    at: datetime,
    merge_key: str | None = None,
    workspace: dict[str, str | None] | None = None,
) -> None:
    """Put a private message to ``user`` in the outbox of the caller's transaction (shown in
    ``channel`` when Slack allows, otherwise by DM), to be sent as ``workspace`` (``workspace_of``
    the request it answers; None: the registry workspace). ``merge_key``: no second message
    while one with that key waits to be sent (a double click is told once)."""
    # Cut here, once: an explanation listing every missing answer of a long gate can run past
    # what Slack shows, and a message Slack refuses would be retried until set aside.
    message = {
        "user": user,
        "channel": channel,
        "text": truncate(text, MAX_MESSAGE_TEXT),
        **(workspace or {}),
    }
    uow.outbox.put("ephemeral", message, at, merge_key=merge_key)


class PersonTold(Exception):  # noqa: N818 - says what happened, like storage.errors.DatabaseUnavailable
    """Raised (from the original error) by a listener that has already told the person it failed,
    so that ``ErrorReporter`` logs and counts it without a second apology."""


class ErrorReporter:
    """Anything unexpected in a listener, in its ack half or after it: the traceback goes to the
    log, a count to the metrics, a polite line to the person."""

    APOLOGY = (
        "Sorry, something went wrong on Shepherd's side; nothing you did was lost. "
        "Please try again in a minute."
    )

    def __init__(self, services: Services) -> None:
        self._services = services

    def handle(self, error: Exception, body: dict[str, Any]) -> None:
        metrics.ERRORS.labels(where="slack_listener").inc()
        logger.exception("unhandled error in a Slack listener", exc_info=error)
        if isinstance(error, PersonTold) or not isinstance(body, dict):
            return
        user = user_of(body) or str((body.get("event") or {}).get("user") or "")
        if not user:
            return
        try:
            tell_later(self._services, user, self.APOLOGY, workspace=workspace_of(body))
        except Exception:  # the database may be the thing that failed; the log has it already
            logger.exception("could not queue the apology")

    def lazily(self, *functions: Callable[..., None]) -> list[Callable[..., None]]:
        """``functions`` as Bolt lazy listeners whose errors come here: Bolt itself only logs a
        lazy listener's error in one line, so the person heard nothing and the traceback was lost."""
        return [self._reporting(function) for function in functions]

    def _reporting(self, function: Callable[..., None]) -> Callable[..., None]:
        # Bolt injects the arguments a listener names (``inspect.getfullargspec``): the wrapper
        # names the function's own plus ``body``, and passes on only the function's own.
        wanted = [name for name in inspect.signature(function).parameters]
        names = list(dict.fromkeys([*wanted, "body"]))

        def reporting(**kwargs: Any) -> None:
            try:
                function(**{name: kwargs[name] for name in wanted})
            except Exception as error:
                self.handle(error, kwargs["body"])

        reporting.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
        )
        reporting.__name__ = reporting.__qualname__ = getattr(function, "__name__", "lazy_listener")
        return reporting


def lazily(services: Services, *functions: Callable[..., None]) -> list[Callable[..., None]]:
    """``ErrorReporter(services).lazily``: what every listener registers as its lazy half."""
    return ErrorReporter(services).lazily(*functions)
