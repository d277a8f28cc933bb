"""A worker that is stopped (SIGTERM on every restart or deploy) first finishes the Slack call in
flight and remembers what it posted, so the card is not posted a second time after the restart;
with nothing in flight it stops at once."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from slack_sdk import WebClient
from sqlalchemy import insert, select

from bot.app import build_app
from bot.bootstrap import Services
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI, RecordedCall
from bot.server import asgi_app, delivery_sender, delivery_worker
from bot.settings import Settings
from bot.slack_client import make_client
from bot.worker import WorkerChildren, finish_background, start_background
from gates import usecases
from storage.slack_messages import MessageRefs
from storage.tables import inbox, outbox
from tests.bot.test_lifecycle import OWNER
from tests.bot.test_worker_process import exits, workspace

REPO = Path(__file__).resolve().parents[2]
SLOW_ANSWER = 3.0  # seconds Slack takes to answer the first chat.postMessage, after posting it


def slow_first_post(api: FakeSlackWebAPI) -> threading.Event:
    """Make Slack post the first message at once but answer only ``SLOW_ANSWER`` seconds later;
    the event is set when that post has reached Slack."""
    posted = threading.Event()

    def slow(call: RecordedCall) -> None:
        if call.method == "chat.postMessage" and not posted.is_set():
            posted.set()
            time.sleep(SLOW_ANSWER)

    api.on_call(slow)
    return posted


def register(services: Services) -> str:
    """Register an initiative (its card waits in the outbox); returns its ref."""
    answers = yaml.safe_load((REPO / "examples/answers/intake-low-risk.yaml").read_text())
    answers |= {"initiative_owner": OWNER}
    return usecases.register(
        services.pipeline,
        services.uow(),
        name="Forecast",
        owner_id=OWNER,
        answers=answers,
        actor_id=OWNER,
        now=services.now(),
    ).ref


def client_for(settings: Settings) -> WebClient:
    assert settings.slack_bot_token is not None
    return make_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)


def cards(api: FakeSlackWebAPI, registry: str, ref: str) -> list[dict[str, object]]:
    return [m for m in api.state.channel_messages(registry) if ref in str(m.get("blocks"))]


def assert_posted_once_and_remembered(
    api: FakeSlackWebAPI, registry: str, settings: Settings, services: Services, ref: str
) -> None:
    """The card is in Slack once and remembered, and its outbox message is delivered: another
    delivery round posts nothing more."""
    assert MessageRefs(services.database).find(f"initiative:{ref}", "card") is not None
    with services.database.session(read_only=True) as session:
        statuses = set(session.execute(select(outbox.c.status)).scalars())
    assert statuses == {"delivered"}, statuses
    delivery_worker(services, delivery_sender(services, client_for(settings))).run_once()
    assert len(cards(api, registry, ref)) == 1


def test_a_worker_stopped_while_posting_a_card_posts_it_once_and_remembers_it(tmp_path: Path) -> None:
    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        posted = slow_first_post(api)
        ref = register(services)
        children = WorkerChildren(settings, roles=("delivery",), database=services.database)
        children.start()
        try:
            assert posted.wait(90), "the worker child never posted"  # it imports the whole stack first
            time.sleep(0.3)
        finally:
            children.stop()  # SIGTERM, wait, hand back what it still held: what `shepherd serve` does
        assert_posted_once_and_remembered(api, registry, settings, services, ref)


def test_a_worker_with_nothing_in_flight_stops_at_once(tmp_path: Path) -> None:
    """Both children idle between rounds, the scheduler waiting out a 30-second interval: none
    of it is waited for."""
    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        settings = settings.model_copy(update={"scheduler_interval_seconds": 30})
        ref = register(services)
        now = datetime.now(UTC)
        with services.database.session() as session:
            item = session.execute(
                insert(inbox)
                .values(
                    kind="no-such-kind",
                    payload={},
                    status="pending",
                    attempts=0,
                    received_at=now,
                    next_attempt_at=now,
                )
                .returning(inbox.c.id)
            ).scalar_one()
            session.commit()

        def inbox_status() -> str:
            with services.database.session(read_only=True) as session:
                return str(session.execute(select(inbox.c.status).where(inbox.c.id == item)).scalar_one())

        children = WorkerChildren(settings, roles=("inbox", "delivery"), database=services.database)
        children.start()
        try:
            # Both children are running their loops: the card is posted, the unknown request given up.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (
                MessageRefs(services.database).find(f"initiative:{ref}", "card") and inbox_status() == "dead"
            ):
                time.sleep(0.1)
            assert inbox_status() == "dead" and cards(api, registry, ref)
            pids = children.pids()
        finally:
            started = time.monotonic()
            children.stop()
            took = time.monotonic() - started
        assert took < 5, f"stopping idle workers took {took:.1f} s"
        assert all(exits(pid, timeout=1) for pid in pids.values())


def test_the_server_stopped_while_its_worker_thread_posts_a_card_remembers_it(tmp_path: Path) -> None:
    """``shepherd serve --worker thread``: the server's shutdown waits for the post in flight."""
    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        posted = slow_first_post(api)
        ref = register(services)
        asgi = asgi_app(build_app(settings, services), services, worker="thread")
        with BackgroundASGIServer(asgi, lifespan="on"):
            assert posted.wait(30), "the worker thread never posted"
        assert_posted_once_and_remembered(api, registry, settings, services, ref)


def test_a_send_still_in_flight_after_the_grace_is_logged_as_possibly_posted_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        posted = slow_first_post(api)
        ref = register(services)
        stop = threading.Event()
        threads = start_background(services, client_for(settings), stop, "delivery")
        try:
            assert posted.wait(30), "the delivery thread never posted"
            stop.set()
            with caplog.at_level(logging.ERROR, logger="shepherd.worker"):
                assert not finish_background(threads, timeout=0.2)
            assert "may be posted twice" in caplog.text
        finally:
            stop.set()
            assert finish_background(threads)  # given the time, the post is finished and remembered
        assert_posted_once_and_remembered(api, registry, settings, services, ref)
