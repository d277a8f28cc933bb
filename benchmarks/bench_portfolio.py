"""How long the portfolio takes on a large registry: reading (two queries), computing, charting.

Seeds N initiatives spread over the default pipeline's stages, each with one approved review per
stage it passed (two decisions each) and a third of them with a rejected review, in a fresh
SQLite file (or PostgreSQL with --postgres), then times ``load_portfolio`` and ``render_png``.

Usage::

    .venv/bin/python benchmarks/bench_portfolio.py            # 1,000 and 5,000 initiatives
    .venv/bin/python benchmarks/bench_portfolio.py --sizes 200 --postgres postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.portfolio_chart import render_png
from gates.lifecycle import Decision, DecisionKind, Initiative, Requirement, Review, ReviewStatus
from gates.loader import CompiledPipeline, load_pipeline
from gates.portfolio import Portfolio, load_portfolio
from storage import Database, sqlite_url

START = datetime(2025, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=500)
T = TypeVar("T")


def seed(database: Database, count: int, rng: random.Random) -> None:
    stages = load_pipeline(None).model.stages
    plans: list[tuple[Initiative, list[datetime]]] = []
    for n in range(count):
        reached = rng.choices(range(len(stages)), weights=[40, 30, 15, 10, 5])[0]
        created = at = START + timedelta(days=rng.uniform(0, 300))
        moves = []
        for _ in range(reached):
            at += timedelta(days=rng.uniform(5, 60))
            moves.append(at)
        initiative = Initiative(f"AI-{n + 1:05d}", f"Initiative {n}", "U1", stages[reached], created)
        initiative.stage_entered_at = at
        plans.append((initiative, moves))
    with database.uow() as uow:
        for initiative, _ in plans:
            uow.initiatives.add(initiative)
        uow.commit()
    reasons = ["No sponsor.", "no sponsor", "Metrics unclear", "DPIA missing"]
    with database.uow() as uow:
        for initiative, moves in plans:
            for i, closed in enumerate(moves):
                approvals = [
                    Decision("U2", DecisionKind.APPROVE, "risk", None, closed - timedelta(days=1)),
                    Decision("U3", DecisionKind.APPROVE, "risk", None, closed),
                ]
                uow.reviews.add(_review(initiative.ref, stages[i], stages[i + 1], closed, approvals))
            if rng.random() < 1 / 3:
                at = NOW - timedelta(days=10)
                rejection = [Decision("U2", DecisionKind.REJECT, "risk", rng.choice(reasons), at)]
                uow.reviews.add(
                    _review(initiative.ref, stages[0], stages[1], at, rejection, ReviewStatus.REJECTED)
                )
        uow.commit()


def _review(
    ref: str,
    from_stage: str,
    to_stage: str,
    closed: datetime,
    decisions: list[Decision],
    status: ReviewStatus = ReviewStatus.APPROVED,
) -> Review:
    return Review(
        initiative_ref=ref,
        gate_id=f"{from_stage}_gate",
        from_stage=from_stage,
        to_stage=to_stage,
        submitted_by="U1",
        owner_id="U1",
        submitted_at=closed - timedelta(days=2),
        pipeline_version="1",
        evidence_hash="0" * 64,
        requirements=(Requirement("risk", 2),),
        status=status,
        decisions=decisions,
        closed_at=closed,
    )


def timed(action: Callable[[], T], repeat: int = 5) -> tuple[float, T]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _load(pipeline: CompiledPipeline, database: Database) -> Portfolio:
    return load_portfolio(pipeline, database.uow(read_only=True), NOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (its Shepherd tables are dropped)")
    args = parser.parse_args()
    pipeline = load_pipeline(None)
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            database = Database(args.postgres or sqlite_url(folder))
            if args.postgres:
                database.downgrade("base")
            database.upgrade()
            seed(database, size, random.Random(size))
            load_s, figures = timed(partial(_load, pipeline, database))
            chart_s, png = timed(partial(render_png, figures))
            with database.uow(read_only=True) as uow:
                reviews = len(uow.reviews.all_reviews())
            print(
                f"{size:>6} initiatives, {reviews:>6} reviews ({database.url.get_backend_name()}): "
                f"load+compute {load_s * 1000:7.1f} ms, chart {chart_s * 1000:6.1f} ms "
                f"({len(png):,} bytes)"
            )
            database.dispose()


if __name__ == "__main__":
    main()
