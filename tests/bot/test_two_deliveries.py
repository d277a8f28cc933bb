"""Two delivery workers (``shepherd worker`` run twice) taking messages about the same initiative
at the same moment: the initiative's card is posted once. Each finds no card yet; without the
post being reserved first, both posted one, and the second card (never remembered) kept live
buttons nobody would ever update. A private message taken over from a worker that stalled past
its lease is not sent a second time either."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import select

from bot.bootstrap import Services, bootstrap
from bot.emulator.webapi import FakeSlackWebAPI
from bot.listeners.common import queue_private_message
from bot.server import delivery_sender, delivery_worker
from bot.settings import Settings
from bot.slack_client import make_client
from gates import usecases
from storage import Database
from storage.outbox import OutboxMessage, outbox_counts
from storage.slack_messages import STALE_RESERVATION, MessageRefs, outbox_target
from storage.tables import outbox
from tests.bot.scenario import SIGNING_SECRET
from tests.storage.conftest import database_url  # noqa: F401 - the fixture: SQLite, then PostgreSQL
from tests.storage.scenarios import FakeClock

REPO = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"
REFUSAL = "You hold none of the roles this review still needs."


def settings_for(api: FakeSlackWebAPI, tmp_path: Path, url: str, registry: str) -> Settings:
    """Settings for workers on the database at ``url`` (migrated here), talking to the fake Slack."""
    migrated = Database(url)
    migrated.upgrade()
    migrated.dispose()
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        slack_bot_token=api.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api.api_url,
        registry_channel=registry,
        embeddings="none",
    )


def test_two_workers_delivering_news_of_one_initiative_at_once_post_its_card_once(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api:
        registry = api.state.add_channel("ai-initiatives", members=[OWNER]).id
        settings = settings_for(api, tmp_path, database_url, registry)
        services = bootstrap(settings)
        api.faults.delay(0.3, "chat.postMessage")  # Slack a little slow: the two posts overlap
        answers = yaml.safe_load((REPO / "examples/answers/intake-low-risk.yaml").read_text())
        ref = usecases.register(
            services.pipeline,
            services.uow(),
            name="Forecast",
            owner_id=OWNER,
            answers={**answers, "initiative_owner": OWNER},
            actor_id=OWNER,
            now=services.now() - timedelta(seconds=5),
        ).ref
        # A questionnaire page saved a moment later queues a redraw of the same card.
        with services.uow() as uow:
            uow.outbox.put(
                "answers.recorded",
                {"ref": ref, "gate": "intake", "changed": ["problem_statement"]},
                services.now() - timedelta(seconds=4),
                merge_key=f"card:{ref}",
            )
            uow.commit()

        workers: list[tuple[Services, threading.Thread]] = []
        start = threading.Barrier(2)
        for name in ("first", "second"):
            own = bootstrap(settings)  # a process of its own: its own connections
            client = make_client(api.bot_token, settings.slack_api_url)
            worker = delivery_worker(own, delivery_sender(own, client), claimant=name)

            def run(worker=worker) -> None:  # type: ignore[no-untyped-def]
                start.wait()
                deadline = time.monotonic() + 30
                # Each takes one message at a time until both are sent; the one that finds the
                # card being posted by the other tries again a moment later.
                while outbox_counts(services.database).get("pending") and time.monotonic() < deadline:
                    worker.run_once(1)
                    time.sleep(0.05)

            workers.append((own, threading.Thread(target=run)))
        for _, thread in workers:
            thread.start()
        for _, thread in workers:
            thread.join(60)

        cards = [m for m in api.state.channel_messages(registry) if ref in str(m.get("blocks"))]
        assert len(cards) == 1
        assert outbox_counts(services.database) == {"delivered": 2}
        for own, _ in workers:
            own.database.dispose()
        services.database.dispose()


def test_a_private_message_taken_over_from_a_worker_that_stalled_past_its_lease_is_sent_once(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """The first worker shows a refusal to its person, then stalls (a pause, a slow database)
    before marking it delivered; its lease runs out and the second worker takes it over."""
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api:
        registry = api.state.add_channel("ai-initiatives", members=[OWNER]).id
        settings = settings_for(api, tmp_path, database_url, registry)
        clock = FakeClock()
        first, second = bootstrap(settings), bootstrap(settings)  # two processes
        first.clock = second.clock = clock.now
        with first.uow() as uow:
            queue_private_message(uow, OWNER, REFUSAL, registry, clock.now())
            uow.commit()
        stalled, go_on = threading.Event(), threading.Event()
        send = delivery_sender(first, make_client(api.bot_token, settings.slack_api_url))

        def send_then_stall(message: OutboxMessage) -> None:
            send(message)
            stalled.set()
            assert go_on.wait(30)

        stalling = delivery_worker(first, send_then_stall, claimant="first", concurrency=1)
        taking_over = delivery_worker(
            second,
            delivery_sender(second, make_client(api.bot_token, settings.slack_api_url)),
            claimant="second",
            concurrency=1,
        )
        thread = threading.Thread(target=stalling.run_once)
        thread.start()
        try:
            assert stalled.wait(30)
            clock.advance(minutes=3)  # past the first worker's lease
            taking_over.run_once()
        finally:
            go_on.set()
            thread.join(30)

        assert [m["text"] for m in api.state.ephemerals] == [REFUSAL]
        assert outbox_counts(first.database) == {"delivered": 1}
        for services in (first, second):
            services.database.dispose()


def test_a_private_message_whose_worker_stopped_before_saying_it_was_sent_is_not_sent_again(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    """A worker reserved the message and stopped (killed, or stuck for minutes) before it
    remembered sending it: nothing says whether the person saw it. Shepherd chooses never to
    show it twice, at the risk of not showing it at all (``SlackNotifier._ephemeral``)."""
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api:
        registry = api.state.add_channel("ai-initiatives", members=[OWNER]).id
        services = bootstrap(settings_for(api, tmp_path, database_url, registry))
        with services.uow() as uow:
            queue_private_message(uow, OWNER, REFUSAL, registry, services.now())
            uow.commit()
        with services.database.session(read_only=True) as session:
            message_id = session.execute(select(outbox.c.id)).scalar_one()
        gone = services.now() - STALE_RESERVATION - timedelta(seconds=1)
        MessageRefs(services.database).reserve(outbox_target(message_id), "ephemeral", gone)
        worker = delivery_worker(
            services, delivery_sender(services, make_client(api.bot_token, api.api_url)), concurrency=1
        )
        worker.run_once()

        assert api.state.ephemerals == [] and not api.calls("chat.postMessage")
        assert outbox_counts(services.database) == {"delivered": 1}
        services.database.dispose()
