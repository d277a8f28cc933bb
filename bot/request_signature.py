"""Slack's request signatures, checked without letting go of the interpreter midway.

hashlib releases the GIL while it hashes 2 KiB or more at once. Bolt checks each request's
signature on the listener thread, in the middle of its ack, over the whole body: 2-3 KB for an
Approve click, tens of KB for a questionnaire page. Releasing the GIL there hands it to the event
loop, which under load keeps it until its own work runs out, and only then does the ack go on.
Sampled with py-spy at 50 connections of questionnaire pages, 18% of the listener thread's samples
were at the HMAC (a ~15 µs computation), waiting to get the GIL back; fed in pieces under 2 KiB,
which hashlib hashes holding the GIL, under 0.4%. The result is the same HMAC. (The benchmark's
p99 figures moved within this machine's noise either way: the GIL hand-overs around SQLite's
calls weigh more; see the closing notes of issue 5.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from slack_bolt import App
from slack_bolt.middleware.request_verification import RequestVerification
from slack_sdk.signature import SignatureVerifier

logger = logging.getLogger("shepherd.app")

# hashlib (HASHLIB_GIL_MINSIZE in CPython's _hashopenssl.c) releases the GIL from 2048 bytes up.
PIECE_BYTES = 2047


class PiecewiseSignatureVerifier(SignatureVerifier):
    """slack_sdk's verifier, hashing the signed text in pieces that keep the GIL."""

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        if timestamp is None:
            return None
        text = body.decode("utf-8") if isinstance(body, bytes) else ("" if body is None else body)
        signed = memoryview(f"v0:{timestamp}:{text}".encode())
        mac = hmac.new(self.signing_secret.encode(), digestmod=hashlib.sha256)
        for start in range(0, len(signed), PIECE_BYTES):
            mac.update(signed[start : start + PIECE_BYTES])
        return f"v0={mac.hexdigest()}"


def verify_piecewise(app: App, signing_secret: str) -> bool:
    """Have Bolt's request verification use ``PiecewiseSignatureVerifier``; returns whether it
    does.

    This sets the verifier of the middleware in Bolt's private ``_middleware_list`` (as
    ``bot.warm_authorization`` reads it). Should a Bolt upgrade move it, Bolt keeps its own
    verifier, which checks signatures just the same, only with the GIL released.
    """
    for middleware in getattr(app, "_middleware_list", []):
        if isinstance(middleware, RequestVerification) and hasattr(middleware, "_verifier"):
            middleware._verifier = PiecewiseSignatureVerifier(signing_secret)
            return True
    logger.debug("Bolt's request verification was not found; it keeps its own verifier")
    return False
