"""Group commit: requests that arrive together are written in one transaction.

A transaction's fixed costs (BEGIN, COMMIT and its log write or fsync, the audit chain's
counter row, which is locked until the commit ends) are paid once for a whole batch instead of
once per request. One writer thread takes everything queued while its previous transaction was
in flight, so under load batches grow by themselves and at idle a request is written at once.

Callers that must not block (an event loop) keep the future; others wait on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

Write = Callable[[Sequence[Item]], Sequence["Result | BaseException"]]
"""Writes a batch in one transaction; one outcome per item, in order: its result, or the error
that refused it alone. Raising fails every item of the batch with that error."""


class GroupCommit(Generic[Item, Result]):
    """A writer thread (started on first use) running ``write`` on batches of up to ``max_batch``.

    Safe to call from many threads.
    """

    def __init__(self, write: Write[Item, Result], *, name: str, max_batch: int = 256) -> None:
        self._write = write
        self._name = name
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.commits = 0  # batches written; with ``written`` it shows how well batching works
        self.written = 0

    def submit(self, item: Item) -> Future[Result]:
        """Queue ``item`` for the next batch; the future completes when its batch has committed."""
        done: Future[Result] = Future()
        self._ensure_started()
        self._queue.put((item, done))
        return done

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer thread once what is queued has been written."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _ensure_started(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            # Not yet started, closed, or ended by an interrupt: a request never waits on no one.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            # Everything that arrived while the last commit was in flight goes into this one.
            while len(batch) < self.max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(entry)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            outcomes = self._write([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as error:  # every waiter must hear about it, whatever it was
            log.warning("%s: a batch of %d could not be written: %s", self._name, len(batch), error)
            for _, done in batch:
                done.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        self.commits += 1
        self.written += len(batch)
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
