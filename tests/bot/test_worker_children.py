"""WorkerChildren keeps the worker child processes running, restarting slower and slower one
that keeps dying at once (fake children here; tests/bot/test_worker_process.py kills a real one)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from bot import worker
from bot.settings import Settings


class FakeChild:
    """A Popen-like child that has already exited (or runs until terminated)."""

    count = 0

    def __init__(self, exited: bool) -> None:
        FakeChild.count += 1
        self.pid = 100_000 + FakeChild.count
        self.returncode: int | None = 1 if exited else None
        self.terminated = False

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "_WATCH_INTERVAL", 0.01)
    monkeypatch.setattr(worker, "_FIRST_PAUSE", 0.1)
    monkeypatch.setattr(worker, "_QUICK_DEATH", 30.0)


def test_a_child_that_keeps_dying_is_restarted_with_a_doubling_pause(
    fast: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    starts: list[float] = []

    def spawn(settings: Settings, role: str, claimant: str = "") -> FakeChild:
        starts.append(time.monotonic())
        return FakeChild(exited=True)

    monkeypatch.setattr(worker, "spawn_worker", spawn)
    children = worker.WorkerChildren(Settings(data_dir=tmp_path), roles=("inbox",))
    children.start()
    deadline = time.monotonic() + 10
    while len(starts) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    children.stop()
    assert len(starts) >= 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)][:3]
    # At least 0.1, 0.2 and 0.4 s (a restart is never early; a loaded machine may make it late).
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps


def test_stopping_stops_the_children_and_starts_no_more(
    fast: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spawned: list[FakeChild] = []

    def spawn(settings: Settings, role: str, claimant: str = "") -> FakeChild:
        spawned.append(FakeChild(exited=False))
        return spawned[-1]

    monkeypatch.setattr(worker, "spawn_worker", spawn)
    children = worker.WorkerChildren(Settings(data_dir=tmp_path))
    children.start()
    assert set(children.pids()) == {"inbox", "delivery"}
    children.stop()
    assert len(spawned) == 2 and all(child.terminated for child in spawned)
    time.sleep(0.1)
    assert len(spawned) == 2
