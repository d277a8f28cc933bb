"""`shepherd initiatives ...`, `shepherd roles ...` and `shepherd export`: the registry from a terminal.

Mounted in ``bot/cli.py`` as ``initiatives_app`` ("initiatives"), ``roles_app`` ("roles") and the
``export`` command. Expected errors (unknown ref, role, gate, stage or status; a database that
cannot be used) print one red line and exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bot import parse
from bot.bootstrap import Services, bootstrap
from bot.cli_console import console
from bot.cli_pipeline import readiness_json
from bot.evidence_pack import evidence_json, evidence_markdown
from bot.settings import Settings
from gates import usecases
from gates.answers import display
from gates.errors import ShepherdError
from gates.evidence import current_links
from gates.lifecycle import Initiative, Status
from gates.readiness import CriterionStatus, Readiness

initiatives_app = typer.Typer(
    help="List and inspect initiatives; hold, resume or retire one.", no_args_is_help=True
)
roles_app = typer.Typer(help="Who holds each approver role.", no_args_is_help=True)
out = console()
err = console(stderr=True)

CLI_ACTOR = "cli"

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@contextmanager
def _services() -> Iterator[Services]:
    """Services for one command; any expected error becomes one red line and exit code 1."""
    services: Services | None = None
    try:
        services = bootstrap(Settings(), existing_database=True)
        yield services
    except ShepherdError as error:
        raise _fail(str(error)) from None
    finally:
        if services is not None:
            services.database.dispose()


def _fail(message: str) -> typer.Exit:
    # Messages name refs, gates and values people typed: never read them as Rich markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


# ---------------------------------------------------------------- initiatives


@initiatives_app.command("list")
def list_command(
    stage: Annotated[str | None, typer.Option("--stage", help="Only initiatives in this stage.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only this status: {', '.join(s.value for s in Status)}.")
    ] = None,
    stalled: Annotated[
        bool, typer.Option("--stalled", help="Only initiatives past their stage's time box.")
    ] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only initiatives owned by this Slack user id.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List initiatives with their stage, status, owner and days in stage; STALLED marks a blown time box."""
    wanted_status = _status(status)
    with _services() as services:
        pipeline = services.pipeline
        if stage is not None and stage not in pipeline.model.stages:
            raise _fail(f"Unknown stage '{stage}'. Stages: {', '.join(pipeline.model.stages)}.")
        now = services.now()
        found = usecases.all_initiatives(
            pipeline,
            services.read_uow(),
            now,
            stage=stage,
            status=wanted_status,
            owner_id=owner,
            stalled=stalled,
        )
        rows = [_summary(services, initiative, now) for initiative in found]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("No initiatives match.")
        return
    table = Table("ref", "name", "stage", "status", "owner", "days in stage", "")
    for row in rows:
        # Names are typed in Slack: Text cells are shown as typed, never read as markup.
        table.add_row(
            Text(row["ref"]),
            Text(row["name"]),
            Text(row["stage"]),
            row["status"].replace("_", " "),
            Text(row["owner"]),
            str(row["days_in_stage"]),
            "[red]STALLED[/red]" if row["stalled"] else "",
        )
    out.print(table)


def _status(value: str | None) -> Status | None:
    if value is None:
        return None
    try:
        return Status(value.strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        raise _fail(
            f"Unknown status '{value}'. Valid statuses: {', '.join(s.value for s in Status)}."
        ) from None


def _summary(services: Services, initiative: Initiative, now: datetime) -> dict[str, Any]:
    entered = initiative.stage_entered_at or initiative.created_at
    return {
        "ref": initiative.ref,
        "name": initiative.name,
        "stage": initiative.stage,
        "status": initiative.status.value,
        "owner": initiative.owner_id,
        "sponsor": initiative.sponsor_id,
        "stage_entered_at": entered.isoformat(timespec="seconds"),
        "days_in_stage": max(0, (now - entered).days),
        "stalled": usecases.is_stalled(services.pipeline, initiative, now),
    }


@initiatives_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="The initiative's ref, e.g. AI-0007.")],
    as_json: AsJson = False,
) -> None:
    """Show one initiative: readiness for its next gate, answers, evidence links, reviews and timeline."""
    with _services() as services:
        view = usecases.show(services.pipeline, services.read_uow(), _ref(ref))
        now = services.now()
        summary = _summary(services, view.initiative, now)
        pipeline = services.pipeline
    if as_json:
        pack = evidence_json(pipeline, view)
        pack["summary"] = summary
        pack["readiness"] = readiness_json(view.readiness) if view.readiness else None
        print(json.dumps(pack, indent=2, default=str))
        return
    _print_view(pipeline, view, summary)


Ref = Annotated[str, typer.Argument(help="The initiative's ref, e.g. AI-0007.")]
Reason = Annotated[str, typer.Option("--reason", help="Why: shown on the initiative's card in Slack.")]


# From a terminal, with the database's credentials: a steward's rights, recorded as actor "cli".
# The card in Slack is redrawn by the outbox, the next time a worker runs.


@initiatives_app.command("hold")
def hold_command(ref: Ref, reason: Reason) -> None:
    """Put an active initiative on hold."""
    with _services() as services:
        initiative = usecases.hold(services.uow(), _ref(ref), CLI_ACTOR, reason, services.now(), steward=True)
    out.print(f"{initiative.ref} is on hold: {initiative.status_reason}", markup=False, highlight=False)


@initiatives_app.command("resume")
def resume_command(ref: Ref) -> None:
    """Make an initiative on hold active again."""
    with _services() as services:
        initiative = usecases.resume(services.uow(), _ref(ref), CLI_ACTOR, services.now(), steward=True)
    out.print(f"{initiative.ref} is active again.", markup=False, highlight=False)


@initiatives_app.command("retire")
def retire_command(ref: Ref, reason: Reason) -> None:
    """Retire an initiative; an open review is withdrawn first."""
    with _services() as services:
        initiative = usecases.retire(
            services.uow(), _ref(ref), CLI_ACTOR, reason, services.now(), steward=True
        )
    out.print(f"{initiative.ref} is retired: {initiative.status_reason}", markup=False, highlight=False)


def _ref(value: str) -> str:
    """Refs are typed by hand: accept ``ai-7`` as ``AI-0007``."""
    text = value.strip()
    prefix, _, number = text.rpartition("-")
    if prefix.isalpha() and number.isdigit():
        return f"{prefix.upper()}-{int(number):04d}"
    return text


def _print_view(pipeline: Any, view: usecases.InitiativeView, summary: dict[str, Any]) -> None:
    initiative = view.initiative
    stalled = " [red]STALLED[/red]" if summary["stalled"] else ""
    # Names, reasons and answers are typed in Slack: escaped or Text, never read as Rich markup.
    out.rule(f"[bold]{escape(initiative.ref)}[/bold] {escape(initiative.name)}")
    out.print(
        f"Stage [bold]{escape(initiative.stage)}[/bold] for {summary['days_in_stage']} day(s){stalled}; "
        f"status {initiative.status.value.replace('_', ' ')}"
        + (f" ({escape(initiative.status_reason)})" if initiative.status_reason else ""),
        highlight=False,
    )
    out.print(
        f"Owner {initiative.owner_id}; sponsor {initiative.sponsor_id or '-'}", markup=False, highlight=False
    )
    if view.readiness is not None:
        _print_readiness(view.readiness)

    questions = pipeline.model.all_questions()
    if view.answers:
        table = Table("gate", "question", "answer", "by", "when", title="Current answers", expand=True)
        order = {qid: index for index, qid in enumerate(questions)}
        for qid, version in sorted(view.answers.items(), key=lambda item: order.get(item[0], len(order))):
            question = questions.get(qid, (None, None))[1]
            value = display(question, version.value) if question else str(version.value)
            table.add_row(
                Text(version.gate_id),
                Text(qid),
                Text(value),
                Text(version.author_id),
                _when(version.answered_at),
            )
        out.print(table)
    if view.links:
        # Lines, not a table: a URL folded across table rows cannot be clicked or copied.
        out.print("\n[bold]Evidence links[/bold]")
        for link in current_links(view.links).values():  # each address once, newest title
            out.print(
                f"  [{link.gate_id}] {link.title}: {link.url} ({link.author_id}, {_when(link.added_at)})",
                markup=False,
                highlight=False,
            )
    for review in view.reviews:
        out.print(
            f"\n[bold]Review {review.id}[/bold] "
            + escape(
                f"{review.gate_id} ({review.from_stage} -> {review.to_stage}): "
                f"{review.status.value.replace('_', ' ')}; submitted by {review.submitted_by} "
                f"{_when(review.submitted_at)}; pipeline v{review.pipeline_version}; "
                f"evidence {review.evidence_hash[:12]}"
            ),
            highlight=False,
        )
        if review.exception_reason:
            out.print(f"  exception justified: {review.exception_reason}", markup=False, highlight=False)
        for d in review.decisions:
            reason = f": {d.reason}" if d.reason else ""
            role = review.counted_for(d)  # in the end: a later approver may have moved it
            if role != d.role:
                role = f"{role} (first counted as {d.role})"
            out.print(
                f"  {d.kind.value.replace('_', ' ')} by {d.approver_id} as {role} {_when(d.decided_at)}{reason}",
                markup=False,
                highlight=False,
            )
    if view.timeline:
        timeline = Table("when", "actor", "action", title="Timeline", expand=True)
        for entry in view.timeline:
            timeline.add_row(_when(entry.at), Text(entry.actor_id), Text(entry.action))
        out.print(timeline)


def _print_readiness(report: Readiness) -> None:
    verdict = "[green]READY[/green]" if report.ready else "[red]NOT READY[/red]"
    # Titles, explanations and labels come from the pipeline file, blockers may quote answers.
    out.print(
        f"Next gate: {escape(report.gate_title)} - {verdict} "
        + escape(
            f"({report.answered}/{len(report.visible_questions)} answered; "
            f"risk tier {report.tier or 'not determined'})"
        ),
        highlight=False,
    )
    for reason in report.blockers:
        out.print(f"  [red]-[/red] {escape(reason)}", highlight=False)
    for criterion in report.advisory_unmet:
        if criterion.status is CriterionStatus.UNMET:
            out.print(f"  [yellow]advisory[/yellow] {escape(criterion.explain)}", highlight=False)
    for need in report.approvals:
        who = ", ".join(need.holders) or "nobody yet"
        out.print(f"  approval: {need.min} x {need.label} ({who})", markup=False, highlight=False)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


# ---------------------------------------------------------------- roles


@roles_app.command("set")
def roles_set(
    role: Annotated[str, typer.Argument(help="A role the pipeline defines, e.g. risk.")],
    user_ids: Annotated[
        list[str], typer.Argument(help="Slack user ids that hold the role (replaces the list).")
    ],
) -> None:
    """Replace the holders of ROLE (recorded on the audit log as actor "cli")."""
    # A name stored as a holder would make approvals wait on nobody.
    wrong = [user for user in user_ids if not parse.is_user_id(user)]
    if wrong:
        raise _fail(
            f"{', '.join(wrong)}: not a Slack user id (they look like U012AB3CD: in Slack, a person's "
            "profile > ⋮ > Copy member ID); nothing was changed"
        )
    with _services() as services:
        users = usecases.set_role_holders(
            services.pipeline, services.uow(), role, user_ids, CLI_ACTOR, services.now()
        )
        with services.read_uow() as uow:  # role_holders reads inside the caller's transaction
            holders = usecases.role_holders(services.pipeline, uow).get(role, [])
    out.print(f"[green]{escape(role)}[/green]: {escape(', '.join(users) or 'nobody')}", highlight=False)
    configured = [u for u in holders if u not in users]
    if configured:
        out.print(
            f"  also held through the pipeline file: {', '.join(configured)}", markup=False, highlight=False
        )


@roles_app.command("list")
def roles_list(as_json: AsJson = False) -> None:
    """Each role with its holders (the pipeline file's slack_users plus `shepherd roles set`)."""
    with _services() as services:
        pipeline = services.pipeline
        with services.read_uow() as uow:  # role_holders reads inside the caller's transaction
            holders = usecases.role_holders(pipeline, uow)
    rows: dict[str, dict[str, Any]] = {
        role: {
            "label": spec.label or role,
            "holders": holders.get(role, []),
            "usergroup": spec.slack_usergroup,
        }
        for role, spec in pipeline.model.roles.items()
    }
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("role", "label", "holders", "Slack user group")
    for role, row in rows.items():
        table.add_row(
            Text(role),
            Text(row["label"]),
            Text(", ".join(row["holders"])) if row["holders"] else "[yellow]nobody[/yellow]",
            Text(row["usergroup"] or ""),
        )
    out.print(table)


# ---------------------------------------------------------------- export

FORMATS = ("md", "json")


def export(
    ref: Annotated[str, typer.Argument(help="The initiative's ref, e.g. AI-0007.")],
    format_: Annotated[str, typer.Option("--format", help="md (Markdown for auditors) or json.")] = "md",
    gate: Annotated[
        str | None, typer.Option("--gate", help="Only answers, links and reviews of this gate.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Export an initiative's evidence pack: answers with history, links, reviews, decisions and audit trail."""
    kind = format_.strip().lower()
    if kind == "markdown":
        kind = "md"
    if kind not in FORMATS:
        raise _fail(f"Unknown format '{format_}'. Formats: {', '.join(FORMATS)}.")
    with _services() as services:
        view = usecases.show(services.pipeline, services.read_uow(), _ref(ref))
        if kind == "md":
            text = evidence_markdown(services.pipeline, view, gate)
        else:
            text = json.dumps(evidence_json(services.pipeline, view, gate), indent=2, default=str) + "\n"
    if output is None:
        print(text, end="")
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise _fail(f"Cannot write {output}: {error.strerror or error}") from None
    err.print(f"Wrote the evidence pack of {view.initiative.ref} to {output}", markup=False, highlight=False)
