"""Two delivery workers (``shepherd worker`` run twice) taking messages about the same initiative
at the same moment: the initiative's card is posted once. Each finds no card yet; without the
post being reserved first, both posted one, and the second card (never remembered) kept live
buttons nobody would ever update."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import yaml

from bot.bootstrap import Services, bootstrap
from bot.emulator.webapi import FakeSlackWebAPI
from bot.server import delivery_sender, delivery_worker
from bot.settings import Settings
from bot.slack_client import make_client
from gates import usecases
from storage import Database
from storage.outbox import outbox_counts
from tests.bot.scenario import SIGNING_SECRET
from tests.storage.conftest import database_url  # noqa: F401 - the fixture: SQLite, then PostgreSQL

REPO = Path(__file__).resolve().parents[2]
OWNER = "U0OWNER01"


def test_two_workers_delivering_news_of_one_initiative_at_once_post_its_card_once(
    tmp_path: Path,
    database_url: str,  # noqa: F811 - the imported fixture
) -> None:
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with api:
        registry = api.state.add_channel("ai-initiatives", members=[OWNER]).id
        settings = Settings(
            data_dir=tmp_path,
            database_url=database_url,
            slack_bot_token=api.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=api.api_url,
            registry_channel=registry,
            embeddings="none",
        )
        migrated = Database(database_url)
        migrated.upgrade()
        migrated.dispose()
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
