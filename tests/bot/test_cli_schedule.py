"""`shepherd schedule due` and `run` against a real SQLite database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.bootstrap import bootstrap
from bot.cli_schedule import schedule_app
from bot.settings import Settings
from gates import usecases
from storage.scheduling import SchedulerLease, fired_keys
from storage.tables import outbox
from tests.bot.test_lifecycle import OWNER, intake_values

runner = CliRunner()
REGISTERED = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """One initiative registered on 1 January 2026 in a fresh data directory."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    for name in ("SHEPHERD_DATABASE_URL", "SHEPHERD_PIPELINE"):
        monkeypatch.delenv(name, raising=False)
    services = bootstrap(Settings())
    answers = {k.removeprefix("q:"): v for k, v in intake_values().items() if k.startswith("q:")}
    registered = usecases.register(
        services.pipeline,
        services.uow(),
        name="Forecast",
        owner_id=OWNER,
        answers=answers,
        actor_id=OWNER,
        now=REGISTERED,
    ).ref
    services.database.dispose()
    return registered


def due(at: str) -> list[dict[str, object]]:
    result = runner.invoke(schedule_app, ["due", "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_due_lists_then_run_fires_once(ref: str) -> None:
    assert due("2026-01-20") == []
    assert due("2026-03-01T00:00:00+00:00") == [
        {
            "key": f"stalled:{ref}:idea:20260131T090000Z",
            "kind": "schedule.stalled",
            "ref": ref,
            "fired": False,
        }
    ]
    first = runner.invoke(schedule_app, ["run", "--at", "2026-03-01"])
    assert first.exit_code == 0 and "Fired 1 event(s)" in first.output and f"stalled:{ref}" in first.output
    assert due("2026-03-01")[0]["fired"] is True
    again = runner.invoke(schedule_app, ["run", "--at", "2026-03-01"])
    assert again.exit_code == 0 and "Fired 0 event(s)" in again.output


def test_a_bad_moment_is_one_clear_line(ref: str) -> None:
    result = runner.invoke(schedule_app, ["due", "--at", "next tuesday"])
    assert result.exit_code == 1
    assert "is not an ISO 8601 date" in result.output


def test_run_leaves_the_work_to_a_scheduler_holding_the_lease(ref: str) -> None:
    services = bootstrap(Settings())
    SchedulerLease(services.database).acquire("serve-1", datetime.now(UTC), timedelta(minutes=3))
    services.database.dispose()
    result = runner.invoke(schedule_app, ["run", "--at", "2026-03-01"])
    assert result.exit_code == 0 and "Another scheduler (serve-1) holds the lease" in result.output
    assert due("2026-03-01")[0]["fired"] is False


def test_run_judges_the_lease_in_real_time_whatever_the_moment(ref: str) -> None:
    services = bootstrap(Settings())
    # A `shepherd serve` that stopped ten minutes ago: its lease ran out seven minutes ago, though
    # it was still valid on the 1st of March.
    SchedulerLease(services.database).acquire(
        "serve-1", datetime.now(UTC) - timedelta(minutes=10), timedelta(minutes=3)
    )
    services.database.dispose()
    result = runner.invoke(schedule_app, ["run", "--at", "2026-03-01"])
    assert result.exit_code == 0 and "Fired 1 event(s)" in result.output, result.output
    services = bootstrap(Settings())
    try:
        # Handed back as of now, not as of the 1st of March: serve takes it at its next tick.
        holder = SchedulerLease(services.database).holder()
        assert holder is not None and holder[0] == "cli" and holder[1] <= datetime.now(UTC)
        assert SchedulerLease(services.database).acquire("serve-1", datetime.now(UTC), timedelta(minutes=3))
    finally:
        services.database.dispose()


def test_run_refuses_a_future_moment_and_changes_nothing(ref: str) -> None:
    later = (datetime.now(UTC) + timedelta(days=200)).replace(microsecond=0)
    result = runner.invoke(schedule_app, ["run", "--at", later.isoformat()])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0, result.output
    assert "is in the future" in result.output
    assert f"shepherd schedule due --at {later.isoformat()}" in result.output
    services = bootstrap(Settings())
    try:
        # No lease held until then, no event marked fired, nothing queued for Slack.
        assert SchedulerLease(services.database).holder() is None
        assert fired_keys(services.database) == []
        with services.database.session(read_only=True) as session:
            scheduled = select(func.count()).select_from(outbox).where(outbox.c.kind.like("schedule.%"))
            assert session.execute(scheduled).scalar() == 0
    finally:
        services.database.dispose()
    # The stalled notice is still there to fire when it is due: now, as it happens.
    assert due(datetime.now(UTC).isoformat())[0]["fired"] is False
    now = runner.invoke(schedule_app, ["run"])
    assert now.exit_code == 0 and f"stalled:{ref}:idea:" in now.output, now.output


def test_due_counts_a_notice_fired_under_the_day_key_of_an_older_shepherd(ref: str) -> None:
    services = bootstrap(Settings())
    try:
        with services.uow() as uow:
            ran_out = datetime(2026, 1, 31, 9, 5, tzinfo=UTC)
            uow.fired.first_time(f"stalled:{ref}:idea:2026-01-31", "schedule.stalled", ran_out)
            uow.commit()
    finally:
        services.database.dispose()
    assert due("2026-03-01") == [
        {"key": f"stalled:{ref}:idea:20260131T090000Z", "kind": "schedule.stalled", "ref": ref, "fired": True}
    ]
    result = runner.invoke(schedule_app, ["run", "--at", "2026-03-01"])
    assert result.exit_code == 0 and "Fired 0 event(s)" in result.output, result.output
