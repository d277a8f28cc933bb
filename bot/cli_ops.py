"""`shepherd portfolio` and `shepherd doctor`: the governance view and the operator's check-up.

Mounted in ``bot/cli.py`` as two commands. Expected errors print one red line and exit 1;
``doctor`` exits 1 when any check FAILs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bot.bootstrap import bootstrap
from bot.cli_console import console
from bot.doctor import Level, run_checks
from bot.settings import Settings
from gates.errors import ShepherdError
from gates.portfolio import Portfolio, load_portfolio

out = console()
err = console(stderr=True)

_COLOURS = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}


def portfolio(
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    png: Annotated[
        Path | None, typer.Option("--png", help="Also save the chart (funnel and time in stage) as a PNG.")
    ] = None,
) -> None:
    """The portfolio: initiatives per stage, conversion, median days in stage, stalled, decisions."""
    services = None
    try:
        services = bootstrap(Settings(), existing_database=True)
        figures = load_portfolio(services.pipeline, services.read_uow(), services.now())
    except ShepherdError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        if services is not None:
            services.database.dispose()
    if png is not None:
        from bot.portfolio_chart import render_png

        try:
            png.write_bytes(render_png(figures))
        except OSError as error:
            problem = escape(f"cannot write {png}: {error.strerror or error}")
            err.print(f"[red]error:[/red] {problem}", highlight=False)
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(figures.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_portfolio(figures)
    if png is not None:
        err.print(f"Chart saved to {png}", markup=False, highlight=False)


def _print_portfolio(figures: Portfolio) -> None:
    out.print(
        f"[bold]Portfolio[/bold] at {figures.generated_at:%Y-%m-%d %H:%M} UTC: {figures.total} initiatives, "
        f"{len(figures.stalled)} stalled, {len(figures.overdue_operations)} periodic reviews overdue, "
        f"{figures.open_reviews} reviews open",
        highlight=False,
    )
    table = Table("Stage", "Active", "In review", "On hold", "Retired", "Reached", "Went on", "Median days")
    for s in figures.stages:
        table.add_row(
            Text(s.stage),
            str(s.active),
            str(s.in_review),
            str(s.on_hold),
            str(s.retired),
            str(s.reached),
            "-" if s.conversion is None else f"{s.advanced} ({s.conversion:.0%})",
            "-" if s.median_days is None else f"{s.median_days:g}",
        )
    out.print(table)
    counts = figures.decisions_last_30_days
    out.print(
        f"Decisions in the last {figures.window_days} days: {counts['approve']} approved, "
        f"{counts['reject']} rejected, {counts['request_changes']} changes requested",
        highlight=False,
    )
    if figures.top_reasons:
        out.print("Most common reasons for rejection or changes:")
        for reason in figures.top_reasons:
            out.print(f"  {reason.count} x {reason.reason}", highlight=False, markup=False)
    if figures.stalled:
        stalled = Table("Ref", "Name", "Stage", "Days in stage", "Owner", title="Stalled")
        for item in figures.stalled:
            # Names are typed in Slack: Text cells are shown as typed, never read as markup.
            stalled.add_row(
                Text(item.ref),
                Text(item.name),
                Text(item.stage),
                f"{item.days_in_stage:g}",
                Text(item.owner_id),
            )
        out.print(stalled)
    if figures.overdue_operations:
        overdue = Table("Ref", "Name", "Due", "Days overdue", "Owner", title="Periodic reviews overdue")
        for system in figures.overdue_operations:
            overdue.add_row(
                Text(system.ref),
                Text(system.name),
                f"{system.due:%Y-%m-%d}",
                f"{system.days_overdue:g}",
                Text(system.owner_id),
            )
        out.print(overdue)
    for note in figures.notes:
        err.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


def doctor() -> None:
    """Check the pipeline, Slack tokens, signing secret, database, Chroma, embedding model, glossary and LLM endpoint."""
    checks = run_checks(Settings())
    width = max(len(c.name) for c in checks)
    for check in checks:
        colour = _COLOURS[check.level]
        # Messages quote paths, URLs and errors from settings and files: never read them as markup.
        line = escape(f"{check.name:<{width}}  {check.message}")
        out.print(f"[{colour}]{check.level.value:<4}[/{colour}] {line}", highlight=False)
        if check.fix:
            out.print(f"     {'':<{width}}  fix: {check.fix}", markup=False, highlight=False)
    failed = sum(1 for c in checks if c.level is Level.FAIL)
    warned = sum(1 for c in checks if c.level is Level.WARN)
    out.print(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} OK.")
    if failed:
        raise typer.Exit(1)
