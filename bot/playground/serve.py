"""``shepherd run`` without Slack credentials: the playground in the foreground until Ctrl+C."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from rich.console import Console

from bot.playground.demo import REGISTRY_CHANNEL
from bot.playground.runtime import Playground
from bot.playground.web import web_app
from bot.settings import Settings
from knowledge import KnowledgeBase


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (so a busy port gets a sentence, not a traceback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve_playground(
    settings: Settings,
    out: Console,
    *,
    knowledge_factory: Callable[[], KnowledgeBase | None] | None = None,
) -> int:
    """Start the playground on ``settings.host:settings.port`` and serve until Ctrl+C.

    Returns:
        The process exit code: 0 after Ctrl+C, 1 when the port is taken.
    """
    host, port = settings.host, settings.port
    if not port_free(host, port):
        out.print(
            f"[red]Port {port} on {host} is in use[/red], so the playground cannot start. "
            "Stop what uses it, or choose another port: SHEPHERD_PORT=3001 make run"
        )
        return 1
    playground = Playground(settings, knowledge_factory=knowledge_factory).start()
    try:
        out.print()
        out.print(
            f"[bold green]Playground ready:[/bold green] open [bold cyan]http://{host}:{port}[/bold cyan] "
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
