"""The playground's web page and its small JSON API (Starlette).

- ``GET /``: the single page (static HTML, CSS and JavaScript from this package; no build step,
  nothing from a CDN).
- ``GET /api/state?since=N``: the workspace as the acting person sees it. With ``since`` equal to
  the current version the request waits (long poll) until something changes.
- ``POST /api/act``: one move (``{"type": "send" | "click" | "submit_view" | "close_view" |
  "open_home" | "dismiss" | "switch_user", ...}``); answers ``{"ok": ..., "errors": ...}`` or
  ``400 {"error": "..."}`` with a sentence for the visitor.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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


def web_app(playground: Playground, *, long_poll_seconds: float = LONG_POLL_SECONDS) -> Starlette:
    """The ASGI app serving the page and the API for ``playground``."""

    async def index(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    async def state(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "-1"))
        except ValueError:
            return _error("since must be a whole number.")
        if since >= playground.changes.version:
            await anyio.to_thread.run_sync(playground.changes.wait, since, long_poll_seconds)
        try:
            snapshot = await anyio.to_thread.run_sync(playground.snapshot, request.query_params.get("user"))
        except ActError as error:
            return _error(str(error))
        return JSONResponse(snapshot, headers=_NO_STORE)

    async def act(request: Request) -> Response:
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
