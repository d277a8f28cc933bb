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
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bot.bootstrap import Services, bootstrap
from bot.scheduler import lease_holder
from bot.settings import Settings
from bot.slack_client import make_client
from storage import Database
from storage.leasing import release_claims_of
from storage.scheduling import SchedulerLease
from storage.tables import inbox, outbox

logger = logging.getLogger("shepherd.worker")

ROLES = ("all", "inbox", "delivery")
# Beside its serving process, a worker gives way when both want the CPU: an ack has 3 s and a
# person waiting on it, recording a decision comes next, a notification last.
NICENESS = {"inbox": 5, "delivery": 10, "all": 10}


def start_background(
    services: Services, client: Any, stop: threading.Event, role: str = "all", claimant: str = ""
) -> list[threading.Thread]:
    """Start this worker's part as threads of this process until ``stop``: the inbox processor
    (``inbox``), outbox delivery and the scheduler (``delivery``), or all three (``all``);
    ``claimant`` names their claims (``storage.leasing``). Returns the threads, for
    ``finish_background`` once ``stop`` is set."""
    from bot.inbox import start_processor
    from bot.scheduler import start_scheduler
    from bot.server import start_delivery

    threads: list[threading.Thread | None] = []
    if role in ("all", "inbox"):
        threads.append(start_processor(services, client, stop, claimant))
    if role in ("all", "delivery"):
        threads.append(start_delivery(client, services, stop, claimant))
        threads.append(start_scheduler(services, stop, claimant))
    return [thread for thread in threads if thread is not None]


# How long a stopping worker waits for its threads (``stop`` set) to finish what they started:
# the Slack call in flight and remembering what it posted, the inbox round's transaction, the
# scheduler's tick. Exiting in the middle of a post left it sent but not remembered, so the card
# was posted a second time. 20 s covers one Slack call at the client's 15 s timeout
# (``bot.slack_client``) and stays below ``WorkerChildren.stop``'s 25 s and the 30 s a supervisor
# gives before SIGKILL (systemd's TimeoutStopSec, Kubernetes' terminationGracePeriodSeconds).
# The client's retries (a 429's Retry-After, a second 15 s attempt) can take longer than any
# grace a supervisor allows: such a send is cut short and logged (``_CUT_SHORT``).
STOP_GRACE_SECONDS = 20.0
# How long ``WorkerChildren.stop`` waits for a child before killing it: the grace, and the few
# seconds a child takes to exit, below the 30 s a supervisor gives ``shepherd serve``.
STOP_TIMEOUT_SECONDS = 25.0

# What is at stake when a thread is still busy once the grace is over, by thread name.
_CUT_SHORT = {
    "shepherd-outbox": (
        "outbox delivery was still sending to Slack after %.0f s; stopping anyway: a message being "
        "sent may have reached Slack without being remembered, and is sent again when its claim is "
        "handed back, so it may be posted twice"
    ),
    "shepherd-inbox": (
        "the inbox round was still being applied after %.0f s; stopping anyway: its transaction is "
        "rolled back and its requests are applied again once its claim is handed back"
    ),
    "shepherd-scheduler": (
        "the scheduler tick was still running after %.0f s; stopping anyway: what it had not "
        "committed is rolled back and done again at a later tick"
    ),
}


def finish_background(threads: list[threading.Thread], timeout: float = STOP_GRACE_SECONDS) -> bool:
    """Wait, ``timeout`` seconds in all, for ``threads`` (``start_background``'s, their ``stop``
    set) to finish what they started; returns whether they all did. Outbox delivery hands back
    the messages it has not started at once (``OutboxWorker.run_forever``), so only the sends in
    flight are waited for; each thread still busy at the end is logged with what may follow."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = [thread for thread in threads if thread.is_alive()]
    for thread in busy:
        logger.error(_CUT_SHORT.get(thread.name, f"{thread.name} was still running after %.0f s"), timeout)
    return not busy


def run_worker(
    settings: Settings,
    stop: threading.Event | None = None,
    role: str = "all",
    *,
    freeze: bool = False,
    claimant: str = "",
) -> bool:
    """Run the background half (or the ``role`` part of it) in this process until SIGTERM /
    SIGINT (or ``stop``), then let what is in flight finish (``finish_background``); returns
    whether it all did. ``freeze``: this process does nothing else (``bot.server.freeze_startup_heap``)."""
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
    threads = start_background(services, client, stop, role, claimant)
    logger.info("worker running: %s", _DESCRIPTION[role])
    stop.wait()
    logger.info("worker stopping: finishing what is in flight (at most %.0f s)", STOP_GRACE_SECONDS)
    finished = finish_background(threads)
    services.database.dispose()
    return finished


def exit_now() -> None:
    """Leave the process at once, logs flushed, after ``run_worker`` could not finish in time: the
    interpreter's own exit would wait for the outbox's sending threads (a pool it joins at exit)
    still stuck in a Slack call."""
    logging.shutdown()
    os._exit(1)


_DESCRIPTION = {
    "all": "inbox, outbox delivery and scheduler",
    "inbox": "inbox",
    "delivery": "outbox delivery and scheduler",
}


def spawn_worker(settings: Settings, role: str = "all", claimant: str = "") -> subprocess.Popen[bytes]:
    """Start a worker as a child process (``python -m bot.worker``) with these settings.

    A plain subprocess rather than multiprocessing, so it also works from a daemonic process;
    the settings (secrets included) travel on its stdin, never on a command line.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    process = subprocess.Popen([sys.executable, "-m", "bot.worker"], stdin=subprocess.PIPE)
    assert process.stdin is not None
    message = {"parent": os.getpid(), "settings": settings.revealed(), "role": role, "claimant": claimant}
    process.stdin.write(json.dumps(message, default=str).encode("utf-8"))
    process.stdin.close()
    return process


class WorkerChildren:
    """Worker child processes (``spawn_worker``) kept running: one that exits while Shepherd
    serves is logged and started again, after a pause that grows while it keeps dying at once.

    Without this, a worker killed by the OOM killer or a crash left acknowledged clicks waiting
    in the inbox, and notifications in the outbox, until someone restarted the whole server.

    Each child claims work under its own name; with ``database``, what a dead child had claimed
    and not finished is handed back at once (``storage.leasing.release_claims_of``) rather than
    when its leases run out two minutes later.
    """

    def __init__(
        self,
        settings: Settings,
        roles: tuple[str, ...] = ("inbox", "delivery"),
        database: Database | None = None,
    ) -> None:
        self._settings = settings
        self._roles = roles
        self._database = database
        self._claimants: dict[str, str] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._started: dict[str, float] = {}
        self._pause = {role: RestartPause() for role in roles}
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        for role in self._roles:
            self._spawn(role)
        self._watcher = threading.Thread(target=self._watch, name="worker-watch", daemon=True)
        self._watcher.start()

    def pids(self) -> dict[str, int]:
        """The current child process of each role."""
        with self._lock:
            return {role: child.pid for role, child in self._children.items()}

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop watching, then stop the children (killed if they do not stop within ``timeout``;
        each finishes what is in flight first, ``STOP_GRACE_SECONDS`` at most)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
        with self._lock:
            children = dict(self._children)
        for child in children.values():
            child.terminate()
        deadline = time.monotonic() + timeout
        for role, child in children.items():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error(
                    "the %s worker (pid %d) did not stop within %.0f s and is killed: a message it "
                    "was sending may have reached Slack without being remembered, and may be posted twice",
                    role,
                    child.pid,
                    timeout,
                )
                child.kill()
                child.wait()
        # A child stopped mid-round (or killed after the timeout) may leave claims behind.
        if self._database is not None:
            for role, claimant in self.claimants().items():
                self._release(role, claimant)

    def claimants(self) -> dict[str, str]:
        """The name each role's current child claims work under."""
        with self._lock:
            return dict(self._claimants)

    def _spawn(self, role: str) -> None:
        claimant = f"{role}-{uuid.uuid4().hex[:12]}"
        child = spawn_worker(self._settings, role, claimant)
        with self._lock:
            self._children[role] = child
            self._claimants[role] = claimant
        self._started[role] = time.monotonic()

    def _hand_back(self, role: str) -> None:
        """Release, in the background, what the exited child of ``role`` had claimed; if that
        fails its leases still expire. Never on the watcher's thread: an unreachable database
        must not keep the other role's child from being noticed and restarted."""
        if self._database is None:
            return
        with self._lock:
            claimant = self._claimants[role]
        threading.Thread(
            target=self._release, args=(role, claimant), name=f"hand-back-{role}", daemon=True
        ).start()

    def _release(self, role: str, claimant: str) -> None:
        assert self._database is not None
        try:
            tables = {"inbox": (inbox,), "delivery": (outbox,), "all": (inbox, outbox)}[role]
            released = sum(release_claims_of(self._database, table, claimant) for table in tables)
            if role != "inbox":
                # The scheduler ran in that child: its successor takes the lease at its first
                # tick instead of pausing reminders and escalations until the lease runs out.
                SchedulerLease(self._database).release(lease_holder(claimant), datetime.now(UTC))
        except Exception as error:  # the watcher must outlive any database trouble
            logger.warning(
                "could not hand back the work of the %s worker (its leases will expire): %s", role, error
            )
            return
        if released:
            logger.warning("handed back %d item(s) the %s worker had claimed", released, role)

    def _watch(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL):
            now = time.monotonic()
            for role in self._roles:
                with self._lock:
                    child = self._children[role]
                due = self._due.get(role)
                if due is None and child.poll() is not None:
                    # Died soon after starting: it will probably die again, so each such
                    # restart waits twice as long as the one before.
                    pause = self._pause[role].after(lived=now - self._started[role])
                    self._due[role] = now + pause
                    logger.error(
                        "the %s worker (pid %d) exited with code %s; starting it again in %.0f s",
                        role,
                        child.pid,
                        child.returncode,
                        pause,
                    )
                    self._hand_back(role)
                elif due is not None and now >= due and not self._stop.is_set():
                    try:
                        self._spawn(role)
                    except OSError:
                        logger.exception("could not start the %s worker; trying again", role)
                        self._due[role] = now + _MAX_PAUSE
                    else:
                        del self._due[role]


_WATCH_INTERVAL = 0.5
_FIRST_PAUSE = 1.0
_MAX_PAUSE = 60.0
_QUICK_DEATH = 30.0  # seconds: a child that dies sooner than this is restarted more slowly


class RestartPause:
    """How long to wait before starting a child process again that exited: the pause doubles
    while it keeps dying soon after starting (it will probably die again), up to ``_MAX_PAUSE``,
    and starts over from ``_FIRST_PAUSE`` after a long life."""

    def __init__(self) -> None:
        self._next = _FIRST_PAUSE

    def after(self, lived: float) -> float:
        """The pause before the next start of a child that ran for ``lived`` seconds."""
        pause = self._next if lived < _QUICK_DEATH else _FIRST_PAUSE
        self._next = min(pause * 2, _MAX_PAUSE)
        return pause


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
    if not run_worker(settings, stop, role, freeze=True, claimant=str(message.get("claimant", ""))):
        exit_now()


if __name__ == "__main__":
    main()
