"""`shepherd schedule ...`: what the scheduler would do now, and doing it once from a terminal.

Mounted in ``bot/cli.py`` as ``schedule_app`` ("schedule"). ``due`` lists the events due at a
moment and whether each already fired; ``run`` fires what is due (under the same lease and
exactly-once records as ``shepherd serve``), leaving delivery to the outbox worker; it refuses a
moment later than now, which would fire notices before they are due and never when they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bot.bootstrap import Services, bootstrap
from bot.cli_console import console
from bot.scheduler import Scheduler
from bot.settings import Settings
from gates.errors import ShepherdError
from gates.operations import fired_under_legacy_key, review_plans
from gates.ports import InitiativeFilter
from gates.schedule import due_events
from storage.scheduling import SchedulerLease, fired_keys

schedule_app = typer.Typer(help="Time boxes, review reminders and periodic reviews.", no_args_is_help=True)
out = console()
err = console(stderr=True)

At = Annotated[str | None, typer.Option("--at", help="The moment to evaluate, ISO 8601 (default: now, UTC).")]
RunAt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Fire what was due at this earlier moment and never fired, ISO 8601 (default: now, UTC). "
        "A later moment is refused (it would send notices early and never when they are due): "
        "`shepherd schedule due --at` shows what will be due then.",
    ),
]
CLI_HOLDER = "cli"
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _services() -> Iterator[Services]:
    services: Services | None = None
    try:
        services = bootstrap(Settings(), existing_database=True)
        yield services
    except ShepherdError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        if services is not None:
            services.database.dispose()


def _moment(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        err.print(
            f"[red]error:[/red] --at {escape(repr(at))} is not an ISO 8601 date or time (e.g. 2026-12-01T09:00)"
        )
        raise typer.Exit(1) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@schedule_app.command("due")
def due(at: At = None, as_json: AsJson = False) -> None:
    """List the events due at a moment and whether each has fired."""
    now = _moment(at)
    with _services() as services:
        pipeline = services.pipeline
        fired = set(fired_keys(services.database))
        with services.read_uow() as uow:
            found = list(uow.initiatives.list(InitiativeFilter(limit=100_000)))
            reviews = list(uow.reviews.pending_for(sorted(pipeline.model.roles)))
            latest = uow.operations.latest_reviews()
            plans = review_plans(pipeline, uow, found)
            events = due_events(pipeline, found, reviews, latest, now, plans)
            # Fired under the key an older Shepherd gave it: the next tick records this key too.
            fired |= {e.key for e in events if e.key not in fired and fired_under_legacy_key(uow.fired, e)}
    rows = [{"key": e.key, "kind": e.kind.value, "ref": e.ref, "fired": e.key in fired} for e in events]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(f"Nothing is due at {now.isoformat()}.")
        return
    table = Table("Key", "Kind", "Ref", "Fired")
    for row in rows:
        table.add_row(
            str(row["key"]),
            str(row["kind"]),
            str(row["ref"]),
            "yes" if row["fired"] else "[yellow]no[/yellow]",
        )
    out.print(table)


@schedule_app.command("run")
def run(at: RunAt = None) -> None:
    """Fire every due event not fired yet (once; `shepherd serve` does this every minute)."""
    moment = _moment(at)
    if moment > datetime.now(UTC):
        err.print(
            f"[red]error:[/red] --at {moment.isoformat()} is in the future; run only fires what is "
            f"already due. To see what will be due then: shepherd schedule due --at {moment.isoformat()}",
            highlight=False,
        )
        raise typer.Exit(1)
    with _services() as services:
        lease = SchedulerLease(services.database)
        # The lease is taken and handed back in real time whatever --at says: it tells the
        # running schedulers who works now, and one handed back "in" the past or future would
        # let two run at once or lock them out until then.
        fired = Scheduler(services, holder=CLI_HOLDER).tick(at=None if at is None else moment)
        holder = lease.holder()
        # Hand the lease straight back: a running `shepherd serve` should not wait for it.
        lease.release(CLI_HOLDER, services.now())
    if holder is not None and holder[0] != CLI_HOLDER:
        out.print(
            f"Another scheduler ({holder[0]}) holds the lease until {holder[1].isoformat()}; nothing done.",
            markup=False,
        )
        return
    out.print(f"Fired {len(fired)} event(s)." + (" The outbox worker delivers them." if fired else ""))
    for event in fired:
        out.print(f"  {event.key}", markup=False)
