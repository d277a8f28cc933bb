"""The playground's JSON API over HTTP, without a browser: each move reaches the real bot as
Slack would send it, and what the bot answers shows up in the state the page draws."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from bot import ids
from bot.playground.demo import PEOPLE
from bot.playground.runtime import slack_text
from tests.playground.conftest import RunningPlayground, wait_for

OWNER = PEOPLE[0].id
SPONSOR = next(p.id for p in PEOPLE if p.role == "sponsor")
RISK = next(p.id for p in PEOPLE if p.role == "risk")


def get_state(
    running: RunningPlayground, since: int | None = None, user: str | None = None, run: str | None = None
) -> dict[str, Any]:
    query = []
    if since is not None:
        query.append(f"since={since}")
    if run is not None:
        query.append(f"run={run}")
    if user is not None:
        query.append(f"user={user}")
    with urllib.request.urlopen(f"{running.url}/api/state?{'&'.join(query)}", timeout=15) as response:
        return json.loads(response.read())


def status_of(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def act(
    running: RunningPlayground, move: Any, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    body = raw if raw is not None else json.dumps(move).encode()
    request = urllib.request.Request(
        f"{running.url}/api/act",
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def open_modal(running: RunningPlayground, user: str = OWNER) -> dict[str, Any]:
    return wait_for(lambda: get_state(running, user=user)["modals"])[-1]


def register(running: RunningPlayground, name: str = "Spare-parts demand forecast") -> dict[str, Any]:
    """Register through /shepherd new and the intake modal; returns the card."""
    registry = running.playground.registry.id
    assert act(running, {"type": "send", "channel": registry, "text": "/shepherd new"})[0] == 200
    modal = open_modal(running)
    values = {ids.NAME_BLOCK: name, "q:business_sponsor": SPONSOR, "q:initiative_owner": OWNER}
    status, answer = act(running, {"type": "submit_view", "view_id": modal["id"], "values": values})
    assert (status, answer["errors"]) == (200, {})
    return wait_for(lambda: get_state(running)["messages"][registry])[0]


def test_state_shows_the_demo_workspace_as_the_acting_person_sees_it(running: RunningPlayground) -> None:
    state = get_state(running)
    assert state["me"] == OWNER
    names = [c["name"] for c in state["channels"]]
    assert names == ["ai-initiatives", "general", "Shepherd"]
    assert state["registry"] == running.playground.registry.id
    titles = {p["title"] for p in state["people"]}
    for role in ("Initiative owner", "Business sponsor", "Risk officer", "Privacy officer", "Architect"):
        assert role in titles
    assert "Operations owner" in titles
    assert state["actors"] == [p.id for p in PEOPLE]
    assert state["modals"] == [] and state["home"] is None


def test_demo_people_hold_their_roles_in_shepherd(running: RunningPlayground) -> None:
    from gates import usecases

    services = running.playground.services
    assert services is not None
    with services.read_uow() as uow:
        holders = usecases.role_holders(services.pipeline, uow)
    assert holders["sponsor"] == [SPONSOR]
    assert holders["risk"] == [RISK]
    assert set(holders) >= {"privacy", "architecture", "operations"}
    assert all(len(users) == 1 for users in holders.values())


def test_switching_person_changes_whose_view_the_state_is(running: RunningPlayground) -> None:
    status, answer = act(running, {"type": "switch_user", "user": SPONSOR})
    assert (status, answer["me"]) == (200, SPONSOR)
    assert get_state(running)["me"] == SPONSOR
    assert get_state(running, user=OWNER)["me"] == OWNER


def test_a_slash_commands_answer_is_shown_only_to_the_person_who_typed_it(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    assert act(running, {"type": "send", "channel": registry, "text": "/shepherd help"})[0] == 200
    ephemerals = get_state(running, user=OWNER)["ephemerals"]
    assert len(ephemerals) == 1 and "new" in ephemerals[0]["text"]
    assert ephemerals[0]["channel"] == registry
    assert get_state(running, user=SPONSOR)["ephemerals"] == []
    assert get_state(running)["messages"][registry] == []
    assert act(running, {"type": "dismiss", "channel": registry, "ts": ephemerals[0]["ts"]})[1]["ok"]
    assert get_state(running)["ephemerals"] == []


def test_a_role_admin_names_role_holders_with_at_mentions_as_in_slack(running: RunningPlayground) -> None:
    # The command escapes (should_escape), so "@rafael" reaches Shepherd as a mention of him.
    admin = next(p.id for p in PEOPLE if p.role_admin)
    assert act(running, {"type": "switch_user", "user": admin})[0] == 200
    registry = running.playground.registry.id
    text = "/shepherd roles set risk @rafael @sam"
    assert act(running, {"type": "send", "channel": registry, "text": text})[0] == 200
    answer = get_state(running, user=admin)["ephemerals"][-1]["text"]
    assert f"<@{RISK}>" in answer and f"<@{SPONSOR}>" in answer, answer


def test_the_intake_modal_shows_errors_then_registers_and_posts_the_card(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    act(running, {"type": "send", "channel": registry, "text": "/shepherd new"})
    modal = open_modal(running)
    assert modal["callback_id"] == ids.VIEW_INTAKE
    status, answer = act(running, {"type": "submit_view", "view_id": modal["id"], "values": {}})
    assert status == 200 and not answer["ok"]
    assert ids.NAME_BLOCK in answer["errors"]
    state = get_state(running)
    assert state["modals"][-1]["id"] == modal["id"], "an error keeps the modal open"
    assert ids.NAME_BLOCK in state["modal_errors"][modal["id"]]

    values = {ids.NAME_BLOCK: "Invoice triage", "q:business_sponsor": SPONSOR}
    status, answer = act(running, {"type": "submit_view", "view_id": modal["id"], "values": values})
    assert (status, answer) == (200, {"ok": True, "errors": {}})
    assert get_state(running)["modals"] == []
    card = wait_for(lambda: get_state(running)["messages"][registry])[0]
    assert "Invoice triage" in json.dumps(card["blocks"])
    assert any(b.get("block_id", "").startswith("card:") for b in card["blocks"])
    # The owner hears what happens next in the DM with Shepherd.
    dm = next(c["id"] for c in get_state(running)["channels"] if c["kind"] == "dm")
    assert wait_for(lambda: get_state(running)["messages"][dm])


def test_a_mention_in_the_cards_thread_is_answered_in_that_thread(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    card = register(running)
    move = {
        "type": "send",
        "channel": registry,
        "thread_ts": card["ts"],
        "text": "@Shepherd what do we need?",
    }
    assert act(running, move)[0] == 200
    typed = wait_for(lambda: [m for m in get_state(running)["messages"][registry] if m.get("user") == OWNER])[
        0
    ]
    assert typed["text"] == f"<@{running.playground.state.bot_user_id}> what do we need?"
    assert typed["thread_ts"] == card["ts"]

    def answered() -> list[dict[str, Any]]:
        thread = [m for m in get_state(running)["messages"][registry] if m.get("thread_ts") == card["ts"]]
        return [m for m in thread if m.get("bot_id") and "approv" in json.dumps(m.get("blocks", [])).lower()]

    assert wait_for(answered, timeout=15)
    assert running.playground.api.calls("chat.postMessage")


def test_clicking_a_card_button_opens_the_questionnaire_and_saving_records_answers(
    running: RunningPlayground,
) -> None:
    registry = running.playground.registry.id
    card = register(running)
    move = {
        "type": "click",
        "channel": registry,
        "ts": card["ts"],
        "block_id": card["blocks"][-1]["block_id"],
        "action_id": ids.ACTION_OPEN_QUESTIONNAIRE,
    }
    assert act(running, move)[0] == 200
    modal = open_modal(running)
    assert modal["callback_id"] == ids.VIEW_QUESTIONNAIRE
    values = {"q:poc_duration_weeks": "8", "q:personal_data": "no", "q:data_sources": ["synthetic data"]}
    status, answer = act(running, {"type": "submit_view", "view_id": modal["id"], "values": values})
    assert (status, answer["errors"]) == (200, {})
    services = running.playground.services
    assert services is not None
    from gates import usecases

    with services.read_uow() as uow:
        answers = usecases.current_answers(uow, "AI-0001")
    assert answers["poc_duration_weeks"] == 8
    assert answers["personal_data"] == "no"
    assert answers["data_sources"] == ["synthetic data"]


def test_app_home_is_published_when_opened(running: RunningPlayground) -> None:
    register(running)
    assert act(running, {"type": "open_home"})[0] == 200
    home = wait_for(lambda: get_state(running)["home"])
    assert home["type"] == "home"
    assert "AI-0001" in json.dumps(home["blocks"])


def test_closing_a_modal_removes_it(running: RunningPlayground) -> None:
    act(running, {"type": "send", "channel": running.playground.registry.id, "text": "/shepherd new"})
    modal = open_modal(running)
    assert act(running, {"type": "close_view", "view_id": modal["id"]}) == (200, {"ok": True})
    assert get_state(running)["modals"] == []


def test_the_state_request_waits_until_something_changes(running: RunningPlayground) -> None:
    version = get_state(running)["version"]
    answers: list[dict[str, Any]] = []
    started = time.monotonic()
    waiter = threading.Thread(target=lambda: answers.append(get_state(running, since=version)))
    waiter.start()
    time.sleep(0.3)
    assert not answers, "the long poll answered before anything changed"
    act(running, {"type": "send", "channel": running.playground.registry.id, "text": "hello everyone"})
    waiter.join(timeout=5)
    assert answers and answers[0]["version"] > version
    assert time.monotonic() - started < 4


def test_a_page_left_open_across_a_restart_gets_the_new_workspace_at_once(running: RunningPlayground) -> None:
    # The page polls with the previous run's version (often higher) and, when it knows it, run id.
    now = get_state(running)
    for since, run in ((now["version"] + 500, None), (now["version"], "an-earlier-run")):
        started = time.monotonic()
        state = get_state(running, since=since, run=run)
        assert time.monotonic() - started < 1.0, f"since={since} run={run} waited for the long poll"
        assert (state["run"], state["version"]) == (now["run"], now["version"])


def test_moves_that_cannot_be_made_get_a_sentence_not_a_traceback(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    cases: list[tuple[Any, bytes | None, str]] = [
        ({"type": "dance"}, None, "Unknown move"),
        ({"type": "switch_user", "user": "U0NOBODY"}, None, "Unknown person"),
        (None, b"not json", "must be JSON"),
        ([1, 2], None, "JSON object"),
        ({"type": "send", "channel": registry, "text": "/deploy prod"}, None, "not a command"),
        ({"type": "send", "channel": registry, "text": "   "}, None, "Type something"),
        ({"type": "send", "channel": "C0NOWHERE", "text": "hi"}, None, "channel_not_found"),
        ({"type": "submit_view", "view_id": "V0NONE"}, None, "No form is open"),
        (
            {"type": "click", "channel": registry, "ts": "1.000001", "action_id": "x"},
            None,
            "message_not_found",
        ),
    ]
    for move, raw, expected in cases:
        status, answer = act(running, move, raw)
        assert status == 400, (move, answer)
        assert expected in answer["error"], (move, answer)
        assert "Traceback" not in answer["error"]


def test_a_value_that_does_not_fit_the_form_is_refused_with_the_reason(running: RunningPlayground) -> None:
    act(running, {"type": "send", "channel": running.playground.registry.id, "text": "/shepherd new"})
    modal = open_modal(running)
    move = {"type": "submit_view", "view_id": modal["id"], "values": {"q:business_area": "astrology"}}
    status, answer = act(running, move)
    assert status == 400 and "not an option" in answer["error"]


def test_composer_text_turns_names_into_slack_mentions(running: RunningPlayground) -> None:
    state = running.playground.state
    bot = state.bot_user_id
    assert slack_text("@Shepherd what now?", state) == f"<@{bot}> what now?"
    assert slack_text("ask @sam, then @Rafael.", state) == f"ask <@{SPONSOR}>, then <@{RISK}>."
    assert slack_text("mail me at a@b.example or @nobody", state) == "mail me at a@b.example or @nobody"
    # Typed brackets stay text, as in Slack: Shepherd reads only its own <...> tokens as markup.
    assert slack_text("already <@U0PGOWNER1>", state) == "already &lt;@U0PGOWNER1&gt;"
    assert slack_text("is x<y & y>z, @sam?", state) == f"is x&lt;y &amp; y&gt;z, <@{SPONSOR}>?"


def test_brackets_and_ampersands_typed_to_shepherd_reach_it_escaped_as_slack_sends_them(
    running: RunningPlayground,
) -> None:
    dm = next(c["id"] for c in get_state(running)["channels"] if c["kind"] == "dm")
    assert act(running, {"type": "send", "channel": dm, "text": "is x<y and y>z & ok?"})[0] == 200
    mine = wait_for(lambda: [m for m in get_state(running)["messages"][dm] if m.get("user") == OWNER])
    assert mine[0]["text"] == "is x&lt;y and y&gt;z &amp; ok?"


def test_the_page_and_its_assets_are_served_from_the_package(running: RunningPlayground) -> None:
    with urllib.request.urlopen(running.url + "/", timeout=5) as response:
        html = response.read().decode()
    assert '<script src="/static/app.js">' in html
    assert "http" not in html.replace("http-equiv", ""), "nothing may load from another site"
    for asset in ("app.js", "blockkit.js", "mrkdwn.js", "app.css"):
        with urllib.request.urlopen(f"{running.url}/static/{asset}", timeout=5) as response:
            assert response.status == 200
            assert "innerHTML" not in response.read().decode()


def test_a_form_value_of_the_wrong_shape_is_a_clear_400_not_a_crash(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    act(running, {"type": "send", "channel": registry, "text": "/shepherd new"})
    modal = open_modal(running)
    for value in (5, True):
        status, answer = act(
            running, {"type": "submit_view", "view_id": modal["id"], "values": {"q:data_sources": value}}
        )
        assert status == 400, answer
        assert "takes a list" in answer["error"]


def test_a_reply_to_a_message_that_is_not_there_is_refused_and_not_kept(running: RunningPlayground) -> None:
    registry = running.playground.registry.id
    status, answer = act(
        running, {"type": "send", "channel": registry, "text": "orphan reply", "thread_ts": "1.000001"}
    )
    assert status == 400 and "message_not_found" in answer["error"]
    assert "orphan reply" not in [m["text"] for m in get_state(running)["messages"][registry]]


def test_a_move_posted_by_another_website_is_refused_and_not_made(running: RunningPlayground) -> None:
    # Any page the visitor opens may POST here; a text/plain body needs no CORS preflight.
    registry = running.playground.registry.id
    move = {"type": "send", "channel": registry, "text": "hello from evil.example"}
    simple = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://evil.example"}
    status, answer = act(running, move, headers=simple)
    assert status == 415 and "application/json" in answer["error"], answer
    status, answer = act(running, move, headers={"Origin": "http://evil.example"})
    assert status == 403 and "http://evil.example" in answer["error"], answer
    assert get_state(running)["messages"][registry] == []

    # The page's own fetch: JSON, from its own origin.
    status, _ = act(running, {**move, "text": "hello from the page"}, headers={"Origin": running.url})
    assert status == 200
    assert [m["text"] for m in get_state(running)["messages"][registry]] == ["hello from the page"]


def test_a_site_rebound_to_the_playground_address_can_neither_read_nor_act(
    running: RunningPlayground,
) -> None:
    # DNS rebinding: evil.example now resolves to 127.0.0.1, so the browser calls it same-origin.
    registry = running.playground.registry.id
    port = running.url.rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    state = urllib.request.Request(f"{running.url}/api/state", headers=rebound)
    status, answer = status_of(state)
    assert status == 403 and "evil.example" in answer["error"], answer
    move = {"type": "send", "channel": registry, "text": "hello from evil.example"}
    status, answer = act(running, move, headers=rebound)
    assert status == 403, answer
    assert get_state(running)["messages"][registry] == []

    local = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    assert status_of(urllib.request.Request(f"{running.url}/api/state", headers=local))[0] == 200
    assert act(running, {**move, "text": "hello from localhost"}, headers=local)[0] == 200
