"""`/shepherd portfolio`, the App Home governance section and the system card in the thread,
through the running app and the Slack emulator."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.message import Message
from pathlib import Path
from urllib.error import HTTPError

import pytest
from slack_sdk.errors import SlackApiError

from bot.emulator import payloads
from bot.emulator.webapi import FakeSlackWebAPI
from bot.slack_client import unavailable
from bot.system_card_post import offer_system_card
from gates.answers import AnswerValue
from gates.lifecycle import Initiative, ReviewStatus, Status
from gates.ports import AnswerVersion, OperationsReview
from storage.slack_messages import MessageRefs
from tests.bot.scenario import Workspace, running_workspace
from tests.gates.portfolio_seed import NOW, day, seed_initiatives, seed_reviews

ADMIN = "U0ADMIN01"  # a role admin in running_workspace's settings
OUTSIDER = "U0OUTSIDE"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd with the seeded portfolio (tests/gates/portfolio_seed.py) and its clock at day 151."""
    api = FakeSlackWebAPI()
    for user, name in [(ADMIN, "ada"), (OUTSIDER, "oscar")]:
        api.state.add_user(user, name)
    with api, running_workspace(api, tmp_path / "data") as ws:
        with ws.services.uow() as uow:
            for initiative in seed_initiatives():
                uow.initiatives.add(initiative)
            for review in seed_reviews():
                uow.reviews.add(review)
            uow.commit()
        ws.clock.at = NOW
        yield ws


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (which must come first)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_portfolio_command_answers_with_the_summary_then_uploads_the_chart(workspace: Workspace) -> None:
    response = workspace.command(ADMIN, "portfolio")
    assert response.status == 200
    assert "portfolio together" in response.text  # the ack answers at once; figures follow
    workspace.api.wait_for("response_url", timeout=10)
    body = workspace.api.calls("response_url")[0].params
    assert body["text"] == "Portfolio: 6 initiatives, 2 stalled, 1 reviews open."
    text = str(body["blocks"])
    assert "AI-0002" in text and "AI-0003" in text  # the stalled ones
    assert "1 approved, 1 rejected, 1 changes requested" in text
    assert "Problem statement is vague." in text

    workspace.api.wait_for("files.completeUploadExternal", timeout=10)
    uploads = list(workspace.api.state.files.values())
    assert len(uploads) == 1
    chart = uploads[0]
    assert chart.filename == "shepherd-portfolio-2026-06-01.png"
    assert chart.data is not None and png_size(chart.data) == (1200, 600)
    assert chart.shares == [workspace.registry]


def test_portfolio_command_is_refused_to_people_who_do_not_lead_governance(workspace: Workspace) -> None:
    response = workspace.command(OUTSIDER, "portfolio")
    assert response.status == 200
    assert "governance leads" in response.text and "blocks" not in response.text
    assert workspace.api.calls("files.getUploadURLExternal") == []


def test_app_home_shows_the_portfolio_to_role_admins_only(workspace: Workspace) -> None:
    for user in (ADMIN, OUTSIDER):
        dm = workspace.dm_with(user)
        event = payloads.app_home_opened_event(user, channel_id=dm)
        assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("views.publish", count=2, timeout=10)
    admin = workspace.api.state.home_view(ADMIN)
    outsider = workspace.api.state.home_view(OUTSIDER)
    assert admin is not None and outsider is not None
    assert "*Portfolio* · 6 initiatives · 2 stalled · 1 reviews open" in str(admin["blocks"])
    assert "Portfolio" not in str(outsider["blocks"])
    assert len(admin["blocks"]) <= 100


def test_a_system_whose_periodic_review_is_overdue_is_in_the_portfolio(workspace: Workspace) -> None:
    """A system in operations since day 10 was due its periodic review on day 100 and is
    overdue (14 days' grace) on day 151: stuck, as a stalled initiative is, so the executive
    view lists it; one reviewed on day 140 is not."""
    overdue, reviewed = (
        Initiative(ref, name, "UOWN8", "operations", day(0), stage_entered_at=day(10))
        for ref, name in (("AI-0008", "Churn model"), ("AI-0009", "Invoice reader"))
    )
    with workspace.services.uow() as uow:
        uow.initiatives.add(overdue)
        uow.initiatives.add(reviewed)
        uow.operations.add_review(OperationsReview("AI-0009", "UOWN8", day(140), {}, day(230)))
        uow.commit()
    assert workspace.command(ADMIN, "portfolio").status == 200
    workspace.api.wait_for("response_url", timeout=10)
    body = workspace.api.calls("response_url")[0].params
    assert body["text"] == "Portfolio: 8 initiatives, 2 stalled, 1 periodic review overdue, 1 reviews open."
    text = str(body["blocks"])
    assert "Periodic operations reviews overdue" in text and "AI-0008" in text and "AI-0009" not in text
    assert "51 days overdue" in text, text
    workspace.api.wait_for("files.completeUploadExternal", timeout=10)

    dm = workspace.dm_with(ADMIN)
    event = payloads.app_home_opened_event(ADMIN, channel_id=dm)
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("views.publish", timeout=10)
    home = str(workspace.api.state.home_view(ADMIN)["blocks"])  # type: ignore[index]
    assert "1 periodic review overdue" in home and "AI-0008" in home, home


def test_an_initiative_waiting_on_its_approvers_is_not_listed_as_stalled(workspace: Workspace) -> None:
    # Submitted for the intake gate on day 110, inside idea's 30-day box (ends day 130); on day
    # 151 it still waits for its approvers, who get reminders of their own: its owner is not late.
    waiting = Initiative(
        "AI-0007",
        "Waiting on approvers",
        "UOWN7",
        "idea",
        day(100),
        status=Status.IN_REVIEW,
        stage_entered_at=day(100),
    )
    review = replace(
        seed_reviews()[0],
        initiative_ref="AI-0007",
        gate_id="intake",
        from_stage="idea",
        to_stage="poc",
        status=ReviewStatus.OPEN,
        decisions=[],
        closed_at=None,
        submitted_at=day(110),
        id=None,
    )
    with workspace.services.uow() as uow:
        uow.initiatives.add(waiting)
        uow.reviews.add(review)
        uow.commit()
    assert workspace.command(ADMIN, "portfolio").status == 200
    workspace.api.wait_for("response_url", timeout=10)
    body = workspace.api.calls("response_url")[0].params
    assert body["text"] == "Portfolio: 7 initiatives, 2 stalled, 2 reviews open."
    assert "AI-0007" not in str(body["blocks"])
    workspace.api.wait_for("files.completeUploadExternal", timeout=10)


# ---------------------------------------------------------------- system card in the thread


def _production_review(workspace: Workspace, answers: dict[str, AnswerValue]) -> int:
    """AI-0001 (in pilot) with some answers and an open review for the production gate."""
    review = replace(
        seed_reviews()[0],
        gate_id="production",
        from_stage="pilot",
        to_stage="production",
        status=ReviewStatus.OPEN,
        decisions=[],
        closed_at=None,
        submitted_at=day(150),
        id=None,
    )
    with workspace.services.uow() as uow:
        for qid, value in answers.items():
            uow.answers.append(AnswerVersion("AI-0001", "production", qid, value, "UOWN1", day(149)))
        uow.reviews.add(review)
        uow.commit()
    assert review.id is not None
    return review.id


def _offering(workspace: Workspace, answers: dict[str, AnswerValue]) -> tuple[Callable[[], bool], str]:
    """A production review of AI-0001 with ``answers``, and a card in the registry: what offers
    its system card into the card's thread (as the review request's delivery does), and the
    card's ts."""
    review_id = _production_review(workspace, answers)
    client = workspace.api.web_client(retry_handlers=[])
    card = client.chat_postMessage(channel=workspace.registry, text="card")
    services, messages = workspace.services, MessageRefs(workspace.services.database)
    with services.read_uow() as uow:
        review, initiative = uow.reviews.get(review_id), uow.initiatives.get("AI-0001")
    thread = (card["channel"], card["ts"])
    return (lambda: offer_system_card(services, client, messages, review, initiative, thread)), card["ts"]


def _uploaded_card(workspace: Workspace) -> str:
    """The text of the one system card uploaded."""
    (upload,) = workspace.api.state.files.values()
    return (upload.data or b"").decode()


def test_the_system_card_is_uploaded_once_into_the_thread_of_a_production_review(
    workspace: Workspace,
) -> None:
    offer, card = _offering(workspace, {"rollback_plan": "Flip the feature flag off."})

    assert offer() is True
    assert offer() is False  # a retry

    uploads = list(workspace.api.state.files.values())
    assert len(uploads) == 1
    assert uploads[0].filename == "AI-0001-system-card.md"
    text = (uploads[0].data or b"").decode()
    assert text.startswith("# System card (draft): Initiative AI-0001 (AI-0001)")
    assert "- **Switch-off and rollback:** Flip the feature flag off." in text
    assert "Not answered yet" in text
    replies = workspace.api.state.thread(workspace.registry, card)[1:]
    assert [m["files"][0]["name"] for m in replies] == ["AI-0001-system-card.md"]
    assert "fields are not answered yet" in replies[0]["text"]


def test_the_system_card_says_does_not_apply_where_other_answers_hide_the_question(
    workspace: Workspace,
) -> None:
    # The team named a vendor, then said it uses no external AI; and it handles no personal data.
    offer, _ = _offering(
        workspace,
        {"third_party_ai": "no", "third_party_vendor": "OpenAI GPT-4o via Azure", "personal_data": "no"},
    )
    assert offer() is True
    text = _uploaded_card(workspace)
    assert "- **Relies on an external AI provider:** no" in text
    assert "- **Provider(s) and model(s):** Does not apply" in text
    assert "OpenAI" not in text
    assert "- **Lawful basis:** Does not apply" in text
    assert "- **Data protection impact assessment:** Does not apply" in text
    # Neither answered nor a gap: the header counts 2 answered of the fields that apply.
    assert re.search(r"2 of (\d+) fields answered", text) is not None


def test_the_thread_comment_counts_the_same_gaps_as_the_card(workspace: Workspace) -> None:
    # Scope, automated decisions and data issues each appear in two sections of the card.
    offer, card = _offering(workspace, {"rollback_plan": "Flip the feature flag off."})
    assert offer() is True
    header = re.search(r"(\d+) of (\d+) fields answered", _uploaded_card(workspace))
    assert header is not None
    answered, applicable = map(int, header.groups())
    reply = workspace.api.state.thread(workspace.registry, card)[1]["text"]
    assert f" {applicable - answered} fields are not answered yet." in reply


def test_the_system_card_names_the_people_it_lists_instead_of_their_slack_ids(workspace: Workspace) -> None:
    """A Markdown file is not a Slack message: Slack shows a mention in it as typed, so the
    owners would read as bare ids (@U0SPONS01) in the card the team edits into its documentation."""
    workspace.api.state.add_user("U0SPONS01", "sam", real_name="Sam Okafor")
    offer, _ = _offering(workspace, {"business_sponsor": "U0SPONS01", "initiative_owner": "U0GONE001"})
    assert offer() is True
    text = _uploaded_card(workspace)
    assert "- **Business sponsor:** Sam Okafor (@sam)" in text
    assert "U0SPONS01" not in text
    # Someone Slack no longer knows keeps their id: the card is still uploaded.
    assert "- **Initiative owner:** @U0GONE001" in text


def test_a_system_card_slack_could_not_take_for_now_is_offered_again(workspace: Workspace) -> None:
    offer, _ = _offering(workspace, {"rollback_plan": "Flip the feature flag off."})
    workspace.api.faults.fail("files.getUploadURLExternal", "not_allowed")  # for good: logged
    assert offer() is False
    workspace.api.faults.server_error("files.getUploadURLExternal")
    with pytest.raises(SlackApiError):  # the outbox retries the notification that offers it
        offer()
    assert offer() is True
    assert len(workspace.api.state.files) == 1


def test_a_system_card_upload_refused_by_slacks_file_servers_waits_out_the_outage(
    workspace: Workspace,
) -> None:
    """files_upload_v2 sends the bytes to Slack's file servers between two Web API calls: a 5xx
    there is an outage to wait out (the review request is not used up by it), and the card is
    then shared once."""
    offer, card = _offering(workspace, {"rollback_plan": "Flip the feature flag off."})
    workspace.api.faults.server_error("upload", status=503)
    with pytest.raises(HTTPError) as raised:
        offer()
    outage = unavailable(raised.value)
    assert outage is not None and "503" in str(outage)
    assert offer() is True
    replies = workspace.api.state.thread(workspace.registry, card)[1:]
    assert [m["files"][0]["name"] for m in replies] == ["AI-0001-system-card.md"]


def test_a_system_card_upload_refused_for_good_is_logged_and_the_review_goes_on(workspace: Workspace) -> None:
    offer, card = _offering(workspace, {})
    workspace.api.faults.server_error("upload", status=413)  # too large: trying again cannot help
    assert offer() is False
    assert workspace.api.state.thread(workspace.registry, card)[1:] == []
    refusal = HTTPError("https://files.slack.com/upload/v1/F1", 413, "Too Large", Message(), None)
    assert unavailable(refusal) is None


def test_no_system_card_for_other_gates_or_without_a_thread(workspace: Workspace) -> None:
    services = workspace.services
    messages = MessageRefs(services.database)
    client = workspace.api.web_client(retry_handlers=[])
    with services.read_uow() as uow:
        intake_review = uow.reviews.for_initiative("AI-0001")[0]
        initiative = uow.initiatives.get("AI-0001")
    assert offer_system_card(services, client, messages, intake_review, initiative, ("C1", "1.0")) is False
    assert offer_system_card(services, client, messages, intake_review, initiative, None) is False
    assert workspace.api.calls("files.getUploadURLExternal") == []


def test_a_governance_lead_in_slack_can_read_every_stalled_initiative(workspace: Workspace) -> None:
    """Twelve more initiatives stuck in idea since day 20: App Home shows three and says where
    the rest are; `/shepherd portfolio` there lists every one of them, instead of five and a
    pointer to the command line, which an executive in Slack does not have."""
    with workspace.services.uow() as uow:
        for n in range(12):
            uow.initiatives.add(Initiative(f"AI-{n + 20:04d}", f"Stuck {n}", "UOWN8", "idea", day(20)))
        uow.commit()
    event = payloads.app_home_opened_event(ADMIN, channel_id=workspace.dm_with(ADMIN))
    assert workspace.client.send_event(payloads.event_callback(event)).status == 200
    workspace.api.wait_for("views.publish", timeout=10)
    home = str(workspace.api.state.home_view(ADMIN)["blocks"])  # type: ignore[index]
    assert "14 stalled" in home and "and 11 more" in home
    assert "`/shepherd portfolio` lists them" in home, home

    assert workspace.command(ADMIN, "portfolio").status == 200
    workspace.api.wait_for("response_url", timeout=10)
    body = workspace.api.calls("response_url")[0].params
    text = str(body["blocks"])
    stalled = ["AI-0002", "AI-0003", *(f"AI-{n + 20:04d}" for n in range(12))]
    assert [ref for ref in stalled if ref not in text] == []
    assert "more" not in text
    workspace.api.wait_for("files.completeUploadExternal", timeout=10)
