"""A process killed with SIGKILL mid-stream loses nothing it committed and leaves nothing
half-written."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from gates.lifecycle import ReviewStatus, Status
from storage import Database, verify_audit
from storage.tables import outbox
from tests.conftest import REPO_ROOT
from tests.storage.scenarios import register


def test_a_killed_writer_loses_no_committed_answer_and_leaves_no_half_written_review(
    database: Database,
) -> None:
    ref = register(database)
    url = database.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_child", url, ref],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert child.stdout is not None
    committed = 0
    target = random.randint(15, 40)
    try:
        while committed < target:
            line = child.stdout.readline()
            assert line, f"child stopped early: {child.stderr.read() if child.stderr else ''}"
            committed = int(line)
        time.sleep(random.uniform(0, 0.05))  # land the kill anywhere in the next transactions
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # Lines the child printed before it died but we had not read yet still count.
        for line in child.stdout.read().split():
            committed = int(line)
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    with database.uow(read_only=True) as uow:
        versions = [a for a in uow.answers.history(ref) if a.question_id == "problem"]
        initiative = uow.initiatives.get(ref)
        all_reviews = uow.reviews.for_initiative(ref)
        timeline = uow.audit.timeline(ref)
    # Every answer the child reported as committed is there (plus at most one it had no time to
    # report), each version once, the latest being current.
    recorded = len(versions) - 1  # the intake answer given at registration
    assert committed <= recorded <= committed + 1
    assert [v.version for v in versions] == list(range(1, recorded + 2))
    assert versions[-1].value == f"statement {recorded}"
    # No half-written review: each one is complete, and the initiative agrees with them.
    open_reviews = [r for r in all_reviews if r.status is ReviewStatus.OPEN]
    assert len(open_reviews) <= 1
    assert (initiative.status is Status.IN_REVIEW) == bool(open_reviews)
    assert all(r.status in (ReviewStatus.OPEN, ReviewStatus.WITHDRAWN) for r in all_reviews)
    assert all((r.closed_at is None) == (r.status is ReviewStatus.OPEN) for r in all_reviews)
    submitted = [e for e in timeline if e.action == "review.submitted"]
    withdrawn = [e for e in timeline if e.action == "review.withdrawn"]
    assert [e.detail["review"] for e in submitted] == [r.id for r in all_reviews]
    assert len(withdrawn) == len(all_reviews) - len(open_reviews)
    with database.session(read_only=True) as session:
        requested = session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.kind == "review.requested")
        ).scalar_one()
    assert requested == len(all_reviews)
    assert verify_audit(database).ok
