"""A local Slack that the test suite and the playground share.

It speaks Slack's real protocols in both directions, so whatever uses it exercises the same
integration path as production:

- **Web API** (``webapi.FakeSlackWebAPI``): an HTTP server on 127.0.0.1 that the real
  ``slack_sdk.WebClient`` reaches through its ``base_url``. It keeps a stateful workspace
  (``state.SlackState``: channels, DMs, messages and threads, ephemeral messages, modals and App
  Home views, files, trigger ids, response URLs), answers with Slack's shapes and error codes
  (``methods.py``), records every call for transcript assertions, and can be told to fail
  (``faults.FaultInjector``: ``ok: false``, 429 with ``Retry-After``, 5xx, added latency).
- **Requests into the app** (``client.SlackClient``): signed exactly as Slack signs them
  (``X-Slack-Signature`` / ``X-Slack-Request-Timestamp``), encoded as Slack encodes them, with
  payloads from the pure builders in ``payloads.py`` (slash commands, block actions, view
  submissions with correct ``state.values``, shortcuts, Events API envelopes).
- ``blockkit.py`` holds the Block Kit rules both sides share (ids, limits, form state);
  ``serving.BackgroundASGIServer`` runs an ASGI app (the bot) on a real port in a thread.

Nothing here reaches the internet.
"""

from bot.emulator.client import HttpResult, SlackClient, compute_signature
from bot.emulator.faults import FaultInjector
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.state import SlackApiFailure, SlackState
from bot.emulator.webapi import CallLog, FakeSlackWebAPI, RecordedCall

__all__ = [
    "BackgroundASGIServer",
    "CallLog",
    "FakeSlackWebAPI",
    "FaultInjector",
    "HttpResult",
    "RecordedCall",
    "SlackApiFailure",
    "SlackClient",
    "SlackState",
    "compute_signature",
]
