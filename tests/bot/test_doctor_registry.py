"""`shepherd doctor` checks that Shepherd can post initiative cards in the registry channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.doctor import Level, check_registry_channel
from bot.emulator.webapi import FakeSlackWebAPI
from bot.settings import Settings


@pytest.fixture
def slack_api() -> Iterator[FakeSlackWebAPI]:
    """A running Slack emulator."""
    with FakeSlackWebAPI() as api:
        yield api


def settings(tmp_path: Path, api: FakeSlackWebAPI, **values: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        embeddings="none",
        slack_bot_token=api.bot_token,
        slack_api_url=api.api_url,
        **values,
    )


def test_a_registry_channel_with_shepherd_in_it_is_ok(slack_api: FakeSlackWebAPI, tmp_path: Path) -> None:
    channel = slack_api.state.add_channel("ai-initiatives")
    [check] = check_registry_channel(settings(tmp_path, slack_api, registry_channel=channel.id))
    assert check.level is Level.OK
    assert f"#ai-initiatives ({channel.id})" in check.message


def test_a_registry_channel_slack_cannot_find_fails_with_the_fix(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    [by_id] = check_registry_channel(settings(tmp_path, slack_api, registry_channel="C0NOSUCH1"))
    assert by_id.level is Level.FAIL and "channel_not_found" in by_id.message
    assert by_id.fix is not None and "private" in by_id.fix and "/invite @Shepherd" in by_id.fix
    [by_name] = check_registry_channel(settings(tmp_path, slack_api, registry_channel="#no-such"))
    assert by_name.level is Level.FAIL
    assert by_name.fix is not None and "ID" in by_name.fix and "not its name" in by_name.fix


def test_a_registry_channel_without_shepherd_fails_with_the_invite(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    channel = slack_api.state.add_channel("ai-registry", bot_is_member=False)
    [check] = check_registry_channel(settings(tmp_path, slack_api, registry_channel=channel.id))
    assert check.level is Level.FAIL and "not a member" in check.message
    assert check.fix is not None and "/invite @Shepherd" in check.fix


def test_without_the_scope_to_look_it_is_a_warning_naming_the_scope(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    channel = slack_api.state.add_channel("ai-initiatives")
    slack_api.faults.fail("conversations.info", "missing_scope")
    [check] = check_registry_channel(settings(tmp_path, slack_api, registry_channel=channel.id))
    assert check.level is Level.WARN and "channels:read" in check.message
    assert check.fix is not None and "channels:read" in check.fix and "reinstall" in check.fix


def test_no_registry_channel_is_a_warning_and_no_token_means_no_check(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    [unset] = check_registry_channel(settings(tmp_path, slack_api))
    assert unset.level is Level.WARN and "owner's DM" in unset.message
    assert unset.fix is not None and "SHEPHERD_REGISTRY_CHANNEL" in unset.fix
    assert check_registry_channel(Settings(data_dir=tmp_path, registry_channel="C0NOSUCH1")) == []


def test_doctor_exits_1_on_a_registry_channel_slack_cannot_find(
    slack_api: FakeSlackWebAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SHEPHERD_DATABASE_URL", "SHEPHERD_LLM_MODEL", "SLACK_APP_TOKEN", "SLACK_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "none")
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_api.bot_token)
    monkeypatch.setenv("SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    monkeypatch.setenv("SHEPHERD_REGISTRY_CHANNEL", "C0NOSUCH1")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "FAIL registry channel" in result.output
    assert "Slack cannot find SHEPHERD_REGISTRY_CHANNEL='C0NOSUCH1'" in result.output


def test_a_bot_token_without_every_scope_shepherd_uses_fails_naming_them(
    slack_api: FakeSlackWebAPI, tmp_path: Path
) -> None:
    """An app made from an older manifest, or whose scopes an admin trimmed: auth.test still
    answers, so the doctor said "SLACK_BOT_TOKEN works" while, say, roles held by a user group
    or the system card's upload failed. Slack says which scopes a token has (x-oauth-scopes)."""
    from bot.app import BOT_SCOPES
    from bot.doctor import check_slack_tokens

    slack_api.state.bot_scopes = frozenset(BOT_SCOPES) - {"usergroups:read", "files:write"}
    [check] = check_slack_tokens(settings(tmp_path, slack_api))
    assert check.level is Level.FAIL
    assert "lacks the scopes usergroups:read, files:write" in check.message
    assert "slack-manifest.yaml" in (check.fix or "") and "reinstall" in (check.fix or "")

    slack_api.state.bot_scopes = frozenset(BOT_SCOPES) | {"reactions:read"}
    [check] = check_slack_tokens(settings(tmp_path, slack_api))
    assert check.level is Level.OK and "SLACK_BOT_TOKEN works" in check.message
