"""SQLite's WAL checkpoints, run by a thread of their own instead of by a commit.

By default SQLite checkpoints inside the COMMIT that takes the write-ahead log past 1,000 pages:
that commit copies the pages into the database file and syncs it before it returns. In the HTTP
process the commit belongs to an ack, and on SQLite every ack queues for the same listener
thread (``bot.dispatch_limit``), so one checkpoint delays all the requests behind it. Measured
with ``benchmarks/bench_slack.py`` on SQLite, 50 connections of questionnaire pages, alternating
runs: p99 80-94 ms with SQLite's own checkpoints, 64-72 ms with none at all.

So connections here never checkpoint (``wal_autocheckpoint = 0``), and a thread of the process
does, PASSIVE (it waits for no reader or writer): once a second when something was written, or
sooner after ``every`` write transactions. It opens a connection for each checkpoint, and the
copying happens in SQLite's C code with the GIL released. Every process that writes runs one
(the HTTP app, the worker, a CLI command): started by a write, ended after ``idle`` seconds
without one. SQLite also checkpoints when the last connection to the file closes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

logger = logging.getLogger("shepherd.storage")


class WalCheckpointer:
    def __init__(self, path: str, *, interval: float = 1.0, every: int = 256, idle: float = 30.0) -> None:
        self._path = path
        self._interval = interval
        self._every = every
        self._idle = idle
        self._writes = 0  # write transactions since the last checkpoint (approximate: no lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed, for tests and diagnostics

    def wrote(self) -> None:
        """A write transaction ended: checkpoint soon."""
        self._writes += 1
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="shepherd-wal-checkpoint", daemon=True
                    )
                    self._thread.start()
        if self._writes >= self._every:
            self._wake.set()

    def stop(self) -> None:
        """End the thread (``Database.dispose``). A later write starts another, as SQLAlchemy
        also reopens connections after a dispose."""
        with self._start:
            self._stopping.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._stopping.clear()

    def _run(self) -> None:
        try:
            quiet = 0.0
            while not self._stopping.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                if self._stopping.is_set():
                    return
                if self._writes:
                    self._writes = 0
                    quiet = 0.0
                    self._checkpoint()
                    continue
                quiet += self._interval
                if quiet >= self._idle:
                    with self._start:
                        if not self._writes:  # else a write came in meanwhile: keep going
                            self._thread = None
                            return
        finally:
            with self._start:
                if self._thread is threading.current_thread():
                    self._thread = None  # stopped, or ended by an error: the next write starts another

    def _checkpoint(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA busy_timeout = 0")  # PASSIVE: never wait for the lock
                busy, _log, _done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            # Left for the next round (or, at the latest, the last connection's close); the
            # log only grows meanwhile.
            logger.warning("WAL checkpoint of %s failed: %s", self._path, error)
            return
        if not busy:
            self.checkpoints += 1
