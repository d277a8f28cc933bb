"""The `shepherd` command: one entry point for the bot, the governance lead and operators."""

from __future__ import annotations

import logging
import sys
import traceback

import typer
from pydantic import ValidationError
from rich.markup import escape

from bot import (
    cli_initiatives,
    cli_knowledge,
    cli_ops,
    cli_pipeline,
    cli_schedule,
    cli_serve,
    cli_storage,
)
from bot.cli_console import console
from bot.settings import Settings, settings_problems
from gates.errors import ShepherdError

app = typer.Typer(
    name="shepherd",
    help="Shepherd: the pathway from AI proof of concept to production, in Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_schedule.schedule_app, name="schedule")
app.add_typer(cli_pipeline.app, name="pipeline")
app.command("readiness")(cli_pipeline.readiness_command)
app.command("run")(cli_serve.run)
app.command("serve")(cli_serve.serve)
app.command("worker")(cli_serve.worker)
app.command("manifest")(cli_serve.manifest)
app.add_typer(cli_initiatives.initiatives_app, name="initiatives")
app.add_typer(cli_initiatives.roles_app, name="roles")
app.command("export")(cli_initiatives.export)
app.add_typer(cli_knowledge.app, name="knowledge")
app.add_typer(cli_storage.db_app, name="db")
app.add_typer(cli_storage.audit_app, name="audit")
app.add_typer(cli_storage.outbox_app, name="outbox")
app.command("portfolio")(cli_ops.portfolio)
app.command("doctor")(cli_ops.doctor)

err = console(stderr=True)


def main() -> None:
    """Console-script entry point: expected errors become one readable line, never a traceback."""
    try:
        app()
    except ShepherdError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("Stopped.")
        sys.exit(130)
    except Exception as error:  # the last line of defence: details for us, one line for the user
        if isinstance(error, ValidationError) and error.title == Settings.__name__:
            err.print("[red]Shepherd's settings have problems:[/red]")
            for line in settings_problems(error):
                err.print(f"  {line}", markup=False, highlight=False)
            sys.exit(1)
        logger = logging.getLogger("shepherd")
        details = logger.isEnabledFor(logging.DEBUG) or _debug_asked()
        if logger.isEnabledFor(logging.DEBUG):  # serve, run and worker have set logging up
            logger.debug("unexpected error", exc_info=True)
        elif details:  # the other commands leave logging alone: the traceback goes to stderr here
            traceback.print_exception(error, file=sys.stderr)
        hint = "" if details else "\nRun again with SHEPHERD_LOG_LEVEL=DEBUG for the details."
        err.print(
            f"[red]Shepherd hit an unexpected error:[/red] {escape(f'{type(error).__name__}: {error}')}{hint}",
            highlight=False,
        )
        sys.exit(1)


def _debug_asked() -> bool:
    """Whether SHEPHERD_LOG_LEVEL asks for the details (the settings may be what went wrong)."""
    try:
        return Settings().log_level == "DEBUG"
    except Exception:
        return False


if __name__ == "__main__":
    main()
