"""Serve the Bolt app: HTTP (Starlette + uvicorn) or Socket Mode, plus the inbox processor, the
outbox worker and the scheduler (``bot.scheduler``).

HTTP mode answers Slack on ``POST /slack/events``, ``GET /healthz`` and ``GET /metrics``
(Prometheus, see ``bot.metrics``); with OAuth it also serves ``/slack/install`` and
``/slack/oauth_redirect``, which Socket Mode with OAuth serves too (``socket_mode_asgi_app``).
Bolt's dispatch is synchronous, so it runs on a bounded thread pool and never blocks the event
loop.

Requests a listener stores in the inbox (``storage.inbox``; Approve clicks) are awaited here,
after dispatch returns and off the thread pool: the response goes back to Slack only once the
request is committed, while the threads are free for the next requests, which then share that
commit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import ExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from slack_bolt import Ack, App, BoltResponse
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics, slack_request
from bot.bootstrap import Services
from bot.dispatch_limit import DispatchLimit
from bot.installations import Workspace
from bot.listeners.common import DEFERRED_REPLY, PENDING_WRITES
from bot.notify import SlackNotifier, supersedes
from bot.warm_authorization import warm_authorization
from storage.errors import DatabaseUnavailable
from storage.inbox import inbox_counts
from storage.outbox import OutboxMessage, OutboxWorker, outbox_counts
from storage.slack_messages import MessageRefs

logger = logging.getLogger("shepherd.server")

# Threads running listeners' ack halves. On SQLite they are short and CPU-bound (the inbox wait
# happens outside them): one thread, plus one more while it waits for the write lock (see
# ``bot.dispatch_limit`` for the measurements). On PostgreSQL a listener waits on the network for
# each statement, and a second thread keeps the interpreter busy meanwhile. Measured with wrk at
# 50 connections, alternating runs, once each thread took its next request itself: 2 threads
# 409-642 commands/s (p99 135-169 ms), 1 thread 375-423 (p99 178-198), 3 409-440 (p99 212-264),
# 4 480-504 (p99 225-289), 8 445-498 (p99 182-386: eight threads starve the event loop of the
# GIL); questionnaire pages within 5% between 2 and 8 threads, p99 slightly lower with 2.
DISPATCH_THREADS = {"sqlite": 1, "postgresql": 2}
# Slack gives up on an answer after 3 s: past this, say the request failed while Slack still listens.
ACK_BUDGET_SECONDS = 2.5
# How long start-up waits for Slack's auth.test answer (bot.warm_authorization).
AUTH_WARMUP_SECONDS = 5.0
# Slack calls take 100-300 ms; several senders keep notifications flowing under load.
OUTBOX_SENDERS = 8
# Messages claimed per delivery round: a larger batch lets more redraws of one card coalesce,
# but the whole batch must be sent within the lease (2 minutes), Slack slow or not.
DELIVERY_BATCH = 4 * OUTBOX_SENDERS
# A card redraw waits this long before it is sent; the questionnaire pages saved meanwhile merge
# into it (``merge_key``), so a card is redrawn at most every two seconds, whatever the pace of
# saves, and chat.update stays well inside Slack's rate limit.
REDRAW_SETTLE = timedelta(seconds=2)
WORKER_MODES = ("thread", "process")
# /healthz's wait for the database's ``SELECT 1`` (well under a millisecond when it answers):
# under Kubernetes' default probe timeout of 1 s, so the probe reads why, rather than timing out.
HEALTH_TIMEOUT_SECONDS = 0.8


def freeze_startup_heap() -> None:
    """Take everything built so far (modules, the app, the pipeline) out of the garbage
    collector's full passes.

    A request creates short-lived objects that outlive a few young collections (it waits for
    its inbox commit), so full collections ran every half second, each scanning the ~230,000
    objects of the imported libraries for ~100 ms with every thread stopped. Measured at 50
    connections of Approve, without workers: p99 ack 122-141 ms -> 20-24 ms, 2,100 -> 3,000+
    requests/s. Long-running processes call it once, after startup (``shepherd serve``, the
    worker); tests that build many apps in one process do not, since a frozen object caught in
    a reference cycle is never freed (reference counting still frees the rest).

    The young generation's threshold goes from 700 to 20,000 tracked objects: with 50 requests
    in flight, each holding a parsed payload and a view, 700 was reached every few requests and
    each young collection scanned the live requests' objects again, promoting them into older
    generations that were then scanned too. Measured in the HTTP process over one 8 s run of
    questionnaire pages at 50 connections: 1,178 collections taking 0.92 s of CPU (pauses of up
    to 22 ms with every thread stopped) -> 1 collection taking 13 ms. Reference counting frees a
    request's objects when it ends, so the count rarely gets near the new threshold.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def start_outbox_worker(app: App, services: Services, stop: threading.Event) -> threading.Thread:
    """Deliver queued notifications to Slack in the background until ``stop`` is set."""
    return start_delivery(app.client, services, stop)


def start_delivery(
    client: WebClient, services: Services, stop: threading.Event, claimant: str = ""
) -> threading.Thread:
    """A thread delivering the outbox through ``client`` until ``stop`` is set."""
    send = metrics.counted_sender(delivery_sender(services, client))
    worker = delivery_worker(services, send, claimant)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop, 0.25), name="shepherd-outbox", daemon=True
    )
    thread.start()
    return thread


def delivery_worker(
    services: Services,
    send: Callable[[OutboxMessage], None],
    claimant: str = "",
    concurrency: int = OUTBOX_SENDERS,
) -> OutboxWorker:
    """The outbox worker as Shepherd runs it: ``concurrency`` senders in parallel (1: the claim's
    order, which tests use), each initiative's messages in order, and redraws of one card
    coalesced."""
    return OutboxWorker(
        services.database,
        send,
        clock=services,
        concurrency=concurrency,
        ordering_key=lambda message: message.payload.get("ref") or message.id,
        supersedes=supersedes,
        batch_size=DELIVERY_BATCH,
        claimant=claimant,
        settle=REDRAW_SETTLE,
        # Messages sent with one workspace's token wait together for its (re)install, and only
        # they: another workspace's still go out.
        waits_with=lambda message: Workspace.of(message.payload),
    )


def delivery_sender(services: Services, client: WebClient) -> Callable[[OutboxMessage], None]:
    """What sends one outbox message to Slack.

    With OAuth, ``client`` has no token of its own: each send takes the current token of the
    workspace the message answers (its payload's ``team_id``), or of the registry workspace,
    on a client per sending thread, so Bolt's client is never changed and no thread's token
    changes under another's call. Until Shepherd is installed there (again), messages are
    postponed in the outbox (never dead-lettered for it).
    """
    refs = MessageRefs(services.database)
    if not services.settings.oauth_enabled:
        return SlackNotifier(services, client, refs)
    from bot.installations import InstalledClients

    clients = InstalledClients(services.settings, services.database)
    local = threading.local()

    def send(message: OutboxMessage) -> None:
        with clients.sending(Workspace.of(message.payload)) as slack:  # this thread's client
            if getattr(local, "client", None) is not slack:
                local.client, local.notifier = slack, SlackNotifier(services, slack, refs, clients.sending)
            local.notifier(message)

    return send


async def _after_stored(pending: list[Future[None]], response: BoltResponse, timeout: float) -> BoltResponse:
    """``response`` once every inbox write the listener queued is committed; a failed write turns
    it into an error, so Slack shows the person that their click did not go through."""
    try:
        with anyio.fail_after(timeout):
            for stored in pending:
                await asyncio.wrap_future(stored)
    except Exception:
        metrics.ERRORS.labels(where="inbox").inc()
        logger.exception("a request could not be stored; Slack is told it failed")
        return BoltResponse(status=500, body="")
    return response


async def _deferred_reply(replied: Future[dict[str, Any]], timeout: float) -> BoltResponse:
    """The ack a listener left for later (``ack_once_saved``), built by Bolt's own ``Ack`` once
    its write has committed; Slack hears that the request failed if it did not commit in time
    (the person was told why already if the write failed; the modal keeps what they typed)."""
    try:
        with anyio.fail_after(timeout):
            arguments = await asyncio.wrap_future(replied)
    except TimeoutError:
        metrics.ERRORS.labels(where="deferred_ack").inc()
        logger.error("a deferred ack was not ready within %.1f s; Slack is told it failed", timeout)
        return BoltResponse(status=500, body="")
    except Exception:  # the write failed and ``ack_once_saved`` has logged it and told the person
        return BoltResponse(status=500, body="")
    return Ack()(**arguments)  # type: ignore[no-untyped-call]  # Bolt leaves Ack.__init__ unannotated


def asgi_app(app: App, services: Services, *, run_worker: bool = True, worker: str = "thread") -> Starlette:
    """The ASGI application for HTTP mode.

    Args:
        run_worker: also apply the inbox, deliver the outbox and run the scheduler (False:
            someone else does, such as ``shepherd worker`` or a test).
        worker: ``thread`` runs them in this process; ``process`` in two child processes
            (``bot.worker``: the inbox, and delivery with the scheduler), which keeps this
            process's interpreter for acks.
    """
    if worker not in WORKER_MODES:
        raise ValueError(f"worker must be one of {', '.join(WORKER_MODES)}, not {worker!r}")
    dispatch = DispatchLimit(DISPATCH_THREADS["sqlite" if services.database.is_sqlite else "postgresql"])
    services.database.while_waiting_for_lock = dispatch.waiting
    stop = threading.Event()

    local_metrics = CollectorRegistry(auto_describe=True)
    local_metrics.register(metrics.OutboxDepthCollector(lambda: outbox_counts(services.database)))
    local_metrics.register(metrics.InboxDepthCollector(lambda: inbox_counts(services.database)))

    async def events(request: Request) -> Response:
        bolt_request = slack_request.bolt_request(request, await request.body())
        kind = metrics.payload_type(bolt_request.body)
        pending: list[Future[None]] = []
        bolt_request.context[PENDING_WRITES] = pending
        deferred: list[Future[dict[str, Any]]] = []
        bolt_request.context[DEFERRED_REPLY] = deferred
        with metrics.Timer() as timer:
            response = await dispatch.run(app.dispatch, bolt_request)
            if pending:
                response = await _after_stored(pending, response, ACK_BUDGET_SECONDS)
            if deferred and response.status == 200:
                response = await _deferred_reply(deferred[0], ACK_BUDGET_SECONDS)
        metrics.ACK_LATENCY.labels(payload=kind).observe(timer.seconds)
        metrics.REQUESTS.labels(payload=kind, status=str(response.status)).inc()
        return to_starlette_response(response)

    async def scrape(_: Request) -> Response:
        # Counting the outbox is a database query: keep it off the event loop.
        body = await dispatch.run(metrics.exposition, local_metrics)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(asgi: Starlette) -> AsyncIterator[None]:
        from bot.worker import WorkerChildren, start_background

        children = None
        threads: list[threading.Thread] = []
        shared_metrics = ExitStack()
        if run_worker and worker == "thread":
            threads = start_background(services, app.client, stop)
        elif run_worker and worker == "process":
            # Two processes: recording decisions must not queue behind notifications for the GIL
            # (measured: in one process, 8 busy senders slowed the inbox to ~40 decisions/s).
            # Their deliveries and reminders reach /metrics through files (``metrics.exposition``).
            shared_metrics.enter_context(metrics.shared_directory())
            children = WorkerChildren(services.settings, database=services.database)
            children.start()
            if not services.database.is_sqlite:
                # Questionnaire pages too: their writer waits on the network for each statement,
                # and here it would queue for the interpreter after each one (``bot.page_writer``).
                from bot.page_writer import PageWriterChild

                pages = PageWriterChild(services.settings, fallback=services.pages)
                services.write_pages_with(pages)
                pages.start()
        asgi.state.workers = children
        # Before uvicorn accepts connections, so that no ack waits on Slack for it. Bounded: a
        # Slack outage delays start-up by at most this much, and the first request then asks.
        with anyio.move_on_after(AUTH_WARMUP_SECONDS):
            await anyio.to_thread.run_sync(warm_authorization, app, abandon_on_cancel=True)
        yield
        await anyio.to_thread.run_sync(stop_serving, services, stop, threads)
        if children is not None:
            await anyio.to_thread.run_sync(children.stop)
        shared_metrics.close()

    routes = [
        Route("/slack/events", events, methods=["POST"]),
        *oauth_routes(app),
        # Not through ``dispatch``: behind a burst of acks the probe would time out and report
        # the database down, and a load balancer would take Shepherd away while it is busiest.
        health_route(services),
        Route("/metrics", scrape, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def socket_mode_asgi_app(app: App, services: Services) -> Starlette:
    """What Socket Mode serves over HTTP when installs go through OAuth: Slack's install page and
    redirect, which a browser must reach (events and clicks arrive over the socket), and
    ``/healthz``. ``shepherd serve`` starts and stops the workers around it (``stop_serving``)."""
    return Starlette(routes=[*oauth_routes(app), health_route(services)])


def oauth_routes(app: App) -> list[Route]:
    """``/slack/install`` and ``/slack/oauth_redirect``: Bolt's OAuth flow (404 without OAuth)."""

    async def oauth(request: Request) -> Response:
        flow = app.oauth_flow
        if flow is None:
            return Response("OAuth is not configured.", status_code=404)
        bolt_request = to_bolt_request(request, await request.body())
        handle: Callable[[Any], Any] = (
            flow.handle_installation if request.url.path == flow.install_path else flow.handle_callback
        )
        # Not on a listener thread: the callback waits on Slack (oauth.v2.access), and every ack
        # would wait behind it.
        return to_starlette_response(await anyio.to_thread.run_sync(handle, bolt_request))

    return [
        Route("/slack/install", oauth, methods=["GET"]),
        Route("/slack/oauth_redirect", oauth, methods=["GET"]),
    ]


def health_route(services: Services) -> Route:
    """``/healthz``: 200 while the database answers a ``SELECT 1``, otherwise 503 with the reason.

    The query runs on anyio's worker threads, never queued behind the listeners' acks: a busy
    Shepherd is healthy. A query still hanging at the timeout is left to finish on its own
    (``abandon_on_cancel``), so the probe answers within ``HEALTH_TIMEOUT_SECONDS`` whatever the
    database does.
    """

    async def healthz(_: Request) -> Response:
        try:
            with anyio.fail_after(HEALTH_TIMEOUT_SECONDS):
                await anyio.to_thread.run_sync(services.database.ping, abandon_on_cancel=True)
        except TimeoutError:
            reason = f"the database did not answer within {HEALTH_TIMEOUT_SECONDS:g} s"
            return _unhealthy(reason, reason)
        except DatabaseUnavailable as error:
            return _unhealthy("the database cannot be reached", str(error))
        return JSONResponse({"ok": True, "pipeline": services.pipeline.version})

    return Route("/healthz", healthz, methods=["GET"])


def _unhealthy(reason: str, details: str) -> Response:
    """503 with ``reason``; the details (the database's address, the driver's words) go to the
    log, not to whoever can reach the port."""
    logger.warning("/healthz: %s", details)
    return JSONResponse({"ok": False, "reason": reason}, status_code=503)


# When the process stops, how long answers under way have to finish, and how long that and
# telling the askers still waiting that Shepherd restarted may take in all. The background threads
# finish meanwhile, within the same ``STOP_GRACE_SECONDS`` (``bot.worker``) as before.
ANSWER_GRACE_SECONDS = 5.0
ANSWER_STOP_SECONDS = 10.0


def stop_serving(services: Services, stop: threading.Event, threads: list[threading.Thread]) -> None:
    """What both modes do once no new request can arrive: stop the background threads
    (``start_background``'s, run with ``stop``), write what the listeners queued, settle the
    questions being answered and wait for the threads to finish."""
    from bot.worker import STOP_GRACE_SECONDS, finish_background

    started = time.monotonic()
    stop.set()
    services.inbox.close()
    services.pages.close()
    # A placeholder left saying "Looking into it…" would wait for an answer forever.
    services.answers.stop(ANSWER_GRACE_SECONDS, ANSWER_STOP_SECONDS)
    # A post in flight is finished and remembered, or it would be posted again after a restart.
    finish_background(threads, max(0.0, STOP_GRACE_SECONDS - (time.monotonic() - started)))
