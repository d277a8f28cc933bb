"""Migrations build the whole schema from nothing, match the models, and come back down; a
database that cannot be used is explained in one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import delete, insert, inspect, text

from storage import (
    AuditLogBeforeTheFirst,
    Database,
    DatabaseUnavailable,
    SchemaOutdated,
    SchemaTooNew,
    sqlite_url,
)
from storage.asked_answers import AskedAnswerRow
from storage.models import Base
from storage.slack_messages import SlackMessageRow
from storage.tables import audit_log
from tests.storage.test_audit import forged_entry

assert SlackMessageRow.__table__ is not None  # registers the bot's table on Base.metadata
assert AskedAnswerRow.__table__ is not None  # and the answers kept for votes

OUR_TABLES = {
    "initiatives",
    "counters",
    "answer_versions",
    "evidence_links",
    "reviews",
    "decisions",
    "role_holders",
    "audit_log",
    "outbox",
    "inbox",
    "processed_events",
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
    "slack_messages",
    "time_box_extensions",
    "operations_reviews",
    "fired_events",
    "scheduler_leases",
    "asked_answers",
}


def tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_creates_every_table(empty_database: Database) -> None:
    assert empty_database.current_revision() is None
    empty_database.upgrade()
    assert tables(empty_database) == OUR_TABLES
    assert empty_database.current_revision() == empty_database.head()
    empty_database.check()


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_twice_changes_nothing(database: Database) -> None:
    database.upgrade()
    assert database.current_revision() == database.head()


def test_downgrade_to_base_removes_every_table(database: Database) -> None:
    database.downgrade("base")
    assert tables(database) == set()
    assert database.current_revision() is None
    database.upgrade()
    assert tables(database) == OUR_TABLES


def test_an_upgrade_over_audit_entries_numbered_below_1_refuses_in_one_line(database: Database) -> None:
    """Migration 0011 forbids them; one already there was added by hand, and stays for someone
    to look at before the upgrade can go ahead."""
    database.downgrade("0010")
    with database.engine.begin() as connection:
        connection.execute(insert(audit_log).values(**forged_entry(0)))
    with pytest.raises(AuditLogBeforeTheFirst) as refused:
        database.upgrade()
    message = str(refused.value)
    assert "numbered below 1 (0)" in message and "DELETE FROM audit_log WHERE seq < 1" in message
    assert "\n" not in message
    assert database.current_revision() == "0010"
    with database.engine.begin() as connection:
        connection.execute(delete(audit_log).where(audit_log.c.seq < 1))
    database.upgrade()
    assert database.current_revision() == database.head()


def test_an_unmigrated_database_is_reported_as_needing_upgrade(empty_database: Database) -> None:
    with pytest.raises(SchemaOutdated, match=r"has no Shepherd tables yet.*shepherd db upgrade"):
        empty_database.check()


def test_a_schema_newer_than_the_code_is_refused_in_one_line(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    for action in (database.check, database.upgrade):
        with pytest.raises(SchemaTooNew) as caught:
            action()
        assert "f00dfeed" in str(caught.value) and "newer version" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    database = Database("postgresql+psycopg://shepherd:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    with pytest.raises(DatabaseUnavailable) as caught:
        database.check()
    message = str(caught.value)
    assert "127.0.0.1" in message and "s3cret" not in message and "\n" not in message


def test_an_unopenable_sqlite_file_is_one_line(tmp_path: object) -> None:
    blocker = f"{tmp_path}/a-file"
    with open(blocker, "w") as handle:  # noqa: PTH123
        handle.write("not a directory")
    with pytest.raises(DatabaseUnavailable, match="Cannot") as caught:
        Database(f"sqlite:///{blocker}/shepherd.db").check()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["not a url", "nosuchdriver://x/y"])
def test_a_bad_url_is_explained(url: str) -> None:
    with pytest.raises(DatabaseUnavailable):
        Database(url)


def test_a_sqlite_file_under_the_home_folder_is_opened_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///~/...`` as a shell would read it, not as a folder named "~" under the
    working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    database = Database("sqlite:///~/shepherd/shepherd.db")
    database.upgrade()
    database.dispose()
    assert (tmp_path / "home" / "shepherd" / "shepherd.db").is_file()
    assert not (tmp_path / "~").exists()
    assert "~" not in database.describe()


def test_a_sqlite_file_under_a_home_folder_that_cannot_be_found_is_one_line() -> None:
    with pytest.raises(DatabaseUnavailable, match="Cannot use the database") as caught:
        Database("sqlite:///~no-such-user-here/shepherd.db")
    assert "\n" not in str(caught.value)


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000


def test_slack_sdk_stores_work_on_the_migrated_tables(database: Database) -> None:
    installations = SQLAlchemyInstallationStore(client_id="111.222", engine=database.engine)
    installations.save(
        Installation(
            app_id="A1",
            enterprise_id=None,
            team_id="T1",
            user_id="U1",
            bot_token="xoxb-1",
            bot_id="B1",
            bot_user_id="UB1",
            bot_scopes=["chat:write"],
            installed_at=datetime.now(UTC).timestamp(),
        )
    )
    bot = installations.find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == "xoxb-1"
    states = SQLAlchemyOAuthStateStore(expiration_seconds=60, engine=database.engine)
    state = states.issue()
    assert states.consume(state) is True
    assert states.consume(state) is False
    assert datetime.now(UTC) - timedelta(seconds=5) < datetime.now(UTC)
