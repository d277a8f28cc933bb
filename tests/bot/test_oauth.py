"""Multi-workspace installs: OAuth through slack_sdk's SQLAlchemy installation and state stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import yaml
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import text

from bot.app import build_app
from bot.bootstrap import bootstrap
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.installations import installation_store
from bot.server import asgi_app, delivery_sender
from bot.settings import Settings
from bot.slack_client import make_client
from gates import usecases
from storage.outbox import OutboxWorker, outbox_counts

REPO = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"


def test_install_page_redirects_to_slack_with_a_stored_state(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
        slack_signing_secret="signing-secret",
        embeddings="none",
    )
    services = bootstrap(settings)
    app = build_app(settings, services)
    with BackgroundASGIServer(asgi_app(app, services, run_worker=False)) as server:
        response = httpx.get(server.url + "/slack/install", follow_redirects=False)
        health = httpx.get(server.url + "/healthz")
    assert health.status_code == 200
    assert response.status_code in (200, 302)
    location = response.headers.get("location") or response.text
    link = location[location.index("https://slack.com/oauth/v2/authorize") :].split('"')[0]
    query = parse_qs(urlparse(link.replace("&amp;", "&")).query)
    assert query["client_id"] == ["111.222"]
    assert "chat:write" in query["scope"][0]
    state = query["state"][0]
    assert app.oauth_flow is not None
    assert app.oauth_flow.settings.state_store.consume(state) is True
    services.database.dispose()


# -- notifications after an OAuth install -------------------------------------------------------


def oauth_settings(tmp_path: Path, api: FakeSlackWebAPI, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        slack_client_id="111.222",
        slack_client_secret="client-secret",
        slack_signing_secret="signing-secret",
        slack_api_url=api.api_url,
        embeddings="none",
        **extra,
    )


def install(services: Any, api: FakeSlackWebAPI, team_id: str, token: str, at: float) -> None:
    """What Bolt's OAuth callback stores once a workspace admin approves the install."""
    api.state.tokens.add(token)
    installation_store(services.settings, services.database).save(
        Installation(
            app_id="A0SHEPHERD",
            team_id=team_id,
            user_id="U0ADMIN01",
            bot_token=token,
            bot_id="B0SHEPHERD",
            bot_user_id=api.state.bot_user_id,
            bot_scopes=["chat:write"],
            installed_at=at,
        )
    )


def register_one(services: Any) -> str:
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    return usecases.register(
        services.pipeline,
        services.uow(),
        name="Invoice triage",
        owner_id=OWNER,
        answers=answers | {"initiative_owner": OWNER},
        actor_id=OWNER,
        now=services.now(),
    ).ref


def deliver_once(services: Any) -> int:
    worker = OutboxWorker(
        services.database,
        delivery_sender(services, make_client(None, services.settings.slack_api_url)),
        services,
    )
    return worker.run_once(limit=50)


def test_notifications_wait_for_an_install_then_go_out_with_its_token(tmp_path: Path) -> None:
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))
        register_one(services)

        # Nobody has installed Shepherd yet: nothing reaches Slack, nothing is lost.
        assert deliver_once(services) == 0
        assert api.calls("chat.postMessage") == []
        pending = outbox_counts(services.database)
        assert pending.get("pending", 0) >= 1 and not pending.get("dead")
        with services.database.engine.connect() as connection:
            errors = connection.execute(text("SELECT last_error FROM outbox")).scalars().all()
        assert any("not installed" in (e or "") and "/slack/install" in (e or "") for e in errors)

        install(services, api, "T0ACME", "xoxb-acme", at=1_700_000_000.0)
        with services.database.engine.begin() as connection:  # the retry is due now
            connection.execute(text("UPDATE outbox SET next_attempt_at = '2000-01-01 00:00:00'"))
        assert deliver_once(services) >= 1
        [card] = [c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == registry.id]
        assert card.token == "xoxb-acme"
        services.database.dispose()


def test_with_several_installs_notifications_go_as_the_configured_workspace(tmp_path: Path) -> None:
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        settings = oauth_settings(tmp_path, api, registry_channel=registry.id, slack_team_id="T0ACME")
        services = bootstrap(settings)
        install(services, api, "T0ACME", "xoxb-acme", at=1_700_000_000.0)
        install(services, api, "T0OTHER", "xoxb-other", at=1_800_000_000.0)  # newer, but not ours
        register_one(services)
        assert deliver_once(services) >= 1
        tokens = {c.token for c in api.calls("chat.postMessage", ok=True)}
        assert tokens == {"xoxb-acme"}
        services.database.dispose()
