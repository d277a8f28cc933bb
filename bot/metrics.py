"""Shepherd's own Prometheus metrics, served at ``/metrics`` by ``bot.server``.

The counters and histograms are process-wide (the default registry), so any module can count
what it does: the scheduler calls ``REMINDERS_SENT.inc()`` for each reminder or escalation it
sends. Outbox and inbox depth are read from the database at scrape time (``OutboxDepthCollector``,
``InboxDepthCollector``), so they are right even when another replica did the work.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

logger = logging.getLogger("shepherd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter(
    "shepherd_slack_requests",
    "Requests from Slack handled on /slack/events, by payload type and HTTP status.",
    ["payload", "status"],
)
ACK_LATENCY = Histogram(
    "shepherd_slack_ack_seconds",
    "Time from receiving a Slack request to the acknowledgement (Bolt dispatch), by payload type.",
    ["payload"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
DELIVERIES = Counter(
    "shepherd_outbox_deliveries",
    "Outbox messages handed to Slack, by message kind and outcome (delivered or failed).",
    ["kind", "outcome"],
)
REMINDERS_SENT = Counter(
    "shepherd_reminders_sent",
    "Reminders and escalations sent by the scheduler.",
)
LLM_LATENCY = Histogram(
    "shepherd_llm_answer_seconds",
    "Time to stream one complete LLM answer, by outcome (ok or error).",
    ["outcome"],
    buckets=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
)
ERRORS = Counter(
    "shepherd_errors",
    "Unexpected errors, by where they were caught.",
    ["where"],
)

_PAYLOAD_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "event_callback",
        "message_action",
        "shortcut",
        "url_verification",
        "view_closed",
        "view_submission",
    }
)


def payload_type(body: Mapping[str, Any] | None) -> str:
    """A bounded label for what Slack sent: ``command`` or the payload's ``type``."""
    if not isinstance(body, Mapping):
        return "unknown"
    if body.get("command"):
        return "command"
    kind = body.get("type")
    if kind is None and isinstance(body.get("payload"), str):
        try:
            kind = json.loads(body["payload"]).get("type")
        except (ValueError, AttributeError):
            kind = None
    return str(kind) if kind in _PAYLOAD_TYPES else "unknown"


class StatusCountsCollector(Collector):
    """A gauge of rows by status, counted in the database on every scrape."""

    def __init__(
        self, name: str, description: str, statuses: tuple[str, ...], counts: Callable[[], Mapping[str, int]]
    ) -> None:
        self._name, self._description, self._statuses, self._counts = name, description, statuses, counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(self._name, self._description, labels=["status"])
        try:
            counts = dict(self._counts())
        except Exception:  # a scrape must not fail because the database blinked; the log has it
            logger.exception("could not count %s for /metrics", self._name)
            counts = {}
        for status in self._statuses:
            counts.setdefault(status, 0)
        for status, count in sorted(counts.items()):
            gauge.add_metric([status], float(count))
        yield gauge


class OutboxDepthCollector(StatusCountsCollector):
    """``shepherd_outbox_messages{status=...}``."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        super().__init__(
            "shepherd_outbox_messages",
            "Outbox messages by status (pending, delivered, dead).",
            ("pending", "delivered", "dead"),
            counts,
        )


class InboxDepthCollector(StatusCountsCollector):
    """``shepherd_inbox_requests{status=...}``: acknowledged requests waiting for the worker
    (pending), applied, or given up on (dead: look at ``last_error``)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        super().__init__(
            "shepherd_inbox_requests",
            "Acknowledged Slack requests by status (pending, applied, dead).",
            ("pending", "applied", "dead"),
            counts,
        )


def exposition(local: CollectorRegistry | None = None) -> bytes:
    """The process-wide metrics plus ``local`` (one app's database-backed gauges).

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``shared_directory``), the counters and histograms
    are those of every process counting there, the worker children's included: under
    ``shepherd serve --processes N`` every process does; under a single HTTP process, only
    its worker children do, and this process's own counters (kept in memory) are added to theirs.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and _COUNTED_IN_FILES:
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]  # unannotated __init__
        text = generate_latest(shared)
    elif directory:
        collector = multiprocess.MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]
        text = generate_latest(_Summed(REGISTRY, collector))
    else:
        text = generate_latest(REGISTRY)
    if local is not None:
        text += generate_latest(local)
    return text


# Whether this process's counters are kept in PROMETHEUS_MULTIPROC_DIR's files: prometheus_client
# decided when it was imported, from the environment then.
_COUNTED_IN_FILES = values.ValueClass is not values.MutexValue


class _Summed(Collector):
    """The families of several collectors as one: a sample both have (same name and labels) is
    their sum, as prometheus_client's multiprocess mode sums the processes' counters."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for collector in self._collectors:
            for family in collector.collect():
                known = families.setdefault(family.name, family)
                if known is not family:
                    known.samples = _sum_samples([*known.samples, *family.samples])
        yield from families.values()


def _sum_samples(samples: list[Sample]) -> list[Sample]:
    summed: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        known = summed.get(key)
        summed[key] = sample if known is None else known._replace(value=known.value + sample.value)
    return list(summed.values())


@contextmanager
def shared_directory() -> Iterator[None]:
    """A ``PROMETHEUS_MULTIPROC_DIR`` for the child processes started in the block, so that
    ``exposition`` counts what they do: the one set in the environment, or a temporary one,
    removed afterwards.

    prometheus_client wants the directory emptied between runs, or old counts add up: the files
    of other processes are removed first (this one's own, if it counts there, are kept).
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            if not stale.stem.endswith(f"_{os.getpid()}"):
                stale.unlink()
        yield
        return
    directory = tempfile.mkdtemp(prefix="shepherd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)


def counted_sender(send: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap an outbox sender so each delivery attempt is counted by kind and outcome."""

    def deliver(message: Any) -> None:
        kind = str(getattr(message, "kind", "unknown"))
        try:
            send(message)
        except BaseException:
            DELIVERIES.labels(kind=kind, outcome="failed").inc()
            raise
        DELIVERIES.labels(kind=kind, outcome="delivered").inc()

    return deliver


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
