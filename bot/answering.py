"""Where questions are answered: retrieval, the LLM and the streaming updates, on threads of their
own.

An answer can take a minute (the LLM's timeout, twice). Made on Bolt's lazy-listener threads, a
few slow answers would hold every one of them, and a click that must open a modal within its
trigger's 3 seconds (Answer questions, Reject, View evidence, ``/shepherd new``) would wait behind
them and fail. Bolt's threads therefore only post the placeholder and hand the question over.

The pool is bounded twice: ``workers`` questions are answered at once, ``waiting`` more may wait
for a thread, and beyond that ``submit`` refuses, so the listener tells the person Shepherd is
busy instead of letting a queue grow without end while everyone waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("shepherd.answering")

WAITING_PER_WORKER = 2
"""Questions that may wait for a thread, per thread: a question waits at most about two
answers' time before its own starts."""


class AnswerPool:
    """A bounded pool of threads that answer questions."""

    def __init__(self, workers: int, waiting: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"an answer pool needs at least one thread, got {workers}")
        self.workers = workers
        self.waiting = WAITING_PER_WORKER * workers if waiting is None else waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shepherd-answer")
        self._slots = threading.BoundedSemaphore(workers + self.waiting)

    def submit(self, work: Callable[[], None]) -> bool:
        """Run ``work`` on an answering thread; False (and ``work`` is not run) when the pool is
        full. ``work`` handles its own errors: anything it raises is only logged here."""
        if not self._slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                work()
            except Exception:
                logger.exception("an answer failed outside its own error handling")
            finally:
                self._slots.release()

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down: the process is stopping
            self._slots.release()
            return False
        return True

    def shutdown(self) -> None:
        """Take no more questions; answers under way finish."""
        self._executor.shutdown(wait=False)
