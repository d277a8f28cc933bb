"""Where questions are answered: retrieval, the LLM and the streaming updates, on threads of their
own.

An answer can take a minute (the LLM's timeout, twice). Made on Bolt's lazy-listener threads, a
few slow answers would hold every one of them, and a click that must open a modal within its
trigger's 3 seconds (Answer questions, Reject, View evidence, ``/shepherd new``) would wait behind
them and fail. Bolt's threads therefore only post the placeholder and hand the question over.

The pool is bounded twice: ``workers`` questions are answered at once, ``waiting`` more may wait
for a thread, and beyond that ``submit`` refuses, so the listener tells the person Shepherd is
busy instead of letting a queue grow without end while everyone waits.

When the process stops (``stop``), answers under way get a few seconds to finish; every asker
still waiting after that is told Shepherd restarted (each question's ``abandon``), so no
placeholder goes on promising an answer that will never come.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("shepherd.answering")

WAITING_PER_WORKER = 2
"""Questions that may wait for a thread, per thread: a question waits at most about two
answers' time before its own starts."""


class AnswerPool:
    """A bounded pool of threads that answer questions.

    Not a ``ThreadPoolExecutor``: Python waits for an executor's threads before it exits, so an
    answer stuck on the LLM (up to its timeout, twice) would hold a stopping process past the
    30 s a supervisor allows. Each question gets a daemon thread instead, and ``workers`` of them
    answer at once; once stopped, the process exits without waiting for them.
    """

    def __init__(self, workers: int, waiting: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"an answer pool needs at least one thread, got {workers}")
        self.workers = workers
        self.waiting = WAITING_PER_WORKER * workers if waiting is None else waiting
        self._slots = threading.BoundedSemaphore(workers + self.waiting)
        self._answering = threading.BoundedSemaphore(workers)
        # The questions taken and not yet answered (waiting or under way), each with its abandon,
        # and those under way; guarded by ``_changed``, as ``_stopped`` is.
        self._open: dict[object, Callable[[], None]] = {}
        self._under_way: set[object] = set()
        self._stopped = False
        self._changed = threading.Condition()

    def submit(self, work: Callable[[], None], abandon: Callable[[], None] | None = None) -> bool:
        """Run ``work`` on an answering thread; False (and ``work`` is not run) when the pool is
        full or stopped. ``work`` handles its own errors: anything it raises is only logged here.

        Args:
            abandon: tells the asker the answer will not come, should the process stop before
                ``work`` is done (``stop``).
        """
        if not self._slots.acquire(blocking=False):
            return False
        question = object()
        with self._changed:
            if self._stopped:
                self._slots.release()
                return False
            self._open[question] = abandon or (lambda: None)
        threading.Thread(target=self._run, args=(question, work), name="shepherd-answer", daemon=True).start()
        return True

    def _run(self, question: object, work: Callable[[], None]) -> None:
        try:
            with self._answering:
                with self._changed:
                    if self._stopped:  # its turn came too late: ``stop`` tells its asker
                        return
                    self._under_way.add(question)
                try:
                    work()
                except Exception:
                    logger.exception("an answer failed outside its own error handling")
                with self._changed:
                    self._open.pop(question, None)
                    self._under_way.discard(question)
                    self._changed.notify_all()
        finally:
            self._slots.release()

    def stop(self, grace: float, timeout: float) -> int:
        """Take no more questions, give the answers under way ``grace`` seconds to finish, then
        tell everyone still waiting (under way or not started) that the answer will not come,
        all within ``timeout`` seconds; returns how many were told.

        Questions waiting for a thread are not started: each would take longer than the grace.
        An answer still under way goes on until the process exits, but its asker is already told.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._stopped = True
            self._changed.wait_for(lambda: not self._under_way, timeout=grace)
            left = list(self._open.values())
            self._open.clear()
        if left:
            logger.warning(
                "stopping with %d questions unanswered: their askers are told to ask again", len(left)
            )
        # One Slack call each, side by side: the time they take is what the deadline bounds.
        notices = [threading.Thread(target=_tell, args=(abandon,), daemon=True) for abandon in left]
        for notice in notices:
            notice.start()
        for notice in notices:
            notice.join(max(0.0, deadline - time.monotonic()))
        return len(left)


def _tell(abandon: Callable[[], None]) -> None:
    try:
        abandon()
    except Exception:  # Slack failing now: nothing more can be done for this asker; logged
        logger.exception("an asker could not be told that Shepherd stopped before answering")
