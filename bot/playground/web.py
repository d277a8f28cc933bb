"""The playground's web page and its small JSON API (Starlette).

- ``GET /``: the single page (static HTML, CSS and JavaScript from this package; no build step,
  nothing from a CDN).
- ``GET /api/state?since=N&run=R``: the workspace as the acting person sees it. With ``since``
  equal to the current version of the same run the request waits (long poll) until something
  changes; a page left open across a restart (another ``run``, or a ``since`` the new run has
  not reached) gets the new workspace at once.
- ``POST /api/act``: one move (``{"type": "send" | "click" | "submit_view" | "close_view" |
  "open_home" | "dismiss" | "switch_user", ...}``); answers ``{"ok": ..., "errors": ...}`` or
  ``400 {"error": "..."}`` with a sentence for the visitor.

The API answers only its own page. A move must be ``Content-Type: application/json`` (``415``
otherwise), which another site cannot send without a CORS preflight that is never granted, and
carry no ``Origin`` but the page's own (``403``); and both endpoints refuse a ``Host`` that is
not an IP address, ``localhost`` or the configured host (``403``), so a site whose name is
rebound to 127.0.0.1 (DNS rebinding) can neither read the workspace nor act in it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.playground.runtime import LONG_POLL_SECONDS, ActError, Playground

logger = logging.getLogger("shepherd.playground")

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY = 256_000

_NO_STORE = {"Cache-Control": "no-store"}


def web_app(
    playground: Playground, *, host: str = "127.0.0.1", long_poll_seconds: float = LONG_POLL_SECONDS
) -> Starlette:
    """The ASGI app serving the page and the API for ``playground``.

    Args:
        host: the host it is served on (``SHEPHERD_HOST``); a request naming it is accepted
            besides IP addresses and ``localhost``.
    """

    async def index(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    async def state(request: Request) -> Response:
        if refused := _foreign_host(request, host):
            return refused
        try:
            since = int(request.query_params.get("since", "-1"))
        except ValueError:
            return _error("since must be a whole number.")
        run = request.query_params.get("run", playground.run)
        if run == playground.run and since == playground.changes.version:
            await anyio.to_thread.run_sync(playground.changes.wait, since, long_poll_seconds)
        try:
            snapshot = await anyio.to_thread.run_sync(playground.snapshot, request.query_params.get("user"))
        except ActError as error:
            return _error(str(error))
        return JSONResponse(snapshot, headers=_NO_STORE)

    async def act(request: Request) -> Response:
        if refused := _foreign_host(request, host) or _foreign_move(request):
            return refused
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error("That is too much at once.", 413)
        try:
            move = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("The request body must be JSON.")
        if not isinstance(move, dict):
            return _error("The request body must be a JSON object.")
        try:
            result: dict[str, Any] = await anyio.to_thread.run_sync(playground.act, move)
        except ActError as error:
            return _error(str(error))
        except Exception:  # the page shows one sentence; the log keeps the traceback
            logger.exception("playground move failed: %s", move.get("type"))
            return _error("Something went wrong in the playground; the log has the details.", 500)
        return JSONResponse(result, headers=_NO_STORE)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/act", act, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=_NO_STORE)


def _foreign_host(request: Request, served_host: str) -> JSONResponse | None:
    """A refusal when the request names a host the playground is not served as.

    A rebinding attack reaches 127.0.0.1 under the attacker's own domain name, so any name but
    ``localhost`` and the configured host is refused; IP addresses are kept, as a page opened at
    ``http://<machine's address>:3000`` on a ``0.0.0.0`` host names one. (Starlette's
    TrustedHostMiddleware knows neither "any IP address" nor bracketed IPv6 hosts.)
    """
    named = request.headers.get("host", "")
    name = (urlsplit(f"//{named}").hostname or "").rstrip(".") if named else ""
    if name and (
        _is_ip(name) or name == "localhost" or name.endswith(".localhost") or name == served_host.lower()
    ):
        return None
    return _error(
        f"This playground answers only at its own address, not at {named or 'an unnamed host'}. "
        "Open it at the address printed when it started.",
        403,
    )


def _foreign_move(request: Request) -> JSONResponse | None:
    """A refusal when a move does not come from the playground's own page.

    A form or a text/plain fetch from another site needs no preflight, so the JSON content type
    is required; the Origin, which browsers always send with a POST, must be the page's own.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return _error("A move must be sent as JSON (Content-Type: application/json).", 415)
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin.lower() != own.lower():
        return _error(f"Moves are accepted only from the playground's own page, not from {origin}.", 403)
    return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
