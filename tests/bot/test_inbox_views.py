"""Modal submissions through the real HTTP path. A questionnaire page is recorded before the ack
(who, when, its evidence link), its errors shown inside the modal; pages saved at the same
moment share one commit, and one that fails to save fails alone. A reasoned decision is checked
inside the form, stored in the inbox before Slack hears "OK" and recorded by the worker; a late
refusal, or a request the worker gives up on, is told to the person privately."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot import ids
from bot.emulator import payloads
from gates import usecases
from gates.lifecycle import ReviewStatus
from storage.inbox import inbox_counts
from tests.bot.scenario import (
    Workspace,
    has_button,
    only_ref,
    workspace_with_initiative,
)

OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"
SECOND_SPONSOR = "U0SPONSR2"
QUESTION = "poc_duration_weeks"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite; one registered initiative (not submitted) with two possible sponsors."""
    people = {OWNER: "olivia", SPONSOR: "sam", SECOND_SPONSOR: "sasha"}
    with workspace_with_initiative(tmp_path / "data", people, OWNER, [SPONSOR, SECOND_SPONSOR]) as ws:
        ws.deliver()
        yield ws


def card(ws: Workspace) -> dict[str, Any]:
    return ws.messages_in(ws.registry)[0]


def page_with(ws: Workspace, question: str) -> dict[str, Any]:
    """The questionnaire page that asks ``question``, reached by saving the pages before it."""
    view = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    while ids.question_block_id(question) not in str(view["blocks"]):
        view = ws.submit_view(OWNER, view, {}).json()["view"]
    return view


def submit_for_review(ws: Workspace) -> None:
    """Click Submit for review and wait for the review to open (it happens after the ack)."""
    ws.click(OWNER, card(ws), ws.registry, ids.ACTION_SUBMIT_REVIEW)
    ws.wait(lambda: open_review(ws))
    ws.deliver()


def open_review(ws: Workspace) -> Any:
    with ws.services.read_uow() as uow:
        return uow.reviews.open_for(only_ref(ws))


def reject_forms(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Both sponsors click Reject on their review request: the reason form each one sees."""
    forms = {}
    for user in (SPONSOR, SECOND_SPONSOR):
        [request] = [m for m in ws.messages_in(ws.dm_with(user)) if has_button(m, ids.ACTION_REJECT)]
        forms[user] = ws.opened_view(
            lambda u=user, r=request: ws.click(u, r, ws.dm_with(u), ids.ACTION_REJECT)
        )
    return forms


def send_without_draining(ws: Workspace, user: str, view: dict[str, Any], values: dict[str, Any]) -> Any:
    """A submission as Workspace.submit_view sends it, but without applying the inbox after."""
    return ws.client.send(payloads.view_submission(view, user_id=user, values=values))


def recorded(ws: Workspace, question: str) -> Any:
    with ws.services.read_uow() as uow:
        return uow.answers.current(only_ref(ws)).get(question)


def private_texts(ws: Workspace, user: str) -> list[str]:
    ws.deliver()
    ephemerals = [
        c.params.get("text", "")
        for c in ws.api.calls("chat.postEphemeral", ok=True)
        if c.params.get("user") == user
    ]
    return ephemerals + [m.get("text", "") for m in ws.messages_in(ws.dm_with(user))]


def test_a_page_is_recorded_in_the_ack_with_who_when_and_its_link(workspace: Workspace) -> None:
    ws = workspace
    view = page_with(ws, QUESTION)
    ws.deliver()
    card_updates = len(ws.api.calls("chat.update", ok=True))
    submitted_at = ws.clock()
    response = send_without_draining(
        ws,
        OWNER,
        view,
        {
            ids.question_block_id(QUESTION): "10",
            ids.LINK_URL_BLOCK: "https://wiki.example.com/forecast-plan",
            ids.LINK_TITLE_BLOCK: "PoC plan",
        },
    )
    # The modal closed (the link fields are on the gate's last page), the page already recorded.
    assert response.status == 200 and response.text in ("", "{}"), response.text
    answer = recorded(ws, QUESTION)
    assert (answer.value, answer.author_id, answer.answered_at) == (10, OWNER, submitted_at)
    with ws.services.read_uow() as uow:
        links = list(uow.answers.links(only_ref(ws)))
        actions = [e.action for e in uow.audit.timeline(only_ref(ws))]
    assert [(link.url, link.title, link.author_id) for link in links] == [
        ("https://wiki.example.com/forecast-plan", "PoC plan", OWNER)
    ]
    assert actions.count("answers.recorded") == 1 and actions.count("evidence.linked") == 1
    assert inbox_counts(ws.services.database) == {}  # pages do not go through the inbox
    ws.deliver()
    refreshed = [
        c for c in ws.api.calls("chat.update", ok=True)[card_updates:] if c.params["ts"] == card(ws)["ts"]
    ]
    assert refreshed, "the card's readiness line was not refreshed"


def test_a_bad_link_is_shown_on_the_link_field_and_nothing_is_stored(workspace: Workspace) -> None:
    ws = workspace
    view = page_with(ws, QUESTION)
    response = send_without_draining(
        ws, OWNER, view, {ids.question_block_id(QUESTION): "10", ids.LINK_URL_BLOCK: "not a link"}
    )
    body = response.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [ids.LINK_URL_BLOCK]
    assert recorded(ws, QUESTION).value == 8  # the intake's answer: nothing of the page was saved


def test_a_page_for_a_gate_under_review_is_refused_inside_the_modal(workspace: Workspace) -> None:
    ws = workspace
    view = page_with(ws, QUESTION)
    usecases.submit(ws.services.pipeline, ws.services.uow(), only_ref(ws), OWNER, ws.clock())
    body = send_without_draining(ws, OWNER, view, {ids.question_block_id(QUESTION): "12"}).json()
    assert body["response_action"] == "errors"
    assert "under review" in " ".join(body["errors"].values())
    assert recorded(ws, QUESTION).value == 8  # the intake's answer: nothing of the page was saved


def test_a_reasoned_decision_goes_through_the_inbox_and_a_late_one_is_told_why(workspace: Workspace) -> None:
    """Two sponsors open the Reject form; the first rejection closes the review, the second is
    accepted by its modal (it was valid when sent) and then explained privately by the worker."""
    ws = workspace
    ref = only_ref(ws)
    submit_for_review(ws)
    forms = reject_forms(ws)

    first = send_without_draining(ws, SPONSOR, forms[SPONSOR], {ids.REASON_BLOCK: "No business case yet."})
    second = send_without_draining(
        ws, SECOND_SPONSOR, forms[SECOND_SPONSOR], {ids.REASON_BLOCK: "Too risky."}
    )
    assert (first.status, second.status) == (200, 200)
    assert inbox_counts(ws.services.database) == {"pending": 2}

    assert ws.inbox.drain() == 2
    with ws.services.read_uow() as uow:
        [review] = uow.reviews.for_initiative(ref)
    assert review.status is ReviewStatus.REJECTED
    assert [(d.approver_id, d.reason) for d in review.decisions] == [(SPONSOR, "No business case yet.")]
    [told] = [t for t in private_texts(ws, SECOND_SPONSOR) if "nothing was recorded" in t]
    assert told.startswith(f"{ref}: This review is already rejected")
    assert "Too risky." in told  # the reason typed into the closed form is given back
    assert not any("nothing was recorded" in t for t in private_texts(ws, SPONSOR))


def test_a_reason_sent_after_the_review_closed_is_refused_inside_the_form(workspace: Workspace) -> None:
    ws = workspace
    submit_for_review(ws)
    forms = reject_forms(ws)
    assert ws.submit_view(SPONSOR, forms[SPONSOR], {ids.REASON_BLOCK: "No business case yet."}).status == 200

    late = send_without_draining(ws, SECOND_SPONSOR, forms[SECOND_SPONSOR], {ids.REASON_BLOCK: "Too risky."})
    body = late.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [ids.REASON_BLOCK]
    assert "already rejected" in body["errors"][ids.REASON_BLOCK]
    assert inbox_counts(ws.services.database) == {"applied": 1}  # only the first decision


def test_a_decision_the_worker_gives_up_on_is_reported_to_the_person(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledged means the person was told "OK": if recording keeps failing until the worker
    gives up, they hear that it was not recorded."""
    ws = workspace
    submit_for_review(ws)
    [request] = [m for m in ws.messages_in(ws.dm_with(SPONSOR)) if has_button(m, ids.ACTION_REJECT)]
    form = ws.opened_view(lambda: ws.click(SPONSOR, request, ws.dm_with(SPONSOR), ids.ACTION_REJECT))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(usecases, "decide_many", broken)
    assert send_without_draining(ws, SPONSOR, form, {ids.REASON_BLOCK: "No business case yet."}).status == 200
    for _ in range(8):
        ws.inbox.drain()
        ws.clock.advance(hours=1)
    assert inbox_counts(ws.services.database).get("dead") == 1
    assert any("Your decision could not be recorded" in t for t in private_texts(ws, SPONSOR))


def test_pages_saved_in_quick_succession_redraw_the_card_once_after_they_settle(workspace: Workspace) -> None:
    """Shepherd's delivery worker redraws a card at most every REDRAW_SETTLE: three saves, one
    chat.update, drawn after the last of them; a save after that redraw gets one of its own."""
    from bot.notify import SlackNotifier
    from bot.server import REDRAW_SETTLE, delivery_worker
    from bot.slack_client import make_client
    from storage.outbox import outbox_counts
    from storage.slack_messages import MessageRefs

    ws = workspace
    services = ws.services
    client = make_client(ws.api.bot_token, ws.api.api_url)
    worker = delivery_worker(services, SlackNotifier(services, client, MessageRefs(services.database)))
    worker.run_once()  # the card, the welcome DM: everything before the pages
    updates_before = len(ws.api.calls("chat.update", ok=True))

    def redraws() -> list[Any]:
        calls = ws.api.calls("chat.update", ok=True)[updates_before:]
        return [c for c in calls if c.params["ts"] == card(ws)["ts"]]

    for weeks in (4, 6, 8):
        send_without_draining(
            ws, OWNER, page_with(ws, QUESTION), {ids.question_block_id(QUESTION): str(weeks)}
        )
    assert recorded(ws, QUESTION).value == 8
    assert outbox_counts(services.database).get("pending") == 1
    assert worker.run_once() == 0 and redraws() == []
    ws.clock.advance(seconds=REDRAW_SETTLE.total_seconds())
    assert worker.run_once() == 1
    assert len(redraws()) == 1
    send_without_draining(ws, OWNER, page_with(ws, QUESTION), {ids.question_block_id(QUESTION): "9"})
    ws.clock.advance(seconds=REDRAW_SETTLE.total_seconds())
    assert worker.run_once() == 1
    assert len(redraws()) == 2
    assert "pending" not in outbox_counts(services.database)


@contextmanager
def write_lock_held(ws: Workspace) -> Iterator[None]:
    """Another process's write transaction on the SQLite file, for as long as the block runs."""
    blocker = sqlite3.connect(str(ws.services.database.url.database), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("COMMIT")
    finally:
        blocker.close()


def send_together(ws: Workspace, view: dict[str, Any], values: list[int]) -> list[Any]:
    """One submission of ``view`` per value, all sent while the page writer waits for the lock:
    the first is being written, the rest queue behind it."""
    with ThreadPoolExecutor(len(values)) as pool, write_lock_held(ws):
        first = pool.submit(
            send_without_draining, ws, OWNER, view, {ids.question_block_id(QUESTION): str(values[0])}
        )
        time.sleep(0.3)  # the first is being written, waiting for the lock
        rest = [
            pool.submit(send_without_draining, ws, OWNER, view, {ids.question_block_id(QUESTION): str(v)})
            for v in values[1:]
        ]
        time.sleep(0.3)  # all of them queued behind the first
    return [first.result(10)] + [f.result(10) for f in rest]


def versions(ws: Workspace, question: str) -> list[Any]:
    with ws.services.read_uow() as uow:
        return [v.value for v in uow.answers.history(only_ref(ws)) if v.question_id == question]


def test_pages_saved_at_the_same_moment_share_a_commit_and_each_gets_its_own_answer(
    workspace: Workspace,
) -> None:
    ws = workspace
    view = page_with(ws, QUESTION)
    commits, written = ws.services.pages.commits, ws.services.pages.written

    responses = send_together(ws, view, [11, 12, 13, 14, 15])

    assert [r.status for r in responses] == [200] * 5
    # Each gets the answer a page saved alone gets: the question is on the last page, so the
    # modal closes (an empty ack), not an error and not someone else's reply.
    assert [r.body for r in responses] == [b""] * 5
    assert sorted(versions(ws, QUESTION)[1:]) == [11, 12, 13, 14, 15]  # after the intake's 8
    assert ws.services.pages.written - written == 5
    assert ws.services.pages.commits - commits <= 2  # the first alone, the four behind it together


def test_a_page_that_fails_to_save_fails_alone_and_its_person_is_told(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails a batch because of one page: the pages saved beside it are saved one by
    one, and only the failed one's person sees Slack's error (the modal keeps what they typed)
    and hears from Shepherd."""
    ws = workspace
    view = page_with(ws, QUESTION)
    record = usecases.answer_many

    def failing_on_13(uow: Any, pages: Any) -> Any:
        if any(page.typed.get(QUESTION) == 13 for page in pages):
            raise OSError("connection to the database lost")
        return record(uow, pages)

    monkeypatch.setattr(usecases, "answer_many", failing_on_13)
    responses = send_together(ws, view, [12, 13, 14])

    assert [r.status for r in responses] == [200, 500, 200]
    assert sorted(versions(ws, QUESTION)[1:]) == [12, 14]
    assert any("something went wrong on Shepherd's side" in t for t in private_texts(ws, OWNER))
