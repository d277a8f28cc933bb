"""A local OpenAI-compatible HTTP server for tests: chat completions (plain and SSE) and embeddings.

It speaks just enough of the protocol for the ``openai`` client and LangChain's ``ChatOpenAI``
/ ``OpenAIEmbeddings``, records every request so tests can assert what was sent, and can be
told to fail (HTTP 500) or hang to exercise timeouts. Nothing leaves 127.0.0.1.

Usage::

    with OpenAIStub(reply="Registration is required [1].") as stub:
        llm = ChatOpenAI(base_url=stub.base_url, api_key="test", model="stub")
        ...
        assert stub.chat_requests[-1]["messages"][0]["role"] == "system"
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["ok", "error", "hang"]
Reply = str | Callable[[dict[str, Any]], str]

_WORD = re.compile(r"\w+")


@dataclass
class RecordedRequest:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def deterministic_embedding(text: str, dimensions: int = 64) -> list[float]:
    """A unit vector from hashed words, so texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dimensions
        vector[bucket] += 1.0 if digest[4] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


@dataclass
class OpenAIStub:
    """Configurable fake of ``/v1/chat/completions`` and ``/v1/embeddings``.

    Attributes:
        reply: the assistant's text, or a function of the request body returning it.
        mode: ``ok`` answers, ``error`` returns HTTP 500, ``hang`` waits ``hang_seconds``
            (or until the stub stops) before answering nothing.
        stream_chunk_size: characters per SSE delta when the client asks for a stream.
        chunk_seconds: pause before each delta of a stream (a model writing slowly).
        tool_call: when set, the reply also carries this tool call, as a model that tries to
            act would send it.
        embedding_dimensions: length of the vectors ``/v1/embeddings`` returns.
    """

    reply: Reply = "OK"
    mode: Mode = "ok"
    hang_seconds: float = 10.0
    stream_chunk_size: int = 7
    chunk_seconds: float = 0.0
    tool_call: dict[str, Any] | None = None
    embedding_dimensions: int = 64
    requests: list[RecordedRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what an OpenAI client takes as ``base_url``."""
        if self._server is None:
            raise RuntimeError("the stub is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received so far."""
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Bodies of the embeddings requests received so far."""
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/embeddings")]

    def start(self) -> OpenAIStub:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        self._stopping.clear()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-stream (timeout, early stop) is expected, not an error."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def do_GET(self) -> None:
            stub._record(RecordedRequest("GET", self.path, dict(self.headers), {}))
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "body is not JSON"}})
                return
            stub._record(RecordedRequest("POST", self.path, dict(self.headers), body))
            if stub.mode == "error":
                self._json(500, {"error": {"message": "stub told to fail", "type": "server_error"}})
                return
            if stub.mode == "hang":
                stub._stopping.wait(stub.hang_seconds)
                self.close_connection = True
                return
            if self.path.endswith("/chat/completions"):
                self._chat(body)
            elif self.path.endswith("/embeddings"):
                self._embeddings(body)
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def _chat(self, body: dict[str, Any]) -> None:
            text = stub._reply_text(body)
            model = str(body.get("model", "stub"))
            created = int(time.time())
            if body.get("stream"):
                self._stream(text, model, created)
                return
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if stub.tool_call is not None:
                message["tool_calls"] = [stub.tool_call]
            self._json(
                200,
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        def _stream(self, text: str, model: str, created: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            size = max(1, stub.stream_chunk_size)
            pieces = [text[i : i + size] for i in range(0, len(text), size)]
            deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
            deltas += [{"content": piece} for piece in pieces]
            for delta in deltas:
                if stub.chunk_seconds:
                    stub._stopping.wait(stub.chunk_seconds)
                self._event(_chunk(model, created, delta, None))
            self._event(_chunk(model, created, {}, "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        def _embeddings(self, body: dict[str, Any]) -> None:
            inputs = body.get("input", [])
            if isinstance(inputs, str):
                inputs = [inputs]
            data = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": deterministic_embedding(
                        item if isinstance(item, str) else " ".join(map(str, item)),
                        stub.embedding_dimensions,
                    ),
                }
                for i, item in enumerate(inputs)
            ]
            self._json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": str(body.get("model", "stub")),
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            # No keep-alive: a pooled connection outlives asyncio.run() in tests and warns.
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(data)

    return Handler


def _chunk(model: str, created: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
