"""Multi-workspace installs: OAuth through slack_sdk's SQLAlchemy installation and state stores."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import yaml
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import text

from bot import blocks, ids
from bot.app import build_app
from bot.bootstrap import bootstrap
from bot.emulator.client import SlackClient
from bot.emulator.payloads import (
    WorkspaceInfo,
    app_home_opened_event,
    block_actions_on_message,
    event_callback,
    view_submission,
)
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.inbox import processor as inbox_processor
from bot.installations import InstalledBotToken, installation_store
from bot.server import asgi_app, delivery_sender, delivery_worker
from bot.settings import Settings
from bot.slack_client import make_client
from gates import usecases
from gates.lifecycle import ReviewStatus
from storage.inbox import inbox_counts
from storage.outbox import OutboxWorker, outbox_counts
from tests.bot.scenario import find_button, has_button

REPO = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"
BOB = "U0BOB0001"  # someone in a second workspace
CARL = "U0CARL001"  # Bob's colleague there


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


def install(
    services: Any,
    api: FakeSlackWebAPI,
    team_id: str,
    token: str,
    at: float,
    refresh_token: str | None = None,
    expires_at: int | None = None,
) -> None:
    """What Bolt's OAuth callback stores once a workspace admin approves the install."""
    api.state.tokens.add(token)
    if refresh_token:
        api.state.refresh_tokens[refresh_token] = token
    installation_store(services.settings, services.database).save(
        Installation(
            app_id="A0SHEPHERD",
            team_id=team_id,
            user_id="U0ADMIN01",
            bot_token=token,
            bot_refresh_token=refresh_token,
            bot_token_expires_at=expires_at,
            bot_id="B0SHEPHERD",
            bot_user_id=api.state.bot_user_id,
            bot_scopes=["chat:write"],
            installed_at=at,
        )
    )


def make_due(services: Any) -> None:
    with services.database.engine.begin() as connection:
        connection.execute(text("UPDATE outbox SET next_attempt_at = '2000-01-01 00:00:00'"))


def register_one(services: Any, name: str = "Invoice triage") -> str:
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    return usecases.register(
        services.pipeline,
        services.uow(),
        name=name,
        owner_id=OWNER,
        answers=answers | {"initiative_owner": OWNER},
        actor_id=OWNER,
        now=services.now(),
    ).ref


def deliver_once(services: Any) -> int:
    """One delivery round of the outbox worker as Shepherd runs it, its messages sent one at a
    time in the order they were queued."""
    send = delivery_sender(services, make_client(None, services.settings.slack_api_url))
    worker = delivery_worker(services, send, concurrency=1)
    return worker.run_once(limit=50)


def test_notifications_wait_for_an_install_then_go_out_with_its_token(tmp_path: Path) -> None:
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))
        register_one(services)

        # Nobody has installed Shepherd yet: nothing reaches Slack, and however long that lasts
        # (more rounds than the outbox's attempts), nothing is dead-lettered.
        for _ in range(12):
            assert deliver_once(services) == 0
            make_due(services)
        assert api.calls("chat.postMessage") == []
        assert set(outbox_counts(services.database)) == {"pending"}
        with services.database.engine.connect() as connection:
            rows = connection.execute(text("SELECT attempts, last_error FROM outbox")).all()
        assert {attempts for attempts, _ in rows} == {0}
        assert all("not installed" in error and "/slack/install" in error for _, error in rows)

        install(services, api, "T0ACME", "xoxb-acme", at=1_700_000_000.0)
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


def test_an_expiring_token_is_rotated_where_bolt_will_find_it(tmp_path: Path) -> None:
    """Slack revokes a refresh token once used, so the worker must store the new pair in the
    installation (what Bolt's authorize reads), not only in the bot row."""
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))
        soon = int(time.time()) + 600  # inside the rotator's two-hour window
        install(services, api, "T0ACME", "xoxe.xoxb-old", 1_700_000_000.0, "xoxe-1-old", soon)
        register_one(services)

        assert deliver_once(services) >= 1
        [refresh] = api.calls("oauth.v2.access", ok=True)
        assert refresh.params["refresh_token"] == "xoxe-1-old"
        new_token = refresh.response["access_token"]
        assert {c.token for c in api.calls("chat.postMessage", ok=True)} == {new_token}
        assert "xoxe.xoxb-old" not in api.state.tokens  # revoked, as Slack does

        stored = installation_store(services.settings, services.database)
        found = stored.find_installation(enterprise_id=None, team_id="T0ACME")
        assert found is not None
        assert (found.bot_token, found.bot_refresh_token) == (new_token, refresh.response["refresh_token"])
        services.database.dispose()


# -- installs through Shepherd's own routes, and uninstalls -------------------------------------


@contextmanager
def serving(services: Any) -> Iterator[str]:
    """Shepherd's HTTP app (install routes and /slack/events) for ``services``; yields its URL."""
    app = build_app(services.settings, services)
    with BackgroundASGIServer(asgi_app(app, services, run_worker=False)) as server:
        yield server.url


def install_through_routes(url: str, api: FakeSlackWebAPI, team_id: str, token: str) -> None:
    """What a workspace admin's browser does: open /slack/install, approve at Slack, come back
    to the redirect with the code Slack gave."""
    code = api.state.approve_install(team_id, token)
    with httpx.Client(base_url=url) as browser:
        page = browser.get("/slack/install")
        found = re.search(r"state=([\w-]+)", page.text.replace("&amp;", "&"))
        assert found is not None, page.text
        # Bolt's state cookie is Secure (https only): hand it back as a browser on https would.
        cookie = page.headers["set-cookie"].split(";")[0]
        done = browser.get(
            "/slack/oauth_redirect", params={"code": code, "state": found[1]}, headers={"cookie": cookie}
        )
    assert done.status_code == 200, done.text


def send_event(url: str, team_id: str, event: dict[str, Any]) -> None:
    """Slack sending ``event`` from workspace ``team_id`` (signed, as Slack does)."""
    envelope = event_callback(event, workspace=WorkspaceInfo(team_id=team_id))
    assert SlackClient(url + "/slack/events", "signing-secret").send_event(envelope).status == 200


def pending_rows(services: Any) -> list[tuple[int, str]]:
    with services.database.engine.connect() as connection:
        query = text("SELECT attempts, last_error FROM outbox WHERE status = 'pending'")
        return [(attempts, error) for attempts, error in connection.execute(query)]


def test_an_uninstall_removes_the_workspace_s_token_and_notifications_wait_for_a_reinstall(
    tmp_path: Path,
) -> None:
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))
        store = installation_store(services.settings, services.database)
        with serving(services) as url:
            install_through_routes(url, api, "T0ACME", "xoxb-acme")
            register_one(services)
            assert deliver_once(services) >= 1

            # The admin removes Shepherd: Slack revokes its token and says so with two events.
            api.state.tokens.discard("xoxb-acme")
            send_event(
                url, "T0ACME", {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0SHEPBOT"]}}
            )
            assert InstalledBotToken(store).installation() is None  # gone from both tables
            assert store.find_bot(enterprise_id=None, team_id="T0ACME") is None
            send_event(url, "T0ACME", {"type": "app_uninstalled"})
            assert store.find_installation(enterprise_id=None, team_id="T0ACME") is None

            register_one(services, "Contract review")
            for _ in range(10):  # more rounds than the outbox's attempts: nothing is given up on
                assert deliver_once(services) == 0
                make_due(services)
            assert [c for c in api.calls("chat.postMessage") if c.token == "xoxb-acme" and not c.ok] == []
            waiting = pending_rows(services)
            assert waiting and all(attempts == 0 and "/slack/install" in error for attempts, error in waiting)

            install_through_routes(url, api, "T0ACME", "xoxb-acme-again")
            assert deliver_once(services) >= 1
        assert pending_rows(services) == []
        services.database.dispose()


def test_a_token_slack_refuses_is_dropped_at_once_and_its_notifications_wait(tmp_path: Path) -> None:
    """Slack may refuse a token before (or without) its events reaching Shepherd: the worker
    neither counts that against the message nor keeps the cached token for its 30 seconds."""
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))
        send = delivery_sender(services, make_client(None, api.api_url))
        worker = OutboxWorker(services.database, send, services)
        with serving(services) as url:
            install_through_routes(url, api, "T0ACME", "xoxb-acme")
            register_one(services)
            assert worker.run_once(limit=50) >= 1  # the token is cached now

            api.state.tokens.discard("xoxb-acme")  # revoked at Slack, no event (yet)
            register_one(services, "Contract review")
            assert worker.run_once(limit=50) == 0
            [(attempts, error)] = {row for row in pending_rows(services)}
            assert attempts == 0 and "invalid_auth" in error and "/slack/install" in error

            install_through_routes(url, api, "T0ACME", "xoxb-acme-again")
            make_due(services)
            assert worker.run_once(limit=50) >= 1  # well within the 30 s the token was cached for
        assert pending_rows(services) == []
        assert {c.token for c in api.calls("chat.postMessage", ok=True)} == {"xoxb-acme", "xoxb-acme-again"}
        services.database.dispose()


# -- several workspaces -------------------------------------------------------------------------


def queued(services: Any, kind: str) -> None:
    """Wait for a lazy listener to queue an outbox message of ``kind``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with services.database.engine.connect() as connection:
            query = text("SELECT count(*) FROM outbox WHERE kind = :kind")
            if connection.execute(query, {"kind": kind}).scalar():
                return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} queued")


def opens_the_messages_tab(url: str, api: FakeSlackWebAPI, user: str, team_id: str) -> str:
    """``user`` opening Shepherd's messages tab in workspace ``team_id``; returns the DM's id."""
    dm = api.state.open_dm(user)[0].id
    workspace = WorkspaceInfo(team_id=team_id)
    send_event(url, team_id, app_home_opened_event(user, channel_id=dm, tab="messages", workspace=workspace))
    return dm


@contextmanager
def two_workspaces(tmp_path: Path) -> Iterator[tuple[FakeSlackWebAPI, Any, str, str]]:
    """Shepherd installed through the routes in T0ACME (the registry's, ``SLACK_TEAM_ID``) and in
    T0OTHER, where Bob works: the fake Slack, the services, the app's URL and the registry channel."""
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        api.state.add_user(BOB, "bob")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        settings = oauth_settings(tmp_path, api, registry_channel=registry.id, slack_team_id="T0ACME")
        services = bootstrap(settings)
        try:
            with serving(services) as url:
                install_through_routes(url, api, "T0ACME", "xoxb-acme")
                install_through_routes(url, api, "T0OTHER", "xoxb-other")
                yield api, services, url, registry.id
        finally:
            services.database.dispose()


def test_a_reply_to_a_second_workspace_goes_out_with_its_own_token(tmp_path: Path) -> None:
    with two_workspaces(tmp_path) as (api, services, url, registry):
        dm = opens_the_messages_tab(url, api, BOB, "T0OTHER")
        queued(services, "greeting")
        register_one(services)  # the registry's card, which has no workspace of its own
        assert deliver_once(services) >= 2
        [greeting] = [c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == dm]
        assert greeting.token == "xoxb-other"
        [card] = [c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == registry]
        assert card.token == "xoxb-acme"


def registers_in(url: str, services: Any, user: str, team_id: str, owner: str) -> None:
    """``user`` filling in the registration form in workspace ``team_id``, naming ``owner``."""
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    answers |= {"initiative_owner": owner, "business_sponsor": user}
    values: dict[str, Any] = {ids.NAME_BLOCK: "Claims triage"}
    for question, value in answers.items():
        values[ids.question_block_id(question)] = (
            [str(v) for v in value] if isinstance(value, list) else str(value)
        )
    form = blocks.intake_modal(services.pipeline, private_metadata="")
    payload = view_submission(form, user_id=user, values=values, workspace=WorkspaceInfo(team_id=team_id))
    response = SlackClient(url + "/slack/events", "signing-secret").send(payload)
    assert response.status == 200 and response.text in ("", "{}"), response.text


def test_a_registration_in_a_second_workspace_is_confirmed_there_with_its_token(tmp_path: Path) -> None:
    """The welcome and the registrar's confirmation go to people of the workspace the form was
    sent from: only its token can reach them (the registry's gets ``user_not_found``)."""
    with two_workspaces(tmp_path) as (api, services, url, registry):
        api.state.add_user(CARL, "carl")
        registers_in(url, services, BOB, "T0OTHER", owner=CARL)
        assert deliver_once(services) >= 1
        posted = api.calls("chat.postMessage", ok=True)
        [card] = [c for c in posted if c.params.get("channel") == registry]
        assert card.token == "xoxb-acme"  # the registry's card stays the registry workspace's
        dms = {api.state.open_dm(person)[0].id: person for person in (BOB, CARL)}
        told = {dms[c.params["channel"]]: c.token for c in posted if c.params.get("channel") in dms}
        assert told == {CARL: "xoxb-other", BOB: "xoxb-other"}  # the welcome, the confirmation
        opened = {c.params.get("users"): c.token for c in api.calls("conversations.open")}
        assert opened == {CARL: "xoxb-other", BOB: "xoxb-other"}


def test_a_registration_from_a_workspace_that_uninstalled_still_gets_its_card(tmp_path: Path) -> None:
    with two_workspaces(tmp_path) as (api, services, url, registry):
        registers_in(url, services, BOB, "T0OTHER", owner=BOB)
        api.state.tokens.discard("xoxb-other")  # revoked before the welcome goes out
        assert deliver_once(services) >= 1
        [card] = [c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == registry]
        assert card.token == "xoxb-acme"
        assert pending_rows(services) == []  # nobody there can be told: the registry is not held up


def test_a_workspace_waiting_for_a_reinstall_holds_up_no_other(tmp_path: Path) -> None:
    with two_workspaces(tmp_path) as (api, services, url, registry):
        opens_the_messages_tab(url, api, BOB, "T0OTHER")
        queued(services, "greeting")
        api.state.tokens.discard("xoxb-other")  # then revoked, before the greeting goes out
        register_one(services)  # queued after the greeting, delivered in the same round
        assert deliver_once(services) >= 1
        posted = api.calls("chat.postMessage", ok=True)
        assert registry in {c.params.get("channel") for c in posted}
        assert {c.token for c in posted} == {"xoxb-acme"}
        [(attempts, error)] = pending_rows(services)
        assert attempts == 0 and "workspace T0OTHER" in error and "invalid_auth" in error


def test_the_registry_workspace_waiting_for_a_reinstall_holds_up_no_other(tmp_path: Path) -> None:
    with two_workspaces(tmp_path) as (api, services, url, _):
        api.state.tokens.discard("xoxb-acme")  # the registry workspace's token is revoked
        register_one(services)  # its card is queued first
        dm = opens_the_messages_tab(url, api, BOB, "T0OTHER")
        queued(services, "greeting")
        deliver_once(services)
        greetings = [c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == dm]
        assert [c.token for c in greetings] == ["xoxb-other"]
        [(attempts, error)] = pending_rows(services)  # the card waits for T0ACME's reinstall
        assert attempts == 0 and "invalid_auth" in error


def test_without_slack_team_id_the_workspace_that_installed_first_keeps_the_registry(
    tmp_path: Path,
) -> None:
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(oauth_settings(tmp_path, api, registry_channel=registry.id))

        def cards_since(count: int) -> list[str]:
            posted = [
                c for c in api.calls("chat.postMessage", ok=True) if c.params.get("channel") == registry.id
            ]
            return [c.token for c in posted[count:]]

        with serving(services) as url:
            install_through_routes(url, api, "T0ACME", "xoxb-acme")
            register_one(services)
            assert deliver_once(services) >= 1
            install_through_routes(url, api, "T0OTHER", "xoxb-other")  # later, elsewhere
            register_one(services, "Contract review")
            assert deliver_once(services) >= 1  # a new worker: nothing cached
            assert cards_since(0) == ["xoxb-acme", "xoxb-acme"]
            install_through_routes(url, api, "T0ACME", "xoxb-acme-again")  # a reinstall: its newest token
            register_one(services, "Vendor screening")
            assert deliver_once(services) >= 1
            assert cards_since(2) == ["xoxb-acme-again"]
        services.database.dispose()


# -- decisions waiting in the inbox when the app is removed --------------------------------------


def test_a_click_waiting_in_the_inbox_when_shepherd_is_uninstalled_is_still_recorded(tmp_path: Path) -> None:
    """Bob holds the sponsor role in Shepherd itself; the pipeline also names a user group for it.
    He clicks Approve, and before the worker gets to his click the admin removes Shepherd: the
    worker cannot ask Slack who is in the group, but needs no group to judge Bob's click, which
    must be recorded rather than retried until it is given up on as "could not be recorded"."""
    source = (REPO / "gates" / "defaults" / "pipeline.yaml").read_text(encoding="utf-8")
    sponsor = source.index("  sponsor:\n")
    source = source[:sponsor] + source[sponsor:].replace(
        "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0SPONSORS\n", 1
    )
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(source, encoding="utf-8")
    with FakeSlackWebAPI() as api:
        api.state.add_user(OWNER, "olivia")
        api.state.add_user(BOB, "bob")
        api.state.add_user(CARL, "carl")
        api.state.add_usergroup("S0SPONSORS", "sponsors", [CARL])
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        services = bootstrap(
            oauth_settings(tmp_path / "data", api, registry_channel=registry.id, pipeline=pipeline)
        )
        with serving(services) as url:
            install_through_routes(url, api, "T0ACME", "xoxb-acme")
            ref = register_one(services)
            usecases.set_role_holders(
                services.pipeline, services.uow(), "sponsor", [BOB], "U0ADMIN01", services.now()
            )
            usecases.submit(services.pipeline, services.uow(), ref, OWNER, services.now())
            while deliver_once(services):
                pass
            clicks = SlackClient(url + "/slack/events", "signing-secret")
            for person in (CARL, BOB):  # Carl is a sponsor through the user group only
                dm = api.state.open_dm(person)[0].id
                [request] = [m for m in api.state.channel_messages(dm) if has_button(m, ids.ACTION_APPROVE)]
                click = block_actions_on_message(
                    request,
                    ids.ACTION_APPROVE,
                    user_id=person,
                    channel_id=dm,
                    value=find_button(request, ids.ACTION_APPROVE)["value"],
                    workspace=WorkspaceInfo(team_id="T0ACME"),
                )
                assert clicks.send(click).status == 200

            api.state.tokens.discard("xoxb-acme")  # the admin removes Shepherd
            send_event(
                url, "T0ACME", {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0SHEPBOT"]}}
            )
            send_event(url, "T0ACME", {"type": "app_uninstalled"})

            worker = inbox_processor(services, make_client(None, api.api_url))
            for _ in range(8):  # more rounds than a click's attempts, each due
                worker.drain()
                with services.database.engine.begin() as connection:
                    connection.execute(text("UPDATE inbox SET next_attempt_at = '2000-01-01 00:00:00'"))
            assert inbox_counts(services.database) == {"applied": 2}
            with services.read_uow() as uow:
                [review] = uow.reviews.for_initiative(ref)
            assert review.status is ReviewStatus.APPROVED
            assert [d.approver_id for d in review.decisions] == [BOB]

            # Carl's click could not be judged: once Shepherd is back, he hears why.
            install_through_routes(url, api, "T0ACME", "xoxb-acme-again")
            make_due(services)
            while deliver_once(services):
                pass
            told = [m.get("text", "") for m in api.state.channel_messages(api.state.open_dm(CARL)[0].id)]
            told += [
                c.params["text"] for c in api.calls("chat.postEphemeral", ok=True) if c.params["user"] == CARL
            ]
            [why] = [t for t in told if "user groups could not be checked" in t]
            assert "removed from Slack" in why and "Tell your Shepherd administrators" in why
        services.database.dispose()
