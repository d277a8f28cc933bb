"""/metrics after signed requests: request counts, ack latency, outbox depth and deliveries."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from gates import usecases
from tests.bot.scenario import Workspace, workspace_of

OWNER = "U0OWNER01"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite behind the real ASGI server, talking to the emulator."""
    with workspace_of({OWNER: "olivia"}, tmp_path / "data") as ws:
        yield ws


def scrape(workspace: Workspace) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics, keyed by (name, sorted labels)."""
    return scrape_url(workspace.client.endpoint_url.removesuffix("/slack/events") + "/metrics")


def scrape_url(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_signed_requests_are_counted_and_timed_by_payload_type(workspace: Workspace) -> None:
    before = value("shepherd_slack_requests_total", payload="command", status="200")
    before_count = value("shepherd_slack_ack_seconds_count", payload="command")
    for _ in range(3):
        assert workspace.command(OWNER, "help").status == 200
    samples = scrape(workspace)
    assert (
        samples[("shepherd_slack_requests_total", (("payload", "command"), ("status", "200")))] == before + 3
    )
    assert samples[("shepherd_slack_ack_seconds_count", (("payload", "command"),))] == before_count + 3
    assert samples[("shepherd_slack_ack_seconds_sum", (("payload", "command"),))] > 0


def test_a_forged_request_is_counted_with_its_401(workspace: Workspace) -> None:
    from bot import ids
    from bot.emulator import payloads

    before = value("shepherd_slack_requests_total", payload="command", status="401")
    payload = payloads.slash_command(ids.COMMAND, "help", user_id=OWNER, channel_id=workspace.registry)
    assert workspace.client.send(payload, signing="forged").status == 401
    assert value("shepherd_slack_requests_total", payload="command", status="401") == before + 1


def test_outbox_depth_is_read_from_the_database_at_each_scrape(workspace: Workspace) -> None:
    services = workspace.services
    usecases.register(
        services.pipeline,
        services.uow(),
        name="Invoice matching",
        owner_id=OWNER,
        answers={},
        actor_id=OWNER,
        now=services.now(),
    )
    pending = scrape(workspace)[("shepherd_outbox_messages", (("status", "pending"),))]
    assert pending >= 1
    workspace.deliver()
    samples = scrape(workspace)
    assert samples[("shepherd_outbox_messages", (("status", "pending"),))] == 0
    assert samples[("shepherd_outbox_messages", (("status", "delivered"),))] == pending
    assert ("shepherd_reminders_sent_total", ()) in samples


def test_deliveries_are_counted_by_kind_and_outcome() -> None:
    class Message:
        kind = "test.kind"

    def failing(message: object) -> None:
        raise RuntimeError("Slack is down")

    delivered = value("shepherd_outbox_deliveries_total", kind="test.kind", outcome="delivered")
    failed = value("shepherd_outbox_deliveries_total", kind="test.kind", outcome="failed")
    metrics.counted_sender(lambda message: None)(Message())
    with pytest.raises(RuntimeError):
        metrics.counted_sender(failing)(Message())
    assert value("shepherd_outbox_deliveries_total", kind="test.kind", outcome="delivered") == delivered + 1
    assert value("shepherd_outbox_deliveries_total", kind="test.kind", outcome="failed") == failed + 1


def test_the_outbox_worker_started_by_the_server_counts_its_deliveries(workspace: Workspace) -> None:
    import threading

    from bot.server import start_outbox_worker

    services = workspace.services
    usecases.register(
        services.pipeline,
        services.uow(),
        name="Churn radar",
        owner_id=OWNER,
        answers={},
        actor_id=OWNER,
        now=services.now(),
    )
    before = value("shepherd_outbox_deliveries_total", kind="initiative.registered", outcome="delivered")
    from bot.app import build_app

    app = build_app(services.settings, services)
    stop = threading.Event()
    thread = start_outbox_worker(app, services, stop)
    try:
        workspace.wait(
            lambda: (
                value("shepherd_outbox_deliveries_total", kind="initiative.registered", outcome="delivered")
                == before + 1
            )
        )
    finally:
        stop.set()
        thread.join(timeout=10)


def test_payload_types_are_a_bounded_set() -> None:
    assert metrics.payload_type({"command": "/shepherd", "text": "help"}) == "command"
    assert metrics.payload_type({"type": "event_callback"}) == "event_callback"
    assert metrics.payload_type({"payload": '{"type": "block_actions"}'}) == "block_actions"
    assert metrics.payload_type({"type": "something_new"}) == "unknown"
    assert metrics.payload_type({"payload": "not json"}) == "unknown"
    assert metrics.payload_type(None) == "unknown"


def test_a_listener_error_is_counted(workspace: Workspace) -> None:
    from bot.listeners.common import ErrorReporter

    before = value("shepherd_errors_total", where="slack_listener")
    ErrorReporter(workspace.services).handle(RuntimeError("boom"), {})
    assert value("shepherd_errors_total", where="slack_listener") == before + 1


def test_metrics_count_the_deliveries_of_the_worker_children_and_this_process_s_requests(
    tmp_path: Path,
) -> None:
    """`shepherd serve`'s default (``--worker process``): the card is posted by a worker child,
    whose counters used to stay in its own process, so /metrics never showed a delivery. Now
    the children's and the HTTP process's own counters are on the same page."""
    import os
    import time

    from bot.app import build_app
    from bot.emulator.serving import BackgroundASGIServer
    from bot.server import asgi_app
    from tests.bot.test_worker_process import register_through_slack
    from tests.bot.test_worker_process import workspace as worker_workspace

    def delivered(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        key = (
            "shepherd_outbox_deliveries_total",
            (("kind", "initiative.registered"), ("outcome", "delivered")),
        )
        return samples.get(key, 0.0) - before

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    labels = {"kind": "initiative.registered", "outcome": "delivered"}
    before = REGISTRY.get_sample_value("shepherd_outbox_deliveries_total", labels) or 0.0  # earlier tests'
    with worker_workspace(tmp_path, {OWNER: "olivia"}) as (api, registry, settings, services):
        app = build_app(settings, services)
        with BackgroundASGIServer(asgi_app(app, services, worker="process"), lifespan="on") as server:
            register_through_slack(api, server.url, registry)
            assert api.state.channel_messages(registry), "the worker child posted no card"
            url = server.url + "/metrics"
            deadline = time.monotonic() + 10  # the child counts once Slack has answered
            samples = scrape_url(url)
            while not delivered(samples) and time.monotonic() < deadline:
                time.sleep(0.1)
                samples = scrape_url(url)
    assert delivered(samples) == 1
    command = ("shepherd_slack_requests_total", (("payload", "command"), ("status", "200")))
    assert samples[command] >= 1  # this process's own count, beside the children's
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # set for the children only while serving
