"""On SQLite one listener runs at a time, and one waiting for the write lock lets the next run
meanwhile: a questionnaire page saved behind another writer holds up no one else's ack."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

from bot import ids
from bot.dispatch_limit import DispatchLimit
from bot.emulator import payloads
from tests.bot.scenario import Workspace, only_ref, workspace_with_initiative
from tests.bot.test_inbox_views import OWNER, QUESTION, SPONSOR, page_with

# ---------------------------------------------------------------- the limit itself


def test_one_thread_runs_one_listener_at_a_time() -> None:
    limit = DispatchLimit(1)
    trace: list[str] = []

    def listener(name: str) -> None:
        trace.append(f"{name} in")
        time.sleep(0.02)
        trace.append(f"{name} out")

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for name in "abcd":
                group.start_soon(limit.run, listener, name)

    anyio.run(main)
    assert [event.split()[1] for event in trace] == ["in", "out"] * 4


def test_a_listener_waiting_for_the_lock_lets_the_next_one_run_meanwhile() -> None:
    limit = DispatchLimit(1)
    trace: list[str] = []
    waiting = threading.Event()
    other_ran = threading.Event()

    def waits_for_the_lock() -> None:
        with limit.waiting():
            waiting.set()
            assert other_ran.wait(5), "the next listener did not run during the wait"
            trace.append("the wait ends")
        trace.append("the first goes on")

    def other() -> None:
        trace.append("the next runs")
        other_ran.set()

    async def main() -> float:
        async with anyio.create_task_group() as group:
            group.start_soon(limit.run, waits_for_the_lock)
            await anyio.to_thread.run_sync(waiting.wait, 5)
            group.start_soon(limit.run, other)
        return limit.limit

    assert anyio.run(main) == 1
    assert trace == ["the next runs", "the wait ends", "the first goes on"]


def test_waiting_outside_a_listener_changes_nothing() -> None:
    """The inbox writer, worker threads and Bolt's lazy listeners also write: their waits must
    not let more listeners run."""
    limit = DispatchLimit(1)

    def wait_elsewhere() -> float:
        with limit.waiting():
            time.sleep(0.05)
            return limit.limit

    async def main() -> tuple[float, float]:
        await limit.run(lambda: None)  # a listener thread exists
        during = await anyio.to_thread.run_sync(wait_elsewhere)
        return during, limit.limit

    assert anyio.run(main) == (1, 1)


def test_many_requests_never_run_more_than_the_limit_and_all_finish() -> None:
    limit = DispatchLimit(2)
    lock = threading.Lock()
    running, most = 0, 0

    def listener(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.001)
        with lock:
            running -= 1
        return n * n

    async def main() -> list[int]:
        results = [0] * 200

        async def one(n: int) -> None:
            results[n] = await limit.run(listener, n)

        async with anyio.create_task_group() as group:
            for n in range(200):
                group.start_soon(one, n)
        return results

    assert anyio.run(main) == [n * n for n in range(200)]
    assert most == 2


def test_a_listener_that_raises_fails_its_caller_only() -> None:
    limit = DispatchLimit(1)

    def broken() -> None:
        raise ValueError("no such initiative")

    async def main() -> str:
        with pytest.raises(ValueError, match="no such initiative"):
            await limit.run(broken)
        with pytest.raises(RuntimeError, match="StopIteration"):
            await limit.run(next, iter(()))
        return await limit.run(str.upper, "still serving")

    assert anyio.run(main) == "STILL SERVING"


def test_idle_threads_end_and_the_next_request_starts_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.dispatch_limit.IDLE_SECONDS", 0.05)
    limit = DispatchLimit(1)

    # This limit's own thread, not a count of all listener threads: other tests' limits end
    # their idle threads on their own schedule, while this one runs.
    async def main() -> tuple[bool, bool, str]:
        first = await limit.run(threading.current_thread)
        first.join(timeout=5)
        second = await limit.run(threading.current_thread)
        return first.is_alive(), second is not first, await limit.run(str.upper, "again")

    assert anyio.run(main) == (False, True, "AGAIN")


# ---------------------------------------------------------------- through the HTTP server


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    people = {OWNER: "olivia", SPONSOR: "sam"}
    with workspace_with_initiative(tmp_path / "data", people, OWNER, [SPONSOR]) as ws:
        ws.deliver()
        yield ws


def test_a_page_waiting_for_the_write_lock_holds_up_no_other_ack(workspace: Workspace) -> None:
    ws = workspace
    ref = only_ref(ws)
    page = page_with(ws, QUESTION)
    # Another process (the worker, say) holds SQLite's write lock.
    other = sqlite3.connect(ws.services.database.url.database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with ThreadPoolExecutor(1) as pool:
            saving = pool.submit(
                ws.client.send,
                payloads.view_submission(page, user_id=OWNER, values={ids.question_block_id(QUESTION): "10"}),
            )
            time.sleep(0.3)
            assert not saving.done(), "the page was saved although the write lock was held"
            for _ in range(3):
                status = ws.client.send(
                    payloads.slash_command(
                        ids.COMMAND, f"status {ref}", user_id=OWNER, channel_id=ws.registry
                    )
                )
                assert status.status == 200
                assert ref in status.json()["text"]
            assert not saving.done(), "the status replies were answered only after the page"
            other.execute("COMMIT")
            saved = saving.result(10)
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    assert saved.status == 200, saved.text
    with ws.services.read_uow() as uow:
        assert uow.answers.current(ref)[QUESTION].value == 10
