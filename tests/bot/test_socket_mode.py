"""`shepherd serve` in Socket Mode: the install page beside the socket when installs go through
OAuth, and a stop (SIGTERM, Ctrl+C) that finishes what is in flight, as HTTP mode does.

The Socket Mode connection is faked at Bolt's ``SocketModeHandler``: its ``start`` is where the
process would wait for Slack, so the fake acts there (a browser opening the install page, a
supervisor's SIGTERM) and returns."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import slack_bolt.adapter.socket_mode
import websockets.exceptions
import websockets.sync.server
from sqlalchemy.engine import make_url
from websockets.sync.server import ServerConnection

from bot import cli_serve, ids
from bot.app import ConfigurationError
from bot.emulator import payloads
from bot.emulator.state import SlackState
from bot.emulator.webapi import FakeSlackWebAPI
from bot.settings import Settings
from storage import Database
from tests.bot.test_serve_processes import REPO, descendants
from tests.conftest import require
from tests.storage.conftest import PG_URL, drop_postgres_schema, fresh_postgres_schema

SLACK_ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
)
# The threads `serve` starts beside the connection: each must be gone once it has stopped.
BACKGROUND = ("shepherd-inbox", "shepherd-outbox", "shepherd-scheduler", "shepherd-inbox-writer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def no_slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the credentials a test gives: none from the environment or a `.env`."""
    for name in SLACK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """`serve` freezes the start-up heap for a long-running process; give pytest's back."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class FakeSocketMode:
    """Stands in for Bolt's ``SocketModeHandler``: ``start`` runs ``while_connected`` in place of
    waiting for Slack; ``closed`` tells whether the connection was closed."""

    def __init__(self) -> None:
        self.while_connected: list[Callable[[], None]] = []
        self.closed = False

    def handler(self, app: Any, app_token: str) -> FakeSocketMode:
        assert app_token.startswith("xapp-")
        return self

    def start(self) -> None:
        for act in self.while_connected:
            act()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def socket_mode(monkeypatch: pytest.MonkeyPatch) -> FakeSocketMode:
    fake = FakeSocketMode()
    monkeypatch.setattr(slack_bolt.adapter.socket_mode, "SocketModeHandler", fake.handler)
    return fake


def oauth_socket_settings(tmp_path: Path, api: FakeSlackWebAPI, port: int) -> Settings:
    """Socket Mode with OAuth installs, and no signing secret: Socket Mode needs none."""
    return Settings(
        data_dir=tmp_path,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
        slack_app_token="xapp-1-A0SHEPHERD-1-secret",
        slack_api_url=api.api_url,
        embeddings="none",
        port=port,
    )


def serve(settings: Settings) -> None:
    services = cli_serve.prepare(settings)
    try:
        cli_serve._serve(settings, services, settings.port, "thread")
    finally:
        services.database.dispose()


@pytest.mark.usefixtures("gc_restored")
def test_socket_mode_with_oauth_serves_the_install_page(tmp_path: Path, socket_mode: FakeSocketMode) -> None:
    port = free_port()
    pages: list[httpx.Response] = []

    def open_install_page() -> None:
        base = f"http://127.0.0.1:{port}"
        pages.append(httpx.get(base + "/slack/install", follow_redirects=False))
        pages.append(httpx.get(base + "/healthz"))

    socket_mode.while_connected.append(open_install_page)
    with FakeSlackWebAPI() as api:
        settings = oauth_socket_settings(tmp_path, api, port)
        assert settings.slack_configured
        serve(settings)

    install, health = pages
    assert install.status_code in (200, 302)
    assert "https://slack.com/oauth/v2/authorize" in (install.headers.get("location") or install.text)
    assert "client_id=111.222" in (install.headers.get("location") or install.text)
    assert health.status_code == 200
    assert socket_mode.closed
    with pytest.raises(httpx.ConnectError):  # stopped with the connection
        httpx.get(f"http://127.0.0.1:{port}/healthz")


@pytest.mark.usefixtures("gc_restored")
def test_socket_mode_serves_the_install_page_on_an_ipv6_address(
    tmp_path: Path, socket_mode: FakeSocketMode
) -> None:
    """SHEPHERD_HOST=:: (or ::1), as on an IPv6 or dual-stack network: HTTP mode listens there,
    and Socket Mode used to stop at start with "Address family for hostname not supported",
    its install page's socket being IPv4 only."""
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = int(sock.getsockname()[1])
    pages: list[httpx.Response] = []
    socket_mode.while_connected.append(lambda: pages.append(httpx.get(f"http://[::1]:{port}/healthz")))
    with FakeSlackWebAPI() as api:
        serve(oauth_socket_settings(tmp_path, api, port).model_copy(update={"host": "::1"}))

    assert [page.status_code for page in pages] == [200]
    assert socket_mode.closed


@pytest.mark.usefixtures("gc_restored")
def test_sigterm_in_socket_mode_finishes_the_background_work_before_exiting(
    tmp_path: Path, socket_mode: FakeSocketMode
) -> None:
    received: list[int] = []
    earlier = set(threading.enumerate())  # other tests' services may have left theirs running

    def sigterm_with_a_request_queued() -> None:
        # The inbox's writer thread has started (a listener stored a request; its kind does not
        # matter here) when the supervisor stops Shepherd.
        prepared.inbox.submit("noop", {})
        signal.raise_signal(signal.SIGTERM)

    socket_mode.while_connected.append(sigterm_with_a_request_queued)
    # Python's default for SIGTERM would end pytest itself: stand in for the process's end.
    previous = signal.signal(signal.SIGTERM, lambda signum, _: received.append(signum))
    try:
        with FakeSlackWebAPI() as api:
            settings = oauth_socket_settings(tmp_path, api, free_port())
            prepared = cli_serve.prepare(settings)
            with pytest.raises(KeyboardInterrupt):
                cli_serve._serve(settings, prepared, settings.port, "thread")
            prepared.database.dispose()
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert received == [signal.SIGTERM]  # raised again once stopped: the process ends as told
    assert socket_mode.closed
    started = set(threading.enumerate()) - earlier
    alive = [thread.name for thread in started if thread.name in BACKGROUND]
    assert alive == []  # finished, and the inbox's writer closed, as HTTP mode's lifespan does


@pytest.mark.usefixtures("gc_restored")
@pytest.mark.parametrize(
    ("worker", "threads", "children"), [("none", 0, 0), ("process", 0, 2), ("thread", 3, 0)]
)
def test_socket_mode_runs_the_workers_where_worker_says(
    tmp_path: Path, socket_mode: FakeSocketMode, worker: str, threads: int, children: int
) -> None:
    """`--worker none` is for replicas whose workers run as `shepherd worker`, and `process` keeps
    the acks' interpreter free of deliveries, in Socket Mode as in HTTP mode."""
    earlier = set(threading.enumerate())
    seen: dict[str, int] = {}

    def look() -> None:
        started = set(threading.enumerate()) - earlier
        seen["threads"] = sum(thread.name in BACKGROUND[:3] for thread in started)
        seen["children"] = sum("bot.worker" in command for command in descendants(os.getpid()).values())

    socket_mode.while_connected.append(look)
    with FakeSlackWebAPI() as api:
        settings = oauth_socket_settings(tmp_path, api, free_port())
        prepared = cli_serve.prepare(settings)
        try:
            cli_serve._serve(settings, prepared, settings.port, worker)
        finally:
            prepared.database.dispose()
    assert seen == {"threads": threads, "children": children}
    assert not [c for c in descendants(os.getpid()).values() if "bot.worker" in c]  # stopped with it


@pytest.mark.usefixtures("gc_restored")
@pytest.mark.parametrize(
    ("scopes", "refusal"),
    [(None, "invalid_auth"), ((), "missing_scope: it needs the connections:write scope")],
)
def test_an_app_token_slack_refuses_is_named_with_the_fix(
    tmp_path: Path, scopes: tuple[str, ...] | None, refusal: str
) -> None:
    """The real ``SocketModeHandler`` against the fake Slack: an app-level token revoked, or
    made without connections:write, used to end `shepherd serve` in "Shepherd hit an unexpected
    error: SlackApiError: The request to the Slack API failed. (url: .../apps.connections.open)"."""
    app_token = "xapp-1-A0SHEPHERD-2-other"
    with FakeSlackWebAPI() as api:
        if scopes is not None:
            api.state.app_tokens[app_token] = frozenset(scopes)
        settings = Settings(
            data_dir=tmp_path,
            slack_bot_token=api.bot_token,
            slack_app_token=app_token,
            slack_api_url=api.api_url,
            embeddings="none",
            port=free_port(),
        )
        with pytest.raises(ConfigurationError) as refused:
            serve(settings)
    said = str(refused.value)
    assert said.startswith(f"Slack refused SLACK_APP_TOKEN ({refusal}), so Socket Mode cannot connect.")
    assert "App-Level Tokens" in said and app_token not in said


def test_doctor_checks_the_app_token_with_slack(tmp_path: Path) -> None:
    """It used to say OK to any xapp- token, however Slack would refuse it."""
    from bot.doctor import Level, check_slack_tokens

    with FakeSlackWebAPI() as api:
        api.state.app_tokens["xapp-1-A0SHEPHERD-2-noscope"] = frozenset()
        checks = {
            token: [
                c
                for c in check_slack_tokens(
                    Settings(
                        data_dir=tmp_path,
                        slack_bot_token=api.bot_token,
                        slack_app_token=token,
                        slack_api_url=api.api_url,
                    )
                )
                if c.name == "slack app token"
            ]
            for token in ("xapp-1-A0SHEPHERD-1-secret", "xapp-1-A0SHEPHERD-2-noscope", "xapp-1-revoked")
        }
    good, unscoped, revoked = checks.values()
    assert [c.level for c in good] == [Level.OK]
    assert [c.level for c in unscoped] == [Level.FAIL]
    assert "missing_scope: it needs the connections:write scope" in unscoped[0].message
    assert [c.level for c in revoked] == [Level.FAIL] and "invalid_auth" in revoked[0].message
    assert "App-Level Tokens" in (revoked[0].fix or "")


@pytest.mark.usefixtures("gc_restored")
def test_an_install_page_port_in_use_is_named_with_the_setting(
    tmp_path: Path, socket_mode: FakeSocketMode
) -> None:
    """Another program on SHEPHERD_PORT: "Shepherd hit an unexpected error: OSError: [Errno 98]
    Address already in use" named neither the port nor the setting."""
    earlier = set(threading.enumerate())
    with socket.socket() as taken, FakeSlackWebAPI() as api:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(ConfigurationError) as refused:
            serve(oauth_socket_settings(tmp_path, api, port))
    said = str(refused.value)
    assert said.startswith(f"Cannot serve the install page on 127.0.0.1:{port}: ")
    assert "SHEPHERD_PORT" in said
    started = set(threading.enumerate()) - earlier
    assert [thread.name for thread in started if thread.name in BACKGROUND] == []  # stopped
    # The socket that could not bind is closed: left to the collector, its ResourceWarning
    # failed whichever later test happened to be running.
    del refused  # its traceback holds the frames that held the socket
    gc.collect()


def test_socket_mode_needs_no_signing_secret_but_http_mode_does() -> None:
    oauth = {"slack_client_id": "111.222", "slack_client_secret": "client-secret"}
    app_token = {"slack_app_token": "xapp-1-A0SHEPHERD-1-secret"}
    bot_token = {"slack_bot_token": "xoxb-1"}

    assert Settings(**bot_token, **app_token).slack_configured
    assert Settings(**oauth, **app_token).slack_configured
    assert Settings(**oauth, slack_signing_secret="s").slack_configured
    http = Settings(**oauth)
    assert not http.slack_configured
    assert http.slack_missing == "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"


def test_what_slack_still_needs_is_named() -> None:
    app_token = {"slack_app_token": "xapp-1-A0SHEPHERD-1-secret"}
    assert Settings(**app_token).slack_missing == (
        "SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (OAuth installs)"
    )
    assert Settings(slack_client_id="111.222", **app_token).slack_missing == (
        "SLACK_CLIENT_SECRET (OAuth installs need it with SLACK_CLIENT_ID)"
    )
    assert Settings(slack_client_secret="client-secret", **app_token).slack_missing == (
        "SLACK_CLIENT_ID (OAuth installs need it with SLACK_CLIENT_SECRET)"
    )


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_signing_secret_is_refused_when_the_app_is_built(tmp_path: Path, blank: str) -> None:
    """``SLACK_SIGNING_SECRET=`` as a .env template leaves it: HTTP mode stops at start, naming
    what to set, rather than serving and answering every Slack request with a 500."""
    from bot.app import ConfigurationError, build_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        embeddings="none",
        slack_bot_token="xoxb-1",
        slack_signing_secret=blank,
        slack_app_token=blank,
    )
    assert settings.slack_missing == "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"
    with pytest.raises(ConfigurationError) as refused:
        build_app(settings)
    assert str(refused.value) == (
        "Slack is not connected: set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)."
    )


@pytest.mark.postgres
def test_sigterm_in_socket_mode_acks_a_decision_in_progress_before_disconnecting(tmp_path: Path) -> None:
    """A real `shepherd serve` over a real WebSocket: an Approve click whose inbox write is under
    way when the supervisor sends SIGTERM is acknowledged on the socket before it is closed; if
    the socket closed first, the decision would be stored while Slack showed the person that
    Shepherd did not respond."""
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = fresh_postgres_schema()
    connections: queue.Queue[ServerConnection] = queue.Queue()
    finished = threading.Event()

    def slack_end(connection: ServerConnection) -> None:
        connections.put(connection)
        finished.wait()  # returning would close the connection from Slack's side

    wss = websockets.sync.server.serve(slack_end, "127.0.0.1", 0)
    threading.Thread(target=wss.serve_forever, daemon=True).start()
    wss_port = wss.socket.getsockname()[1]
    api = FakeSlackWebAPI(SlackState(socket_mode_url=f"ws://127.0.0.1:{wss_port}/link/"))
    server: subprocess.Popen[str] | None = None
    reader = threading.Thread()
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    holder = psycopg.connect(admin)
    try:
        database = Database(url)
        database.upgrade()
        database.dispose()
        api.__enter__()
        env = {
            **os.environ,
            "SHEPHERD_DATA_DIR": str(tmp_path),
            "SHEPHERD_DATABASE_URL": url,
            "SLACK_BOT_TOKEN": api.bot_token,
            "SLACK_APP_TOKEN": "xapp-1-A0SHEPHERD-1-secret",
            "SLACK_API_URL": api.api_url,
            "SHEPHERD_EMBEDDINGS": "none",
            "SHEPHERD_SCHEDULER_INTERVAL": "0",
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        said: queue.Queue[str] = queue.Queue()
        server = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        reader = threading.Thread(
            target=lambda: [said.put(line) for line in server.stdout or ()], daemon=True
        )
        reader.start()
        slack = connections.get(timeout=120)  # connected (it imports and prepares everything first)

        # The inbox cannot be written until the test says so: the click's write is under way.
        holder.execute(f'LOCK TABLE "{schema}".inbox IN EXCLUSIVE MODE')
        message = {
            "ts": "1700000000.000100",
            "blocks": [
                {
                    "type": "actions",
                    "block_id": "decide",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": ids.ACTION_APPROVE,
                            "value": "7",
                            "text": {"type": "plain_text", "text": "Approve"},
                        }
                    ],
                }
            ],
        }
        click = payloads.block_actions_on_message(
            message, ids.ACTION_APPROVE, user_id="U0APPROVE1", channel_id="C0REVIEWS1"
        )
        slack.send(
            json.dumps(
                {
                    "envelope_id": "approve-1",
                    "type": "interactive",
                    "accepts_response_payload": True,
                    "payload": click,
                }
            )
        )
        deadline = time.monotonic() + 60
        waiting = 0
        while time.monotonic() < deadline and not waiting:
            # On its own connection: a transaction sees pg_stat_activity as it first read it.
            with psycopg.connect(admin, autocommit=True) as watcher:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%inbox%'"
                ).fetchone()[0]
            time.sleep(0.05)
        assert waiting, "".join(list(said.queue))

        server.send_signal(signal.SIGTERM)
        # Until Shepherd has taken the SIGTERM in: it closes the socket, or says it is stopping.
        received: list[dict[str, Any]] = []
        closed = False
        stopping = False
        while not (closed or stopping) and server.poll() is None:
            try:
                received.append(json.loads(slack.recv(timeout=0.2)))
            except TimeoutError:
                pass
            except websockets.exceptions.ConnectionClosed:
                closed = True
            with contextlib.suppress(queue.Empty):
                while not stopping:
                    stopping = said.get_nowait().startswith("Stopping")
        holder.rollback()  # the write goes through
        while not closed:
            try:
                received.append(json.loads(slack.recv(timeout=30)))
            except websockets.exceptions.ConnectionClosed:
                closed = True
        assert server.wait(timeout=60) == -signal.SIGTERM
        output = "".join(list(said.queue))
        stored = holder.execute(f'SELECT count(*) FROM "{schema}".inbox').fetchone()
        assert stored == (1,), output  # the decision is stored, as before
        # ... and Slack heard so, on the socket: the person sees the click go through.
        assert {"envelope_id": "approve-1"} in received, output
        assert "Traceback" not in output, output
    finally:
        finished.set()
        if server is not None:
            if server.poll() is None:
                server.kill()
                server.wait()
            reader.join()
            assert server.stdout is not None
            server.stdout.close()
        holder.close()
        wss.shutdown()
        api.__exit__(None, None, None)
        drop_postgres_schema(schema)
