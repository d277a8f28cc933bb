"""`shepherd db ...`, `shepherd audit verify` and `shepherd outbox ...`: operate the database.

Mount with ``app.add_typer(cli_storage.db_app, name="db")``,
``app.add_typer(cli_storage.audit_app, name="audit")`` and
``app.add_typer(cli_storage.outbox_app, name="outbox")``.

Exit codes: 0 done / intact; 1 the audit chain is broken (the first bad entry is named) or the
decisions and reviews disagree with it (each disagreement is named), or
`outbox retry` was given an id that is not a dead message (nothing is requeued then); 2 the
database cannot be used (unreachable, schema too new or not migrated), in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from bot.blocks.operations import load_checked_pipeline
from bot.cli_console import console
from gates.errors import PipelineError
from gates.loader import CompiledPipeline
from storage import Database, StorageError, retention, verify_audit
from storage.database import require_sqlite_file
from storage.outbox import DEAD, DeadMessage, dead_messages, outbox_statuses, requeue_dead

db_app = typer.Typer(help="Migrate and check the database.", no_args_is_help=True)
audit_app = typer.Typer(help="Prove the audit log unbroken.", no_args_is_help=True)
outbox_app = typer.Typer(help="See and send again notifications given up on.", no_args_is_help=True)
out = console()
err = console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (default: SHEPHERD_DATABASE_URL, or shepherd.db in SHEPHERD_DATA_DIR).",
        show_default=False,
    ),
]


@contextmanager
def _current_database(url: str | None) -> Iterator[Database]:
    """The database at ``url`` (or the settings'), which must exist and be at this Shepherd's
    schema, closed afterwards; a storage failure is said in one line."""
    try:
        database = _database(url, existing=True)
        try:
            database.check()
            yield database
        finally:
            database.dispose()
    except StorageError as error:
        raise _fail(error) from None


def _database(url: str | None, *, existing: bool = False) -> Database:
    """The database at ``url`` (default: the configured one).

    Args:
        existing: refuse a SQLite file given with ``--database-url`` or SHEPHERD_DATABASE_URL
            that does not exist, instead of creating an empty one (checking a mistyped path
            would otherwise leave a new file behind).
    """
    chosen = url is not None
    if url is None:
        from bot.settings import Settings

        settings = Settings()
        url, chosen = settings.resolved_database_url, settings.database_url is not None
    if existing and chosen:  # only a path someone gave: the embedded default is created on first use
        require_sqlite_file(url)
    return Database(url)


def _configured_pipeline() -> CompiledPipeline | None:
    """The pipeline the bot uses, to type the answers whose evidence hashes `audit verify`
    recomputes; None, said on stderr, when it cannot be loaded (the rest is still checked)."""
    from bot.settings import Settings

    try:
        return load_checked_pipeline(Settings().pipeline)
    except PipelineError as error:
        err.print(
            f"[yellow]warning:[/yellow] the pipeline has {len(error.problems)} problem(s) "
            "(`shepherd pipeline validate`), so the reviews' evidence hashes are not recomputed.",
            highlight=False,
        )
        return None


def _fail(error: StorageError) -> typer.Exit:
    # Errors quote database URLs, paths and driver messages: never read them as markup.
    err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
    return typer.Exit(2)


@db_app.command("upgrade")
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Migrate the database to the schema this Shepherd needs (safe to run again)."""
    try:
        database = _database(database_url)
        before = database.current_revision()
        database.upgrade()
        after = database.current_revision()
    except StorageError as error:
        raise _fail(error) from None
    if before == after:
        out.print(
            f"Database {database.describe()} is already at revision {after}.", markup=False, highlight=False
        )
    else:
        upgraded = escape(f"{database.describe()} from {before or 'empty'} to {after}.")
        out.print(
            f"[green]Upgraded[/green] {upgraded}",
            highlight=False,
        )
    database.dispose()


@db_app.command("check")
def check(database_url: DatabaseUrl = None) -> None:
    """Exit 0 when the database is reachable and at the schema this Shepherd needs."""
    try:
        database = _database(database_url, existing=True)
        database.check()
    except StorageError as error:
        raise _fail(error) from None
    out.print(
        f"[green]OK[/green] {escape(database.describe())} is at revision {database.head()}.", highlight=False
    )
    database.dispose()


@db_app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete bookkeeping rows older than SHEPHERD_RETENTION_DAYS that nothing needs any more
    (delivered notifications, applied requests, Slack retry claims, ...); evidence is never
    touched. The scheduler does this once a day by itself."""
    from bot.settings import Settings

    days = Settings().retention_days
    with _current_database(database_url) as database:
        counts = retention.prune(database, datetime.now(UTC), timedelta(days=days), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for table, count in counts.items():
        out.print(f"{table:<20} {count:>9} {verb}", markup=False, highlight=False)
    done = "Nothing was deleted (dry run)." if dry_run else f"{sum(counts.values())} rows deleted."
    out.print(
        f"Rows older than {days} days that nothing needs any more. {done}", markup=False, highlight=False
    )


@audit_app.command("verify")
def verify(database_url: DatabaseUrl = None) -> None:
    """Exit 0 when the audit hash chain is intact and the decisions and reviews agree with it;
    otherwise name the first bad entry, or each disagreement, and exit 1."""
    pipeline = _configured_pipeline()
    with _current_database(database_url) as database:
        report = verify_audit(database, pipeline)
    if report.ok:
        out.print(f"[green]OK[/green] {escape(str(report))}", highlight=False)
        return
    verdict = "BROKEN" if report.bad_seq is not None else "DISAGREES"
    err.print(f"[red]{verdict}[/red] {escape(str(report))}", highlight=False)
    raise typer.Exit(1)


@outbox_app.command("list-dead")
def list_dead(database_url: DatabaseUrl = None) -> None:
    """List the notifications given up on (dead), oldest first, with their last error."""
    with _current_database(database_url) as database:
        dead = dead_messages(database)
    if not dead:
        out.print("No dead outbox messages.", highlight=False)
        return
    for message in dead:
        out.print(_describe_dead(message), markup=False, highlight=False)
    out.print(
        f"{len(dead)} dead; `shepherd outbox retry --id N` or `--all` sends them again.",
        markup=False,
        highlight=False,
    )


@outbox_app.command("retry")
def retry(
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", help="A dead message to send again (see list-dead); repeat for more."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Send every dead message again.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Send dead notifications again, with fresh attempts, as of the current state."""
    if bool(ids) == every:
        err.print("[red]error:[/red] give --id N (one or more) or --all.", highlight=False)
        raise typer.Exit(1)
    with _current_database(database_url) as database:
        if ids:
            statuses = outbox_statuses(database, ids)
            wrong = [
                f"outbox message {message_id} is {statuses[message_id]}, not dead"
                if message_id in statuses
                else f"there is no outbox message {message_id}"
                for message_id in dict.fromkeys(ids)
                if statuses.get(message_id) != DEAD
            ]
            if wrong:
                for line in wrong:
                    err.print(f"[red]error:[/red] {line}; nothing was requeued.", highlight=False)
                raise typer.Exit(1)
        dead = {message.id: message for message in dead_messages(database)}
        requeued = requeue_dead(database, ids or None)
    if not requeued:
        out.print("No dead outbox messages to send again.", highlight=False)
    for message_id in requeued:
        about = dead.get(message_id)
        what = f" ({about.kind}{f' of {about.ref}' if about.ref else ''})" if about else ""
        out.print(
            f"Requeued outbox message {message_id}{what}: the worker sends it again.",
            markup=False,
            highlight=False,
        )


def _describe_dead(message: DeadMessage) -> str:
    """One line: id, kind, initiative, when, attempts, and the last error (on one line, clipped)."""
    error = " ".join((message.last_error or "no error recorded").split())
    if len(error) > 300:
        error = error[:299] + "\u2026"
    ref = f" {message.ref}" if message.ref else ""
    created = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{message.id}  {message.kind}{ref}  created {created}, {message.attempts} attempts: {error}"
