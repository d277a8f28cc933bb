"""`shepherd doctor` against the Slack emulator, the OpenAI stub and dead ports; `shepherd
portfolio` on the seeded dataset; JSON logs."""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.oauth.installation_store import Installation
from typer.testing import CliRunner

from bot.bootstrap import bootstrap
from bot.cli import app
from bot.cli_serve import configure_logging
from bot.doctor import (
    Level,
    check_database,
    check_embeddings,
    check_glossary,
    check_installation,
    check_llm,
    check_pipeline,
    check_slack_tokens,
    run_checks,
)
from bot.emulator.webapi import FakeSlackWebAPI
from bot.installations import installation_store
from bot.settings import Settings
from storage import Database, sqlite_url
from tests.conftest import require
from tests.fakes.openai_stub import OpenAIStub
from tests.gates.portfolio_seed import seed_initiatives, seed_reviews
from tests.storage.conftest import PG_URL, drop_postgres_schema, fresh_postgres_schema

ENV_NAMES = (
    "SHEPHERD_DATABASE_URL",
    "SHEPHERD_PIPELINE",
    "SHEPHERD_CHROMA_URL",
    "SHEPHERD_LLM_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
)


def dead_port() -> int:
    """A port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment for the CLI's Settings: an empty data directory, no credentials."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "none")
    return tmp_path


@pytest.fixture
def slack_api() -> Iterator[FakeSlackWebAPI]:
    """A running Slack emulator."""
    with FakeSlackWebAPI() as api:
        yield api


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, embeddings="none", **values)


# ---------------------------------------------------------------- Slack


def test_a_good_bot_token_passes_auth_test(slack_api: FakeSlackWebAPI, tmp_path: Path) -> None:
    [check] = check_slack_tokens(
        settings(tmp_path, slack_bot_token=slack_api.bot_token, slack_api_url=slack_api.api_url)
    )
    assert check.level is Level.OK
    assert "SLACK_BOT_TOKEN works" in check.message


def test_a_bad_bot_token_names_the_variable_and_the_fix(slack_api: FakeSlackWebAPI, tmp_path: Path) -> None:
    checks = check_slack_tokens(
        settings(tmp_path, slack_bot_token="xoxb-not-a-real-token", slack_api_url=slack_api.api_url)
    )
    [check] = [c for c in checks if c.level is Level.FAIL]
    assert check.message == "Slack refused SLACK_BOT_TOKEN (invalid_auth)."
    assert check.fix is not None and "OAuth & Permissions" in check.fix and "SLACK_BOT_TOKEN" in check.fix


def test_an_unreachable_slack_api_says_where_it_tried(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{dead_port()}/api/"
    [check] = check_slack_tokens(settings(tmp_path, slack_bot_token="xoxb-1", slack_api_url=url))
    assert check.level is Level.FAIL
    assert check.message.startswith(f"Cannot reach the Slack API at {url}")
    assert check.fix is not None and "SLACK_API_URL" in check.fix


def test_an_app_token_of_the_wrong_kind_fails(tmp_path: Path) -> None:
    checks = check_slack_tokens(settings(tmp_path, slack_app_token="xoxb-wrong-kind"))
    assert [(c.name, c.level) for c in checks if c.name == "slack app token"] == [
        ("slack app token", Level.FAIL)
    ]


def test_with_oauth_the_doctor_says_whether_anyone_has_installed(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    oauth = {
        "slack_client_id": "111.222",
        "slack_client_secret": "client-secret",
        "slack_api_url": slack_api.api_url,
    }
    slack_api.state.tokens.add("xoxb-1")
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    [waiting] = check_installation(settings(tmp_path, **oauth))
    assert waiting.level is Level.WARN and "wait in the outbox" in waiting.message
    assert waiting.fix is not None and "/slack/install" in waiting.fix

    installation_store(settings(tmp_path, **oauth), database).save(
        Installation(
            app_id="A0SHEP", team_id="T0ACME", team_name="Acme", user_id="U0ADMIN01", bot_token="xoxb-1"
        )
    )
    database.dispose()
    [installed] = check_installation(settings(tmp_path, **oauth))
    assert installed.level is Level.OK and "Acme (T0ACME)" in installed.message
    assert check_installation(settings(tmp_path)) == []  # no OAuth, nothing to say


def test_an_installation_without_every_scope_shepherd_uses_fails_and_says_to_reinstall(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    """Installed by an older Shepherd, which asked for fewer scopes: the doctor said OK while
    what needs the others (user group roles, say) failed in Slack."""
    from bot.app import BOT_SCOPES

    oauth = {
        "slack_client_id": "111.222",
        "slack_client_secret": "client-secret",
        "slack_api_url": slack_api.api_url,
    }
    slack_api.state.tokens.add("xoxb-1")
    slack_api.state.bot_scopes = frozenset(BOT_SCOPES) - {"usergroups:read"}
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    installation_store(settings(tmp_path, **oauth), database).save(
        Installation(
            app_id="A0SHEP", team_id="T0ACME", team_name="Acme", user_id="U0ADMIN01", bot_token="xoxb-1"
        )
    )
    database.dispose()
    [check] = check_installation(settings(tmp_path, **oauth))
    assert check.level is Level.FAIL
    assert "Acme (T0ACME)" in check.message and "lacks the scope usergroups:read" in check.message
    assert check.fix is not None and "/slack/install" in check.fix
    slack_api.state.bot_scopes = frozenset(BOT_SCOPES)
    [check] = check_installation(settings(tmp_path, **oauth))
    assert check.level is Level.OK


def test_with_several_workspaces_and_no_slack_team_id_the_doctor_warns(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    oauth = {
        "slack_client_id": "111.222",
        "slack_client_secret": "client-secret",
        "slack_api_url": slack_api.api_url,
    }
    slack_api.state.tokens.update({"xoxb-T0ACME", "xoxb-T0OTHER"})
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    store = installation_store(settings(tmp_path, **oauth), database)
    for team, at in (("T0ACME", 1_700_000_000.0), ("T0OTHER", 1_800_000_000.0)):
        store.save(
            Installation(
                app_id="A0SHEP", team_id=team, user_id="U0ADMIN01", bot_token=f"xoxb-{team}", installed_at=at
            )
        )
    database.dispose()
    [warning] = check_installation(settings(tmp_path, **oauth))
    assert warning.level is Level.WARN and "2 workspaces (T0ACME, T0OTHER)" in warning.message
    assert "go to workspace T0ACME" in warning.message  # the first to install, not the latest
    assert warning.fix is not None and "SLACK_TEAM_ID" in warning.fix
    [chosen] = check_installation(settings(tmp_path, **oauth, slack_team_id="T0OTHER"))
    assert chosen.level is Level.OK and "(T0OTHER)" in chosen.message


def test_a_workspace_whose_bot_token_was_revoked_is_not_counted_as_installed(tmp_path: Path) -> None:
    """T0OTHER's bot token was revoked (Slack's tokens_revoked event, applied: its rows keep no
    token): Shepherd is installed in T0ACME only, and the doctor no longer warns about several
    workspaces and SLACK_TEAM_ID."""
    from tests.bot.test_oauth import install, oauth_settings, send_event, serving

    with FakeSlackWebAPI() as api:
        services = bootstrap(oauth_settings(tmp_path, api))
        install(services, api, "T0ACME", "xoxb-acme", at=1.0)
        install(services, api, "T0OTHER", "xoxb-other", at=2.0)
        with serving(services) as url:
            send_event(
                url, "T0OTHER", {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0SHEPBOT"]}}
            )
        services.database.dispose()
        [check] = check_installation(services.settings)
    assert check.level is Level.OK, check.message
    assert check.message.startswith("Notifications go to workspace T0ACME (T0ACME)")


def test_an_installation_whose_token_slack_refuses_fails_and_says_to_reinstall(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    """The token was revoked at Slack while Shepherd was down (no tokens_revoked event reached
    it): every notification waits in the outbox, and the doctor now says so instead of OK."""
    from tests.bot.test_oauth import install, oauth_settings

    services = bootstrap(oauth_settings(tmp_path, slack_api))
    install(services, slack_api, "T0ACME", "xoxb-acme", at=1.0)
    services.database.dispose()
    slack_api.state.tokens.discard("xoxb-acme")  # revoked at Slack
    [check] = check_installation(services.settings)
    assert check.level is Level.FAIL
    assert check.message == (
        "Slack refuses the bot token of workspace T0ACME (T0ACME) (invalid_auth): "
        "notifications wait in the outbox."
    )
    assert check.fix is not None and "reinstall at /slack/install" in check.fix.lower()
    assert [call.token for call in slack_api.calls("auth.test")] == ["xoxb-acme"]


def test_an_installation_the_doctor_cannot_check_at_slack_is_a_warning(tmp_path: Path) -> None:
    """Slack unreachable (an outage, the network) says nothing about the token: WARN, not FAIL."""

    oauth = settings(
        tmp_path,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
        slack_api_url=f"http://127.0.0.1:{dead_port()}/api/",
    )
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    installation_store(oauth, database).save(
        Installation(app_id="A0SHEP", team_id="T0ACME", user_id="U0ADMIN01", bot_token="xoxb-1")
    )
    database.dispose()
    [check] = check_installation(oauth)
    assert check.level is Level.WARN
    assert check.message.startswith("Cannot reach Slack to check the bot token of workspace T0ACME (T0ACME)")


# ---------------------------------------------------------------- database


def test_a_fresh_sqlite_database_is_fine_and_a_migrated_one_is_current(tmp_path: Path) -> None:
    [fresh] = check_database(settings(tmp_path))
    assert fresh.level is Level.OK and "creates them at start" in fresh.message
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    database.dispose()
    [current] = check_database(settings(tmp_path))
    assert current.level is Level.OK and "(current)" in current.message


def test_notifications_and_requests_given_up_on_are_warnings_with_the_way_to_resend(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    with database.uow() as uow:
        for n in range(2):
            uow.outbox.put("review.requested", {"review": n}, datetime.now(UTC))
        uow.commit()
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE outbox SET status = 'dead'")
        connection.exec_driver_sql(
            "INSERT INTO inbox (kind, payload, received_at, status, attempts, next_attempt_at) "
            "VALUES ('decision', '{}', '2026-01-01', 'dead', 5, '2026-01-01')"
        )
    database.dispose()
    current, outbox_dead, inbox_dead = check_database(settings(tmp_path))
    assert current.level is Level.OK
    assert (outbox_dead.level, outbox_dead.message) == (Level.WARN, "2 notifications were given up on.")
    assert outbox_dead.fix is not None and "shepherd outbox retry --all" in outbox_dead.fix
    assert inbox_dead.level is Level.WARN and inbox_dead.message.startswith("1 request (Approve clicks")


def test_an_unreachable_postgres_is_a_failure_with_the_fix(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://shepherd:secret@127.0.0.1:{dead_port()}/shepherd?connect_timeout=2"
    [check] = check_database(settings(tmp_path, database_url=url))
    assert check.level is Level.FAIL
    assert check.message.startswith("Cannot reach the database")
    assert "secret" not in check.message
    assert check.fix is not None and "SHEPHERD_DATABASE_URL" in check.fix


@pytest.mark.postgres
def test_postgres_without_autovacuum_on_the_busy_tables_is_a_warning(tmp_path: Path) -> None:
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = fresh_postgres_schema()
    database = Database(url)
    try:
        database.upgrade()
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        reachable, upkeep = check_database(settings(tmp_path, database_url=url))
    finally:
        database.dispose()
        drop_postgres_schema(schema)
    assert reachable.level is Level.OK and "(current)" in reachable.message
    assert upkeep.level is Level.WARN and "outbox" in upkeep.message
    assert upkeep.fix is not None and "VACUUM ANALYZE" in upkeep.fix


# ---------------------------------------------------------------- embeddings and LLM


def test_embeddings_off_is_ok_and_a_missing_model_folder_is_a_warning(tmp_path: Path) -> None:
    [off] = check_embeddings(settings(tmp_path))
    assert off.level is Level.OK
    [missing] = check_embeddings(Settings(data_dir=tmp_path, embeddings=f"onnx:{tmp_path / 'nope'}"))
    assert missing.level is Level.WARN and "BM25" in missing.message
    assert missing.fix is not None and "SHEPHERD_EMBEDDING_MODEL_DIR" in missing.fix
    [bad] = check_embeddings(Settings(data_dir=tmp_path, embeddings="word2vec"))
    assert bad.level is Level.FAIL and "SHEPHERD_EMBEDDINGS='word2vec'" in bad.message


def test_doctor_says_the_policy_store_must_be_embedded_again_for_a_model_of_another_size(
    tmp_path: Path,
) -> None:
    from bot.bootstrap import knowledge_base

    policy = tmp_path / "policy.md"
    policy.write_text("## Secrets\n\nSecrets live in the vault.\n")

    def with_endpoint(url: str) -> Settings:
        return Settings(
            data_dir=tmp_path, embeddings="openai:stub-embed", openai_base_url=url, openai_api_key="k"
        )

    with OpenAIStub() as stub:
        knowledge_base(with_endpoint(stub.base_url)).ingest([policy])
        [same] = check_embeddings(with_endpoint(stub.base_url))
    with OpenAIStub(embedding_dimensions=32) as other:
        [check] = check_embeddings(with_endpoint(other.base_url))
    assert same.level is Level.OK
    assert check.level is Level.WARN and "vectors of 64 dimensions" in check.message
    assert check.fix is not None and "shepherd knowledge ingest" in check.fix


def test_the_llm_endpoint_is_probed_for_its_models(tmp_path: Path) -> None:
    with OpenAIStub() as stub:
        [ok] = check_llm(
            settings(tmp_path, llm_model="stub", openai_base_url=stub.base_url, openai_api_key="k")
        )
        [unknown] = check_llm(
            settings(tmp_path, llm_model="gpt-9", openai_base_url=stub.base_url, openai_api_key="k")
        )
    assert ok.level is Level.OK and "serves stub" in ok.message
    assert unknown.level is Level.WARN and "gpt-9" in unknown.message
    assert unknown.fix is not None and "stub" in unknown.fix


def test_a_dead_llm_endpoint_fails_quickly_with_the_fix(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{dead_port()}/v1"
    [check] = check_llm(settings(tmp_path, llm_model="m", openai_base_url=url))
    assert check.level is Level.FAIL
    assert check.message.startswith(f"Cannot reach the LLM endpoint {url}")
    assert check.fix is not None and "OPENAI_BASE_URL" in check.fix


def test_a_model_without_an_endpoint_or_key_is_a_failure(tmp_path: Path) -> None:
    [check] = check_llm(settings(tmp_path, llm_model="m"))
    assert check.level is Level.FAIL and "OPENAI_API_KEY" in check.message


# ---------------------------------------------------------------- the command


def test_doctor_exits_0_when_nothing_fails(
    env: Path, slack_api: FakeSlackWebAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_api.bot_token)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "OK   slack bot token" in result.output
    assert "0 failed" in result.output


def test_doctor_exits_1_and_prints_the_fix_on_a_bad_token(
    env: Path, slack_api: FakeSlackWebAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked")
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL slack bot token" in result.output
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in result.output
    assert "fix: Copy the Bot User OAuth Token" in result.output


def test_every_check_reports_even_with_nothing_configured(tmp_path: Path) -> None:
    checks = run_checks(settings(tmp_path))
    assert [c.name for c in checks] == [
        "pipeline",
        "slack bot token",
        "slack signing secret",
        "database",
        "chroma",
        "embedding model",
        "glossary",
        "llm",
    ]
    assert all(c.level is not Level.FAIL for c in checks)
    assert all(c.fix for c in checks if c.level is not Level.OK)


def test_a_pipeline_that_cannot_load_and_a_missing_policy_folder_fail_with_their_fix(tmp_path: Path) -> None:
    broken = tmp_path / "pipeline.yaml"
    broken.write_text("version: 1\nstages: [a, b]\ngates:\n  - {id: g, from: a, to: c}\n")
    checks = check_pipeline(settings(tmp_path, pipeline=broken, policies_dir=tmp_path / "no-such-folder"))
    assert [(c.name, c.level) for c in checks] == [("pipeline", Level.FAIL), ("policies", Level.FAIL)]
    assert "gates[0].to" in checks[0].message and "'c' is not one of the stages" in checks[0].message
    assert "shepherd pipeline validate" in (checks[0].fix or "")
    assert "no-such-folder is not a folder" in checks[1].message
    [missing] = check_pipeline(settings(tmp_path, pipeline=tmp_path / "nope.yaml"))
    assert missing.level is Level.FAIL and "file not found" in missing.message


def test_a_sqlite_file_that_is_not_there_is_a_warning_and_is_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "shepherd.bd"
    [check] = check_database(settings(tmp_path, database_url=f"sqlite:///{typo}"))
    assert check.level is Level.WARN
    assert f"There is no database at {typo}" in check.message and "mistyped" in (check.fix or "")
    assert not typo.exists()


def test_a_glossary_that_cannot_load_fails_with_its_fix(tmp_path: Path) -> None:
    broken = tmp_path / "glossary.yaml"
    broken.write_text("- say: [pii]\n")
    [check] = check_glossary(settings(tmp_path, glossary=str(broken)))
    assert check.level is Level.FAIL
    assert "entry 1: expected exactly `say` and `means`" in check.message
    assert "without policy guidance" in check.message and "SHEPHERD_GLOSSARY" in (check.fix or "")
    assert [c.level for c in check_glossary(settings(tmp_path))] == [Level.OK]
    assert "searched as typed" in check_glossary(settings(tmp_path, glossary="none"))[0].message


# ---------------------------------------------------------------- portfolio


@pytest.fixture
def seeded_env(env: Path) -> Path:
    """The CLI's SQLite database holding the seeded portfolio."""
    database = Database(sqlite_url(env))
    database.upgrade()
    with database.uow() as uow:
        for initiative in seed_initiatives():
            uow.initiatives.add(initiative)
        for review in seed_reviews():
            uow.reviews.add(review)
        uow.commit()
    database.dispose()
    return env


def test_portfolio_json_and_png(seeded_env: Path) -> None:
    chart = seeded_env / "portfolio.png"
    result = CliRunner().invoke(app, ["portfolio", "--json", "--png", str(chart)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"] == 6
    # Reached per stage (hand-computed in tests/gates/test_portfolio.py): 6, 3, 1, 0, 0.
    assert [s["reached"] for s in data["stages"]] == [6, 3, 1, 0, 0]
    png = chart.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1200, 600)


def test_portfolio_table_lists_stages_and_stalled(seeded_env: Path) -> None:
    result = CliRunner().invoke(app, ["portfolio"])
    assert result.exit_code == 0, result.output
    assert "6 initiatives" in result.output
    assert "Stalled" in result.output and "AI-0002" in result.output
    assert "Problem statement is vague." in result.output


def test_portfolio_png_into_a_missing_folder_is_one_clear_error(seeded_env: Path) -> None:
    result = CliRunner().invoke(app, ["portfolio", "--png", str(seeded_env / "no" / "such" / "chart.png")])
    assert result.exit_code == 1
    assert "cannot write" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- JSON logs


def test_json_logs_are_one_object_per_line_with_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        configure_logging(Settings(log_json=True, log_level="INFO"))
        logger = logging.getLogger("shepherd.test")
        logger.info("outbox delivered %d", 3)
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("delivery failed")
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert lines[0] == {"level": "INFO", "logger": "shepherd.test", "message": "outbox delivered 3"}
    assert lines[1]["level"] == "ERROR" and "ValueError: bad" in lines[1]["exception"]
