"""A fake Slack Web API over real HTTP on 127.0.0.1, for the real ``WebClient``.

Point slack_sdk at it with ``WebClient(token=api.bot_token, base_url=api.api_url)`` (slack_sdk
joins ``base_url`` and the method name with ``urljoin``, so the base URL must end in ``/api/``;
:attr:`FakeSlackWebAPI.api_url` does). It accepts JSON and form-encoded bodies (slack_sdk sends
JSON for ``chat.postMessage``, ``views.*``, streaming; form for the rest), the token in an
``Authorization: Bearer`` header or a ``token`` parameter, and records every call.

Besides ``/api/<method>`` it serves what Slack serves elsewhere: the upload URLs of
``files.getUploadURLExternal`` (``/upload/v1/<file id>``), the files themselves
(``/files/<id>/<name>``) and ``response_url``s (``/hooks/response/<key>``).
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler

from bot.emulator.faults import FaultInjector
from bot.emulator.methods import WebApiMethods, apply_view_response, command_response, respond
from bot.emulator.state import SlackApiFailure, SlackState

_UPLOAD_PATH = re.compile(r"^/upload/v1/(?P<file_id>[A-Z0-9]+)$")
_FILE_PATH = re.compile(r"^/files/(?P<file_id>[A-Z0-9]+)(/.*)?$")
_RESPONSE_PATH = re.compile(r"^/hooks/response/(?P<key>[A-Za-z0-9_-]+)$")


# Methods Slack answers without a token: the app authenticates with its client id and secret.
UNAUTHENTICATED = frozenset({"oauth.v2.access"})
# Methods Slack answers for an app-level token (xapp-) only.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received, and what it answered."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    time: float
    status: int
    response: dict[str, Any]
    token: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (HTTP 200 and ``ok: true``)."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class CallLog:
    """Thread-safe, ordered record of calls with helpers for assertions."""

    _calls: list[RecordedCall] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def append(self, call: RecordedCall) -> None:
        """Record a call and wake anyone waiting for it."""
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[RecordedCall]:
        """Calls in order, optionally of one method and only (un)successful ones."""
        with self._changed:
            return [
                c
                for c in self._calls
                if (method is None or c.method == method) and (ok is None or c.ok == ok)
            ]

    def last(self, method: str | None = None) -> RecordedCall:
        """The latest call (of ``method``).

        Raises:
            LookupError: there was none; the message lists what was called.
        """
        found = self.calls(method)
        if not found:
            raise LookupError(f"no call to {method or 'any method'}; calls: {self.methods()}")
        return found[-1]

    def methods(self) -> list[str]:
        """Method names in call order: a compact transcript."""
        return [c.method for c in self.calls()]

    def clear(self) -> None:
        """Forget every recorded call."""
        with self._changed:
            self._calls.clear()

    def wait_for(
        self, method: str, count: int = 1, *, timeout: float = 5.0, ok: bool | None = True
    ) -> list[RecordedCall]:
        """Wait until ``method`` was called ``count`` times (work after an ack runs later).

        Raises:
            TimeoutError: not in time; the message lists what was called.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._calls if c.method == method and (ok is None or c.ok == ok)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{method} called {len(found)} of {count} times within {timeout}s; "
                        f"calls: {[c.method for c in self._calls]}"
                    )
                self._changed.wait(remaining)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: FakeSlackWebAPI) -> None:
        super().__init__(address, _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; the call log is the record."""

    def do_GET(self) -> None:
        """Web API methods accept GET with query parameters; files are downloaded with GET."""
        self._route()

    def do_POST(self) -> None:
        """Web API calls, uploads and response_url posts."""
        self._route()

    def _route(self) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        raw = self._read_body()
        if url.path.startswith("/api/"):
            status, headers, body = api.handle_api_call(
                url.path[len("/api/") :], url.query, raw, dict(self.headers.items())
            )
        elif match := _UPLOAD_PATH.match(url.path):
            status, headers, body = api.handle_upload(match["file_id"], raw)
        elif match := _FILE_PATH.match(url.path):
            status, headers, body = api.handle_download(match["file_id"])
        elif match := _RESPONSE_PATH.match(url.path):
            status, headers, body = api.handle_response_url(match["key"], raw, self.headers)
        else:
            status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """Parameters from a JSON, form-encoded or multipart body.

    Raises:
        SlackApiFailure: ``invalid_json`` for a body that is not JSON though it says so.
    """
    if not raw:
        return {}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SlackApiFailure("invalid_json") from error
        if not isinstance(parsed, dict):
            raise SlackApiFailure("invalid_json")
        return parsed
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if name:
                fields[str(name)] = data if part.get_filename() else data.decode("utf-8")
        return fields
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _json_response(
    status: int, body: dict[str, Any], extra: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json; charset=utf-8", **(extra or {})}
    return status, headers, json.dumps(body).encode()


class FakeSlackWebAPI:
    """The fake Slack Web API server. Use as a context manager or call start() / stop().

    Args:
        state: the workspace to serve; a fresh :class:`SlackState` when omitted.
        host: interface to bind (keep ``127.0.0.1``).
        port: 0 picks a free port; read :attr:`url` after start.

    Example::

        with FakeSlackWebAPI() as api:
            client = api.web_client()
            channel = api.state.add_channel("shepherd-registry")
            client.chat_postMessage(channel=channel.id, text="hello")
            assert api.last("chat.postMessage").params["text"] == "hello"
    """

    def __init__(self, state: SlackState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or SlackState()
        self.faults = FaultInjector()
        self.log = CallLog()
        self.methods = WebApiMethods(self.state)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[RecordedCall], None]] = []

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeSlackWebAPI:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server(self._address, self)
        port = self._server.server_address[1]
        self.methods.public_url = f"http://{self._address[0]}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-slack-{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlackWebAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (after start)."""
        if self._server is None:
            raise RuntimeError("the fake Slack Web API is not running; call start() first")
        return self.methods.public_url

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``WebClient``: ``http://127.0.0.1:PORT/api/``."""
        return self.url + "/api/"

    @property
    def bot_token(self) -> str:
        """A token the fake accepts (the first of ``state.tokens``)."""
        return sorted(self.state.tokens)[0]

    def web_client(
        self,
        token: str | None = None,
        *,
        retry_handlers: list[RetryHandler] | None = None,
        **kwargs: Any,
    ) -> WebClient:
        """A real ``WebClient`` pointed at this fake."""
        return WebClient(
            token=token or self.bot_token,
            base_url=self.api_url,
            retry_handlers=retry_handlers,
            **kwargs,
        )

    # what tests use ------------------------------------------------------------------------------

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[RecordedCall]:
        """Recorded calls, optionally of one method (see :meth:`CallLog.calls`)."""
        return self.log.calls(method, ok=ok)

    def last(self, method: str | None = None) -> RecordedCall:
        """The latest call (of ``method``); raises LookupError when there was none."""
        return self.log.last(method)

    def clear(self) -> None:
        """Forget recorded calls (the workspace and fault rules stay)."""
        self.log.clear()

    def wait_for(self, method: str, count: int = 1, *, timeout: float = 5.0) -> list[RecordedCall]:
        """Wait for ``count`` successful calls of ``method``; raises TimeoutError."""
        return self.log.wait_for(method, count, timeout=timeout)

    def mint_trigger_id(self, user_id: str | None = None) -> str:
        """A fresh trigger id for an interactive payload sent as ``user_id``."""
        return self.state.mint_trigger_id(user_id)

    def response_url(self, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        """A fresh ``response_url`` this server answers (5 uses, 30 minutes)."""
        return f"{self.url}/hooks/response/{self.state.mint_response_url(channel_id, user_id, message_ts)}"

    def apply_view_response(
        self, user_id: str, view_id: str, answer: dict[str, Any] | None
    ) -> dict[str, str]:
        """Apply the app's answer to a view submission to the modal stack (see methods)."""
        return apply_view_response(self.methods, user_id, view_id, answer)

    def apply_command_response(self, channel_id: str, user_id: str, body: bytes) -> dict[str, Any] | None:
        """Show the app's immediate answer to a slash command (see :func:`methods.command_response`).

        Recorded as ``command_response`` so transcripts and observers see it like any call.
        """
        received = time.time()
        try:
            response = command_response(self.methods, channel_id, user_id, body)
        except SlackApiFailure as failure:
            response = failure.response()
        if response is not None:
            params = {"channel": channel_id, "user": user_id, "body": body.decode("utf-8", errors="replace")}
            self._record(RecordedCall("command_response", params, {}, received, 200, response))
        return response

    def on_call(self, listener: Callable[[RecordedCall], None]) -> None:
        """Call ``listener`` after every recorded call (the playground pushes updates with it)."""
        self._listeners.append(listener)

    # request handling (called from server threads) ------------------------------------------------

    def handle_api_call(
        self, method: str, query: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer ``/api/<method>``: delay, faults, auth, then the method itself."""
        received = time.time()
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        token = None
        try:
            params.update(_parse_body(raw, headers.get("Content-Type", "")))
            token = _bearer(headers) or (str(params.pop("token")) if "token" in params else None)
            params = self.methods.parse_json_params(params)
        except SlackApiFailure as failure:
            return self._finish(method, params, headers, received, token, 200, failure.response())
        pause = self.faults.delay_for(method)
        if pause:
            time.sleep(pause)
        fault = self.faults.take(method)
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            body = {"ok": False, "error": fault.error}
            return self._finish(method, params, headers, received, token, fault.status, body, extra)
        try:
            if method in APP_TOKEN_METHODS:
                self.methods.authenticate_app(token)
            elif method not in UNAUTHENTICATED:
                self.methods.authenticate(token)
        except SlackApiFailure as failure:
            return self._finish(method, params, headers, received, token, 200, failure.response())
        response = self.methods.call(method, params)
        scopes = self.state.bot_scopes if token in self.state.tokens else None
        granted = {"x-oauth-scopes": ",".join(sorted(scopes))} if scopes is not None else None
        return self._finish(method, params, headers, received, token, 200, response, granted)

    def handle_upload(self, file_id: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Accept the bytes of a file announced by ``files.getUploadURLExternal``. Faults and delays
        for this step are set on the method name ``upload`` (it is not a Web API method: Slack's
        file servers answer it with a bare HTTP status)."""
        time.sleep(self.faults.delay_for("upload"))
        fault = self.faults.take("upload")
        if fault is not None:
            self._record(RecordedCall("upload", {"file_id": file_id}, {}, time.time(), fault.status, {}))
            return fault.status, {"Content-Type": "text/plain"}, b"upload failed"
        with self.state.lock:
            upload = self.state.files.get(file_id)
            if upload is None:
                return 404, {"Content-Type": "text/plain"}, b"unknown upload"
            upload.data = raw
        self._record(
            RecordedCall("upload", {"file_id": file_id, "size": len(raw)}, {}, time.time(), 200, {"ok": True})
        )
        return 200, {"Content-Type": "text/plain"}, f"OK - {len(raw)}".encode()

    def handle_download(self, file_id: str) -> tuple[int, dict[str, str], bytes]:
        """Serve an uploaded file's bytes."""
        with self.state.lock:
            upload = self.state.files.get(file_id)
            data = upload.data if upload else None
        if data is None:
            return 404, {"Content-Type": "text/plain"}, b"file not found"
        return 200, {"Content-Type": "application/octet-stream"}, data

    def handle_response_url(self, key: str, raw: bytes, headers: Any) -> tuple[int, dict[str, str], bytes]:
        """Apply a POST to a ``response_url`` (see :func:`bot.emulator.methods.respond`)."""
        received = time.time()
        try:
            params = _parse_body(raw, headers.get("Content-Type", "application/json"))
            response = respond(self.methods, key, params)
            status = 200
        except SlackApiFailure as failure:
            params = {}
            response = failure.response()
            status = 404 if failure.error == "expired_url" else 400
        return self._finish("response_url", params, dict(headers.items()), received, None, status, response)

    def _finish(
        self,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str],
        received: float,
        token: str | None,
        status: int,
        response: dict[str, Any],
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        self._record(
            RecordedCall(
                method,
                copy.deepcopy(params),
                {k.lower(): v for k, v in headers.items()},
                received,
                status,
                response,
                token,
            )
        )
        return _json_response(status, response, extra_headers)

    def _record(self, call: RecordedCall) -> None:
        self.log.append(call)
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # a broken observer must not break the API
                listener(call)


def _bearer(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            return value[len("bearer ") :].strip()
    return None
