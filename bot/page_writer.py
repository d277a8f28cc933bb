"""Questionnaire pages written by a child process of their own (``shepherd serve`` on PostgreSQL).

A page's ack waits for its answers to commit (``bot.listeners.common.ack_once_saved``), and the
pages saved at the same moment share one transaction (``storage.group_commit``). In the HTTP
process that writer queued for the interpreter after every statement: the event loop and the
listeners hold it most of the time under load, and a batch makes about ten round trips. Measured
on PostgreSQL at 50 connections of questionnaire pages (``benchmarks/bench_slack.py``, a 2-core
machine): the HTTP process's event loop sat idle 70% of the time and its listener threads 90%,
all waiting for the page writer, whose batch of 25 pages took ~19 ms there against 8 ms for the
same batch written by a separate process during the same load.

So under ``shepherd serve`` (workers as processes) on PostgreSQL the pages go to a child,
``python -m bot.page_writer``, over its stdin and stdout; it writes them as the HTTP process
would (``Services.record_pages``) and sends each batch's outcomes back at once. SQLite keeps the
writer in process: its statements are calls into a library, with no round trip to wait on, and
a second writing process would only queue for the file's write lock.

Nothing is lost when the child is not there: until it runs, after it exits (crash, OOM) and
while it restarts, pages are written in process as before. Pages it had taken but not answered
when it exited fail with ``PageWriterLost``: the person is told to save again (saving the same
answers twice records nothing new, as an unchanged answer gets no new version).

The frames are a 4-byte length and a pickle, between two processes of the same install; the
parent starts the child and nothing else can write to its pipes. The first frame down is the
settings; then one ``(number, page)`` per page; the end of its stdin asks the child to finish
what it took and exit. Up comes one list of ``(number, outcome)`` per batch.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, Any

from bot.bootstrap import PageWriter
from bot.settings import Settings
from bot.worker import RestartPause
from gates.errors import ShepherdError
from gates.usecases import AnswerResult, PageOfAnswers
from storage.group_commit import GroupCommit

logger = logging.getLogger("shepherd.page_writer")

_LENGTH = struct.Struct(">I")
# How long ``close`` waits for the child to finish the pages it took before killing it.
CLOSE_SECONDS = 10.0
READY = "ready"  # the child's first frame, once it can write


class PageWriterLost(RuntimeError):  # noqa: N818 - as the log shows it
    """The page writer process exited before saying whether a page was saved. The person hears
    that the save failed (``ack_once_saved``), and the modal keeps what they typed."""


@dataclass(frozen=True)
class Refusal:
    """An error a page's write ended with, as it crosses to the parent: its class, ``args`` and
    attributes. Shepherd's errors are rebuilt without calling their constructors, whose
    parameters are not their ``args`` (``UnknownInitiative(ref)`` keeps a sentence); anything
    else becomes a ``RuntimeError`` naming it."""

    kind: type[BaseException]
    args: tuple[Any, ...]
    attributes: dict[str, Any]

    @classmethod
    def of(cls, error: BaseException) -> Refusal:
        if isinstance(error, ShepherdError):
            return cls(type(error), error.args, dict(vars(error)))
        return cls(RuntimeError, (f"{type(error).__name__}: {error}",), {})

    def error(self) -> BaseException:
        error = self.kind.__new__(self.kind)
        error.args = self.args
        vars(error).update(self.attributes)
        return error


def encode_frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def write_frame(stream: IO[bytes], value: Any) -> None:
    stream.write(encode_frame(value))
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value; raises EOFError once the other end has closed."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def answers_frame(numbered: Sequence[tuple[int, AnswerResult | BaseException]]) -> bytes:
    """A batch's outcomes, each as it can cross to the parent. One that would not pickle (none
    should) becomes a refusal saying so, rather than leaving the whole batch unanswered."""
    crossing = [(number, Refusal.of(o) if isinstance(o, BaseException) else o) for number, o in numbered]
    try:
        return encode_frame(crossing)
    except Exception:
        return encode_frame([(number, _picklable(outcome)) for number, outcome in crossing])


def _picklable(outcome: AnswerResult | Refusal) -> AnswerResult | Refusal:
    try:
        pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return Refusal(
            RuntimeError, (f"the outcome could not be sent back: {type(error).__name__}: {error}",), {}
        )
    return outcome


class PageWriterChild:
    """``submit`` as ``GroupCommit.submit``, written by the child process while it runs and by
    ``fallback`` (in process) while it does not. Safe to call from many threads."""

    def __init__(
        self,
        settings: Settings,
        fallback: PageWriter,
        command: Sequence[str] = (),
    ) -> None:
        """``command``: how to start the child (tests start a misbehaving one)."""
        self._settings = settings
        self._fallback = fallback
        self._command = list(command) or [sys.executable, "-m", "bot.page_writer"]
        self._lock = threading.Lock()  # the child's stdin and the waiting pages
        self._child: subprocess.Popen[bytes] | None = None  # once ready: pages go to it
        self._started: subprocess.Popen[bytes] | None = None  # the latest started, ready or not
        self._waiting: dict[int, Future[AnswerResult]] = {}
        self._numbers = itertools.count()
        self._closing = threading.Event()
        self._reader: threading.Thread | None = None
        self._pause = RestartPause()  # as the worker children's; pages are written in process meanwhile

    @property
    def pid(self) -> int | None:
        """The running child's, or None while pages are written in process."""
        with self._lock:
            return self._child.pid if self._child is not None else None

    def start(self) -> None:
        self._reader = threading.Thread(target=self._run, name="shepherd-page-writer-reader", daemon=True)
        self._reader.start()

    def submit(self, page: PageOfAnswers) -> Future[AnswerResult]:
        if self._child is None:  # not started yet, or restarting (read again under the lock)
            return self._fallback.submit(page)
        number = next(self._numbers)  # atomic: a C iterator
        try:
            frame = encode_frame((number, page))
        except Exception:  # it should always pickle; if not, this process writes it as before
            logger.exception("a questionnaire page could not be sent to the page writer")
            return self._fallback.submit(page)
        done: Future[AnswerResult] = Future()
        with self._lock:
            child = self._child
            if child is not None and child.stdin is not None:
                self._waiting[number] = done
                try:
                    child.stdin.write(frame)
                    child.stdin.flush()
                    return done
                except (OSError, ValueError):  # the child is gone; its reader notices and restarts it
                    del self._waiting[number]
        return self._fallback.submit(page)

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Let the child finish the pages it took, then stop it (killed after ``timeout``); then
        the in-process writer."""
        self._closing.set()
        with self._lock:
            child = self._started
            if child is not None and child.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    child.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout)
        if child is not None and child.poll() is None:
            logger.error(
                "the page writer (pid %d) did not stop within %.0f s and is killed", child.pid, timeout
            )
            child.kill()
            child.wait()
        self._fallback.close(timeout)

    def _run(self) -> None:
        """Start the child, hand its answers to the waiting pages, and start it again if it exits
        while Shepherd serves."""
        while not self._closing.is_set():
            started = time.monotonic()
            try:
                child = self._spawn()
            except OSError as error:
                logger.error("could not start the page writer (%s); pages are written in process", error)
            else:
                self._answer(child)
                code = child.wait()
                for stream in (child.stdin, child.stdout):
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()  # type: ignore[union-attr]  # both are pipes
                if self._closing.is_set():
                    return
                logger.error(
                    "the page writer (pid %d) exited with code %s; pages are written in process until it restarts",
                    child.pid,
                    code,
                )
            self._closing.wait(self._pause.after(lived=time.monotonic() - started))

    def _spawn(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdin is not None
        try:
            write_frame(child.stdin, {"parent": os.getpid(), "settings": self._settings.revealed()})
        except OSError:
            child.kill()
            child.wait()
            raise
        with self._lock:
            self._started = child
        if self._closing.is_set():  # ``close`` came while it started, and found none to stop
            child.stdin.close()
        return child

    def _answer(self, child: subprocess.Popen[bytes]) -> None:
        """Once the child says it is ready, send it the pages and complete them with its
        outcomes, until it closes its stdout."""
        assert child.stdout is not None
        try:
            # Pages sent before it has opened the database would wait seconds for it.
            if read_frame(child.stdout) != READY:
                raise pickle.UnpicklingError("the page writer did not start as expected")
            with self._lock:
                self._child = child
            while True:
                for number, outcome in read_frame(child.stdout):
                    with self._lock:
                        done = self._waiting.pop(number, None)
                    if done is None:
                        continue
                    if isinstance(outcome, Refusal):
                        done.set_exception(outcome.error())
                    else:
                        done.set_result(outcome)
        except EOFError:
            pass
        except Exception as error:  # a frame that is not what the child sends: stop using it
            logger.error("the page writer's answers could not be read: %s", error)
        with self._lock:
            self._child = None
            lost, self._waiting = self._waiting, {}
        if not self._closing.is_set() and child.poll() is None:  # it stopped answering: replace it
            child.kill()
        for done in lost.values():
            done.set_exception(
                PageWriterLost(
                    f"the page writer (pid {child.pid}) stopped before saying whether a page was saved"
                )
            )


def run_child(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child: read the settings, then pages, from ``requests``; write each batch's outcomes
    to ``answers``; once ``requests`` ends, finish what was taken and return."""
    from bot.bootstrap import bootstrap
    from bot.cli_serve import configure_logging
    from bot.server import freeze_startup_heap

    first = read_frame(requests)
    settings = Settings.model_validate(first["settings"])
    configure_logging(settings)  # as the serving process logs: the same format, JSON if asked
    services = bootstrap(settings)
    freeze_startup_heap()
    write_frame(answers, READY)

    def write(batch: Sequence[tuple[int, PageOfAnswers]]) -> Sequence[AnswerResult | BaseException]:
        try:
            outcomes = services.record_pages([page for _, page in batch])
        except Exception as error:  # the whole batch failed (the database is down, say)
            outcomes = [error] * len(batch)
        answers.write(answers_frame([(number, o) for (number, _), o in zip(batch, outcomes, strict=True)]))
        answers.flush()
        return outcomes

    writer: GroupCommit[tuple[int, PageOfAnswers], AnswerResult] = GroupCommit(
        write, name="shepherd-page-writer"
    )
    logger.info("page writer running")
    try:
        while True:
            writer.submit(read_frame(requests))
    except EOFError:
        pass
    writer.close(CLOSE_SECONDS)
    services.database.dispose()


def main() -> None:
    # The answers go up the real stdout; anything printed meanwhile goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    run_child(sys.stdin.buffer, answers)


if __name__ == "__main__":
    # Run as ``bot.page_writer``, not ``__main__``: a ``Refusal`` pickled here must name the
    # class the parent knows.
    from bot import page_writer

    page_writer.main()
