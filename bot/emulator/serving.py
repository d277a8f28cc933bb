"""Run an ASGI app (the bot behind Starlette, say) on a local port in a background thread.

Tests and the playground need the app on a real port so the signing client talks HTTP to it,
exactly as Slack would. Port 0 is bound here first, so the real port is known before uvicorn
starts and parallel test runs never collide.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Literal

import uvicorn


class BackgroundASGIServer:
    """uvicorn serving ``app`` from a daemon thread. Use as a context manager.

    Args:
        app: any ASGI application.
        host: interface to bind.
        port: 0 picks a free port.
        startup_timeout: seconds to wait for uvicorn to be ready.
        lifespan: ``on`` runs the app's startup and shutdown (background workers); off by default
            so tests drive those themselves.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        lifespan: Literal["on", "off"] = "off",
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started (``http://[::1]:PORT`` on IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> BackgroundASGIServer:
        """Bind, start uvicorn and wait until it accepts requests.

        Raises:
            RuntimeError: uvicorn did not start in time.
        """
        # The address family of ``host`` as uvicorn binds it: ``shepherd serve`` in Socket Mode
        # serves its install page here, on SHEPHERD_HOST, which may be IPv6 (``::``).
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()  # a port in use: the caller says so; the socket must not leak
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", lifespan=self.lifespan, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"asgi-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BackgroundASGIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
