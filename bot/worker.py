"""The background half of Shepherd: applying accepted requests (the inbox), outbox delivery to
Slack and the scheduler.

``shepherd serve`` runs it in two child processes by default, one for the inbox and one for
delivery and the scheduler, so the HTTP process spends its interpreter on acks only (measured:
with delivery in the same process, approvals on PostgreSQL ran about 6x slower at one connection
while a backlog was being sent), and recording decisions never waits for the GIL behind busy
senders. In a scaled-out deployment run ``shepherd serve --worker none`` on the replicas and
``shepherd worker`` as many times as needed: the inbox, the outbox and the scheduler are safe
with several workers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from pydantic import SecretStr

from bot.bootstrap import Services, bootstrap
from bot.settings import Settings
from bot.slack_client import make_client

logger = logging.getLogger("shepherd.worker")

ROLES = ("all", "inbox", "delivery")
# Beside its serving process, a worker gives way when both want the CPU: an ack has 3 s and a
# person waiting on it, recording a decision comes next, a notification last.
NICENESS = {"inbox": 5, "delivery": 10, "all": 10}


def start_background(services: Services, client: Any, stop: threading.Event, role: str = "all") -> None:
    """Start this worker's part as threads of this process until ``stop``: the inbox processor
    (``inbox``), outbox delivery and the scheduler (``delivery``), or all three (``all``)."""
    from bot.inbox import start_processor
    from bot.scheduler import start_scheduler
    from bot.server import start_delivery

    if role in ("all", "inbox"):
        start_processor(services, stop)
    if role in ("all", "delivery"):
        start_delivery(client, services, stop)
        start_scheduler(services, stop)


def run_worker(
    settings: Settings, stop: threading.Event | None = None, role: str = "all", *, freeze: bool = False
) -> None:
    """Run the background half (or the ``role`` part of it) in this process until SIGTERM /
    SIGINT (or ``stop``); ``freeze``: this process does nothing else (``bot.server.freeze_startup_heap``)."""
    stop = stop or threading.Event()
    services = bootstrap(settings)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = make_client(token, settings.slack_api_url)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if freeze:
        from bot.server import freeze_startup_heap

        freeze_startup_heap()
    start_background(services, client, stop, role)
    logger.info("worker running: %s", _DESCRIPTION[role])
    stop.wait()
    services.database.dispose()


_DESCRIPTION = {
    "all": "inbox, outbox delivery and scheduler",
    "inbox": "inbox",
    "delivery": "outbox delivery and scheduler",
}


def spawn_worker(settings: Settings, role: str = "all") -> subprocess.Popen[bytes]:
    """Start a worker as a child process (``python -m bot.worker``) with these settings.

    A plain subprocess rather than multiprocessing, so it also works from a daemonic process;
    the settings (secrets included) travel on its stdin, never on a command line.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings.model_dump(mode="python").items()
    }
    process = subprocess.Popen([sys.executable, "-m", "bot.worker"], stdin=subprocess.PIPE)
    assert process.stdin is not None
    message = {"parent": os.getpid(), "settings": values, "role": role}
    process.stdin.write(json.dumps(message, default=str).encode("utf-8"))
    process.stdin.close()
    return process


def main() -> None:
    """Entry point of the child: settings as JSON on stdin; stops when its parent is gone."""
    message = json.loads(sys.stdin.read())
    settings = Settings.model_validate(message["settings"])
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    parent = int(message["parent"])  # not getppid(): the parent may already be gone by now

    def watch_parent() -> None:
        # A parent killed with SIGKILL cannot stop us: notice being orphaned instead.
        while True:
            if os.getppid() != parent:
                logger.info("the serving process is gone; the worker stops")
                stop.set()
            if stop.wait(1.0):
                return

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    role = str(message.get("role", "all"))
    os.nice(NICENESS[role])
    run_worker(settings, stop, role, freeze=True)


if __name__ == "__main__":
    main()
