"""Storage at scale: 10,000 initiatives and 500,000 answer versions, on SQLite and PostgreSQL.

Measures, through the real use cases and a fresh unit of work per call (as the bot does):
list / filter / show p50 and p95, readiness of one initiative p95 (goal <= 20 ms), the same for an
initiative with a long history of one answer (2,000 versions), a batch of 25 questionnaire pages
as the page writer records it, decisions per second with 8 concurrent clients, and outbox
throughput with 1 and 4 workers.

    .venv/bin/python benchmarks/bench_storage.py                      # SQLite only
    .venv/bin/python benchmarks/bench_storage.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python benchmarks/bench_storage.py --initiatives 1000 --answers 50000   # quick

PostgreSQL runs in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gates import usecases
from gates.lifecycle import DecisionKind, format_ref
from gates.loader import CompiledPipeline, load_pipeline
from gates.pipeline import Question, QuestionType
from storage import Database, OutboxWorker, sqlite_url
from storage.audit import GENESIS, canonical_json, entry_hash
from storage.tables import (
    AUDIT_SEQ_COUNTER,
    INITIATIVE_REF_COUNTER,
    answer_versions,
    audit_log,
    counters,
    initiatives,
    reviews,
)

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
APPROVER = "UBENCHAPPROVER"
console = Console()


class FixedClock:
    def now(self) -> datetime:
        return NOW + timedelta(days=1)


def sample_value(question: Question, n: int) -> Any:
    kind = question.type
    options = question.options or ["x"]
    if kind in (QuestionType.NUMBER, QuestionType.PERCENT):
        return 10 + n % 50
    if kind is QuestionType.YES_NO:
        return "yes" if n % 3 else "no"
    if kind is QuestionType.CHOICE:
        return options[n % len(options)]
    if kind is QuestionType.MULTI_CHOICE:
        return [options[0]]
    if kind is QuestionType.DATE:
        return "2025-05-01"
    if kind is QuestionType.USER:
        return f"U{1000 + n % 50}"
    if kind is QuestionType.URL:
        return f"https://wiki.example.com/doc/{n}"
    return f"Answer text number {n} for {question.id}, long enough to look like a real sentence."


def seed(database: Database, pipeline: CompiledPipeline, count: int, answers: int) -> None:
    """Bulk insert with SQLAlchemy Core, in batches."""
    stages = pipeline.model.stages[:4]
    questions = [(gate.id, q) for gate in pipeline.model.gates[:2] for q in gate.questions]
    per_initiative = max(1, answers // count)
    per_question = -(-per_initiative // len(questions))  # versions of each answered question
    chosen = questions[: per_initiative // per_question]
    rng = random.Random(1)
    with database.engine.begin() as connection:
        rows = []
        for n in range(1, count + 1):
            entered = NOW - timedelta(days=rng.randint(0, 200))
            rows.append(
                {
                    "ref": format_ref(n),
                    "name": f"Initiative {n}",
                    "owner_id": f"UOWNER{n % 300}",
                    "sponsor_id": f"USPONSOR{n % 40}",
                    "stage": stages[n % len(stages)],
                    "status": "active" if n % 11 else "on_hold",
                    "created_at": entered,
                    "stage_entered_at": entered,
                    "updated_at": entered,
                    "version": 0,
                }
            )
        connection.execute(insert(initiatives), rows)
        connection.execute(insert(counters), [{"name": INITIATIVE_REF_COUNTER, "value": count}])
    batch: list[dict[str, Any]] = []
    written = 0
    with database.engine.begin() as connection:
        for initiative_id in range(1, count + 1):
            for gate_id, question in chosen:
                for version in range(1, per_question + 1):
                    batch.append(
                        {
                            "initiative_id": initiative_id,
                            "gate_id": gate_id,
                            "question_id": question.id,
                            "version": version,
                            "value": sample_value(question, initiative_id + version),
                            "author_id": f"UOWNER{initiative_id % 300}",
                            "answered_at": NOW - timedelta(minutes=per_question - version),
                        }
                    )
            if len(batch) >= 20_000:
                connection.execute(insert(answer_versions), batch)
                written += len(batch)
                batch = []
        if batch:
            connection.execute(insert(answer_versions), batch)
            written += len(batch)
    # One audit entry per initiative, properly chained, so timelines and verify have work.
    prev = GENESIS
    entries = []
    for n in range(1, count + 1):
        payload = canonical_json({"name": f"Initiative {n}"})
        digest = entry_hash(n, "UOWNER", "initiative.registered", format_ref(n), payload, NOW, prev)
        entries.append(
            {
                "seq": n,
                "actor_id": "UOWNER",
                "action": "initiative.registered",
                "target": format_ref(n),
                "payload": payload,
                "at": NOW,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    with database.engine.begin() as connection:
        connection.execute(insert(audit_log), entries)
        connection.execute(insert(counters), [{"name": AUDIT_SEQ_COUNTER, "value": count}])
    console.print(f"  seeded {count:,} initiatives, {written:,} answer versions, {count:,} audit entries")


def add_history(database: Database, pipeline: CompiledPipeline, initiative_id: int, versions: int) -> str:
    """``versions`` more versions of one answer of the initiative; returns its ref."""
    gate = pipeline.model.gates[1]
    question = gate.questions[0]
    with database.engine.begin() as connection:
        start = connection.execute(
            text(
                "select coalesce(max(version), 0) from answer_versions where initiative_id = :i and question_id = :q"
            ),
            {"i": initiative_id, "q": question.id},
        ).scalar_one()
        connection.execute(
            insert(answer_versions),
            [
                {
                    "initiative_id": initiative_id,
                    "gate_id": gate.id,
                    "question_id": question.id,
                    "version": start + n,
                    "value": sample_value(question, n),
                    "author_id": "UOWNER1",
                    "answered_at": NOW + timedelta(seconds=n),
                }
                for n in range(1, versions + 1)
            ],
        )
    if not database.is_sqlite:
        with database.engine.begin() as connection:
            connection.execute(text("analyze answer_versions"))
    return format_ref(initiative_id)


def timed(samples: int, action: Callable[[int], Any]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    durations = []
    for i in range(samples):
        started = time.perf_counter()
        action(i)
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return statistics.median(durations), durations[int(len(durations) * 0.95) - 1]


def open_reviews_for_decisions(database: Database, pipeline: CompiledPipeline, count: int) -> list[int]:
    """Put ``count`` idea-stage initiatives in review for the intake gate, needing one sponsor."""
    gate = pipeline.model.gates[0]
    with database.engine.begin() as connection:
        ids = [
            row[0]
            for row in connection.execute(
                text(
                    "SELECT id FROM initiatives WHERE stage = :s AND status = 'active' ORDER BY id LIMIT :n"
                ),
                {"s": gate.from_, "n": count},
            )
        ]
        connection.execute(update(initiatives).where(initiatives.c.id.in_(ids)).values(status="in_review"))
        connection.execute(
            insert(reviews),
            [
                {
                    "initiative_id": i,
                    "gate_id": gate.id,
                    "from_stage": gate.from_,
                    "to_stage": gate.to,
                    "submitted_by": "USUBMIT",
                    "owner_id": "UOWNER",
                    "submitted_at": NOW,
                    "pipeline_version": pipeline.version,
                    "evidence_hash": "0" * 64,
                    "requirements": [{"role": "sponsor", "min": 1}],
                    "status": "open",
                    "version": 0,
                }
                for i in ids
            ],
        )
        review_ids = [
            row[0]
            for row in connection.execute(text("SELECT id FROM reviews WHERE status = 'open' ORDER BY id"))
        ]
    with database.uow() as uow:
        uow.roles.set_holders("sponsor", [APPROVER])
        uow.commit()
    return review_ids


def decisions_per_second(
    database: Database, pipeline: CompiledPipeline, review_ids: list[int], clients: int
) -> float:
    shares = [review_ids[i::clients] for i in range(clients)]
    errors: list[BaseException] = []

    def client(mine: list[int]) -> None:
        for review_id in mine:
            try:
                outcome = usecases.decide(
                    pipeline, database.uow(), review_id, APPROVER, DecisionKind.APPROVE, None, NOW
                )
                assert outcome.advanced
            except BaseException as error:  # reported below, the benchmark must not hide failures
                errors.append(error)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} decisions failed, first: {errors[0]!r}")
    return len(review_ids) / elapsed


def outbox_throughput(database: Database, messages: int, workers: int) -> float:
    # Deliver whatever earlier steps queued (decisions notify), untimed.
    drain = OutboxWorker(database, lambda message: None, FixedClock(), batch_size=200)
    while drain.run_once() > 0:
        pass
    with database.uow() as uow:
        for n in range(messages):
            uow.outbox.put("bench", {"n": n}, NOW)
        uow.commit()
    delivered: list[int] = []
    lock = threading.Lock()

    def sender(message: Any) -> None:
        with lock:
            delivered.append(message.id)

    def work() -> None:
        worker = OutboxWorker(database, sender, FixedClock(), batch_size=50)
        idle = 0
        while idle < 2:
            idle = idle + 1 if worker.run_once() == 0 else 0

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if len(delivered) != messages or len(set(delivered)) != messages:
        raise RuntimeError(
            f"outbox delivered {len(delivered)} ({len(set(delivered))} distinct) of {messages}"
        )
    return messages / elapsed


def run(label: str, database: Database, args: argparse.Namespace) -> dict[str, str]:
    console.print(f"[bold]{label}[/bold]: {database.describe()}")
    pipeline = load_pipeline()
    database.upgrade()
    started = time.perf_counter()
    seed(database, pipeline, args.initiatives, args.answers)
    if not database.is_sqlite:
        # Planner statistics for the bulk-loaded tables, as autovacuum would gather soon after.
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    console.print(f"  seeding took {time.perf_counter() - started:.1f} s")
    rng = random.Random(2)
    refs = [format_ref(rng.randint(1, args.initiatives)) for _ in range(args.samples)]
    stages = pipeline.model.stages[:4]
    results: dict[str, str] = {}

    def fmt(p: tuple[float, float]) -> str:
        return f"{p[0]:.1f} / {p[1]:.1f}"

    results["list 200 (p50 / p95 ms)"] = fmt(
        timed(
            args.samples,
            lambda i: usecases.list_initiatives(
                pipeline, database.uow(read_only=True), NOW, offset=(i * 37) % args.initiatives
            ),
        )
    )
    results["filter stage+status"] = fmt(
        timed(
            args.samples,
            lambda i: usecases.list_initiatives(
                pipeline,
                database.uow(read_only=True),
                NOW,
                stage=stages[i % 4],
                status=None,
                owner_id=f"UOWNER{i % 300}",
            ),
        )
    )
    results["filter stalled"] = fmt(
        timed(
            args.samples,
            lambda i: usecases.list_initiatives(pipeline, database.uow(read_only=True), NOW, stalled=True),
        )
    )
    results["show one initiative"] = fmt(
        timed(args.samples, lambda i: usecases.show(pipeline, database.uow(read_only=True), refs[i]))
    )
    readiness_ms = timed(
        args.samples,
        lambda i: usecases.check_readiness(
            pipeline, database.uow(read_only=True), refs[i], pipeline.model.gates[1].id
        ),
    )
    results["readiness of one (goal p95 <= 20)"] = fmt(readiness_ms)
    # An answer saved again and again (a questionnaire page resubmitted, a figure revised every
    # week) leaves a long history; reading the current answers should barely notice it.
    long_history = add_history(database, pipeline, initiative_id=1, versions=args.history)
    results[f"readiness, {args.history:,} versions of one answer"] = fmt(
        timed(
            args.samples,
            lambda i: usecases.check_readiness(
                pipeline, database.uow(read_only=True), long_history, pipeline.model.gates[1].id
            ),
        )
    )
    # What the page writer does for a batch of questionnaire pages saved at the same moment: read
    # the current answers of every initiative in the batch, record the changed ones.
    intake = pipeline.model.intake
    free_text = next(q for q in intake.questions if q.type is QuestionType.LONG_TEXT)

    def page_batch(i: int) -> None:
        pages = [
            usecases.check_page(
                pipeline,
                refs[(i * 25 + k) % len(refs)],
                intake.id,
                {free_text.id: f"Revised statement {i}.{k}: forecast spare-parts demand per depot, weekly."},
                APPROVER,
                NOW,
            )
            for k in range(25)
        ]
        usecases.answer_many(database.uow(), pages)

    results["a batch of 25 questionnaire pages"] = fmt(timed(args.samples, page_batch))
    review_ids = open_reviews_for_decisions(database, pipeline, args.decisions)
    results["decisions/s, 8 clients"] = f"{decisions_per_second(database, pipeline, review_ids, 8):.0f}"
    results["outbox msgs/s, 1 worker"] = f"{outbox_throughput(database, args.messages, 1):.0f}"
    results["outbox msgs/s, 4 workers"] = f"{outbox_throughput(database, args.messages, 4):.0f}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--initiatives", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=500_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument(
        "--history", type=int, default=2_000, help="versions of one answer in the long-history read"
    )
    parser.add_argument("--postgres", default=os.environ.get("SHEPHERD_TEST_DATABASE_URL"))
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    columns: dict[str, dict[str, str]] = {}
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            database = Database(sqlite_url(folder))
            try:
                columns["SQLite"] = run("SQLite", database, args)
            finally:
                database.dispose()
    if args.postgres:
        schema = f"shepherd_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.postgres).update_query_dict({"options": f"-csearch_path={schema}"})
        database = Database(url)
        try:
            columns["PostgreSQL"] = run("PostgreSQL", database, args)
        finally:
            database.dispose()
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    table = Table(
        title=f"Storage: {args.initiatives:,} initiatives, {args.answers:,} answer versions "
        f"({os.cpu_count()} cores)"
    )
    table.add_column("measure")
    for name in columns:
        table.add_column(name, justify="right")
    for measure in next(iter(columns.values()), {}):
        table.add_row(measure, *(columns[name][measure] for name in columns))
    console.print(table)


if __name__ == "__main__":
    main()
