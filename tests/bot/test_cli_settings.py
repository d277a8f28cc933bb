"""Settings as people write them: lists of Slack ids either way, and a mistake named by the
environment variable it is in, never a traceback or pydantic's report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings


@pytest.mark.parametrize(
    "written", ['["U012AB3CD", "U034EF5GH"]', "U012AB3CD,U034EF5GH", " U012AB3CD, U034EF5GH "]
)
def test_role_admins_are_read_as_a_json_list_or_separated_by_commas(
    written: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHEPHERD_ROLE_ADMINS", written)
    assert Settings().role_admins == ["U012AB3CD", "U034EF5GH"]


def test_a_mistake_in_the_settings_is_named_by_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHEPHERD_PORT", "abc")
    monkeypatch.setenv("SHEPHERD_GOVERNANCE_LEADS", '["U012')
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "do-not-print-me")
    monkeypatch.setattr("sys.argv", ["shepherd", "doctor"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    said = " ".join(capsys.readouterr().err.split())  # as wrapped to the terminal's width
    assert said.startswith("Shepherd's settings have problems:")
    assert "SHEPHERD_PORT: Input should be a valid integer" in said and "'abc'" in said
    assert "SHEPHERD_GOVERNANCE_LEADS: Value error, expected a JSON list" in said
    assert "Traceback" not in said and "pydantic.dev" not in said and "do-not-print-me" not in said


def shepherd(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the `shepherd` console script with ``args``: its exit code and what it said on stderr,
    joined as one line however the terminal wrapped it."""
    monkeypatch.setattr("sys.argv", ["shepherd", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), " ".join(capsys.readouterr().err.split())


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory and a pipeline file that does not exist: a command that got past
    its settings would stop there at once, rather than serve or work until stopped."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHEPHERD_PIPELINE", str(tmp_path / "no-pipeline.yaml"))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "none")
    for name in (
        "SHEPHERD_DATABASE_URL",
        "SHEPHERD_LOG_LEVEL",
        "SHEPHERD_SQLITE_SYNCHRONOUS",
        "SHEPHERD_PORT",
        "SHEPHERD_HOST",
        "PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "SHEPHERD_LOG_LEVEL",
            "LOUD",
            "Value error, use DEBUG, INFO, WARNING, ERROR or CRITICAL (it is 'LOUD')",
        ),
        ("SHEPHERD_PORT", "99999", "Input should be less than or equal to 65535 (it is '99999')"),
        ("SHEPHERD_PORT", "0", "Input should be greater than or equal to 1 (it is '0')"),
        (
            "SHEPHERD_SQLITE_SYNCHRONOUS",
            "sometimes",
            "Value error, use OFF, NORMAL, FULL or EXTRA (it is 'sometimes')",
        ),
        # "Keep for ever": a period reaching back before year 1, which the daily prune cannot compute.
        ("SHEPHERD_RETENTION_DAYS", "999999", "Input should be less than or equal to 36500 (it is '999999')"),
        # "Never" and "very rarely": waits the scheduler cannot make (OverflowError at its first tick).
        ("SHEPHERD_SCHEDULER_INTERVAL", "inf", "Input should be a finite number (it is 'inf')"),
        (
            "SHEPHERD_SCHEDULER_INTERVAL",
            "1e10",
            "Input should be less than or equal to 86400 (it is '1e10')",
        ),
        # Host and port in one, as a URL or a listen address is written: uvicorn said only "Name or
        # service not known", naming no setting.
        (
            "SHEPHERD_HOST",
            "0.0.0.0:3000",
            "Value error, put the address alone in SHEPHERD_HOST (0.0.0.0) and the port in "
            "SHEPHERD_PORT (3000) (it is '0.0.0.0:3000')",
        ),
        (
            "SHEPHERD_HOST",
            "[::1]:8080",
            "Value error, put the address alone in SHEPHERD_HOST (::1) and the port in "
            "SHEPHERD_PORT (8080) (it is '[::1]:8080')",
        ),
        (
            "SHEPHERD_HOST",
            "http://shepherd.example.com",
            "Value error, put the address alone in SHEPHERD_HOST (shepherd.example.com), without "
            "http:// or a path (it is 'http://shepherd.example.com')",
        ),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ("doctor",),
        ("initiatives", "list"),
        ("db", "upgrade"),
        ("serve",),
        ("run",),
        ("worker",),
        ("knowledge", "status"),
    ],
)
def test_a_setting_shepherd_cannot_use_is_refused_by_every_command(
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    problem: str,
    command: tuple[str, ...],
) -> None:
    """Not when a worker child starts (and dies, again and again), the port is bound or the
    database opens: before anything runs, in one line naming the variable."""
    monkeypatch.setenv(variable, value)
    code, said = shepherd(monkeypatch, capsys, *command)
    assert code == 1
    assert said == f"Shepherd's settings have problems: {variable}: {problem}"
    assert not (settings_env / "shepherd.db").exists()


@pytest.mark.parametrize(
    ("written", "read"), [("debug", "DEBUG"), (" Info ", "INFO"), ("warn", "WARNING"), ("ERROR", "ERROR")]
)
def test_a_log_level_is_read_in_any_case(written: str, read: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEPHERD_LOG_LEVEL", written)
    assert Settings().log_level == read


@pytest.mark.parametrize(("written", "read"), [("full", "FULL"), ("Normal", "NORMAL"), ("off", "OFF")])
def test_a_sqlite_synchronous_mode_is_read_in_any_case(
    written: str,
    read: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SHEPHERD_SQLITE_SYNCHRONOUS", written)
    assert Settings().sqlite_synchronous == read
    # The commands that open the database use it.
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SHEPHERD_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHEPHERD_PIPELINE", raising=False)
    assert shepherd(monkeypatch, capsys, "initiatives", "list") == (0, "")


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_port_option_out_of_range(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    code, said = shepherd(monkeypatch, capsys, "serve", "--port", port)
    assert code == 2
    bound = "less than or equal to 65535" if port == "99999" else "greater than or equal to 1"
    assert f"Invalid value for '--port': Input should be {bound}" in said
    assert "Traceback" not in said and "Listening" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": ""},
            "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)",
        ),
        (
            {"SLACK_SIGNING_SECRET": "s"},
            "SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (OAuth installs)",
        ),
    ],
)
def test_serve_without_what_slack_needs_names_it_before_preparing_anything(
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: dict[str, str],
    missing: str,
) -> None:
    """One line naming the variables to set, not "Shepherd hit an unexpected error:
    ConfigurationError", and before the database is migrated or the policies ingested."""
    monkeypatch.chdir(settings_env)  # no .env file
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    code, said = shepherd(monkeypatch, capsys, "serve")
    assert code == 1
    assert said == f"error: Slack is not connected: set {missing}."
    assert not (settings_env / "shepherd.db").exists()


@pytest.fixture
def unexpected_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A data directory that is a file, which no command expects: the error message it gives.
    Logging as it was is put back afterwards (serve, run and worker set it up)."""
    data_dir = tmp_path / "a-file"
    data_dir.write_text("", encoding="utf-8")
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "none")
    for name in ("SHEPHERD_DATABASE_URL", "SHEPHERD_PIPELINE", "SHEPHERD_LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield f"FileExistsError: [Errno 17] File exists: '{data_dir}'"
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


COMMANDS_THAT_OPEN_THE_DATABASE = [("initiatives", "list"), ("portfolio",), ("worker",)]


@pytest.mark.parametrize("command", COMMANDS_THAT_OPEN_THE_DATABASE)
def test_an_unexpected_error_is_one_line_that_says_how_to_see_the_details(
    unexpected_error: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
) -> None:
    monkeypatch.setenv("SHEPHERD_LOG_LEVEL", "INFO")
    code, said = shepherd(monkeypatch, capsys, *command)
    assert code == 1
    assert said == (
        f"Shepherd hit an unexpected error: {unexpected_error} "
        "Run again with SHEPHERD_LOG_LEVEL=DEBUG for the details."
    )


@pytest.mark.parametrize("command", COMMANDS_THAT_OPEN_THE_DATABASE)
def test_with_the_debug_log_level_an_unexpected_error_shows_its_traceback(
    unexpected_error: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
) -> None:
    """As the one-line message promised: whether or not the command set logging up."""
    monkeypatch.setenv("SHEPHERD_LOG_LEVEL", "debug")
    code, said = shepherd(monkeypatch, capsys, *command)
    assert code == 1
    details, _, summary = said.partition("Shepherd hit an unexpected error: ")
    assert "Traceback (most recent call last):" in details
    assert "in open_database" in details and details.endswith(f"{unexpected_error} ")
    assert summary == unexpected_error  # nothing more to run again for


@pytest.mark.parametrize(
    ("days", "problem"),
    [
        ("6", "Input should be greater than or equal to 7 (it is '6')"),
        ("999999", "Input should be less than or equal to 36500 (it is '999999')"),
    ],
)
@pytest.mark.parametrize("prune", [("db", "prune", "--dry-run"), ("db", "prune")])
def test_a_retention_period_out_of_range_is_refused_by_db_prune(
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    days: str,
    problem: str,
    prune: tuple[str, ...],
) -> None:
    """Under a week, or so long (999999 days, meant as "keep for ever") that the oldest moment
    kept would fall before year 1: a settings problem named by its variable, not an unexpected
    error from date arithmetic."""
    assert Settings().retention_days == 90
    monkeypatch.delenv("SHEPHERD_PIPELINE")
    assert shepherd(monkeypatch, capsys, "db", "upgrade")[0] == 0
    monkeypatch.setenv("SHEPHERD_RETENTION_DAYS", days)
    code, said = shepherd(monkeypatch, capsys, *prune)
    assert code == 1
    assert said == f"Shepherd's settings have problems: SHEPHERD_RETENTION_DAYS: {problem}"


def test_a_hundred_years_of_retention_is_kept_and_prunes_nothing(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The longest period allowed can be computed: prune runs (and finds nothing that old)."""
    monkeypatch.delenv("SHEPHERD_PIPELINE")
    assert shepherd(monkeypatch, capsys, "db", "upgrade")[0] == 0
    monkeypatch.setenv("SHEPHERD_RETENTION_DAYS", "36500")
    monkeypatch.setattr("sys.argv", ["shepherd", "db", "prune", "--dry-run"])
    with pytest.raises(SystemExit) as exited:
        main()
    said = capsys.readouterr()
    assert exited.value.code == 0, said.err
    assert said.out.splitlines()[-1] == (
        "Rows older than 36500 days that nothing needs any more. Nothing was deleted (dry run)."
    )


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (
            {"SLACK_BOT_TOKEN": "xoxp-1-2-3", "SLACK_SIGNING_SECRET": "s"},
            "SLACK_BOT_TOKEN holds a user token (xoxp-...): Shepherd would post as that person.",
        ),
        (
            {"SLACK_BOT_TOKEN": "xapp-1-A0-2-3", "SLACK_SIGNING_SECRET": "s"},
            "SLACK_BOT_TOKEN holds an app-level token (xapp-...), which belongs in SLACK_APP_TOKEN.",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxe-1-abc", "SLACK_SIGNING_SECRET": "s"},
            "SLACK_BOT_TOKEN holds a refresh token (xoxe-...).",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-1"},
            "SLACK_APP_TOKEN holds a bot token (xoxb-...), not an app-level token (xapp-...).",
        ),
    ],
)
def test_serve_refuses_a_token_of_the_wrong_type_in_one_line(
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: dict[str, str],
    problem: str,
) -> None:
    """A token pasted into the wrong variable: a user token made Shepherd post every card and
    DM as the person who copied it, an app-level one made every request fail (and a bot token
    in SLACK_APP_TOKEN ended in "Shepherd hit an unexpected error: SlackApiError"). Named before
    anything is prepared, with where to find the right token."""
    monkeypatch.chdir(settings_env)  # no .env file
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    code, said = shepherd(monkeypatch, capsys, "serve")
    assert code == 1
    assert said.startswith(f"error: {problem} ")
    assert "api.slack.com/apps" in said and "xoxp-1-2-3" not in said
    assert not (settings_env / "shepherd.db").exists()


def test_doctor_fails_a_user_token_in_slack_bot_token(tmp_path: Path) -> None:
    """It used to WARN, then say OK ("SLACK_BOT_TOKEN works") once Slack took the user token."""
    from bot.doctor import Level, check_slack_tokens

    settings = Settings(
        data_dir=tmp_path, slack_bot_token="xoxp-1-2-3", slack_api_url="http://127.0.0.1:9/api/"
    )
    checks = check_slack_tokens(settings)
    assert [(check.name, check.level) for check in checks] == [("slack bot token", Level.FAIL)]
    assert "user token" in checks[0].message and "xoxb-" in (checks[0].fix or "")
