"""Each serving process asks Slack who the bot is (auth.test) as it starts, not on its first
request: the first acks after a start or a restart never wait on Slack for it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot import ids
from bot import server as server_module
from bot.app import build_app
from bot.bootstrap import bootstrap
from bot.emulator import payloads
from bot.emulator.client import SlackClient
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.server import asgi_app
from bot.settings import Settings
from bot.warm_authorization import warm_authorization
from tests.bot.scenario import SIGNING_SECRET

USER = "U0OWNER01"


@contextmanager
def served(api: FakeSlackWebAPI, data_dir: Path, startup_timeout: float = 10.0) -> Iterator[SlackClient]:
    """Shepherd over HTTP with its start-up and shutdown run (no background workers)."""
    settings = Settings(
        data_dir=data_dir,
        slack_bot_token=api.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api.api_url,
        registry_channel="C0REGISTRY",
        embeddings="none",
    )
    services = bootstrap(settings)
    try:
        asgi = asgi_app(build_app(settings, services), services, run_worker=False)
        with BackgroundASGIServer(asgi, lifespan="on", startup_timeout=startup_timeout) as server:
            yield SlackClient(server.url + "/slack/events", SIGNING_SECRET)
    finally:
        services.database.dispose()


def help_command(client: SlackClient) -> int:
    return client.send_command(
        payloads.slash_command(ids.COMMAND, "help", user_id=USER, channel_id="C0X")
    ).status


def test_the_bot_is_known_before_the_first_request_and_asked_about_once(tmp_path: Path) -> None:
    api = FakeSlackWebAPI()
    with api, served(api, tmp_path) as client:
        assert len(api.calls("auth.test")) == 1, "auth.test was not asked at start-up"
        # Concurrent first requests: before, each asked Slack itself while holding its thread.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: help_command(client), range(16)))
        assert statuses == [200] * 16
        assert len(api.calls("auth.test")) == 1


def test_slack_down_at_start_up_delays_nothing_and_the_first_request_asks_again(tmp_path: Path) -> None:
    api = FakeSlackWebAPI()
    with api:
        api.faults.fail("auth.test", "service_unavailable", times=None)
        with served(api, tmp_path) as client:
            assert api.calls("auth.test", ok=True) == []
            api.faults.clear()
            assert help_command(client) == 200
            assert len(api.calls("auth.test", ok=True)) == 1


def test_slack_hanging_at_start_up_holds_the_start_for_a_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "AUTH_WARMUP_SECONDS", 0.3)
    api = FakeSlackWebAPI()
    with api:
        api.faults.delay(4.0, "auth.test")
        # Ready within 2 s although Slack takes 4 s to answer.
        with served(api, tmp_path, startup_timeout=2.0) as client:
            api.faults.clear()
            assert help_command(client) == 200


def test_an_oauth_install_has_no_single_bot_to_ask_about(tmp_path: Path) -> None:
    """Several workspaces: each request is authorized from the installation store, so start-up
    asks Slack nothing."""
    api = FakeSlackWebAPI()
    with api:
        settings = Settings(
            data_dir=tmp_path,
            slack_client_id="111.222",
            slack_client_secret="client-secret",
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=api.api_url,
            embeddings="none",
        )
        services = bootstrap(settings)
        try:
            assert warm_authorization(build_app(settings, services)) is False
        finally:
            services.database.dispose()
        assert api.calls() == []
