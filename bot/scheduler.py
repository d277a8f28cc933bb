"""The scheduler: every few seconds, queue what has fallen due (stalled initiatives, review
reminders and escalations, periodic operations reviews) as outbox messages.

It runs as a background thread of ``shepherd serve``, in every replica. Each tick first takes
the database lease (``storage.scheduling.SchedulerLease``), so one replica at a time does the
work; each due event is then recorded in ``fired_events`` in the same transaction as its outbox
message, which is what makes every event fire exactly once even if two ticks ever overlap. The
outbox worker delivers the messages to Slack (``bot.notify``).

Once a day, still under that lease, it also prunes the bookkeeping tables
(``storage.retention``). A second lease row, ``retention``, is taken for a day and never renewed,
so across replicas and restarts the pass runs once a day, by one of them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from bot import metrics
from bot.bootstrap import Services
from gates.operations import fire_due_events
from gates.schedule import DueEvent, EventKind
from storage import retention
from storage.scheduling import SchedulerLease

logger = logging.getLogger("shepherd.scheduler")

DEFAULT_INTERVAL_SECONDS = 60.0
_NUDGES = frozenset({EventKind.REMINDER, EventKind.ESCALATION})
PRUNE_EVERY = timedelta(days=1)


class Scheduler:
    """One replica's scheduler.

    Args:
        services: the process's services (pipeline, database, clock).
        interval: seconds between ticks.
        holder: this replica's name on the lease (host, pid and a random suffix by default).
        lease_ttl: how long a tick's lease lasts; a replica that stops ticking is replaced by
            another after this. Three intervals (at least 30 seconds) by default.
    """

    def __init__(
        self,
        services: Services,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        holder: str | None = None,
        lease_ttl: timedelta | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the scheduler interval must be positive")
        self._services = services
        self.interval = interval
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl = lease_ttl or timedelta(seconds=max(30.0, 3 * interval))
        self._lease = SchedulerLease(services.database)
        self._retention_lease = SchedulerLease(services.database, name="retention")

    def tick(self, at: datetime | None = None) -> list[DueEvent]:
        """Queue every event due now that never fired; returns those this replica queued.

        Args:
            at: evaluate what is due at this earlier moment instead (``shepherd schedule run
                --at``). The lease is taken as of now all the same: it is about who runs now.
        """
        now = self._services.now()
        if not self._lease.acquire(self.holder, now, self.lease_ttl):
            return []
        fired = fire_due_events(self._services.pipeline, self._services.uow(), now if at is None else at)
        for event in fired:
            logger.info("scheduled event fired: %s", event.key)
            if event.kind in _NUDGES:
                metrics.REMINDERS_SENT.inc()
        return fired

    def prune_if_due(self) -> dict[str, int] | None:
        """Prune the bookkeeping tables (``storage.retention``) if no replica has in the last
        day; returns the rows deleted per table, or None when it was not this replica's turn.

        A pass that fails is not retried before the next day: it deletes nothing that the next
        one cannot, and a failure that lasts would otherwise repeat at every tick.
        """
        now = self._services.now()
        if not self._lease.acquire(self.holder, now, self.lease_ttl):
            return None
        if not self._retention_lease.acquire(self.holder, now, PRUNE_EVERY, renew=False):
            return None
        days = self._services.settings.retention_days
        pruned = retention.prune(self._services.database, now, timedelta(days=days))
        summary = ", ".join(f"{table} {count}" for table, count in pruned.items())
        logger.info("pruned rows older than %d days: %s", days, summary)
        return pruned

    def run_forever(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; a failed tick is logged and retried at the next one."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("scheduler tick failed; trying again at the next tick")
                metrics.ERRORS.labels(where="scheduler").inc()
            try:
                self.prune_if_due()
            except Exception:
                logger.exception("pruning old rows failed; they are left for a later pass")
                metrics.ERRORS.labels(where="scheduler").inc()
            stop.wait(self.interval)
        try:
            self._lease.release(self.holder, self._services.now())
        except Exception:  # shutting down: the lease simply runs out instead
            logger.warning("could not release the scheduler lease", exc_info=True)


def lease_holder(claimant: str) -> str:
    """The name a worker child named ``claimant`` holds the scheduler lease under: its parent
    knows it too, and gives the lease up as soon as it sees the child die."""
    return f"{socket.gethostname()}:{claimant}"


def start_scheduler(services: Services, stop: threading.Event, claimant: str = "") -> threading.Thread | None:
    """Run the scheduler in a background thread until ``stop`` is set (None when disabled)."""
    interval = services.settings.scheduler_interval_seconds
    if interval <= 0:
        logger.info("scheduler disabled (SHEPHERD_SCHEDULER_INTERVAL is 0)")
        return None
    scheduler = Scheduler(services, interval=interval, holder=lease_holder(claimant) if claimant else None)
    thread = threading.Thread(
        target=scheduler.run_forever, args=(stop,), name="shepherd-scheduler", daemon=True
    )
    thread.start()
    return thread
