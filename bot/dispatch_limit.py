"""How many listeners run at once: a fixed number of threads, plus one for each that is waiting
for SQLite's write lock.

On SQLite an ack's work is CPU in this interpreter, and every statement and every row fetched is
a C call that releases the GIL. Two threads running listeners at once hand the GIL back and forth
around each of them, and every hand-off is a context switch. Measured with
benchmarks/bench_slack.py, SQLite, 50 connections, alternating runs:

- two threads: 979-1,000 slash commands/s (p99 57-59 ms), 1,702-1,819 Approve clicks/s,
  594-606 questionnaire pages/s;
- one thread: 1,133-1,172 commands/s (p99 48-65 ms), 1,882-2,007 clicks/s, 650-654 pages/s;
- two or four threads of which one runs at a time (a lock passed between them): 1,050-1,097
  commands/s, 1,788-1,824 clicks/s, 608-636 pages/s. Handing the lock to a sleeping thread
  costs more than it saves.

So SQLite gets one thread. Alone, though, it would let a questionnaire page that waits for the
write lock (held by the worker process applying a round of decisions, up to tens of
milliseconds) hold up every ack behind it. The database enters ``waiting()`` around such a wait
(``Database.while_waiting_for_lock``), and the limit grows by one until the wait is over, so
the next request runs meanwhile. Measured the same way: 1,161-1,164 commands/s, 1,911-1,996
clicks/s, 610-614 pages/s. Pages alone lose a little against one plain thread (probably because
a page that waits lets the next page start, which then waits too), but no ack queues behind a
wait.

The threads are this module's own, each taking the next request from a queue as soon as it
finishes one. With anyio's ``to_thread`` and a ``CapacityLimiter``, every hand-over went through
the event loop (the finished call reported back, the limiter released, the next call scheduled,
a thread woken), so the one listener thread sat idle until the busy loop got round to it: 28%
of the time under load, sampled with py-spy. ``benchmarks/bench_slack.py`` at 50 connections on
SQLite, two runs of each alternating on one (slow, noisy) machine, before -> after: slash
commands 380-435 -> 518-528 requests/s (p99 151-185 -> 135-143 ms), Approve clicks 553-625 ->
665-702 (recorded decisions 425-435 -> 462-467 a second), questionnaire pages 171-188 ->
167-206; the bare ack-only app, served through the same limit, 1,297 -> 2,054-2,210.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar, TypeVarTuple

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

# A thread with nothing to do for this long ends; the next busy moment starts another.
IDLE_SECONDS = 10.0

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DispatchLimit:
    """Runs listeners on threads of its own: at most ``threads`` at once, plus one for each of
    them that is inside ``waiting()``."""

    def __init__(self, threads: int, spare: int = 8) -> None:
        """``spare``: threads beyond ``threads`` that waits may bring in; past them, requests
        queue (more writers would only queue for the same lock)."""
        self._threads = threads
        self._most = threads + spare
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._idle = 0
        self._alive = 0
        self._dispatching = threading.local()

    @property
    def limit(self) -> int:
        """How many listeners may run now."""
        return self._threads + self._waiting

    async def run(self, function: Callable[[*Ts], R], *args: *Ts) -> R:
        """``function(*args)`` on a listener thread, once the limit lets it run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._ready:
            self._jobs.append((loop, future, function, args))
            self._wake()
        return await future

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Let one more listener run while the block runs, if this thread runs a listener;
        otherwise do nothing (the worker threads, Bolt's lazy listeners and the inbox writer
        are not counted against the limit)."""
        if not getattr(self._dispatching, "active", False):
            yield
            return
        with self._ready:
            self._waiting += 1
            if self._jobs:
                self._wake()
        try:
            yield
        finally:
            with self._ready:
                self._waiting -= 1

    def _wake(self) -> None:
        """Get queued requests going, as many as the limit allows now (holding ``_ready``); the
        rest wait for a thread to finish, which then takes the next one itself."""
        startable = min(len(self._jobs), self.limit - self._running)
        if startable <= 0:
            return
        self._ready.notify(startable)
        # Idle threads include those notified or starting but not yet running: no more are made
        # for a request one of them is about to take.
        while self._idle < startable and self._alive < self._most:
            self._alive += 1
            self._idle += 1
            threading.Thread(target=self._serve, name="shepherd-listener", daemon=True).start()

    def _serve(self) -> None:
        self._dispatching.active = True
        job = self._next(finished=False)
        while job is not None:
            loop, future, function, args = job
            try:
                outcome: tuple[Callable[..., None], Any] = (_succeed, function(*args))
            except BaseException as error:  # handed to the awaiting task, which re-raises it
                outcome = (_fail, error)
            # The loop closes when the server stops; nobody is waiting for the answer then.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])
            del job, outcome
            job = self._next(finished=True)

    def _next(self, finished: bool) -> _Job | None:
        """The next request this thread may run; None once it has been idle for a while."""
        with self._ready:
            if finished:
                self._running -= 1
                self._idle += 1
            while not (self._jobs and self._running < self.limit):
                if not self._ready.wait(IDLE_SECONDS) and not self._jobs:
                    self._idle -= 1
                    self._alive -= 1
                    return None
            self._idle -= 1
            self._running += 1
            return self._jobs.popleft()


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.cancelled():
        # A future refuses StopIteration (it would end the awaiting coroutine silently).
        future.set_exception(RuntimeError(repr(error)) if isinstance(error, StopIteration) else error)
