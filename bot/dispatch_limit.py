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
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar, TypeVarTuple

import anyio

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class DispatchLimit:
    def __init__(self, threads: int) -> None:
        self.limiter = anyio.CapacityLimiter(threads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatching = threading.local()

    async def run(self, function: Callable[[*Ts], R], *args: *Ts) -> R:
        """``function(*args)`` on a thread, within the limit."""
        self._loop = asyncio.get_running_loop()
        return await anyio.to_thread.run_sync(self._dispatch, function, *args, limiter=self.limiter)

    def _dispatch(self, function: Callable[[*Ts], R], *args: *Ts) -> R:
        self._dispatching.active = True
        try:
            return function(*args)
        finally:
            self._dispatching.active = False

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Raise the limit by one while the block runs, if this thread runs a listener; otherwise
        do nothing (the worker threads, Bolt's lazy listeners and the inbox writer are not
        counted against the limit)."""
        loop = self._loop
        if loop is None or not getattr(self._dispatching, "active", False):
            yield
            return
        self._post(loop, 1)
        try:
            yield
        finally:
            self._post(loop, -1)

    def _post(self, loop: asyncio.AbstractEventLoop, by: int) -> None:
        # The limiter belongs to the event loop: changed there, without waiting for it. Once the
        # loop has closed (the server stopped) there is no limit left to change.
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(self._change, by)

    def _change(self, by: int) -> None:
        self.limiter.total_tokens += by
