"""Serve the Bolt app: HTTP (Starlette + uvicorn) or Socket Mode, plus the outbox worker and
the scheduler (``bot.scheduler``).

HTTP mode answers Slack on ``POST /slack/events``, ``GET /healthz`` and ``GET /metrics``
(Prometheus, see ``bot.metrics``); with OAuth it also serves ``/slack/install`` and
``/slack/oauth_redirect``. Bolt's dispatch is synchronous, so it runs on
a bounded thread pool and never blocks the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from prometheus_client import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.bootstrap import Services
from bot.notify import SlackNotifier
from bot.scheduler import start_scheduler
from storage.outbox import OutboxWorker, outbox_counts
from storage.slack_messages import MessageRefs

logger = logging.getLogger("shepherd.server")

DISPATCH_THREADS = 32
# Slack calls take 100-300 ms; several senders keep notifications flowing under load.
OUTBOX_SENDERS = 8
WORKER_MODES = ("thread", "process")


def start_outbox_worker(app: App, services: Services, stop: threading.Event) -> threading.Thread:
    """Deliver queued notifications to Slack in the background until ``stop`` is set."""
    return start_delivery(app.client, services, stop)


def start_delivery(client: WebClient, services: Services, stop: threading.Event) -> threading.Thread:
    """A thread delivering the outbox through ``client`` until ``stop`` is set."""
    notifier = SlackNotifier(services, client, MessageRefs(services.database))
    worker = OutboxWorker(
        services.database,
        metrics.counted_sender(notifier),
        clock=services,
        concurrency=OUTBOX_SENDERS,
        ordering_key=lambda message: message.payload.get("ref") or message.id,
    )
    thread = threading.Thread(
        target=worker.run_forever, args=(stop, 0.25), name="shepherd-outbox", daemon=True
    )
    thread.start()
    return thread


def asgi_app(app: App, services: Services, *, run_worker: bool = True, worker: str = "thread") -> Starlette:
    """The ASGI application for HTTP mode.

    Args:
        run_worker: also deliver the outbox and run the scheduler (False: someone else does).
        worker: ``thread`` runs them in this process; ``process`` in a child process
            (``bot.worker``), which keeps this process's interpreter for acks.
    """
    if worker not in WORKER_MODES:
        raise ValueError(f"worker must be one of {', '.join(WORKER_MODES)}, not {worker!r}")
    limiter = anyio.CapacityLimiter(DISPATCH_THREADS)
    stop = threading.Event()

    local_metrics = CollectorRegistry(auto_describe=True)
    local_metrics.register(metrics.OutboxDepthCollector(lambda: outbox_counts(services.database)))

    async def events(request: Request) -> Response:
        body = await request.body()
        bolt_request = to_bolt_request(request, body)
        kind = metrics.payload_type(bolt_request.body)
        with metrics.Timer() as timer:
            response = await anyio.to_thread.run_sync(app.dispatch, bolt_request, limiter=limiter)
        metrics.ACK_LATENCY.labels(payload=kind).observe(timer.seconds)
        metrics.REQUESTS.labels(payload=kind, status=str(response.status)).inc()
        return to_starlette_response(response)

    async def scrape(_: Request) -> Response:
        # Counting the outbox is a database query: keep it off the event loop.
        body = await anyio.to_thread.run_sync(metrics.exposition, local_metrics, limiter=limiter)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def oauth(request: Request) -> Response:
        flow = app.oauth_flow
        if flow is None:
            return Response("OAuth is not configured.", status_code=404)
        bolt_request = to_bolt_request(request, await request.body())
        handle: Callable[[Any], Any] = (
            flow.handle_installation if request.url.path == flow.install_path else flow.handle_callback
        )
        return to_starlette_response(await anyio.to_thread.run_sync(handle, bolt_request, limiter=limiter))

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "pipeline": services.pipeline.version})

    @asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        child = None
        if run_worker and worker == "thread":
            start_outbox_worker(app, services, stop)
            start_scheduler(services, stop)
        elif run_worker and worker == "process":
            from bot.worker import spawn_worker

            child = spawn_worker(services.settings)
        yield
        stop.set()
        if child is not None:
            child.terminate()
            child.wait(timeout=10)

    routes = [
        Route("/slack/events", events, methods=["POST"]),
        Route("/slack/install", oauth, methods=["GET"]),
        Route("/slack/oauth_redirect", oauth, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
