"""The scheduler thread of `shepherd serve`: ticks under the lease, counts nudges, prunes once a
day, stops cleanly."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import metrics
from bot.bootstrap import Services, bootstrap
from bot.scheduler import Scheduler, start_scheduler
from bot.settings import Settings
from gates import usecases
from storage.scheduling import SchedulerLease, fired_keys
from tests.bot.scenario import Clock
from tests.bot.test_lifecycle import OWNER, SPONSOR, intake_values

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def services(tmp_path: Path) -> Services:
    """Services on a fresh SQLite database with a hand-moved clock and a sponsor."""
    built = bootstrap(
        Settings(data_dir=tmp_path / "data", embeddings="none", scheduler_interval_seconds=0.05)
    )
    built.clock = Clock(START)
    usecases.set_role_holders(built.pipeline, built.uow(), "sponsor", [SPONSOR], "U0ADMIN01", START)
    return built


def register_and_submit(services: Services) -> None:
    answers = {k.removeprefix("q:"): v for k, v in intake_values().items() if k.startswith("q:")}
    ref = usecases.register(
        services.pipeline,
        services.uow(),
        name="Forecast",
        owner_id=OWNER,
        answers=answers,
        actor_id=OWNER,
        now=START,
    ).ref
    usecases.submit(services.pipeline, services.uow(), ref, OWNER, START)


def test_a_tick_fires_due_reminders_once_and_counts_them(services: Services) -> None:
    register_and_submit(services)
    scheduler = Scheduler(services, holder="a")
    assert scheduler.tick() == []
    services.clock.advance(days=3)  # type: ignore[attr-defined]
    before = metrics.REMINDERS_SENT._value.get()
    assert [e.key.split(":")[0] for e in scheduler.tick()] == ["remind"]
    assert metrics.REMINDERS_SENT._value.get() == before + 1
    assert scheduler.tick() == []


def test_a_replica_without_the_lease_does_nothing(services: Services) -> None:
    register_and_submit(services)
    services.clock.advance(days=3)  # type: ignore[attr-defined]
    SchedulerLease(services.database).acquire("other", services.now(), timedelta(minutes=5))
    assert Scheduler(services, holder="me").tick() == []


def test_the_thread_ticks_until_stopped_then_releases_the_lease(services: Services) -> None:
    register_and_submit(services)
    services.clock.advance(days=3)  # type: ignore[attr-defined]
    stop = threading.Event()
    thread = start_scheduler(services, stop)
    assert thread is not None
    lease = SchedulerLease(services.database)
    for _ in range(250):
        if fired_keys(services.database):
            break
        stop.wait(0.02)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    holder = lease.holder()
    assert holder is not None and holder[1] <= services.now()
    assert [key.split(":")[0] for key in fired_keys(services.database)] == ["remind"]


def test_the_longest_interval_allowed_ticks_then_waits_until_stopped(services: Services) -> None:
    """A day (SHEPHERD_SCHEDULER_INTERVAL's maximum): the thread ticks, then waits, alive, for
    the next tick, where a longer wait would kill it with OverflowError."""
    register_and_submit(services)
    services.clock.advance(days=3)  # type: ignore[attr-defined]
    services.settings = services.settings.model_copy(update={"scheduler_interval_seconds": 86400})
    stop = threading.Event()
    thread = start_scheduler(services, stop)
    assert thread is not None
    for _ in range(250):
        if fired_keys(services.database):
            break
        stop.wait(0.02)
    stop.wait(0.2)
    assert thread.is_alive() and fired_keys(services.database)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_an_interval_of_zero_disables_the_scheduler(tmp_path: Path) -> None:
    services = bootstrap(
        Settings(data_dir=tmp_path / "data", embeddings="none", scheduler_interval_seconds=0)
    )
    assert start_scheduler(services, threading.Event()) is None
    with pytest.raises(ValueError, match="positive"):
        Scheduler(services, interval=0)


def test_old_bookkeeping_is_pruned_once_a_day_by_one_replica(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    old = START - timedelta(days=91)  # past the default 90 days
    assert services.database.claim("event:Ev1", old)
    a, b = Scheduler(services, holder="a"), Scheduler(services, holder="b")
    with caplog.at_level(logging.INFO, logger="shepherd.scheduler"):
        pruned = a.prune_if_due()
    assert pruned is not None and pruned["processed_events"] == 1
    [logged] = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("pruned rows older than 90 days:")
    ]
    assert "processed_events 1," in logged
    assert services.database.claim("event:Ev1", START)  # forgotten, so claimable again

    assert services.database.claim("event:Ev2", old)
    assert a.prune_if_due() is None  # the same day: not again
    services.clock.advance(hours=23)  # type: ignore[attr-defined]
    assert b.prune_if_due() is None  # nor by another replica
    services.clock.advance(hours=1)  # type: ignore[attr-defined]
    SchedulerLease(services.database).acquire("a", services.now(), timedelta(minutes=5))
    assert b.prune_if_due() is None  # only the replica holding the scheduler's lease prunes
    again = a.prune_if_due()
    assert again is not None and again["processed_events"] == 1


def test_the_thread_prunes_as_it_ticks(services: Services) -> None:
    assert services.database.claim("event:Ev1", START - timedelta(days=91))
    stop = threading.Event()
    thread = start_scheduler(services, stop)
    assert thread is not None
    try:
        for _ in range(250):
            if SchedulerLease(services.database, name="retention").holder() is not None:
                break
            stop.wait(0.02)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert services.database.claim("event:Ev1", START)  # pruned, so claimable again
