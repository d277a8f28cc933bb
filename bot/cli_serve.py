"""`shepherd run`, `shepherd serve` and `shepherd manifest`."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from bot.bootstrap import Services, bootstrap, policy_folder
from bot.cli_console import console
from bot.manifest import EVENTS_PATH, OAUTH_REDIRECT_PATH, base_url_of, manifest_yaml
from bot.settings import Settings

out = console()
err = console(stderr=True)
logger = logging.getLogger("shepherd")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    if settings.log_json:
        import json

        class _Json(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
                if record.exc_info:
                    entry["exception"] = self.formatException(record.exc_info)
                return json.dumps(entry)

        handler = logging.StreamHandler()
        handler.setFormatter(_Json())
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # Libraries' chatter (migrations, index building, HTTP) is not what a person starting Shepherd needs.
    for noisy in ("alembic", "bm25s", "httpx", "chromadb", "urllib3", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def prepare(settings: Settings, *, existing_database: bool = False) -> Services:
    """Open everything the main job needs, saying what happens at each step.

    Args:
        existing_database: see ``open_database(existing=...)``.
    """
    # Paths, URLs and reasons below come from settings and files: escaped, never read as markup.
    out.print(
        f"[bold]Shepherd[/bold]: data directory [cyan]{escape(str(settings.data_dir.resolve()))}[/cyan]"
    )
    services = bootstrap(settings, existing_database=existing_database)
    model = services.pipeline.model
    out.print(
        f"  pipeline   {services.pipeline.source}: version {services.pipeline.version}, "
        f"gates {', '.join(g.id for g in model.gates)}",
        markup=False,
    )
    out.print(f"  database   {services.database.describe()} (migrated, ready)", markup=False)
    knowledge = services.knowledge
    if knowledge is None:
        out.print(
            "  policies   [yellow]unavailable[/yellow] (see the warning above); the gate checklist still works"
        )
    else:
        # The knowledge base ingested the policy folder as it opened; report that, don't redo it.
        folder = policy_folder(settings)
        report = services.policy_ingests[-1] if services.policy_ingests else None
        done = (
            f"{report.files} files, {report.chunks} new chunks, {report.skipped} unchanged"
            + (f", {report.removed} removed (gone from the folder)" if report.removed else "")
            + "; "
            if report is not None
            else "[yellow]not ingested[/yellow] (see the warning above); "
        )
        status = knowledge.status()
        out.print(
            f"  policies   {escape(str(folder))}: {done}"
            + escape(
                f"{status.chunks} chunks searchable, "
                + (
                    "lexical search only: " + (status.reason or "")
                    if status.lexical_only
                    else f"embeddings {status.embeddings}"
                )
            )
        )
    llm = services.settings.llm_model if services.settings.llm_configured else None
    out.print(
        f"  answers    {'LLM ' + llm if llm else 'no LLM configured: replies quote the best policy passages'}",
        markup=False,
    )
    return services


def run() -> None:
    """The main job: prepare the embedded default and serve Slack when credentials are set."""
    settings = Settings()
    configure_logging(settings)
    services = prepare(settings)
    if settings.slack_configured:
        _serve(settings, services, settings.port)
        return
    out.print()
    given = (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token)
    if any(given) or settings.slack_client_id or settings.slack_client_secret:
        # Some are set: say which is missing rather than that there are none.
        out.print(
            f"[yellow]Slack is not connected[/yellow]: it also needs {escape(str(settings.slack_missing))}. Next steps:"
        )
    else:
        out.print("[yellow]No Slack credentials yet[/yellow], so the bot is not connected. Next steps:")
    out.print(
        "  1. Create the Slack app from [cyan]slack-manifest.yaml[/cyan] (api.slack.com/apps > Create > From a manifest)."
    )
    out.print(
        "  2. Put SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (for Socket Mode, SLACK_APP_TOKEN instead of the secret) in [cyan].env[/cyan]."
    )
    out.print(
        '  3. Run [bold]make run[/bold] again. Meanwhile try: [bold].venv/bin/shepherd knowledge ask "what do we need for the pilot gate?"[/bold]'
    )
    out.print(
        "     or [bold].venv/bin/shepherd readiness --gate intake --answers examples/answers/intake-low-risk.yaml[/bold]"
    )
    # Meanwhile Shepherd runs against the built-in Slack emulator, with a page to drive it.
    from bot.playground.serve import serve_playground

    code = serve_playground(settings, out, knowledge_factory=lambda: services.knowledge)
    if code:
        raise typer.Exit(code)


def serve(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="HTTP port, 1-65535 (default SHEPHERD_PORT or 3000)."),
    ] = None,
    worker: Annotated[
        str,
        typer.Option(
            help="Where the inbox, outbox delivery and the scheduler run: process (a child process), thread, "
            "or none (replicas whose workers run as `shepherd worker`)."
        ),
    ] = "process",
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="HTTP processes answering Slack on the port (default SHEPHERD_HTTP_PROCESSES or 1). "
            "One process acks on one core; on PostgreSQL, use about one per core.",
        ),
    ] = None,
) -> None:
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set (with OAuth, the install page on
    the port too), otherwise HTTP on /slack/events."""
    if worker not in ("process", "thread", "none"):
        raise typer.BadParameter("use process, thread or none", param_hint="--worker")
    settings = Settings()
    if processes is not None:
        settings = settings.model_copy(update={"http_processes": processes})
    if settings.http_processes > 1 and worker == "thread" and settings.slack_app_token is None:
        raise typer.BadParameter(
            "with several HTTP processes the workers run beside them: use process or none",
            param_hint="--worker",
        )
    from bot.app import check_slack_settings

    # Before migrating and ingesting, which take a while and would only end in this.
    check_slack_settings(settings)
    configure_logging(settings)
    services = prepare(settings)
    _serve(settings, services, port or settings.port, worker)


def worker() -> None:
    """Deliver notifications to Slack and run the scheduler (no HTTP); run several if you like."""
    from bot.worker import exit_now, run_worker

    settings = Settings()
    configure_logging(settings)
    # A worker on a mistyped SQLite path would deliver nothing, from a new empty database.
    prepare(settings, existing_database=True)
    out.print("Worker running: inbox, outbox delivery and scheduler. Ctrl+C stops.")
    if not run_worker(settings, freeze=True):
        exit_now()


def _serve(settings: Settings, services: Services, port: int, worker: str = "process") -> None:
    from bot.app import build_app

    app = build_app(settings, services)
    if settings.slack_app_token is not None:
        if settings.http_processes > 1:
            out.print(
                "[yellow]Socket Mode runs in one process[/yellow]: --processes applies to HTTP mode only."
            )
        _serve_socket_mode(settings, services, app, port, worker)
        return
    import uvicorn

    from bot.server import asgi_app, freeze_startup_heap

    if settings.http_processes > 1:
        _serve_processes(settings, services, port, worker)
        return
    mode = "thread" if worker == "none" else worker
    asgi = asgi_app(app, services, run_worker=worker != "none", worker=mode)
    freeze_startup_heap()
    out.print(
        f"Listening on http://{settings.host}:{port}/slack/events (health: /healthz). Ctrl+C stops.",
        markup=False,
    )
    uvicorn.run(
        asgi,
        host=settings.host,
        port=port,
        log_level="warning",
    )


def _serve_socket_mode(
    settings: Settings, services: Services, app: Any, port: int, worker: str = "process"
) -> None:
    """Socket Mode until SIGTERM or Ctrl+C; with OAuth, also the install pages on ``port``
    (``socket_mode_asgi_app``), since a browser must reach them whatever the mode. The workers
    run where ``worker`` says, as in HTTP mode (``asgi_app``)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    from bot.app import ConfigurationError, app_token_refused
    from bot.emulator.serving import BackgroundASGIServer
    from bot.server import freeze_startup_heap, socket_mode_asgi_app, stop_serving
    from bot.warm_authorization import warm_authorization
    from bot.worker import WorkerChildren, start_background

    assert settings.slack_app_token is not None
    stop = threading.Event()
    freeze_startup_heap()
    # `none`: replicas whose workers run as `shepherd worker`; `process`: recording decisions
    # does not wait behind deliveries for this process's interpreter.
    threads = start_background(services, app.client, stop) if worker == "thread" else []
    children = WorkerChildren(settings, database=services.database) if worker == "process" else None
    if children is not None:
        children.start()
    warm_authorization(app)
    handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
    # uvicorn on a thread, not this one: on the main thread it would take SIGTERM, and after its
    # own shutdown raise it again, ending the process before the steps in ``finally`` below.
    pages = BackgroundASGIServer(socket_mode_asgi_app(app, services), host=settings.host, port=port)
    terminated: list[int] = []

    def on_sigterm(signum: int, _: Any) -> None:
        # Stop as Ctrl+C does, so the steps in ``finally`` run: Python's default for SIGTERM ends
        # the process at once, and a post in flight would be sent again after a restart.
        terminated.append(signum)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main else None
    try:
        if settings.oauth_enabled:
            try:
                pages.start()
            except OSError as error:  # the port taken, an address not of this machine
                raise ConfigurationError(
                    f"Cannot serve the install page on {pages.url.removeprefix('http://')}: "
                    f"{error.strerror or error}. Set SHEPHERD_PORT (or --port) to a free port, and "
                    "SHEPHERD_HOST to an address of this machine."
                ) from None
            out.print(
                f"Install page on {pages.url}/slack/install (health: /healthz).",
                markup=False,
            )
        out.print("Connecting to Slack over Socket Mode. Ctrl+C stops.")
        try:
            handler.start()  # type: ignore[no-untyped-call]  # unannotated in Bolt
        except SlackApiError as error:
            # The connection's address is asked for with SLACK_APP_TOKEN: a refusal is a setting to
            # fix, said as one, not an unexpected error.
            if not error.response.api_url.endswith("apps.connections.open"):
                raise
            raise ConfigurationError(" ".join(app_token_refused(error))) from None
    except KeyboardInterrupt:  # Ctrl+C, or SIGTERM (``on_sigterm``)
        out.print("Stopping: requests under way are answered, then Slack is disconnected.")
        raise
    finally:
        _answer_requests_under_way(handler)
        handler.close()  # type: ignore[no-untyped-call]  # unannotated in Bolt
        pages.stop()
        stop_serving(services, stop, threads)
        if children is not None:
            children.stop()
        if main:
            signal.signal(signal.SIGTERM, previous)
        if terminated:
            # Exit as stopped by SIGTERM, as HTTP mode does (uvicorn raises it again once stopped).
            signal.raise_signal(signal.SIGTERM)


def _answer_requests_under_way(handler: object) -> None:
    """Let the requests Socket Mode has received finish and send their acks while the socket is
    still open. Bolt's ``close`` disconnects first and only then waits for its workers: an
    approval being stored was stored, but its ack could no longer be sent, and Slack showed the
    person that Shepherd did not respond. Envelopes arriving after this are left unacknowledged,
    as a stopped process leaves them: Slack sends events again (to the next connection)."""
    from slack_sdk.socket_mode.builtin import SocketModeClient

    client = getattr(handler, "client", None)
    if not isinstance(client, SocketModeClient):  # the client of Bolt's SocketModeHandler
        return
    client.closed = True  # ends the processor's loop, within its one-second wait for a message
    # So no envelope reaches the workers behind our back (both unannotated in slack_sdk).
    client.message_processor.shutdown()  # type: ignore[no-untyped-call]
    while not client.message_queue.empty():  # received already: dispatched like the others
        client.process_message()  # type: ignore[no-untyped-call]
    client.message_workers.shutdown(wait=True)  # each listener's ack goes out on the open socket


def _serve_processes(settings: Settings, services: Services, port: int, worker: str) -> None:
    """HTTP on several processes sharing the port, through uvicorn's supervisor (which replaces a
    process that dies); the inbox and delivery workers run once, beside them.

    Each process builds its own app from the same settings (``http_process_app``), so settings
    given only on the command line do not reach them: put them in the environment or ``.env``.
    Metrics are shared through prometheus_client's multiprocess mode, so ``/metrics`` counts
    every process's requests (and the workers' deliveries) whichever process answers the scrape;
    that mode has no ``process_*`` or ``python_gc_*`` metrics.
    """
    from bot.metrics import shared_directory

    services.database.dispose()  # the parent serves nothing; its connections would only idle
    with shared_directory():
        _serve_processes_sharing_metrics(settings, services, port, worker)


def _serve_processes_sharing_metrics(settings: Settings, services: Services, port: int, worker: str) -> None:
    """``_serve_processes`` once ``PROMETHEUS_MULTIPROC_DIR`` is set, which the processes started
    here inherit."""
    import uvicorn

    from bot.worker import WorkerChildren

    children = WorkerChildren(settings, database=services.database) if worker == "process" else None
    if children is not None:
        children.start()
    out.print(
        f"Listening on http://{settings.host}:{port}/slack/events with {settings.http_processes} processes "
        "(health: /healthz). Ctrl+C stops.",
        markup=False,
    )
    try:
        uvicorn.run(
            f"{__name__}:http_process_app",
            factory=True,
            workers=settings.http_processes,
            host=settings.host,
            port=port,
            log_level="warning",
            # Each process imports the whole stack before it answers uvicorn's health ping.
            timeout_worker_healthcheck=60,
        )
    finally:
        if children is not None:
            children.stop()


def http_process_app() -> Any:
    """One of ``shepherd serve --processes N``'s HTTP processes: the app, without the workers
    (the parent runs those) and without migrating (the parent did)."""
    from bot.app import build_app
    from bot.bootstrap import open_database
    from bot.server import asgi_app, freeze_startup_heap

    settings = Settings()
    configure_logging(settings)
    services = bootstrap(settings, database=open_database(settings, migrate_sqlite=False))
    asgi = asgi_app(build_app(settings, services), services, run_worker=False)
    # Before serving, as `shepherd serve` does in ``prepare``: the first question does not wait
    # for the store to open, and the frozen heap includes it.
    _ = services.knowledge
    freeze_startup_heap()
    return asgi


def manifest(
    url: Annotated[
        str,
        typer.Option(
            help=f"Public base URL of this Shepherd, e.g. https://shepherd.example.com: Slack is given "
            f"{EVENTS_PATH} and {OAUTH_REDIRECT_PATH} under it (with --socket-mode, the redirect only)."
        ),
    ] = "https://shepherd.example.com",
    socket_mode: Annotated[bool, typer.Option("--socket-mode", help="Manifest for Socket Mode.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the Slack app manifest that creates Shepherd's app in one step."""
    parsed = urlsplit(url)
    if not socket_mode and (parsed.scheme != "https" or not parsed.hostname):
        # Slack sends events, commands and clicks only to an https address.
        err.print(
            f"[red]error:[/red] --url must be an https:// address Slack can reach, not {escape(repr(url))}",
            highlight=False,
        )
        raise typer.Exit(1)
    if parsed.query or parsed.fragment:
        err.print(
            f"[red]error:[/red] --url is the base URL Shepherd's addresses go under: give it without "
            f"?... or #..., not {escape(repr(url))}",
            highlight=False,
        )
        raise typer.Exit(1)
    base = base_url_of(url)
    if base != url.rstrip("/"):
        # Slack's settings show the full address; pasted here it would be doubled.
        err.print(
            f"[yellow]note:[/yellow] --url is the base URL: using {escape(base)}, under which Slack is given "
            f"{EVENTS_PATH} and {OAUTH_REDIRECT_PATH}.",
            highlight=False,
        )
    text = manifest_yaml(base, socket_mode)
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        problem = escape(f"cannot write {output}: {error.strerror or error}")
        err.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"Wrote {output}", markup=False)
