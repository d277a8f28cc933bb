"""``GroupCommit``: what arrives while a batch is being written goes into the next one, each
caller gets its own outcome, and a failed batch fails every caller in it, never silently."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from storage.group_commit import GroupCommit


class RefusedError(Exception):
    pass


class Recorder:
    """A write function that records its batches; the first batch waits for ``release``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.writing = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.writing.set()
            assert self.release.wait(5)
        if any(item < 0 for item in items if item != -1):
            raise OSError("disk full")
        return [RefusedError(f"{item} refused") if item == -1 else item * 10 for item in items]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_requests_arriving_during_a_write_share_the_next_transaction(recorder: Recorder) -> None:
    writer: GroupCommit[int, int] = GroupCommit(recorder, name="test-writer")
    first = writer.submit(1)
    assert recorder.writing.wait(5)
    later = [writer.submit(n) for n in range(2, 7)]
    recorder.release.set()

    assert first.result(5) == 10
    assert [f.result(5) for f in later] == [20, 30, 40, 50, 60]
    assert recorder.batches == [[1], [2, 3, 4, 5, 6]]
    assert (writer.commits, writer.written) == (2, 6)
    writer.close()


def test_a_refused_item_gets_its_error_and_its_neighbours_their_results(recorder: Recorder) -> None:
    recorder.release.set()
    writer: GroupCommit[int, int] = GroupCommit(recorder, name="test-writer")
    assert writer.submit(1).result(5) == 10
    recorder.release.clear()
    blocker = writer.submit(2)
    futures = [writer.submit(n) for n in (3, -1, 4)]
    recorder.release.set()

    assert blocker.result(5) == 20
    assert futures[0].result(5) == 30
    with pytest.raises(RefusedError, match="-1 refused"):
        futures[1].result(5)
    assert futures[2].result(5) == 40
    writer.close()


def test_a_batch_that_fails_fails_every_caller_in_it_and_the_writer_goes_on(recorder: Recorder) -> None:
    recorder.release.set()
    writer: GroupCommit[int, int] = GroupCommit(recorder, name="test-writer", max_batch=1)
    failed = writer.submit(-5)
    with pytest.raises(OSError, match="disk full"):
        failed.result(5)
    assert writer.submit(7).result(5) == 70  # the thread survived the failure
    writer.close()


def test_a_write_that_miscounts_its_outcomes_fails_the_batch_instead_of_misreporting() -> None:
    writer: GroupCommit[int, int] = GroupCommit(lambda items: [], name="test-writer")
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        writer.submit(1).result(5)
    writer.close()


def test_close_writes_what_is_queued_then_stops_and_the_next_submit_starts_again(recorder: Recorder) -> None:
    writer: GroupCommit[int, int] = GroupCommit(recorder, name="test-writer")
    first = writer.submit(1)
    assert recorder.writing.wait(5)
    queued = writer.submit(2)
    closing = threading.Thread(target=writer.close)
    closing.start()
    recorder.release.set()
    closing.join(5)

    assert (first.result(0), queued.result(0)) == (10, 20)
    assert not any(t.name == "test-writer" for t in threading.enumerate())
    assert writer.submit(3).result(5) == 30
    writer.close()
