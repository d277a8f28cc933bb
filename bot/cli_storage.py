"""`shepherd db ...` and `shepherd audit verify`: operate the database.

Mount with ``app.add_typer(cli_storage.db_app, name="db")`` and
``app.add_typer(cli_storage.audit_app, name="audit")``.

Exit codes: 0 done / intact; 1 the audit chain is broken (the first bad entry is named);
2 the database cannot be used (unreachable, schema too new or not migrated), in one line.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from storage import Database, StorageError, verify_audit
from storage.database import require_sqlite_file

db_app = typer.Typer(help="Migrate and check the database.", no_args_is_help=True)
audit_app = typer.Typer(help="Prove the audit log unbroken.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (default: SHEPHERD_DATABASE_URL, or shepherd.db in SHEPHERD_DATA_DIR).",
        show_default=False,
    ),
]


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


def _fail(error: StorageError) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}", highlight=False, markup=True)
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
        out.print(f"Database {database.describe()} is already at revision {after}.", highlight=False)
    else:
        out.print(
            f"[green]Upgraded[/green] {database.describe()} from {before or 'empty'} to {after}.",
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
    out.print(f"[green]OK[/green] {database.describe()} is at revision {database.head()}.", highlight=False)
    database.dispose()


@audit_app.command("verify")
def verify(database_url: DatabaseUrl = None) -> None:
    """Exit 0 when the audit hash chain is intact; otherwise name the first bad entry and exit 1."""
    try:
        database = _database(database_url, existing=True)
        database.check()
        report = verify_audit(database)
    except StorageError as error:
        raise _fail(error) from None
    database.dispose()
    if report.ok:
        out.print(f"[green]OK[/green] {report}", highlight=False)
        return
    err.print(f"[red]BROKEN[/red] {report}", highlight=False)
    raise typer.Exit(1)
