"""``shepherd run`` without Slack credentials: the playground in the foreground until Ctrl+C."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

import uvicorn
from rich.console import Console
from rich.markup import escape

from bot.playground.demo import REGISTRY_CHANNEL
from bot.playground.runtime import Playground
from bot.playground.web import web_app
from bot.settings import Settings
from knowledge import KnowledgeBase


def bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now, or ``None`` when it can.

    Binds every address ``host`` resolves to, each with its own family and the options that
    asyncio's ``create_server`` (which uvicorn uses) sets, so ``::``, ``::1`` and ``localhost``
    are probed as they will be served; a busy port or a bad host then gets a sentence, not a
    traceback.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, protocol, _, address in addresses:
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as error:
        return error
    return None


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"[red]Port {port} on {escape(host)} is in use[/red], so the playground cannot start. "
            "Stop what uses it, or choose another port: SHEPHERD_PORT=3001 make run"
        )
    return (
        f"[red]The playground cannot listen on {escape(host)} port {port}[/red]: "
        f"{escape(error.strerror or str(error))}. Check SHEPHERD_HOST (127.0.0.1 by default) and SHEPHERD_PORT."
    )


def serve_playground(
    settings: Settings,
    out: Console,
    *,
    knowledge_factory: Callable[[], KnowledgeBase | None] | None = None,
) -> int:
    """Start the playground on ``settings.host:settings.port`` and serve until Ctrl+C.

    Returns:
        The process exit code: 0 after Ctrl+C, 1 when the port is taken or the host cannot be
        listened on.
    """
    host, port = settings.host, settings.port
    if (error := bind_error(host, port)) is not None:
        out.print(_cannot_listen(host, port, error))
        return 1
    playground = Playground(settings, knowledge_factory=knowledge_factory).start()
    try:
        out.print()
        out.print(
            f"[bold green]Playground ready:[/bold green] open [bold cyan]http://{escape(_url_host(host))}:{port}[/bold cyan] "
            "in a browser. Ctrl+C stops."
        )
        out.print(
            f"  A local Slack emulator with #{REGISTRY_CHANNEL} and demo people "
            f"({', '.join(p.title.split(' (')[0].lower() for p in playground.people)}); "
            "switch between them at the top right."
        )
        out.print(f"  Playground data (fresh at each start): [cyan]{playground.data_dir.resolve()}[/cyan]")
        out.print("  Start with [bold]/shepherd new[/bold] in #ai-initiatives.")
        uvicorn.run(
            web_app(playground, host=host),
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    finally:
        playground.stop()
    return 0


def _url_host(host: str) -> str:
    """``host`` as it is written in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
