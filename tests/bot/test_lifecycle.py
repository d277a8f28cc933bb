"""The whole route in Slack, through the real protocols: register, ask, submit, decide, advance.

Every request is a signed HTTP request into the running app; every Slack call the bot makes goes
to the emulator through the real WebClient. Assertions read the emulator's transcript (what a
person would see) and the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import ids
from bot.emulator import payloads
from bot.emulator.webapi import FakeSlackWebAPI
from gates import usecases
from gates.lifecycle import ReviewStatus
from tests.bot.blockkit_checks import assert_valid_message
from tests.bot.scenario import Workspace, find_button, has_button, running_workspace

REPO = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"
RISK = "U0RISK001"
OUTSIDER = "U0OUTSIDE"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with a registry channel, an owner, a sponsor and an outsider."""
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (RISK, "rafael"), (OUTSIDER, "oscar")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN01", ws.clock()
        )
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "risk", [RISK], "U0ADMIN01", ws.clock()
        )
        yield ws


def intake_values() -> dict[str, Any]:
    answers = yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())
    answers["business_sponsor"] = SPONSOR
    answers["initiative_owner"] = OWNER
    values: dict[str, Any] = {ids.NAME_BLOCK: "Spare-parts demand forecast"}
    for qid, value in answers.items():
        values[ids.question_block_id(qid)] = (
            [str(v) for v in value] if isinstance(value, list) else str(value)
        )
    return values


def register(ws: Workspace) -> str:
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    response = ws.submit_view(OWNER, view, intake_values())
    assert response.status == 200, response.text
    assert response.text in ("", "{}"), f"modal refused: {response.text}"
    initiatives = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    assert len(initiatives) == 1
    ws.deliver()
    return initiatives[0].ref


def card(ws: Workspace) -> dict[str, Any]:
    return ws.messages_in(ws.registry)[0]


def submit(ws: Workspace, ref: str) -> None:
    """The owner clicks Submit for review on the card; the review opens (after the ack)."""
    assert ws.click(OWNER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW).status == 200
    ws.wait(lambda: _open_review(ws, ref))


def request_dm(ws: Workspace, user: str) -> dict[str, Any]:
    messages = [m for m in ws.messages_in(ws.dm_with(user)) if has_button(m, ids.ACTION_VIEW_EVIDENCE)]
    assert messages, f"{user} got no review request"
    return messages[-1]


def test_registering_posts_a_card_and_tells_the_owner_what_is_next(workspace: Workspace) -> None:
    ref = register(workspace)
    posted = card(workspace)
    assert ref in str(posted["blocks"]) and "Spare-parts demand forecast" in str(posted["blocks"])
    assert has_button(posted, ids.ACTION_SUBMIT_REVIEW)
    welcome = workspace.messages_in(workspace.dm_with(OWNER))
    assert any(ref in m.get("text", "") for m in welcome)


def test_registering_on_someones_behalf_makes_the_named_owner_the_owner(workspace: Workspace) -> None:
    ws = workspace
    view = ws.opened_view(lambda: ws.command(RISK, "new"))
    response = ws.submit_view(RISK, view, intake_values())  # initiative owner: OWNER
    assert response.status == 200 and response.text in ("", "{}")
    initiative = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())[0]
    assert (initiative.owner_id, initiative.sponsor_id) == (OWNER, SPONSOR)
    ws.deliver()
    [welcome] = ws.messages_in(ws.dm_with(OWNER))
    assert initiative.ref in welcome["text"]
    # The owner did not register it: the welcome says who did, rather than "You registered".
    assert "You registered" not in welcome["text"]
    assert f"<@{RISK}> registered *Spare-parts demand forecast* as {initiative.ref}" in welcome["text"]
    # Whoever registered it is told it went through, with its reference and card, as the owner
    # is (they saw the form close and nothing else).
    [confirmation] = ws.messages_in(ws.dm_with(RISK))
    link = ws.api.methods.permalink(ws.registry, card(ws)["ts"])
    assert confirmation["text"].startswith(
        f"You registered *Spare-parts demand forecast* as {initiative.ref} for <@{OWNER}>"
    )
    assert f"Its card is here: {link}" in confirmation["text"]
    with ws.services.read_uow() as uow:
        entry = next(e for e in uow.audit.timeline(initiative.ref) if e.action.endswith("registered"))
    assert entry.actor_id == RISK  # who registered it stays on the record


@pytest.mark.parametrize(
    ("question", "account", "said"),
    [
        ("initiative_owner", {"is_bot": True}, "is a bot"),
        ("initiative_owner", {"deleted": True}, "is deactivated"),
        ("business_sponsor", {"is_bot": True}, "is a bot"),
    ],
)
def test_registering_with_a_bot_or_a_deactivated_account_as_owner_or_sponsor_is_refused_in_the_form(
    workspace: Workspace, question: str, account: dict[str, bool], said: str
) -> None:
    """Nobody could ever be told about, or act on, an initiative owned by an account Slack cannot
    message, and nothing changes an owner afterwards: the form says so while it can be fixed."""
    ws = workspace
    ws.api.state.add_user("U0NOBODY1", "nobody", **account)
    values = intake_values() | {ids.question_block_id(question): "U0NOBODY1"}
    view = ws.opened_view(lambda: ws.command(RISK, "new"))
    response = ws.submit_view(RISK, view, values)
    assert response.status == 200
    answer = json.loads(response.text)
    assert answer["response_action"] == "errors"
    assert said in answer["errors"][ids.question_block_id(question)]
    assert not usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    # Someone who can be reached, named instead, registers it.
    assert ws.submit_view(RISK, view, intake_values()).text in ("", "{}")
    assert len(usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())) == 1


def test_registering_while_slack_cannot_say_who_the_owner_is_goes_through(workspace: Workspace) -> None:
    ws = workspace
    ws.api.faults.fail("users.info", "internal_error", times=None)  # the check is skipped
    view = ws.opened_view(lambda: ws.command(RISK, "new"))
    assert ws.submit_view(RISK, view, intake_values()).text in ("", "{}")
    assert len(usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())) == 1


def test_the_welcome_says_what_is_next_from_what_the_intake_form_answered(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)  # every intake question answered: the gate is ready for review
    [welcome] = ws.messages_in(ws.dm_with(OWNER))
    assert "answer the *Intake* questionnaire" not in welcome["text"]
    assert "\nNext: the *Intake* questions are all answered: submit it for review." in welcome["text"]

    # Registered with two required answers left out: the welcome counts them.
    values = intake_values()
    del values[ids.question_block_id("primary_kpi")], values[ids.question_block_id("poc_duration_weeks")]
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    assert ws.submit_view(OWNER, view, values).text in ("", "{}")
    ws.deliver()
    later = [m["text"] for m in ws.messages_in(ws.dm_with(OWNER)) if ref not in m["text"]]
    assert len(later) == 1
    assert (
        "\nNext: answer the *Intake* questionnaire (2 required questions left), then submit it for review."
        in later[0]
    )


def test_an_intake_form_sent_twice_registers_one_initiative(workspace: Workspace) -> None:
    ws = workspace
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    # Slack sends the same form again when its first answer came late and the person, seeing
    # the form fail, pressed Register again.
    for _ in range(2):
        response = ws.submit_view(OWNER, view, intake_values())
        assert response.status == 200 and response.text in ("", "{}"), response.text
    [initiative] = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    ws.deliver()
    assert len(ws.messages_in(ws.registry)) == 1  # one card
    assert len(ws.messages_in(ws.dm_with(OWNER))) == 1  # one welcome

    # A new form, opened with the command again, registers a new initiative.
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    ws.submit_view(OWNER, view, intake_values())
    refs = [
        i.ref for i in usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
    ]
    assert refs == [initiative.ref, "AI-0002"]


def people_pipeline(tmp_path: Path, **named: str) -> Path:
    """A one-gate pipeline whose intake asks for a lead, the data owner and a funder (all people)."""
    path = tmp_path / "people.yaml"
    questions = [
        {"id": "summary", "label": "Summary"},
        {"id": "lead", "label": "Who leads it?", "type": "user"},
        {"id": "data_owner", "label": "Who owns the data?", "type": "user"},
        {"id": "funder", "label": "Who funds it?", "type": "user"},
    ]
    gate = {
        "id": "intake",
        "from": "idea",
        "to": "poc",
        "questions": questions,
        "approvals": [{"role": "sponsor"}],
    }
    definition = {"version": 1, "stages": ["idea", "poc"], "roles": {"sponsor": {}}, "gates": [gate], **named}
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("named", "owner", "sponsor"),
    [
        ({}, OWNER, None),  # "data_owner" is about the data: whoever registers owns the initiative
        ({"owner_question": "lead", "sponsor_question": "funder"}, RISK, SPONSOR),
    ],
)
def test_only_the_pipelines_owner_and_sponsor_questions_name_them(
    tmp_path: Path, named: dict[str, str], owner: str, sponsor: str | None
) -> None:
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (RISK, "rafael"), (OUTSIDER, "oscar")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data", pipeline=people_pipeline(tmp_path, **named)) as ws:
        view = ws.opened_view(lambda: ws.command(OWNER, "new"))
        answers = {"lead": RISK, "data_owner": OUTSIDER, "funder": SPONSOR}
        values = {ids.NAME_BLOCK: "Forecast"} | {ids.question_block_id(q): v for q, v in answers.items()}
        response = ws.submit_view(OWNER, view, values)
        assert response.status == 200 and response.text in ("", "{}"), response.text
        [initiative] = usecases.list_initiatives(ws.services.pipeline, ws.services.read_uow(), ws.clock())
        assert (initiative.owner_id, initiative.sponsor_id) == (owner, sponsor)
        ws.deliver()
        assert any(initiative.ref in m.get("text", "") for m in ws.messages_in(ws.dm_with(owner)))
        assert not ws.messages_in(ws.dm_with(OUTSIDER))  # the data owner is not welcomed as its owner


def test_a_forged_or_stale_request_is_refused_and_changes_nothing(workspace: Workspace) -> None:
    payload = payloads.slash_command(ids.COMMAND, "new", user_id=OWNER, channel_id=workspace.registry)
    assert workspace.client.send(payload, signing="forged").status == 401
    assert workspace.client.send(payload, signing="unsigned").status == 401
    assert workspace.client.send(payload, signing="stale").status == 401
    assert not workspace.api.calls("views.open")


def test_intake_modal_shows_field_errors_and_records_nothing(workspace: Workspace) -> None:
    view = workspace.opened_view(lambda: workspace.command(OWNER, "new"))
    values = intake_values()
    values[ids.question_block_id("poc_duration_weeks")] = "400"
    response = workspace.submit_view(OWNER, view, values)
    body = response.json()
    assert body["response_action"] == "errors"
    assert ids.question_block_id("poc_duration_weeks") in body["errors"]
    assert not usecases.list_initiatives(
        workspace.services.pipeline, workspace.services.read_uow(), workspace.clock()
    )


def test_mention_in_the_thread_answers_with_this_initiatives_checklist(workspace: Workspace) -> None:
    ref = register(workspace)
    thread = card(workspace)["ts"]
    assert (
        workspace.mention(OWNER, "what do we need for the next gate?", workspace.registry, thread).status
        == 200
    )
    workspace.api.wait_for("chat.update", count=1, timeout=10)
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if "Looking" not in m.get("text", "")
        ]
    )[-1]
    assert "approv" in str(reply["blocks"]).lower()
    assert has_button(reply, ids.ACTION_FEEDBACK_HELPFUL)
    assert ref


def test_retried_event_is_answered_once(workspace: Workspace) -> None:
    register(workspace)
    thread = card(workspace)["ts"]
    workspace.mention(OWNER, "what is missing?", workspace.registry, thread, event_id="Ev0RETRY1")
    # Slack's redelivery: the same envelope, with X-Slack-Retry-Num and its reason.
    event = payloads.app_mention_event(
        f"<@{workspace.api.state.bot_user_id}> what is missing?",
        user_id=OWNER,
        channel_id=workspace.registry,
        thread_ts=thread,
    )
    again = workspace.client.send_event(
        payloads.event_callback(event, event_id="Ev0RETRY1"), retry_num=1, retry_reason="http_timeout"
    )
    assert again.status == 200
    workspace.api.wait_for("chat.update", count=1, timeout=10)
    placeholders = [c for c in workspace.api.calls("chat.postMessage") if c.params.get("thread_ts") == thread]
    assert len(placeholders) == 1


def test_request_changes_then_approval_advances_the_stage_once(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)

    # Submit for review: the sponsor is asked in the thread and by DM, with buttons.
    submit(ws, ref)
    ws.deliver()
    request = request_dm(ws, SPONSOR)
    assert has_button(request, ids.ACTION_APPROVE)

    # The owner cannot approve their own gate; the attempt is explained and audited.
    ws.click(OWNER, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.deliver()
    assert any("separation of duties" in c.params.get("text", "") for c in ws.api.calls("chat.postEphemeral"))
    with ws.services.read_uow() as uow:
        assert any(e.action == "decision.refused" for e in uow.audit.timeline(ref))

    # An outsider holds no role: refused too.
    ws.click(OUTSIDER, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.deliver()
    assert any(
        "hold none of the roles" in c.params.get("text", "") for c in ws.api.calls("chat.postEphemeral")
    )

    # The sponsor requests changes: a reason is required, then the buttons disappear.
    reason_view = ws.opened_view(
        lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REQUEST_CHANGES)
    )
    assert reason_view["callback_id"] == ids.VIEW_REASON
    assert (
        ws.submit_view(SPONSOR, reason_view, {ids.REASON_BLOCK: "   "}).json()["response_action"] == "errors"
    )
    assert (
        ws.submit_view(SPONSOR, reason_view, {ids.REASON_BLOCK: "Baseline period is too short."}).status
        == 200
    )
    ws.deliver()
    assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
    assert _reviews(ws, ref)[-1].status is ReviewStatus.CHANGES_REQUESTED

    # The owner updates an answer through the questionnaire and submits again.
    questionnaire = ws.opened_view(
        lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE)
    )
    assert questionnaire["callback_id"] == ids.VIEW_QUESTIONNAIRE
    qid = ids.question_block_id("poc_duration_weeks")
    while qid not in str(questionnaire["blocks"]):
        response = ws.submit_view(OWNER, questionnaire, {}).json()
        questionnaire = response["view"]
    response = ws.submit_view(OWNER, questionnaire, {qid: "10"})
    assert response.status == 200
    submit(ws, ref)
    ws.deliver()

    # The sponsor approves twice (a double click): one decision, one stage change.
    second = request_dm(ws, SPONSOR)
    ws.click(SPONSOR, second, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.click(SPONSOR, second, ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.deliver()
    reviews = _reviews(ws, ref)
    assert [r.status for r in reviews] == [ReviewStatus.CHANGES_REQUESTED, ReviewStatus.APPROVED]
    assert len(reviews[-1].decisions) == 1
    with ws.services.read_uow() as uow:
        initiative = uow.initiatives.get(ref)
        advanced = [e for e in uow.audit.timeline(ref) if e.action == "stage.advanced"]
    assert initiative.stage == "poc" and len(advanced) == 1
    assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
    assert "poc" in str(card(ws)["blocks"]).lower()
    thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
    assert any(has_button(m, ids.ACTION_OPEN_QUESTIONNAIRE) for m in thread[1:]), "next gate not offered"


def test_an_answer_that_reveals_questions_shows_them_before_the_modal_closes(workspace: Workspace) -> None:
    ws = workspace
    register(ws)
    questionnaire = ws.opened_view(
        lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE)
    )
    sensitive, told = (
        ids.question_block_id("special_category_data"),
        ids.question_block_id("privacy_contacted"),
    )
    assert sensitive not in str(questionnaire["blocks"])  # personal data: "no" at intake
    response = ws.submit_view(OWNER, questionnaire, {ids.question_block_id("personal_data"): "yes"})
    assert response.status == 200
    body = response.json()
    assert body["response_action"] == "update"
    shown = [block.get("block_id") for block in body["view"]["blocks"]]
    assert sensitive in shown and told in shown  # the same page again, now with the questions it reveals
    assert json.loads(body["view"]["private_metadata"])["page"] == 0
    closed = ws.submit_view(OWNER, body["view"], {sensitive: "no", told: "yes"})
    assert closed.status == 200 and closed.text in ("", "{}")  # nothing more to ask: it closes


def test_a_questionnaire_page_names_every_answer_that_does_not_fit_and_records_none(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register(ws)
    with ws.services.read_uow() as uow:
        before = uow.answers.current(ref)
    questionnaire = ws.opened_view(
        lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE)
    )
    kpi, improvement, weeks = (
        ids.question_block_id("primary_kpi"),
        ids.question_block_id("target_improvement_pct"),
        ids.question_block_id("poc_duration_weeks"),
    )
    response = ws.submit_view(OWNER, questionnaire, {kpi: "x" * 151, improvement: "5000", weeks: "6"})
    assert response.status == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {kpi, improvement}  # both named at once; the week count fits
    with ws.services.read_uow() as uow:
        assert uow.answers.current(ref) == before  # not even the answer that fitted


def test_only_the_owner_the_sponsor_or_a_steward_can_submit_for_review(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    assert ws.click(OUTSIDER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any("can submit it for review" in str(c.params) for c in ws.api.calls("chat.postEphemeral"))
        )
    )
    assert _open_review(ws, ref) is None
    assert not [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_APPROVE)]
    submit(ws, ref)  # the owner can
    assert _reviews(ws, ref)[-1].submitted_by == OWNER


def test_the_owner_hears_the_outcome_of_a_review_the_sponsor_submitted(workspace: Workspace) -> None:
    ws = workspace
    second = "U0SPONS02"
    ws.api.state.add_user(second, "sara")
    usecases.set_role_holders(
        ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR, second], "U0ADMIN01", ws.clock()
    )
    ref = register(ws)
    # The sponsor, not the owner, submits the owner's initiative; the other sponsor decides.
    assert ws.click(SPONSOR, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW).status == 200
    ws.wait(lambda: _open_review(ws, ref))
    ws.deliver()
    request = request_dm(ws, second)
    view = ws.opened_view(lambda: ws.click(second, request, ws.dm_with(second), ids.ACTION_REQUEST_CHANGES))
    assert ws.submit_view(second, view, {ids.REASON_BLOCK: "Baseline too short."}).status == 200
    ws.deliver()
    ws.deliver()  # a second delivery sends nobody anything twice
    assert _reviews(ws, ref)[-1].status is ReviewStatus.CHANGES_REQUESTED
    # Both the submitter and the owner, who has the changes to make, are told privately, once.
    for user in (SPONSOR, OWNER):
        told = [m for m in ws.messages_in(ws.dm_with(user)) if "Baseline too short." in m.get("text", "")]
        assert len(told) == 1, (user, told)


def test_a_questionnaire_page_where_nothing_applies_is_skipped_not_the_end(tmp_path: Path) -> None:
    """Three pages: the second holds only questions shown when the first page's toggle says yes."""
    questions = [{"id": "more", "label": "Is there more to tell?", "type": "yes_no"}]
    questions += [{"id": f"plain_{n:02d}", "label": f"Plain question {n}", "type": "text"} for n in range(19)]
    questions += [
        {
            "id": f"extra_{n:02d}",
            "label": f"Extra question {n}",
            "type": "text",
            "show_if": 'answers.more == "yes"',
        }
        for n in range(20)
    ]
    questions.append({"id": "closing", "label": "Anything else?", "type": "long_text"})
    pipeline = tmp_path / "pages.yaml"
    pipeline.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "stages": ["idea", "poc"],
                "roles": {"sponsor": {"label": "Sponsor"}},
                "gates": [
                    {
                        "id": "intake",
                        "from": "idea",
                        "to": "poc",
                        "questions": questions,
                        "approvals": [{"role": "sponsor", "min": 1}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        services = ws.services
        usecases.register(
            services.pipeline,
            services.uow(),
            name="Paged",
            owner_id=OWNER,
            answers={},
            actor_id=OWNER,
            now=ws.clock(),
        )
        ws.deliver()
        first = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        assert json.loads(first["private_metadata"])["page"] == 0
        answer = ws.submit_view(OWNER, first, {ids.question_block_id("more"): "no"}).json()
        assert answer["response_action"] == "update"
        assert json.loads(answer["view"]["private_metadata"])["page"] == 2  # page 2 of 3 has nothing to ask
        assert ids.question_block_id("closing") in str(answer["view"]["blocks"])
        again = ws.submit_view(OWNER, first, {ids.question_block_id("more"): "yes"}).json()
        assert json.loads(again["view"]["private_metadata"])["page"] == 1
        assert ids.question_block_id("extra_00") in str(again["view"]["blocks"])


def one_gate_pipeline(path: Path, questions: list[dict[str, Any]], sponsors: list[str] | None = None) -> Path:
    """A pipeline file of one gate, idea to poc, asking ``questions`` and approved by a sponsor."""
    gate = {
        "id": "intake",
        "from": "idea",
        "to": "poc",
        "questions": questions,
        "approvals": [{"role": "sponsor"}],
    }
    sponsor = {"slack_users": sponsors} if sponsors else {}
    definition = {"version": 1, "stages": ["idea", "poc"], "roles": {"sponsor": sponsor}, "gates": [gate]}
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    return path


def test_an_optional_yes_no_or_choice_answer_is_taken_back_with_no_answer(tmp_path: Path) -> None:
    """Slack cannot empty radio buttons or a select once something is picked: the person picks
    "No answer", and the answers are cleared, with who cleared them on the record."""
    questions = [
        {"id": "summary", "label": "Summary", "required": True},
        {"id": "vendor", "label": "Uses an external vendor?", "type": "yes_no"},
        {"id": "region", "label": "Hosting region", "type": "choice", "options": ["eu", "us"]},
    ]
    pipeline = one_gate_pipeline(tmp_path / "optional.yaml", questions)
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        services = ws.services
        initiative = usecases.register(
            services.pipeline,
            services.uow(),
            name="Forecast",
            owner_id=OWNER,
            answers={"summary": "A forecast", "vendor": "yes", "region": "eu"},
            actor_id=OWNER,
            now=ws.clock(),
        )
        ws.deliver()
        vendor, region = ids.question_block_id("vendor"), ids.question_block_id("region")
        view = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        picks = {block_id: _option_labelled(view, block_id, "No answer") for block_id in (vendor, region)}
        response = ws.submit_view(OWNER, view, picks)
        assert response.status == 200 and response.text in ("", "{}"), response.text

        with services.read_uow() as uow:
            history = [(v.question_id, v.value) for v in uow.answers.history(initiative.ref)]
            assert usecases.current_answers(uow, initiative.ref) == {
                "summary": "A forecast",
                "vendor": None,
                "region": None,
            }
        assert [entry for entry in history if entry[0] != "summary"] == [  # each question's versions in order
            ("region", "eu"),
            ("region", None),
            ("vendor", "yes"),
            ("vendor", None),
        ]
        again = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        for block_id in (vendor, region):
            element = next(b for b in again["blocks"] if b.get("block_id") == block_id)["element"]
            assert "initial_option" not in element


def _option_labelled(view: dict[str, Any], block_id: str, label: str) -> str:
    """The value of the option a person sees as ``label`` in the block's radio buttons or menu."""
    element = next(b for b in view["blocks"] if b.get("block_id") == block_id)["element"]
    found = [o["value"] for o in element.get("options", []) if o["text"]["text"] == label]
    assert found, f"{block_id} offers no {label!r}: {[o['text']['text'] for o in element.get('options', [])]}"
    return str(found[0])


def test_slack_outage_loses_no_notification_and_sends_none_twice(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.api.faults.server_error("chat.postMessage", times=None)
    assert ws.deliver() == 0
    ws.api.faults.clear()
    ws.clock.advance(minutes=20)
    assert ws.deliver() >= 1
    dms = [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_APPROVE)]
    assert len(dms) == 1
    requests = [
        m for m in ws.api.state.thread(ws.registry, card(ws)["ts"]) if has_button(m, ids.ACTION_APPROVE)
    ]
    assert len(requests) == 1
    ws.clock.advance(minutes=20)
    assert ws.deliver() == 0

    # Slack goes down again while the sponsor's approval is recorded: every call fails with 500.
    ws.api.faults.server_error(None, times=None)
    ws.click(SPONSOR, dms[0], ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    assert _reviews(ws, ref)[-1].status is ReviewStatus.APPROVED  # recorded: it needs no Slack call
    assert ws.deliver() == 0
    posted_during = len([c for c in ws.api.calls("chat.postMessage") if c.ok])
    ws.api.faults.clear()
    ws.clock.advance(minutes=20)
    assert ws.deliver() >= 1
    ws.clock.advance(minutes=20)
    assert ws.deliver() == 0  # nothing left over, nothing sent again
    # No stale button, and each outcome said once: in the thread and to the owner.
    thread = ws.api.state.thread(ws.registry, card(ws)["ts"])
    assert not [m for m in thread + ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_APPROVE)]
    for messages in (thread[1:], ws.messages_in(ws.dm_with(OWNER))):
        texts = [m.get("text", "") for m in messages]
        assert len(texts) == len(set(texts)), texts
    assert any("gave the last approval" in m.get("text", "") for m in thread)
    assert any("gave the last approval" in m.get("text", "") for m in ws.messages_in(ws.dm_with(OWNER)))
    assert len([c for c in ws.api.calls("chat.postMessage") if c.ok]) > posted_during


def _open_review(ws: Workspace, ref: str) -> Any:
    with ws.services.read_uow() as uow:
        return uow.reviews.open_for(ref)


def sponsors_by_user_group(tmp_path: Path) -> tuple[FakeSlackWebAPI, Path]:
    """The fake Slack with a sponsors user group (only SPONSOR in it), and the bundled pipeline
    changed so that its sponsor role is held through that group alone."""
    text = (REPO / "gates" / "defaults" / "pipeline.yaml").read_text(encoding="utf-8")
    sponsor = text.index("  sponsor:\n")
    text = text[:sponsor] + text[sponsor:].replace(
        "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0SPONSORS\n", 1
    )
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(text, encoding="utf-8")
    api = FakeSlackWebAPI()
    for user, name in [(OWNER, "olivia"), (SPONSOR, "sam"), (OUTSIDER, "oscar")]:
        api.state.add_user(user, name)
    api.state.add_usergroup("S0SPONSORS", "sponsors", [SPONSOR])
    return api, pipeline


def test_a_sponsor_through_a_slack_user_group_decides_and_an_outage_loses_no_click(tmp_path: Path) -> None:
    """Members of a role's user group are asked to decide, so their clicks count; when Slack
    cannot list the group, the click waits in the inbox instead of being refused."""
    api, pipeline = sponsors_by_user_group(tmp_path)
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        request = request_dm(ws, SPONSOR)  # nobody holds the role in Shepherd: only the group

        api.faults.server_error("usergroups.users.list", times=None)
        assert ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_APPROVE).status == 200
        ws.deliver()
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN
        assert not [
            m for m in ws.messages_in(ws.dm_with(SPONSOR)) if "none of the roles" in m.get("text", "")
        ]

        api.faults.clear()
        ws.click(OUTSIDER, request, ws.dm_with(OUTSIDER), ids.ACTION_APPROVE)
        ws.deliver()
        told = [m.get("text", "") for m in ws.messages_in(ws.dm_with(OUTSIDER))]
        told += [call.params.get("text", "") for call in api.calls("chat.postEphemeral")]
        assert any("none of the roles this review still needs" in t for t in told), told
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN

        ws.clock.advance(minutes=10)  # the sponsor's click is due again
        ws.inbox.drain()
        ws.deliver()
        review = _reviews(ws, ref)[-1]
        assert review.status is ReviewStatus.APPROVED
        assert [(d.approver_id, d.role) for d in review.decisions] == [(SPONSOR, "sponsor")]
        assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)


def test_a_burst_of_clicks_by_people_outside_a_user_group_asks_slack_for_it_once(tmp_path: Path) -> None:
    """Clicks recorded in one inbox round ask Slack who is in a role's user group once, however
    many of the clickers it leaves out: one call per clicker hit Slack's rate limit for
    usergroups.users.list with a round of a few dozen (a backlog after an outage), and each retry
    of the round made as many calls again, so the decisions waited until they were given up."""
    api, pipeline = sponsors_by_user_group(tmp_path)
    others = [f"U0OTHER{n:02d}" for n in range(5)]
    for user in others:
        api.state.add_user(user, user.lower())
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        ref = register(ws)
        submit(ws, ref)
        ws.deliver()
        request = request_dm(ws, SPONSOR)
        listed = len(api.calls("usergroups.users.list"))
        for user in others:  # sent at once: recorded in the same round
            payload = payloads.block_actions_on_message(
                request,
                ids.ACTION_APPROVE,
                user_id=user,
                channel_id=ws.dm_with(user),
                value=find_button(request, ids.ACTION_APPROVE)["value"],
                trigger_id=api.mint_trigger_id(user),
            )
            assert ws.client.send(payload).status == 200
        ws.inbox.drain()
        assert len(api.calls("usergroups.users.list")) - listed == 1
        assert _reviews(ws, ref)[-1].status is ReviewStatus.OPEN  # none of them is a sponsor


def _reviews(ws: Workspace, ref: str) -> list[Any]:
    with ws.services.read_uow() as uow:
        return list(uow.reviews.for_initiative(ref))


_ = find_button


def test_withdraw_hold_resume_and_retire_from_slack(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    assert has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)

    def says(user: str, text: str) -> str:
        response = ws.command(user, text)
        assert response.status == 200
        return str(response.text)

    # The questionnaire is frozen while under review: said before anyone types.
    opened = len(ws.api.calls("views.open"))
    assert ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE).status == 200
    ws.wait(  # the click is handled after its ack
        lambda: (
            ws.deliver() >= 0
            and any(
                f"/shepherd withdraw {ref}" in c.params.get("text", "")
                for c in ws.api.calls("chat.postEphemeral")
            )
        )
    )
    assert len(ws.api.calls("views.open")) == opened

    # Only the submitter or the owner takes a review back; then no approver button stays live.
    assert "submitted the review or the owner" in says(OUTSIDER, f"withdraw {ref}")
    assert _open_review(ws, ref)
    assert "You withdrew the review" in says(OWNER, f"withdraw {ref.lower()}")
    ws.deliver()
    assert _reviews(ws, ref)[-1].status is ReviewStatus.WITHDRAWN
    assert not has_button(request_dm(ws, SPONSOR), ids.ACTION_APPROVE)
    assert has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
    assert "no open review" in says(OWNER, f"withdraw {ref}")

    # On hold: a reason is required, only the owner or a steward may, and the card says why.
    assert "Usage" in says(OWNER, f"hold {ref}")
    assert "Only the owner" in says(OUTSIDER, f"hold {ref} Budget freeze")
    assert "is on hold" in says(OWNER, f" hold  {ref}\tBudget freeze until Q3")
    ws.deliver()
    assert "Budget freeze until Q3" in str(card(ws)["blocks"])
    assert not has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)
    assert "is active again" in says(OWNER, f"resume {ref}")
    ws.deliver()
    assert has_button(card(ws), ids.ACTION_SUBMIT_REVIEW)

    # A role admin retires someone else's initiative; the card keeps no buttons.
    assert "Only the owner" in says(OUTSIDER, f"retire {ref} Not needed")
    assert "is retired" in says("U0ADMIN01", f"retire {ref} A vendor product replaced it")
    ws.deliver()
    assert "A vendor product replaced it" in str(card(ws)["blocks"])
    assert not has_button(card(ws), ids.ACTION_OPEN_QUESTIONNAIRE)
    with ws.services.read_uow() as uow:
        actions = [(e.action, e.actor_id) for e in uow.audit.timeline(ref)]
    assert [a for a in actions if a[0] in {"review.withdrawn", "initiative.held", "initiative.resumed"}] == [
        ("review.withdrawn", OWNER),
        ("initiative.held", OWNER),
        ("initiative.resumed", OWNER),
    ]
    assert ("initiative.retired", "U0ADMIN01") in actions


def test_retiring_takes_the_next_gate_offer_away_and_its_questionnaire_opens_no_more(
    workspace: Workspace,
) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    ws.click(SPONSOR, request_dm(ws, SPONSOR), ws.dm_with(SPONSOR), ids.ACTION_APPROVE)
    ws.deliver()
    replies = ws.api.state.thread(ws.registry, card(ws)["ts"])[1:]  # the card itself comes first
    [offer] = [m for m in replies if has_button(m, ids.ACTION_OPEN_QUESTIONNAIRE)]
    assert f"{ref} is now in the *PoC* stage" in offer["text"]  # the stage by its label, not "poc"

    assert "is retired" in ws.command(OWNER, f"retire {ref} Budget cut").text
    ws.deliver()
    # The offer in the card's thread is redrawn without its button, saying why.
    [redrawn] = [m for m in ws.api.state.thread(ws.registry, card(ws)["ts"]) if m["ts"] == offer["ts"]]
    assert_valid_message(redrawn)
    assert not has_button(redrawn, ids.ACTION_OPEN_QUESTIONNAIRE) and "retired" in redrawn["text"]
    assert f"{ref} reached the *PoC* stage, then was retired" in redrawn["text"]
    assert all(c.ok for c in ws.api.calls("chat.update"))

    # A click on the button as it was (a client that had not refreshed) opens no form that
    # could not be saved: it says why, before anyone types.
    opened = len(ws.api.calls("views.open"))
    told = len(ws.api.calls("chat.postEphemeral"))
    assert ws.click(OWNER, offer, ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE).status == 200
    ws.wait(
        lambda: (
            ws.deliver() >= 0
            and any(
                f"{ref} is retired" in c.params.get("text", "")
                for c in ws.api.calls("chat.postEphemeral")[told:]
            )
        )
    )
    assert len(ws.api.calls("views.open")) == opened


def test_an_answer_hidden_by_a_later_one_no_longer_asks_for_anything(tmp_path: Path) -> None:
    """Whether the vendor is in the EU is asked only when there is a vendor, and a DPA only when
    it is not. The team said "vendor outside the EU", then that there is no vendor: the stored
    "no" stays on record, but the gate no longer asks for a vendor's DPA."""
    questions = [
        {"id": "uses_vendor", "label": "Uses an external vendor?", "type": "yes_no", "required": True},
        {
            "id": "vendor_in_eu",
            "label": "Is the vendor in the EU?",
            "type": "yes_no",
            "show_if": 'answers.uses_vendor == "yes"',
            "required_if": 'answers.uses_vendor == "yes"',
        },
        {
            "id": "dpa_link",
            "label": "Data processing agreement",
            "type": "url",
            "show_if": 'answers.vendor_in_eu == "no"',
            "required_if": 'answers.vendor_in_eu == "no"',
        },
    ]
    pipeline = one_gate_pipeline(tmp_path / "vendor.yaml", questions, sponsors=[SPONSOR])
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api, running_workspace(api, tmp_path / "data", pipeline=pipeline) as ws:
        services = ws.services
        answers = {"uses_vendor": "yes", "vendor_in_eu": "no"}
        ref = usecases.register(
            services.pipeline,
            services.uow(),
            name="V",
            owner_id=OWNER,
            answers=answers,
            actor_id=OWNER,
            now=ws.clock(),
        ).ref
        ws.deliver()
        dpa = ids.question_block_id("dpa_link")
        form = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        assert dpa in str(form["blocks"])
        response = ws.submit_view(OWNER, form, {ids.question_block_id("uses_vendor"): "no"})
        assert response.status == 200 and response.text in ("", "{}"), response.text
        report = usecases.check_readiness(services.pipeline, services.read_uow(), ref)
        assert [q.id for q in report.visible_questions] == ["uses_vendor"]
        assert report.missing == () and report.ready, report.blockers
        with services.read_uow() as uow:
            assert uow.answers.current(ref)["vendor_in_eu"].value == "no"  # kept on record
        again = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        assert dpa not in str(again["blocks"]) and "1/1 answered" in str(again["blocks"])
        ws.deliver()
        assert "ready for review · 1/1 answered" in str(card(ws)["blocks"])  # the card, redrawn


def test_a_question_under_a_review_request_gets_that_initiatives_checklist(workspace: Workspace) -> None:
    ws = workspace
    ref = register(ws)
    submit(ws, ref)
    ws.deliver()
    request = request_dm(ws, SPONSOR)
    dm = ws.dm_with(SPONSOR)
    # The approver replies in the thread of the review request Shepherd sent them.
    event = payloads.message_event(
        "what does this still need before I approve?", user_id=SPONSOR, channel_id=dm, thread_ts=request["ts"]
    )
    assert ws.client.send_event(payloads.event_callback(event)).status == 200
    reply = ws.wait(
        lambda: [
            m
            for m in ws.api.state.thread(dm, request["ts"])[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
        ],
        timeout=15,
    )[-1]
    assert f"What {ref} needs" in str(reply["blocks"]), f"no checklist for {ref} under its review request"
