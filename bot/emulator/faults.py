"""Failure injection: make the fake Slack fail the way real Slack sometimes does.

Rules match one method (or every method when ``method`` is ``None``) and fire a number of times
(``times=None``: until cleared). A call that a rule fails changes nothing in the workspace, like
a real failed call, so a test can check that retries neither lose nor duplicate a message.

Examples::

    api.faults.rate_limit("chat.postMessage", retry_after=1)      # one 429, then normal
    api.faults.server_error(times=3)                              # the next 3 calls of any method: 500
    api.faults.fail("views.open", "expired_trigger_id")           # ok: false once
    api.faults.delay(0.3)                                         # +300 ms on every call, for benchmarks
    api.faults.stall("chat.update", 2.0)                          # the next chat.update only: +2 s
    api.faults.server_error("upload")                             # the file bytes of files_upload_v2: 500
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """What a failing call answers: an HTTP status, a Slack error, maybe ``Retry-After``."""

    status: int
    error: str
    retry_after: int | None = None


@dataclass
class _Rule:
    method: str | None
    fault: Fault
    remaining: int | None

    def matches(self, method: str) -> bool:
        return (self.method is None or self.method == method) and self.remaining != 0


@dataclass
class _Stall:
    method: str | None
    seconds: float
    remaining: int


class FaultInjector:
    """Thread-safe set of failure rules and delays consulted before every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._delays: dict[str | None, float] = {}
        self._stalls: list[_Stall] = []

    def fail(
        self, method: str | None = None, error: str = "internal_error", *, times: int | None = 1
    ) -> None:
        """Answer HTTP 200 with ``{"ok": false, "error": error}``."""
        self._add(method, Fault(200, error), times)

    def rate_limit(self, method: str | None = None, *, retry_after: int = 1, times: int | None = 1) -> None:
        """Answer 429 ``ratelimited`` with a ``Retry-After`` header (seconds)."""
        self._add(method, Fault(429, "ratelimited", retry_after), times)

    def server_error(self, method: str | None = None, *, status: int = 500, times: int | None = 1) -> None:
        """Answer a 5xx (``internal_error`` in the body, as far as Slack sends one)."""
        self._add(method, Fault(status, "internal_error"), times)

    def delay(self, seconds: float, method: str | None = None) -> None:
        """Add ``seconds`` to every call (of ``method``, or of all methods); 0 removes it."""
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def stall(self, method: str | None, seconds: float, *, times: int = 1) -> None:
        """Add ``seconds`` to the next ``times`` calls of ``method`` (of any method if ``None``):
        Slack slow for a moment, long enough for the caller's read timeout."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._stalls.append(_Stall(method, seconds, times))

    def clear(self) -> None:
        """Remove every rule, delay and stall."""
        with self._lock:
            self._rules.clear()
            self._delays.clear()
            self._stalls.clear()

    def delay_for(self, method: str) -> float:
        """Seconds to wait before answering ``method`` (a stall that matches is used up)."""
        with self._lock:
            pause = self._delays.get(None, 0.0) + self._delays.get(method, 0.0)
            for stall in self._stalls:
                if stall.method in (None, method):
                    pause += stall.seconds
                    stall.remaining -= 1
                    break
            self._stalls = [stall for stall in self._stalls if stall.remaining > 0]
            return pause

    def take(self, method: str) -> Fault | None:
        """The fault for this call, if a rule fires (its count goes down by one)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.fault
            self._rules = [r for r in self._rules if r.remaining != 0]
            return None

    def pending(self) -> int:
        """How many rules can still fire (unlimited rules count once)."""
        with self._lock:
            return sum(1 for r in self._rules if r.remaining != 0)

    def _add(self, method: str | None, fault: Fault, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for always), got {times}")
        with self._lock:
            self._rules.append(_Rule(method, fault, times))
