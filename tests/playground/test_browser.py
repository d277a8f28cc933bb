"""The playground in a real browser (headless Debian Chromium through Playwright).

The scenario walks the whole route a governance lead would try: register an initiative with
/shepherd new and the intake modal, fill the questionnaire, ask in the card's thread what the
next gate needs, submit, request changes as the sponsor, fix an answer, resubmit, approve, and
see the card move to the next stage. Every click travels the real path: page -> playground ->
signed request into Shepherd -> Shepherd's WebClient -> emulator -> page.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from bot.playground.demo import PEOPLE
from tests.playground.conftest import RunningPlayground

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the browser fixture skips (or fails in CI) with the reason
    expect = None

OWNER = PEOPLE[0]
SPONSOR = next(p for p in PEOPLE if p.role == "sponsor")
NAME = "Spare-parts demand forecast"


@pytest.fixture
def app(page: Any, shared_running: RunningPlayground) -> Any:
    """The page opened on the playground, acting as the initiative owner."""
    shared_running.playground.acting_user = OWNER.id
    page.goto(shared_running.url)
    expect(page.locator("#surface-title")).to_have_text("# ai-initiatives")
    return page


def field(modal: Any, label: str) -> Any:
    """The input block whose label starts with ``label``."""
    return modal.locator(".bk-input-block").filter(
        has=modal.page.locator(".bk-label", has_text=re.compile("^" + re.escape(label)))
    )


def answer(modal: Any, label: str, value: str | list[str]) -> None:
    """Fill one question the way a person would: type, pick, tick or choose."""
    block = field(modal, label)
    expect(block).to_have_count(1)
    if isinstance(value, list):
        for choice in value:
            block.get_by_label(choice, exact=True).check()
    elif block.locator("select").count():
        select = block.locator("select")
        if select.locator(f'option[value="{value}"]').count():
            select.select_option(value=value)
        else:
            select.select_option(label=value)
    elif block.locator("input[type=radio]").count():
        block.get_by_label(value, exact=True).check()
    else:
        block.locator("input, textarea").fill(value)


def act_as(page: Any, person: Any) -> None:
    page.select_option("#acting-user", person.id)
    expect(page.locator("#acting-user")).to_have_value(person.id)
    expect(page.locator(".toast").last).to_contain_text(person.real_name)


def go_to(page: Any, name: str) -> None:
    page.locator("#channel-list .nav-item, #dm-list .nav-item").filter(has_text=name).first.click()


def card(page: Any) -> Any:
    return page.locator("#timeline article").filter(has=page.locator(".bk-header", has_text=NAME))


def send(page: Any, selector: str, text: str) -> None:
    page.fill(selector, text)
    page.press(selector, "Enter")


def dialog(page: Any, title: str | re.Pattern[str]) -> Any:
    modal = page.get_by_role("dialog", name=title)
    expect(modal).to_be_visible()
    return modal


def save(modal: Any) -> None:
    modal.locator("button[type=submit]").click()
    expect(modal).to_be_hidden()


def test_the_whole_route_from_registration_to_the_next_stage(app: Any) -> None:
    page = app
    started = time.monotonic()

    # Register: /shepherd new opens the intake modal; a missing name is reported under the field.
    send(page, "#composer-input", "/shepherd new")
    intake = dialog(page, "Register an initiative")
    intake.get_by_role("button", name="Register").click()
    expect(field(intake, "Initiative name").locator(".bk-error")).to_have_text("Give the initiative a name.")
    expect(field(intake, "Initiative name").locator("input")).to_be_focused()
    answer(intake, "Initiative name", NAME)
    answer(intake, "What problem", "Stock-outs of fast-moving spare parts delay field repairs by days.")
    answer(intake, "What outcome", "Fewer stock-outs without raising stock value.")
    answer(intake, "How will you know", "Forecast beats the four-week rule by 20% on 18 months of history.")
    answer(intake, "Primary business KPI", "Monthly stock-out rate (% of order lines)")
    answer(intake, "Target improvement", "25")
    answer(intake, "Is the current value", "Yes")
    answer(intake, "Business sponsor", SPONSOR.id)
    answer(intake, "Initiative owner", OWNER.id)
    answer(intake, "Business area", "operations and supply chain")
    save(intake)
    expect(card(page)).to_contain_text("AI-0001")
    expect(card(page)).to_contain_text("Idea")
    expect(card(page).locator(".mention").filter(has_text="Sam Sponsor")).to_have_count(1)

    # Fill the questionnaire page from the card: answers are prefilled, the rest is added.
    card(page).get_by_role("button", name="Answer questionnaire").click()
    questionnaire = dialog(page, re.compile("AI-0001"))
    expect(field(questionnaire, "Primary business KPI").locator("input")).to_have_value(
        "Monthly stock-out rate (% of order lines)"
    )
    answer(questionnaire, "Which kinds of data", ["internal operational data"])
    for question in (
        "Will the system process personal data",
        "Will customers or the public",
        "Will it make or materially shape",
        "Does it operate in a regulated",
        "Does it use generative AI",
        "Does it rely on an external AI",
    ):
        answer(questionnaire, question, "No")
    answer(questionnaire, "How many weeks", "8")
    save(questionnaire)
    send(page, "#composer-input", "/shepherd status AI-0001")
    status = page.locator("#timeline article.ephemeral").last
    expect(status).to_contain_text("Only visible to you")
    expect(status).to_contain_text("AI-0001")
    expect(status).not_to_contain_text("poc_duration_weeks")
    status.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#timeline article.ephemeral")).to_have_count(0)

    # Ask in the card's thread what the next gate needs: the reply lands in the thread.
    card(page).get_by_role("button", name=re.compile("Reply in thread|repl")).click()
    send(page, "#thread-input", "@Shepherd what do we need for the next gate?")
    thread = page.locator("#thread-timeline")
    expect(thread.locator("article:not(.from-bot)")).to_contain_text("@Shepherd what do we need")
    expect(
        thread.locator("article.from-bot").filter(has_text=re.compile("approv", re.I)).first
    ).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#thread-panel")).to_be_hidden()

    # Submit for review.
    card(page).get_by_role("button", name="Submit for review").click()
    expect(card(page)).to_contain_text("in review")

    # The sponsor requests changes: the reason modal insists on a reason.
    act_as(page, SPONSOR)
    go_to(page, "Shepherd")
    request = (
        page.locator("#timeline article").filter(has=page.get_by_role("button", name="Request changes")).last
    )
    request.get_by_role("button", name="Request changes").click()
    reason = dialog(page, re.compile("changes", re.I))
    reason.locator("button[type=submit]").click()
    expect(reason.locator(".bk-error")).to_contain_text("reason")
    reason.locator("textarea, input").first.fill("Eight weeks is too short to cover a seasonal peak.")
    save(reason)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    # The owner fixes the answer and submits again.
    act_as(page, OWNER)
    go_to(page, "ai-initiatives")
    expect(card(page)).not_to_contain_text("in review")
    card(page).get_by_role("button", name="Answer questionnaire").click()
    questionnaire = dialog(page, re.compile("AI-0001"))
    expect(field(questionnaire, "How many weeks").locator("input")).to_have_value("8")
    answer(questionnaire, "How many weeks", "12")
    save(questionnaire)
    card(page).get_by_role("button", name="Submit for review").click()
    expect(card(page)).to_contain_text("in review")

    # The sponsor approves; the card moves to the proof of concept stage.
    act_as(page, SPONSOR)
    go_to(page, "Shepherd")
    page.get_by_role("button", name="Approve").last.click()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    go_to(page, "ai-initiatives")
    expect(card(page)).to_contain_text("PoC")
    expect(card(page)).not_to_contain_text("in review")
    assert page.page_errors == []
    assert time.monotonic() - started < 120


def test_mrkdwn_is_rendered_and_nothing_the_bot_sends_can_inject_markup(
    app: Any, shared_running: RunningPlayground
) -> None:
    page = app
    playground = shared_running.playground
    general = playground.state.channel_by_name("general")
    hostile = "<img src=x onerror=window.__pwned=1>"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "<b>Quarterly</b> :tada:"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"*bold* _italic_ `code` <https://example.com/x|the site> <@{SPONSOR.id}>\n"
                    f"• due <!date^1767225600^{{date_num}}|1 Jan 2026> {hostile} "
                    "<javascript:window.__pwned=2|click me> &lt;script&gt;"
                ),
            },
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open"},
                "action_id": "x1",
            },
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Stage*\nPilot"}]},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "context line"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Delete everything"},
                    "style": "danger",
                    "action_id": "x2",
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Really?"},
                        "text": {"type": "plain_text", "text": "This cannot be undone."},
                        "confirm": {"type": "plain_text", "text": "Delete"},
                        "deny": {"type": "plain_text", "text": "Keep"},
                    },
                },
                {
                    "type": "static_select",
                    "action_id": "x3",
                    "placeholder": {"type": "plain_text", "text": "Pick a tier"},
                    "options": [{"text": {"type": "plain_text", "text": "low"}, "value": "low"}],
                },
            ],
        },
    ]
    playground.api.web_client(playground.token).chat_postMessage(
        channel=general.id, text="fallback", blocks=blocks
    )
    go_to(page, "general")
    message = page.locator("#timeline article").filter(has_text="Quarterly")
    expect(message.locator(".bk-header")).to_have_text("<b>Quarterly</b> 🎉")
    text = message.locator(".bk-section .bk-text").first
    expect(text.locator("strong")).to_have_text("bold")
    expect(text.locator("em")).to_have_text("italic")
    expect(text.locator("code")).to_have_text("code")
    expect(text.get_by_role("link", name="the site")).to_have_attribute("href", "https://example.com/x")
    expect(text.locator(".mention")).to_have_text("@Sam Sponsor")
    expect(text.locator("time")).to_have_text("2026-01-01")
    expect(text.locator("br")).to_have_count(1)
    expect(text).to_contain_text(hostile[1:-1])
    expect(text).to_contain_text("click me")
    expect(text).to_contain_text("<script>")
    expect(text.locator("img, script")).to_have_count(0)
    expect(text.get_by_role("link")).to_have_count(1)
    expect(message.locator(".bk-fields")).to_contain_text("Stage")
    expect(message.locator(".bk-accessory button")).to_have_text("Open")
    expect(message.locator("hr.bk-divider")).to_have_count(1)
    expect(message.locator(".bk-context")).to_have_text("context line")
    expect(message.locator(".bk-btn.danger")).to_have_text("Delete everything")
    expect(message.get_by_role("combobox", name="Pick a tier")).to_be_visible()

    # A button with a confirm dialog asks first; Escape keeps everything as it was.
    message.get_by_role("button", name="Delete everything").click()
    confirm = page.get_by_role("alertdialog", name="Really?")
    expect(confirm).to_contain_text("This cannot be undone.")
    expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Escape")
    expect(confirm).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    assert page.page_errors == []


def test_the_keyboard_alone_opens_fills_and_closes_a_modal(app: Any) -> None:
    page = app
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.type("/shepherd new")
    page.keyboard.press("Enter")
    intake = dialog(page, "Register an initiative")
    expect(field(intake, "Initiative name").locator("input")).to_be_focused()
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Tab")
    expect(field(intake, "What problem").locator("textarea")).to_be_focused()
    page.keyboard.press("Escape")
    expect(intake).to_have_count(0)
    expect(page.locator("#composer-input")).to_be_focused()


def test_app_home_shows_my_initiatives(app: Any) -> None:
    page = app
    page.get_by_role("button", name="Shepherd · Home").click()
    expect(page.locator("#surface-title")).to_have_text("Shepherd · Home")
    expect(page.locator("#home-view")).to_contain_text(re.compile("initiative", re.I))


def test_what_a_person_types_with_brackets_is_shown_as_typed(app: Any) -> None:
    page = app
    go_to(page, "Shepherd")
    send(page, "#composer-input", "is x<y and y>z & ok?")
    mine = page.locator("#timeline article:not(.from-bot)").filter(has_text="is x")
    expect(mine.locator(".bk-text")).to_have_text("is x<y and y>z & ok?")
    assert page.page_errors == []


def test_a_half_filled_form_survives_a_look_as_someone_else(app: Any) -> None:
    page = app
    send(page, "#composer-input", "/shepherd new")
    intake = dialog(page, "Register an initiative")
    answer(intake, "Initiative name", "Half-typed forecast")
    answer(intake, "Business area", "operations and supply chain")
    act_as(page, SPONSOR)
    expect(page.get_by_role("dialog")).to_have_count(0)
    act_as(page, OWNER)
    intake = dialog(page, "Register an initiative")
    expect(field(intake, "Initiative name").locator("input")).to_have_value("Half-typed forecast")
    expect(field(intake, "Business area").locator("select")).to_have_value("operations and supply chain")
    # Errors redraw the same view: what is typed stays too.
    answer(intake, "Initiative name", "")
    intake.get_by_role("button", name="Register").click()
    expect(field(intake, "Initiative name").locator(".bk-error")).to_have_text("Give the initiative a name.")
    expect(field(intake, "Business area").locator("select")).to_have_value("operations and supply chain")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert page.page_errors == []


def test_a_page_left_open_across_a_restart_says_so_and_draws_the_new_workspace(
    app: Any, shared_running: RunningPlayground
) -> None:
    page = app
    go_to(page, "general")
    playground = shared_running.playground
    earlier = playground.run
    try:
        playground.run = "the-next-run"  # what a restart of `make run` looks like to the page
        playground.changes.bump()
        expect(page.locator(".toast").last).to_contain_text("fresh workspace")
        expect(page.locator("#surface-title")).to_have_text("# ai-initiatives")
    finally:
        playground.run = earlier
    assert page.page_errors == []
