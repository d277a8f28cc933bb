"""`shepherd db upgrade`, `db prune` and `shepherd audit verify` as an operator runs them."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from bot.cli import app
from bot.cli_storage import audit_app, db_app
from storage import Database, sqlite_url
from storage.retention import TABLES
from storage.tables import answer_versions, decisions
from tests.conftest import require
from tests.gates.conftest import SPONSOR, TWO_GATES
from tests.storage.conftest import PG_URL, drop_postgres_schema, fresh_postgres_schema
from tests.storage.test_audit import forge, rejected
from tests.storage.test_retention import EVIDENCE, row_counts, seed

runner = CliRunner()
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
    return app


def test_db_upgrade_migrates_then_says_there_is_nothing_to_do(database_url: str) -> None:
    first = runner.invoke(cli(), ["db", "upgrade", "--database-url", database_url])
    assert first.exit_code == 0, first.output
    assert "Upgraded" in first.output and "from empty" in first.output
    again = runner.invoke(cli(), ["db", "upgrade", "--database-url", database_url])
    assert again.exit_code == 0 and "already at revision" in again.output
    assert runner.invoke(cli(), ["db", "check", "--database-url", database_url]).exit_code == 0


def test_audit_verify_exits_0_when_intact_and_1_naming_the_first_bad_entry(database: Database) -> None:
    for n in range(3):
        with database.uow() as uow:
            uow.audit.append("U1", "answers.recorded", "AI-0001", {"n": n}, NOW)
            uow.commit()
    url = database.url.render_as_string(hide_password=False)
    intact = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert intact.exit_code == 0 and "3 entries" in intact.output
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_log SET target = 'AI-0002' WHERE seq = 2")
    broken = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert broken.exit_code == 1
    assert "entry 2" in broken.output and "modified" in broken.output


def test_audit_verify_names_a_decision_and_answers_changed_in_the_database_and_exits_1(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain is intact, but the tables the evidence pack reads were edited: a rejection made
    an approval, and an answer the review was decided on changed."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(textwrap.dedent(TWO_GATES), encoding="utf-8")
    monkeypatch.setenv("SHEPHERD_PIPELINE", str(pipeline))  # types the answers to hash, as `serve` does
    review_id = rejected(database)
    url = database.url.render_as_string(hide_password=False)
    intact = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert intact.exit_code == 0, intact.output
    assert "1 decision checked against it, evidence hashes recomputed for 1 review" in intact.output

    with database.engine.begin() as connection:
        connection.execute(update(decisions).values(kind="approve", reason="Looks good"))
        connection.execute(
            update(answer_versions).where(answer_versions.c.question_id == "problem").values(value="Edited")
        )
    edited = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert edited.exit_code == 1
    said = " ".join(edited.output.split())
    assert said.startswith("DISAGREES The tables disagree with the audit log in 2 place(s)")
    assert f'The decision of {SPONSOR} on review {review_id} (AI-0001) says decision "approve"' in said
    assert f"Review {review_id} (AI-0001, intake gate): its answers as submitted and its links" in said

    # A pipeline that cannot be loaded leaves the hashes unchecked, and says so; the rest is checked.
    pipeline.write_text("gates: [", encoding="utf-8")
    unloaded = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert unloaded.exit_code == 1
    said = " ".join(unloaded.output.split())
    assert "so the reviews' evidence hashes are not recomputed" in said
    assert "in 1 place(s)" in said and "evidence hashes not recomputed, no pipeline given" in said


def test_an_unusable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unmigrated = runner.invoke(cli(), ["audit", "verify", "--database-url", sqlite_url(tmp_path)])
    assert unmigrated.exit_code == 2 and "shepherd db upgrade" in unmigrated.output
    assert "Traceback" not in unmigrated.output
    # A SQLite file that is not there is said so, and checking it leaves no empty file behind.
    typo = tmp_path / "typo.db"
    for command in (["audit", "verify"], ["db", "check"]):
        missing = runner.invoke(cli(), [*command, "--database-url", f"sqlite:///{typo}"])
        assert missing.exit_code == 2 and f"There is no database at {typo}" in " ".join(
            missing.output.split()
        )
        assert not typo.exists()
    # A name the system refuses is one line too, as before.
    too_long = runner.invoke(
        cli(), ["db", "check", "--database-url", f"sqlite:///{tmp_path / ('a' * 300)}.db"]
    )
    assert too_long.exit_code == 2 and "Cannot use the database" in too_long.output
    down = runner.invoke(
        cli(), ["db", "upgrade", "--database-url", "postgresql+psycopg://x@127.0.0.1:1/x?connect_timeout=2"]
    )
    assert down.exit_code == 2 and "Cannot use the database" in down.output


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgresql_url_as_hosting_consoles_give_it_is_opened_with_the_installed_driver(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heroku, Render and RDS give postgres://... or postgresql://..., without a driver: the first
    # names no SQLAlchemy dialect, the second SQLAlchemy 2.0's default, psycopg2, not installed.
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = fresh_postgres_schema()
    try:
        given = make_url(url).set(drivername=scheme).render_as_string(hide_password=False)
        monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SHEPHERD_DATABASE_URL", given)
        upgraded = runner.invoke(app, ["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        assert "Upgraded" in upgraded.output and "from empty" in upgraded.output
        assert runner.invoke(app, ["db", "check"]).exit_code == 0
        database = Database(given)
        try:
            assert database.engine.dialect.driver == "psycopg"
        finally:
            database.dispose()
    finally:
        drop_postgres_schema(schema)


def test_an_existing_database_opened_read_only_through_a_sqlite_uri_is_checked(tmp_path: Path) -> None:
    assert runner.invoke(cli(), ["db", "upgrade", "--database-url", sqlite_url(tmp_path)]).exit_code == 0
    read_only = f"sqlite:///file:{tmp_path / 'shepherd.db'}?mode=ro&uri=true"
    checked = runner.invoke(cli(), ["audit", "verify", "--database-url", read_only])
    assert checked.exit_code == 0, checked.output
    assert not Path("file:").exists()  # the URI was not taken for a relative folder to create


def test_an_entry_forged_beyond_the_counter_is_named_and_an_audited_command_then_fails_in_one_line(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        with database.uow() as uow:
            uow.audit.append("U1", "answers.recorded", "AI-0001", {"n": n}, NOW)
            uow.commit()
    forge(database)
    url = database.url.render_as_string(hide_password=False)
    broken = runner.invoke(cli(), ["audit", "verify", "--database-url", url])
    assert broken.exit_code == 1
    assert "entry 4 is beyond the counter, which says 3 were written" in " ".join(broken.output.split())
    # Any audited change now fails: `shepherd roles set` says why, in one line.
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHEPHERD_DATABASE_URL", url)
    monkeypatch.delenv("SHEPHERD_PIPELINE", raising=False)
    refused = runner.invoke(app, ["roles", "set", "privacy", "U0PRIV001"])
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert said.startswith("error: The audit log has entries beyond its counter")
    assert "entry 4 already exists" in said and "Run `shepherd audit verify`" in said
    assert "Traceback" not in refused.output and "IntegrityError" not in refused.output


def test_db_prune_dry_run_reports_counts_per_table_and_changes_nothing(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHEPHERD_RETENTION_DAYS", "30")
    seed(database, datetime.now(UTC))  # rows 100 and 10 days old
    everything = row_counts(database, (*TABLES, *EVIDENCE))
    url = database.url.render_as_string(hide_password=False)

    dry = runner.invoke(cli(), ["db", "prune", "--dry-run", "--database-url", url])
    assert dry.exit_code == 0, dry.output
    assert row_counts(database, (*TABLES, *EVIDENCE)) == everything
    lines = [line.split() for line in dry.output.splitlines()]
    reported = {words[0]: int(words[1]) for words in lines if words[2:] == ["would", "delete"]}
    assert reported == {
        "processed_events": 4,
        "outbox": 1,
        "inbox": 1,
        "asked_answers": 1,
        "slack_oauth_states": 1,
        "slack_messages": 1,
        "fired_events": 3,
    }
    assert "older than 30 days" in dry.output and "Nothing was deleted" in dry.output

    done = runner.invoke(cli(), ["db", "prune", "--database-url", url])
    assert done.exit_code == 0, done.output
    assert "processed_events             4 deleted" in done.output and "12 rows deleted." in done.output
    assert row_counts(database, EVIDENCE) == {k: v for k, v in everything.items() if k in EVIDENCE}
    again = runner.invoke(cli(), ["db", "prune", "--dry-run", "--database-url", url])
    assert "processed_events             0 would delete" in again.output
