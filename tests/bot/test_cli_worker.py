"""`shepherd worker` as an operator starts it: a worker pointed at a database that is not there
says so, rather than working on a new empty one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_worker_on_a_mistyped_sqlite_path_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    """Run as a process: a worker that did start would run until stopped (the timeout ends it)."""
    typo = tmp_path / "shepherd.bd"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SHEPHERD_", "SLACK_"))}
    env.update(
        PYTHONPATH=str(REPO),
        SHEPHERD_DATA_DIR=str(tmp_path / "data"),
        SHEPHERD_DATABASE_URL=f"sqlite:///{typo}",
        SHEPHERD_EMBEDDINGS="none",
        SHEPHERD_SCHEDULER_INTERVAL="0",
    )
    worker = subprocess.run(
        [sys.executable, "-m", "bot.cli", "worker"],
        cwd=tmp_path,  # no .env of the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 1
    said = " ".join(worker.stderr.split())
    assert said == (
        f"error: There is no database at {typo} (SHEPHERD_DATABASE_URL). "
        "Check the path; `shepherd db upgrade` creates a new one there."
    )
    assert "Worker running" not in worker.stdout
    assert not typo.exists()
