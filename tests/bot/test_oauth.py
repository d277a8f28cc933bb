"""Multi-workspace installs: OAuth through slack_sdk's SQLAlchemy installation and state stores."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from bot.app import build_app
from bot.bootstrap import bootstrap
from bot.emulator.serving import BackgroundASGIServer
from bot.server import asgi_app
from bot.settings import Settings


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
