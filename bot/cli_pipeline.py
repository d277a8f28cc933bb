"""`shepherd pipeline ...` and `shepherd readiness`: let a governance lead check a pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bot.blocks.operations import load_checked_pipeline
from bot.cli_console import console
from gates.errors import PipelineError
from gates.loader import CompiledPipeline, Yaml12Loader
from gates.pipeline import Gate, Question
from gates.readiness import CriterionStatus, Readiness, readiness

app = typer.Typer(help="Check and read the pipeline definition.", no_args_is_help=True)
out = console()
err = console(stderr=True)

PipelineFile = Annotated[
    Path | None, typer.Argument(help="Pipeline YAML file (default: SHEPHERD_PIPELINE or the bundled one).")
]


def _settings_pipeline() -> Path | None:
    from bot.settings import Settings

    return Settings().pipeline


def load_or_exit(file: Path | None) -> CompiledPipeline:
    """Load the pipeline, or print every problem and exit 1."""
    try:
        return load_checked_pipeline(file if file is not None else _settings_pipeline())
    except PipelineError as error:
        err.print(f"[red]The pipeline has {len(error.problems)} problem(s):[/red]")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def validate(file: PipelineFile = None) -> None:
    """Exit 0 when the pipeline is valid; otherwise list every problem with its place."""
    pipeline = load_or_exit(file)
    model = pipeline.model
    questions = sum(len(g.questions) for g in model.gates)
    out.print(
        "[green]OK[/green] "
        + escape(
            f"{pipeline.source}: version {pipeline.version}, {len(model.stages)} stages, "
            f"{len(model.gates)} gates, {questions} questions, {len(model.roles)} roles."
        )
    )


@app.command()
def show(
    file: PipelineFile = None,
    gate: Annotated[str | None, typer.Option("--gate", help="Show only this gate.")] = None,
) -> None:
    """Print the pipeline readably: stages, and per gate its questions, criteria, tiers and approvals."""
    pipeline = load_or_exit(file)
    model = pipeline.model
    gates = model.gates
    if gate is not None:
        chosen = model.gate(gate)
        if chosen is None:
            _no_gate(gate, pipeline)
        gates = [chosen]
    else:
        out.print(f"[bold]{escape(model.name)}[/bold] " + escape(f"(version {pipeline.version})"))
        out.print("Stages: " + " -> ".join(model.stages), markup=False)
        owner, sponsor = model.owner_question_id, model.sponsor_question_id
        out.print(
            f"Owner: {f'the answer to {owner}' if owner else 'whoever registers'}; "
            f"sponsor: {f'the answer to {sponsor}' if sponsor else 'not asked'}",
            markup=False,
        )
    for g in gates:
        _show_gate(pipeline, g)


def _no_gate(gate: str, pipeline: CompiledPipeline) -> NoReturn:
    gates = ", ".join(g.id for g in pipeline.model.gates)
    err.print(f"[red]No gate '{escape(gate)}'.[/red] " + escape(f"Gates: {gates}"))
    raise typer.Exit(1)


def _show_gate(pipeline: CompiledPipeline, gate: Gate) -> None:
    # Everything below comes from the pipeline file (labels, rules, options in brackets): shown
    # as written, never read as Rich markup.
    box = f", time box {gate.time_box_days} days" if gate.time_box_days else ""
    out.rule(
        f"[bold]{escape(gate.title)}[/bold] " + escape(f"gate ({gate.id}): {gate.from_} -> {gate.to}{box}")
    )
    if gate.description:
        out.print(gate.description.strip(), markup=False)
    table = Table("id", "type", "when", "question", show_lines=False, expand=True)
    for q in gate.questions:
        table.add_row(Text(q.id), Text(_type_text(q)), Text(_when_text(q)), Text(q.label))
    out.print(table)
    if gate.criteria:
        crit = Table("criterion", "kind", "rule", "why", expand=True)
        for c in gate.criteria:
            crit.add_row(Text(c.id), "blocking" if c.blocking else "advisory", Text(c.rule), Text(c.explain))
        out.print(crit)
    if gate.risk_tier:
        out.print(
            "Risk tier (first match wins): " + "; ".join(f"{r.tier} when {r.when}" for r in gate.risk_tier),
            markup=False,
        )
    elif pipeline.tier_rules(gate) and (tier_gate := pipeline.model.tier_gate(gate)) is not None:
        out.print(f"Risk tier: as set by the rules of gate {tier_gate.id}", markup=False)
    if gate.approvals:
        parts = [f"{a.min} x {a.role}" + (f" when {a.when}" if a.when else "") for a in gate.approvals]
        out.print("Approvals: " + "; ".join(parts), markup=False)
    if gate.allow_exceptions:
        out.print("Exceptions: a blocking criterion may be waived with a recorded justification.")


def _type_text(q: Question) -> str:
    text = q.type.value
    if q.options:
        text += f" ({', '.join(q.options)})"
    return text


def _when_text(q: Question) -> str:
    parts = []
    if q.required:
        parts.append("required")
    if q.required_if:
        parts.append(f"required if {q.required_if}")
    if q.show_if:
        parts.append(f"shown if {q.show_if}")
    return "; ".join(parts) or "optional"


def readiness_command(
    gate: Annotated[str, typer.Option("--gate", help="The gate to check, e.g. pilot.")],
    answers: Annotated[Path, typer.Option("--answers", help="YAML mapping of question id to answer.")],
    pipeline_file: Annotated[Path | None, typer.Option("--pipeline", help="Pipeline YAML file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    owner: Annotated[str | None, typer.Option(help="Owner's Slack id, excluded from approvers.")] = None,
) -> None:
    """Check sample answers against a gate: what is missing, which criteria hold, who must approve."""
    pipeline = load_or_exit(pipeline_file)
    raw = _read_answers(answers)
    if pipeline.model.gate(gate) is None:
        _no_gate(gate, pipeline)
    unknown = sorted(set(raw) - set(pipeline.model.all_questions()))
    if unknown:
        err.print(
            f"[yellow]{escape('Ignoring answers to unknown questions: ' + ', '.join(unknown))}[/yellow]"
        )
    report = readiness(pipeline, gate, raw, {}, owner)
    if as_json:
        print(json.dumps(readiness_json(report), indent=2))
    else:
        _print_readiness(pipeline, report)
    raise typer.Exit(0 if report.ready else 2)


def _read_answers(path: Path) -> dict[str, Any]:
    try:
        # As the pipeline is read (YAML 1.2): `NO` (Norway) and `on` stay text, as typed in Slack.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Yaml12Loader)
    except FileNotFoundError:
        err.print(f"[red]{escape(f'Answers file not found: {path}')}[/red]")
        raise typer.Exit(1) from None
    except UnicodeDecodeError:
        err.print(f"[red]{escape(str(path))} is not UTF-8 text; the answers file is YAML.[/red]")
        raise typer.Exit(1) from None
    except OSError as error:
        err.print(f"[red]{escape(f'Cannot read the answers file {path}: {error.strerror or error}')}[/red]")
        raise typer.Exit(1) from None
    except yaml.YAMLError as error:
        # One line, as ``pipeline validate`` says it: where, then what (PyYAML's own text spans
        # several lines and names the file "<unicode string>").
        mark = getattr(error, "problem_mark", None)
        line = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        err.print(f"[red]{escape(line)}: YAML syntax error{column}:[/red] {escape(problem)}", highlight=False)
        raise typer.Exit(1) from None
    except RecursionError:
        err.print(f"[red]{escape(str(path))} nests its values too deeply to read.[/red]")
        raise typer.Exit(1) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        err.print(f"[red]{escape(str(path))} must be a mapping of question id to answer.[/red]")
        raise typer.Exit(1)
    return {str(k): v for k, v in data.items()}


def readiness_json(report: Readiness) -> dict[str, Any]:
    return {
        "gate": report.gate_id,
        "ready": report.ready,
        "blockers": report.blockers,
        "missing": [q.id for q in report.missing],
        "invalid": {e.question_id: e.reason for e in report.invalid},
        "criteria": [
            {
                "id": c.id,
                "status": c.status.value,
                "blocking": c.blocking,
                "waiting_for": list(c.waiting_for),
                "explain": c.explain,
            }
            for c in report.criteria
        ],
        "tier": report.tier,
        "tier_waiting_for": list(report.tier_waiting_for),
        "approvals": [
            {"role": a.role, "min": a.min, "holders": list(a.holders), "because": a.because}
            for a in report.approvals
        ],
        "answered": report.answered,
        "visible_questions": len(report.visible_questions),
    }


def _print_readiness(pipeline: CompiledPipeline, report: Readiness) -> None:
    verdict = "[green]READY[/green]" if report.ready else "[red]NOT READY[/red]"
    # Labels and explanations come from the pipeline file, invalid answers from the answers file.
    out.print(
        f"{escape(report.gate_title)} gate: {verdict}  ({report.answered}/{len(report.visible_questions)} answered)"
    )
    out.print(f"Risk tier: {report.tier or 'not determined'}", markup=False)
    for q in report.missing:
        out.print(f"  [red]missing[/red]  {escape(f'{q.id}: {q.label}')}")
    for e in report.invalid:
        out.print(f"  [red]invalid[/red]  {escape(str(e))}")
    marks = {CriterionStatus.MET: "[green]met[/green]", CriterionStatus.UNMET: "[red]unmet[/red]"}
    for c in report.criteria:
        mark = marks.get(c.status, "[yellow]cannot be evaluated[/yellow]")
        kind = "blocking" if c.blocking else "advisory"
        wait = f" (waiting for {', '.join(c.waiting_for)})" if c.waiting_for else ""
        out.print(f"  {mark} " + escape(f"{kind} {c.id}: {c.explain}{wait}"))
    for a in report.approvals:
        who = ", ".join(a.holders) or "nobody yet"
        out.print(
            f"  approval: {a.min} x {a.label} ({who})" + (f" - {a.because}" if a.because else ""),
            markup=False,
        )
