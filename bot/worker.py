"""The background half of Shepherd: applying accepted requests (the inbox), outbox delivery to
Slack and the scheduler.

``shepherd serve`` runs it in a child process by default, so the HTTP process spends its
interpreter on acks only (measured: with delivery in the same process, approvals on PostgreSQL
ran about 6x slower at one connection while a backlog was being sent). In a scaled-out
deployment run ``shepherd serve --worker none`` on the replicas and ``shepherd worker`` as many
times as needed: the outbox and the scheduler are safe with several workers.
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

WORKER_NICENESS = 10


def start_background(services: Services, client: Any, stop: threading.Event) -> None:
    """Start the inbox processor, outbox delivery and the scheduler as threads of this process
    until ``stop``."""
    from bot.inbox import start_processor
    from bot.scheduler import start_scheduler
    from bot.server import start_delivery

    start_processor(services, stop)
    start_delivery(client, services, stop)
    start_scheduler(services, stop)


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run the background half in this process until SIGTERM / SIGINT (or ``stop``)."""
    stop = stop or threading.Event()
    services = bootstrap(settings)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = make_client(token, settings.slack_api_url)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    start_background(services, client, stop)
    logger.info("worker running: inbox, outbox delivery and scheduler")
    stop.wait()
    services.database.dispose()


def spawn_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the worker as a child process (``python -m bot.worker``) with these settings.

    A plain subprocess rather than multiprocessing, so it also works from a daemonic process;
    the settings (secrets included) travel on its stdin, never on a command line.
    """
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings.model_dump(mode="python").items()
    }
    process = subprocess.Popen([sys.executable, "-m", "bot.worker"], stdin=subprocess.PIPE)
    assert process.stdin is not None
    message = {"parent": os.getpid(), "settings": values}
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
    # Beside its serving process, the worker yields the CPU: an ack has 3 s and a person
    # waiting on it, a notification has neither. A burst of clicks is then acknowledged at
    # once and recorded right after (measured in benchmarks/bench_slack.py).
    os.nice(WORKER_NICENESS)
    run_worker(settings, stop)


if __name__ == "__main__":
    main()
