"""The Slack app manifest in the repository is the one the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot import ids
from bot.cli import app as cli_app
from bot.manifest import manifest_yaml

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_manifest_matches_the_code() -> None:
    assert (REPO / "slack-manifest.yaml").read_text(encoding="utf-8") == manifest_yaml()


def test_manifest_declares_every_surface_the_bot_listens_on() -> None:
    data = yaml.safe_load(manifest_yaml())
    assert data["features"]["slash_commands"][0]["command"] == ids.COMMAND
    assert data["features"]["shortcuts"][0]["callback_id"] == ids.SHORTCUT_NEW
    assert set(data["settings"]["event_subscriptions"]["bot_events"]) >= {
        "app_mention",
        "message.im",
        "app_home_opened",
        "app_uninstalled",  # so that an uninstalled workspace's token is not used again
        "tokens_revoked",
    }
    assert data["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    # The agent view's DM uses the same two events as the messages tab.
    prompts = data["features"]["agent_view"]["suggested_prompts"]
    assert len(prompts) == 3 and all(p["title"] and p["message"] for p in prompts)
    assert "assistant:write" in data["oauth_config"]["scopes"]["bot"]
    assert {"chat:write", "commands", "im:history"} <= set(data["oauth_config"]["scopes"]["bot"])


def test_socket_mode_manifest_has_no_request_urls() -> None:
    data = yaml.safe_load(manifest_yaml(socket_mode=True))
    assert data["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in data["settings"]["interactivity"]


@pytest.mark.parametrize("url", ["notaurl", "ftp://shepherd.example.com", "http://", "https://"])
def test_a_url_slack_cannot_post_to_is_refused(url: str) -> None:
    result = CliRunner().invoke(cli_app, ["manifest", "--url", url])
    assert result.exit_code == 1
    assert "must be an https:// address" in " ".join(result.output.split())
    assert "request_url" not in result.output


def test_a_manifest_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "manifest.yaml"
    result = CliRunner().invoke(cli_app, ["manifest", "-o", str(target)])
    assert result.exit_code == 1
    assert f"cannotwrite{target}" in "".join(result.output.split())  # however the terminal folds it


@pytest.mark.parametrize(
    "given", ["/slack/events", "/slack/events/", "/slack/oauth_redirect", "/slack/install"]
)
def test_a_url_of_shepherds_own_address_is_taken_back_to_its_base_with_a_note(given: str) -> None:
    """Slack's settings show https://host/slack/events: pasted as --url, it is not doubled."""
    result = CliRunner().invoke(cli_app, ["manifest", "--url", f"https://shepherd.example.com{given}"])
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)  # the note leaves the manifest on stdout whole
    assert (
        data["settings"]["event_subscriptions"]["request_url"] == "https://shepherd.example.com/slack/events"
    )
    assert data["settings"]["interactivity"]["request_url"] == "https://shepherd.example.com/slack/events"
    assert data["features"]["slash_commands"][0]["url"] == "https://shepherd.example.com/slack/events"
    assert data["oauth_config"]["redirect_urls"] == ["https://shepherd.example.com/slack/oauth_redirect"]
    assert " ".join(result.stderr.split()) == (
        "note: --url is the base URL: using https://shepherd.example.com, under which Slack is given "
        "/slack/events and /slack/oauth_redirect."
    )


def test_a_base_url_with_a_path_keeps_it() -> None:
    """A proxy may serve Shepherd under a path of its own."""
    result = CliRunner().invoke(cli_app, ["manifest", "--url", "https://example.com/shepherd/"])
    assert result.exit_code == 0 and result.stderr == ""
    data = yaml.safe_load(result.stdout)
    assert (
        data["settings"]["event_subscriptions"]["request_url"] == "https://example.com/shepherd/slack/events"
    )
    assert data["oauth_config"]["redirect_urls"] == ["https://example.com/shepherd/slack/oauth_redirect"]


@pytest.mark.parametrize(
    "url", ["https://shepherd.example.com/?team=T1", "https://shepherd.example.com/#top"]
)
def test_a_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    result = CliRunner().invoke(cli_app, ["manifest", "--url", url])
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        "error: --url is the base URL Shepherd's addresses go under: give it without ?... or #..., "
        f"not {url!r}"
    )
    assert result.stdout == ""
