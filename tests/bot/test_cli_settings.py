"""Settings as people write them: lists of Slack ids either way, and a mistake named by the
environment variable it is in, never a traceback or pydantic's report."""

from __future__ import annotations

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
