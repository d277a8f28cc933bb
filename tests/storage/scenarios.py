"""Shared steps for storage tests, importable by spawned processes (so: module-level functions
that take a URL and build everything they need)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gates import usecases
from gates.errors import GateError
from gates.lifecycle import DecisionKind
from gates.loader import CompiledPipeline
from storage import Database
from tests.gates.conftest import DPO, OWNER, RISK_1, RISK_2, SPONSOR, SUBMITTER, TWO_GATES, build

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=3)

INTAKE = {"problem": "Invoices are matched by hand", "personal_data": "no"}
INTAKE_WITH_PERSONAL_DATA = {
    "problem": "Invoices are matched by hand",
    "personal_data": "yes",
    "dpia": "https://wiki.example.com/dpia",
}


START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.at = START
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self.at

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.at += timedelta(**delta)


def pipeline() -> CompiledPipeline:
    return build(TWO_GATES)


def register(
    database: Database, answers: dict[str, Any] | None = None, name: str = "Invoice matching"
) -> str:
    initiative = usecases.register(
        pipeline(),
        database.uow(),
        name=name,
        owner_id=OWNER,
        answers=answers or INTAKE,
        actor_id=OWNER,
        now=NOW,
    )
    return initiative.ref


def submit(database: Database, ref: str) -> int:
    review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, NOW)
    assert review.id is not None
    return review.id


def in_pilot_review(database: Database) -> tuple[str, int]:
    """An initiative past intake, its pilot gate answered and submitted (needs 2 risk + sponsor)."""
    ref = register(database)
    intake_review = submit(database, ref)
    usecases.decide(pipeline(), database.uow(), intake_review, SPONSOR, DecisionKind.APPROVE, None, NOW)
    usecases.answer(pipeline(), database.uow(), ref, "pilot", {"success": "partly"}, OWNER, NOW)
    return ref, submit(database, ref)


# -- run the same thing at the same moment, in threads or in processes ---------------------------


def run_threads(target: Callable[..., Any], args_list: list[tuple[Any, ...]]) -> list[Any]:
    """Start one thread per args tuple behind a barrier; returns each result or raised error."""
    barrier = threading.Barrier(len(args_list))
    results: list[Any] = [None] * len(args_list)

    def run(index: int, args: tuple[Any, ...]) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = target(*args)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, args)) for i, args in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def run_processes(target: Callable[..., Any], args_list: list[tuple[Any, ...]]) -> list[Any]:
    """Like run_threads, with one spawned process each; ``target`` must be module-level here."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(len(args_list))
        with context.Pool(len(args_list)) as pool:
            pending = [pool.apply_async(_behind_barrier, (barrier, target, args)) for args in args_list]
            return [p.get(timeout=180) for p in pending]


def _behind_barrier(barrier: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    barrier.wait(timeout=60)
    try:
        return target(*args)
    except GateError as error:
        return f"{type(error).__name__}: {error}"


# -- the things raced (each opens its own Database: they also run in child processes) ----------


def decide_in_own_database(url: str, review_id: int, user_id: str) -> str:
    database = Database(url)
    try:
        outcome = usecases.decide(
            pipeline(), database.uow(), review_id, user_id, DecisionKind.APPROVE, None, LATER
        )
        return "advanced" if outcome.advanced else ("duplicate" if outcome.result.duplicate else "recorded")
    finally:
        database.dispose()


def submit_in_own_database(url: str, ref: str) -> str:
    database = Database(url)
    try:
        return f"review {submit(database, ref)}"
    finally:
        database.dispose()


def append_audit_in_own_database(url: str, worker: int, count: int) -> int:
    database = Database(url)
    try:
        for n in range(count):
            with database.uow() as uow:
                uow.audit.append(f"U{worker}", "test.append", f"worker:{worker}", {"n": n}, NOW)
                uow.commit()
        return count
    finally:
        database.dispose()


def register_in_own_database(url: str, count: int) -> list[str]:
    database = Database(url)
    try:
        return [register(database, name=f"Initiative {n}") for n in range(count)]
    finally:
        database.dispose()


RACERS = {"RISK_1": RISK_1, "RISK_2": RISK_2, "SPONSOR": SPONSOR, "DPO": DPO}
