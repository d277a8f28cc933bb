"""`shepherd serve` applies the inbox and delivers notifications from child processes, so acks keep
the interpreter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot import ids
from bot.app import build_app
from bot.bootstrap import Services, bootstrap
from bot.emulator import payloads
from bot.emulator.client import SlackClient
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.server import asgi_app
from bot.settings import Settings
from tests.bot.scenario import SIGNING_SECRET
from tests.bot.test_lifecycle import OWNER, intake_values


def worker_settings(api: FakeSlackWebAPI, registry: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        slack_bot_token=api.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api.api_url,
        registry_channel=registry,
        embeddings="none",
        scheduler_interval_seconds=0,
    )


@contextmanager
def workspace(
    tmp_path: Path, people: dict[str, str]
) -> Iterator[tuple[FakeSlackWebAPI, str, Settings, Services]]:
    """A running fake Slack with ``people`` in #ai-initiatives (the registry), and Shepherd's
    settings and services for it; yields (api, registry channel id, settings, services)."""
    api = FakeSlackWebAPI()
    for user, name in people.items():
        api.state.add_user(user, name)
    with api:
        registry = api.state.add_channel("ai-initiatives", members=list(people))
        settings = worker_settings(api, registry.id, tmp_path)
        services = bootstrap(settings)
        try:
            yield api, registry.id, settings, services
        finally:
            services.database.dispose()


def exits(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` is gone, or exited and waiting to be reaped, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; waiting for its parent (or whoever adopted it) to reap it
            return True
        time.sleep(0.1)
    return False


def register_through_slack(api: FakeSlackWebAPI, url: str, registry: str) -> None:
    """Register an initiative with /shepherd new and the intake modal, then wait (up to a minute:
    a worker child imports the whole stack first) for the delivery worker to post its card."""
    slack = SlackClient(url + "/slack/events", SIGNING_SECRET)
    command = payloads.slash_command(
        ids.COMMAND, "new", user_id=OWNER, channel_id=registry, trigger_id=api.mint_trigger_id(OWNER)
    )
    assert slack.send(command).status == 200
    api.wait_for("views.open", timeout=10)
    view = api.calls("views.open")[-1].response["view"]
    assert slack.send(payloads.view_submission(view, user_id=OWNER, values=intake_values())).status == 200
    deadline = time.monotonic() + 60
    while not api.state.channel_messages(registry) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_worker_process_posts_the_card_of_a_new_initiative(tmp_path: Path) -> None:
    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        app = build_app(settings, services)
        with BackgroundASGIServer(asgi_app(app, services, worker="process"), lifespan="on") as server:
            register_through_slack(api, server.url, registry)
        messages = api.state.channel_messages(registry)
        assert messages and "AI-0001" in str(messages[0]["blocks"])


def test_the_worker_stops_when_its_parent_dies(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    # A parent that starts the worker and is then killed outright.
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from bot.settings import Settings
        from bot.worker import spawn_worker
        child = spawn_worker(Settings(data_dir={str(tmp_path)!r}, embeddings="none", scheduler_interval_seconds=0,
                                      slack_bot_token="xoxb-test", slack_api_url="http://127.0.0.1:9/api/"))
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    if not exits(child_pid, timeout=30):
        os.kill(child_pid, signal.SIGKILL)
        raise AssertionError("the worker outlived its parent")


def test_an_approve_click_is_recorded_and_announced_by_the_worker_processes(tmp_path: Path) -> None:
    """Under `shepherd serve` the click is stored before the ack; the inbox process records the
    decision and the delivery process tells the thread, with no test code applying anything."""
    import yaml

    from gates import usecases
    from tests.bot.scenario import find_button

    sponsor = "U0SPONSOR"
    with workspace(tmp_path, {OWNER: "olivia", sponsor: "sam"}) as (api, registry, settings, services):
        now = services.now()
        usecases.set_role_holders(services.pipeline, services.uow(), "sponsor", [sponsor], "U0ADMIN01", now)
        repo = Path(__file__).resolve().parents[2]
        answers = yaml.safe_load((repo / "examples" / "answers" / "intake-low-risk.yaml").read_text())
        answers |= {"business_sponsor": sponsor, "initiative_owner": OWNER}
        ref = usecases.register(
            services.pipeline,
            services.uow(),
            name="Forecast",
            owner_id=OWNER,
            answers=answers,
            actor_id=OWNER,
            now=now,
        ).ref
        usecases.submit(services.pipeline, services.uow(), ref, OWNER, now)
        app = build_app(settings, services)
        with BackgroundASGIServer(asgi_app(app, services, worker="process"), lifespan="on") as server:
            slack = SlackClient(server.url + "/slack/events", SIGNING_SECRET)
            dm = api.state.open_dm(sponsor)[0].id
            deadline = time.monotonic() + 60  # the children import the whole stack first
            while not api.state.channel_messages(dm) and time.monotonic() < deadline:
                time.sleep(0.1)
            [request] = api.state.channel_messages(dm)
            click = payloads.block_actions_on_message(
                request,
                ids.ACTION_APPROVE,
                user_id=sponsor,
                channel_id=dm,
                value=find_button(request, ids.ACTION_APPROVE)["value"],
            )
            assert slack.send(click).status == 200
            while time.monotonic() < deadline:
                with services.read_uow() as uow:
                    initiative = uow.initiatives.get(ref)
                if initiative.stage != "idea":
                    break
                time.sleep(0.1)
            assert initiative.stage == "poc"
            card = api.state.channel_messages(registry)[0]

            def replies() -> list[str]:
                return [m.get("text", "") for m in api.state.thread(registry, card["ts"])[1:]]

            def announced() -> bool:
                return any(sponsor in text and "last approval" in text for text in replies())

            # The thread already holds the review request: wait for the approval's own reply.
            while time.monotonic() < deadline and not announced():
                time.sleep(0.1)
        assert announced(), replies()


def test_a_worker_that_dies_is_started_again_and_does_its_work(tmp_path: Path) -> None:
    import os
    import signal

    with workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        asgi = asgi_app(build_app(settings, services), services, worker="process")
        with BackgroundASGIServer(asgi, lifespan="on") as server:
            workers = asgi.state.workers
            first = workers.pids()["delivery"]
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while workers.pids()["delivery"] == first and time.monotonic() < deadline:
                time.sleep(0.1)
            assert workers.pids()["delivery"] != first, "the delivery worker was not started again"
            # The new delivery worker posts the card of an initiative registered after the crash.
            register_through_slack(api, server.url, registry)
            pids = workers.pids()
        messages = api.state.channel_messages(registry)
        assert messages and "AI-0001" in str(messages[0]["blocks"])
        # Stopping the server stops the restarted children too.
        for pid in pids.values():
            assert exits(pid, timeout=15), f"worker {pid} still runs after the server stopped"


def test_what_a_killed_worker_had_claimed_is_handed_back_at_once(tmp_path: Path) -> None:
    """The inbox worker is killed in the middle of a round: the clicks it had claimed are due
    again as soon as its death is seen, not two minutes later when the lease would run out, and
    the restarted worker applies them."""
    import os
    import signal
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from bot.worker import WorkerChildren
    from storage.tables import inbox

    with workspace(tmp_path, {OWNER: "olivia"}) as (_, _, settings, services):
        children = WorkerChildren(settings, roles=("inbox",), database=services.database)
        children.start()
        try:
            claimant, pid = children.claimants()["inbox"], children.pids()["inbox"]
            now = datetime.now(UTC)
            with services.database.session() as session:
                # What the child held when it died: an item it claimed, leased for 2 minutes.
                row_id = session.execute(
                    insert(inbox)
                    .values(
                        kind="no-such-kind",
                        payload={},
                        status="pending",
                        attempts=1,
                        received_at=now,
                        next_attempt_at=now,
                        locked_until=now + timedelta(minutes=2),
                        claim_token=f"{claimant}:mid-round",
                    )
                    .returning(inbox.c.id)
                ).scalar_one()
                session.commit()

            def row() -> dict[str, object]:
                with services.database.session(read_only=True) as session:
                    return dict(session.execute(select(inbox).where(inbox.c.id == row_id)).mappings().one())

            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while row()["claim_token"] is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert row()["claim_token"] is None and row()["locked_until"] is None, (
                "the claim was not handed back"
            )
            # The restarted worker (a new name) takes it up: an unknown kind ends dead, with its reason.
            deadline = time.monotonic() + 60
            while row()["status"] == "pending" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (row()["status"], row()["attempts"]) == ("dead", 2)
            assert children.claimants()["inbox"] != claimant
        finally:
            children.stop()


def test_a_killed_delivery_worker_gives_up_the_scheduler_lease_at_once(tmp_path: Path) -> None:
    """The scheduler runs in the delivery worker. When that child is killed, its lease is given
    up as soon as its death is seen: the restarted child runs the scheduler from its first tick,
    where reminders and escalations would otherwise stop until the 30-second lease ran out."""
    import os
    import signal

    from bot.scheduler import lease_holder
    from bot.worker import WorkerChildren
    from storage.scheduling import SchedulerLease

    with workspace(tmp_path, {OWNER: "olivia"}) as (_, _, settings, services):
        settings = settings.model_copy(update={"scheduler_interval_seconds": 0.2})
        children = WorkerChildren(settings, roles=("delivery",), database=services.database)
        lease = SchedulerLease(services.database)

        def wait_for_holder(name: str, timeout: float) -> str | None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                held = lease.holder()
                if held is not None and held[0] == name:
                    return held[0]
                time.sleep(0.05)
            held = lease.holder()
            return held[0] if held else None

        children.start()
        try:
            claimant, pid = children.claimants()["delivery"], children.pids()["delivery"]
            assert wait_for_holder(lease_holder(claimant), 30) == lease_holder(claimant)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 15
            while children.claimants()["delivery"] == claimant and time.monotonic() < deadline:
                time.sleep(0.05)
            successor = children.claimants()["delivery"]
            assert successor != claimant, "the delivery worker was not started again"
            # Well within the lease's 30 seconds: the successor took it at its first ticks.
            assert wait_for_holder(lease_holder(successor), 15) == lease_holder(successor)
        finally:
            children.stop()
