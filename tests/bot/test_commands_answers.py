"""`/shepherd` subcommands answered in the ack: what a person sees for odd input, long lists, an
unreachable database, and text as Slack sends it with escaping on (``should_escape: true``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot import ids, parse
from bot.blocks.text import MAX_MESSAGE_TEXT
from bot.emulator import payloads
from bot.emulator.webapi import FakeSlackWebAPI
from bot.manifest import manifest
from gates import usecases
from tests.bot.scenario import REPO, Workspace, only_ref, register_low_risk, running_workspace, workspace_of
from tests.fakes.openai_stub import OpenAIStub

OWNER, SPONSOR, ADMIN, OTHER = "U0OWNER01", "U0SPONS01", "U0ADMIN01", "U0OTHER01"
PEOPLE = {OWNER: "olivia", SPONSOR: "sam", ADMIN: "ada", OTHER: "otto"}
DATABASE_DOWN = "Shepherd can't reach its database right now"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite; ADMIN is a role admin, SPONSOR holds the sponsor role."""
    with workspace_of(PEOPLE, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], ADMIN, ws.clock()
        )
        yield ws


def typed(text: str) -> str:
    """``text`` as Slack sends it once someone has typed it, picking people with @."""
    return payloads.escaped_command_text(text, {name: user for user, name in PEOPLE.items()})


def says(ws: Workspace, user: str, text: str) -> str:
    """The text of the command's answer, after the fake Slack accepted it."""
    response = ws.command(user, text)
    assert response.status == 200, response.text
    return str(response.text)


def holders(ws: Workspace, role: str) -> list[str]:
    with ws.services.read_uow() as uow:
        return usecases.role_holders(ws.services.pipeline, uow)[role]


@contextmanager
def unreachable_database(ws: Workspace) -> Iterator[None]:
    """The SQLite file cannot be opened (a directory stands where it was): a real driver error,
    "unable to open database file", until the block ends and the file is back."""
    database = ws.services.database
    path = Path(str(database.url.database))
    aside = path.parent / "aside"
    aside.mkdir()
    database.engine.dispose()  # pooled connections would keep the old file open
    files = list(path.parent.glob(path.name + "*"))
    for file in files:
        file.rename(aside / file.name)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        for file in files:
            (aside / file.name).rename(file)
        database.engine.dispose()


def command_now(ws: Workspace, user: str, text: str) -> Any:
    """A signed slash command whose answer Slack shows; unlike ``ws.command`` the inbox is not
    drained after it (the inbox lives in the database that is down)."""
    payload = payloads.slash_command(
        ids.COMMAND,
        text,
        user_id=user,
        channel_id=ws.registry,
        trigger_id=ws.api.mint_trigger_id(user),
        response_url=ws.api.response_url(ws.registry, user),
    )
    response = ws.client.send(payload)
    if response.status == 200:
        shown = ws.api.apply_command_response(ws.registry, user, response.body)
        assert shown is None or shown.get("ok"), shown
    return response


# -- the database is down ---------------------------------------------------------------------


def test_commands_answered_in_the_ack_say_the_database_is_down_instead_of_failing(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    commands = [
        (OWNER, f"status {ref}"),
        (OWNER, "status"),
        (OWNER, f"hold {ref} Budget freeze"),
        (OWNER, f"resume {ref}"),
        (OWNER, f"retire {ref} Replaced"),
        (OWNER, f"withdraw {ref}"),
        (ADMIN, "roles"),
        (ADMIN, f"roles set risk <@{OTHER}|otto>"),
        (ADMIN, "roles clear sponsor"),
    ]
    with unreachable_database(ws):
        for user, text in commands:
            response = command_now(ws, user, text)
            # A server error would show Slack's own "/shepherd failed".
            assert response.status == 200, text
            assert DATABASE_DOWN in response.text, (text, response.text)
            assert "sqlite" not in response.text  # the database's address is for the log

        # A question about an initiative is acknowledged at once; the answer that follows says why
        # it cannot look the initiative up.
        def told() -> int:
            return len([e for e in ws.api.state.ephemerals if DATABASE_DOWN in str(e.get("text"))])

        before = told()
        assert command_now(ws, OWNER, f"ask what does {ref} need next?").status == 200
        ws.wait(lambda: told() > before)
    # Nothing changed, and the same commands work again once the database is back.
    assert holders(ws, "sponsor") == [SPONSOR] and holders(ws, "risk") == []
    assert ref in says(ws, OWNER, f"status {ref}")
    assert "Role holders" in says(ws, ADMIN, "roles")


def test_healthz_answers_503_while_the_database_is_unreachable(workspace: Workspace) -> None:
    """A probe (a load balancer, Kubernetes) must see what every command sees: the database is
    down. /healthz used to answer 200 whatever the database did."""
    health = workspace.client.endpoint_url.removesuffix("/slack/events") + "/healthz"
    assert httpx.get(health).json() == {"ok": True, "pipeline": workspace.services.pipeline.version}
    with unreachable_database(workspace):
        down = httpx.get(health)
    assert down.status_code == 503
    assert down.json() == {"ok": False, "reason": "the database cannot be reached"}
    assert httpx.get(health).status_code == 200  # back once the database is


def test_healthz_answers_while_every_listener_thread_is_busy(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy moment (every listener thread taken by a slow ack) is not a database outage: the
    probe used to queue behind the acks and answer 503 "the database did not answer within
    0.8 s", so a load balancer took Shepherd out of service just as people were using it."""
    ws = workspace
    health = ws.client.endpoint_url.removesuffix("/slack/events") + "/healthz"
    inside, release = threading.Event(), threading.Event()
    read_uow = ws.services.read_uow

    def slow_read_uow() -> Any:
        inside.set()
        release.wait(30)
        return read_uow()

    monkeypatch.setattr(ws.services, "read_uow", slow_read_uow)
    with ThreadPoolExecutor(1) as pool:
        status = pool.submit(ws.command, OWNER, "status")  # SQLite: the one listener thread
        try:
            assert inside.wait(10)
            probe = httpx.get(health, timeout=10)
        finally:
            release.set()
        assert status.result().status == 200
    assert probe.status_code == 200, probe.text
    assert probe.json() == {"ok": True, "pipeline": ws.services.pipeline.version}


# -- /shepherd status --------------------------------------------------------------------------


def test_status_lists_the_newest_initiatives_first_within_slacks_limit_and_says_how_many_more(
    workspace: Workspace,
) -> None:
    ws = workspace
    name = ("<!channel> & R&D forecasting " * 10)[:200]  # escaping makes it longer still
    refs = [register_low_risk(ws, OWNER, SPONSOR, name=name) for _ in range(25)]
    text = says(ws, OWNER, "status")
    assert len(text) <= MAX_MESSAGE_TEXT
    assert "<!channel>" not in text
    listed = [line.split("*")[1] for line in text.splitlines() if line.startswith("• *")]
    assert listed == refs[::-1][: len(listed)] and len(listed) >= 10
    assert f"and {25 - len(listed)} more" in text and "Home tab" in text


def test_status_of_a_few_initiatives_lists_them_all_without_a_pointer(workspace: Workspace) -> None:
    refs = [register_low_risk(workspace, OWNER, SPONSOR, name=f"Forecast {n}") for n in range(2)]
    text = says(workspace, OWNER, "status")
    assert text.index(refs[1]) < text.index(refs[0])
    assert "more" not in text and "Home tab" not in text


def test_status_lists_the_initiatives_a_person_sponsors_too(workspace: Workspace) -> None:
    """A sponsor who registered an initiative on its owner's behalf finds it in their list,
    rather than being told they have none."""
    ws = workspace
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())

    def registered(name: str, owner: str, sponsor: str) -> str:
        services = ws.services
        initiative = usecases.register(
            services.pipeline,
            services.uow(),
            name=name,
            owner_id=owner,
            answers=answers | {"business_sponsor": sponsor, "initiative_owner": owner},
            actor_id=SPONSOR,
            now=ws.clock(),
            sponsor_id=sponsor,  # as the registration form names them
        )
        assert initiative is not None
        return initiative.ref

    theirs = registered("Invoice triage", OWNER, SPONSOR)
    own = registered("Sponsor's own", SPONSOR, OTHER)
    elsewhere = registered("Not theirs", OWNER, OTHER)
    text = says(ws, SPONSOR, "status")
    assert f"*{own}* Sponsor's own" in text
    assert f"*{theirs}* Invoice triage" in text and "you sponsor it" in text.split(theirs)[1].split("\n")[0]
    assert elsewhere not in text
    assert "you sponsor it" not in says(ws, OWNER, "status")
    assert "You own or sponsor no initiatives yet" in says(ws, ADMIN, "status")


@pytest.mark.parametrize(
    "argument",
    ["<!channel>", "<@U0OWNER01|olivia>", "x" * 5000, "R&amp;D"],
)
def test_status_of_something_that_is_not_a_reference_echoes_it_escaped_and_short(
    workspace: Workspace, argument: str
) -> None:
    text = says(workspace, OWNER, f"status {argument}")
    assert "is not an initiative reference" in text and "/shepherd status AI-0001" in text
    assert "<!" not in text and "<@" not in text and "&amp;amp;" not in text
    assert len(text) < 300


def test_status_with_more_than_a_reference_gets_a_usage_hint(workspace: Workspace) -> None:
    ref = register_low_risk(workspace, OWNER, SPONSOR)
    text = says(workspace, OWNER, f"status {ref} please")
    assert text.startswith("Usage:") and "PLEASE" not in text
    assert ref in says(workspace, OWNER, f"status {ref.lower()},")


def test_a_reference_alone_answers_as_status_does(workspace: Workspace) -> None:
    """`/shepherd AI-0001` is what people type to look one up: it is its status, not an unknown
    command echoing the reference lower-cased."""
    ref = register_low_risk(workspace, OWNER, SPONSOR)
    text = says(workspace, OWNER, ref)
    assert "I don't know" not in text and ref.lower() not in text
    assert text == says(workspace, OWNER, f"status {ref}")
    assert says(workspace, OWNER, f"{ref.lower()},") == text


def test_status_lists_stages_by_the_names_the_cards_show(workspace: Workspace) -> None:
    ref = register_low_risk(workspace, OWNER, SPONSOR)
    text = says(workspace, OWNER, "status")
    assert f"*{ref}* Spare-parts demand forecast: Idea, active" in text  # the card says "Stage: Idea"


def test_status_changes_echo_no_raw_reference(workspace: Workspace) -> None:
    text = says(workspace, OWNER, "hold <!channel> because")
    assert "<!" not in text and "/shepherd hold AI-0001 REASON" in text


# -- escaped text -------------------------------------------------------------------------------


def test_the_manifest_asks_slack_to_escape_command_text() -> None:
    """Without it Slack sends a person picked with @ as plain "@sam", which no one can resolve."""
    assert manifest()["features"]["slash_commands"][0]["should_escape"] is True


def test_a_reason_is_stored_as_typed_and_shown_escaped_once(workspace: Workspace) -> None:
    ws = workspace
    ref = register_low_risk(ws, OWNER, SPONSOR)
    sent = typed(f"hold {ref} R&D budget <frozen> until @sam decides")
    assert sent.endswith(f"R&amp;D budget &lt;frozen&gt; until <@{SPONSOR}|sam> decides")
    text = says(ws, OWNER, sent)
    assert "R&amp;D budget &lt;frozen&gt; until @sam decides" in text
    with ws.services.read_uow() as uow:
        assert uow.initiatives.get(ref).status_reason == "R&D budget <frozen> until @sam decides"


def test_an_asked_question_reaches_the_llm_as_typed(tmp_path: Path) -> None:
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with (
        OpenAIStub(reply="The sponsor signs off [1].") as llm,
        api,
        running_workspace(
            api, tmp_path / "data", openai_base_url=llm.base_url, openai_api_key="local", llm_model="stub"
        ) as ws,
    ):
        assert ws.command(OWNER, typed("ask who signs off the handover for R&D <pilots>?")).status == 200
        ws.wait(lambda: llm.chat_requests)
        sent = str(llm.chat_requests[-1]["messages"])
        assert "R&D <pilots>" in sent and "&amp;" not in sent


def test_command_text_reads_slacks_tokens_and_entities() -> None:
    assert parse.command_text("R&amp;D &lt;b&gt; for <@U0SPONS01|sam> in <#C0REG|registry>") == (
        "R&D <b> for @sam in #registry"
    )
    assert parse.command_text("see <https://example.com/a?b=1&amp;c=2> or <!here>") == (
        "see https://example.com/a?b=1&c=2 or @here"
    )
    assert parse.command_text("50% plain") == "50% plain"


# -- /shepherd roles ------------------------------------------------------------------------------


def test_role_admin_names_holders_as_slack_sends_picked_people(workspace: Workspace) -> None:
    ws = workspace
    reply = says(ws, ADMIN, typed("roles set sponsor @sam, @otto"))
    assert reply == f"*sponsor* is now held by <@{SPONSOR}> <@{OTHER}>."
    assert holders(ws, "sponsor") == [SPONSOR, OTHER]
    assert "is now held by" in says(ws, ADMIN, typed("roles SET Sponsor @otto"))
    assert holders(ws, "sponsor") == [OTHER]


def test_setting_a_role_to_nobody_is_refused_and_clear_removes_the_holders(workspace: Workspace) -> None:
    ws = workspace
    reply = says(ws, ADMIN, "roles set sponsor")
    assert "/shepherd roles clear sponsor" in reply
    assert holders(ws, "sponsor") == [SPONSOR]
    assert "no holders" in says(ws, ADMIN, "roles clear sponsor")
    assert holders(ws, "sponsor") == []
    assert "roles clear ROLE" in says(ws, ADMIN, "roles")


@pytest.mark.parametrize(
    ("people", "named"),
    [
        ("@sam", "“@sam”"),  # what Slack sent while the command did not escape
        (typed("@nobody"), "“@nobody”"),
        (f"{SPONSOR} WALTER", "“WALTER”"),
        (typed("@channel"), "“@channel”"),
    ],
)
def test_what_is_not_a_person_is_named_without_an_internal_prefix(
    workspace: Workspace, people: str, named: str
) -> None:
    reply = says(workspace, ADMIN, f"roles set sponsor {people}")
    assert reply.startswith(f"{named} is not someone Shepherd can recognise")
    assert holders(workspace, "sponsor") == [SPONSOR]


def test_an_unknown_role_is_echoed_escaped(workspace: Workspace) -> None:
    reply = says(workspace, ADMIN, typed("roles set @channel @sam"))
    assert "no role called '@channel'" in reply and "Known roles: sponsor" in reply


def test_the_role_list_of_a_large_organisation_fits_one_message_with_its_usage(workspace: Workspace) -> None:
    ws = workspace
    roles = list(ws.services.pipeline.model.roles)
    for n, role in enumerate(roles):
        people = [f"U{n:02d}{i:07d}" for i in range(120)]
        usecases.set_role_holders(ws.services.pipeline, ws.services.uow(), role, people, ADMIN, ws.clock())
    reply = says(ws, ADMIN, "roles")
    assert len(reply) <= MAX_MESSAGE_TEXT
    assert reply.startswith("Role holders:") and "more" in reply
    assert reply.endswith("names its holders; `/shepherd roles clear ROLE` removes them.")


def test_status_names_a_criterion_whose_list_index_is_past_the_end(tmp_path: Path) -> None:
    """A lookup table indexed by a number answer loads, then a score of 5 (past its end) made
    every status, card and submit of the initiative fail with an HTTP 500."""
    gate = {
        "id": "intake",
        "from": "idea",
        "to": "poc",
        "questions": [{"id": "score", "label": "Risk score (0-2)", "type": "number"}],
        "criteria": [
            {
                "id": "not_high",
                "rule": '["low", "medium", "high"][int(answers.score)] != "high"',
                "explain": "Not high",
            }
        ],
        "approvals": [{"role": "sponsor"}],
    }
    definition = {"version": 1, "stages": ["idea", "poc"], "roles": {"sponsor": {}}, "gates": [gate]}
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(definition), encoding="utf-8")
    with workspace_of(PEOPLE, tmp_path / "data", pipeline=pipeline) as ws:
        usecases.register(
            ws.services.pipeline, ws.services.uow(), name="P", owner_id=OWNER, answers={}, actor_id=OWNER,
            now=ws.clock(),
        )  # fmt: skip
        ws.deliver()
        card = ws.messages_in(ws.registry)[0]
        view = ws.opened_view(lambda: ws.click(OWNER, card, ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        ws.submit_view(OWNER, view, {ids.question_block_id("score"): "5"})
        ws.deliver()
        ref = only_ref(ws)
        response = ws.command(OWNER, f"status {ref}")
        assert response.status == 200, response.text
        assert "Not high" in str(response.text)


# -- what help says -----------------------------------------------------------------------------

# Every subcommand `/shepherd` answers, and what a person types to use it.
SUBCOMMANDS = {
    "new": "new",
    "status": "status [REF]",
    "ask": "ask QUESTION",
    "withdraw": "withdraw REF",
    "hold": "hold REF REASON",
    "resume": "resume REF",
    "retire": "retire REF REASON",
    "roles": "roles",
    "portfolio": "portfolio",
    "help": "help",
}


def test_help_and_the_usage_hint_name_every_subcommand_and_each_one_named_exists(
    workspace: Workspace,
) -> None:
    """What `/shepherd help` and Slack's hint under the command (the manifest's usage_hint) name
    is what there is: a person reading either finds every subcommand, none answers "I don't
    know", and looking one up by its ref alone (`/shepherd AI-0001`) is said too."""
    ref = register_low_risk(workspace, OWNER, SPONSOR)
    response = workspace.command(OWNER, "help")
    assert response.status == 200
    answer = json.loads(response.text)
    shown = " ".join(block["text"]["text"] for block in answer["blocks"] if "text" in block)
    shown += " ".join(e["text"] for b in answer["blocks"] if b["type"] == "context" for e in b["elements"])
    hint = manifest()["features"]["slash_commands"][0]["usage_hint"]
    for name, usage in SUBCOMMANDS.items():
        assert f"`{ids.COMMAND} {usage}`" in shown, usage
        assert name in answer["text"], name  # the notification's text too
        assert name in hint.split(), (name, hint)
        # Asked by someone who is no governance lead: `portfolio` is refused, not unknown.
        assert "I don't know" not in says(workspace, OTHER, name)
    workspace.api.wait_for("views.open", timeout=10)  # `new` opened the form, after the ack
    assert f"`{ids.COMMAND} AI-0001`" in shown
    assert ref in says(workspace, OWNER, ref)
