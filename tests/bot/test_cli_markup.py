"""Names, reasons and answers typed in Slack are printed by the CLI as typed, never read as
Rich markup: square brackets stay, and "[/]" does not end a command in a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.bootstrap import bootstrap
from bot.cli import app
from bot.settings import Settings
from gates import usecases
from gates.lifecycle import DecisionKind

REPO_ROOT = Path(__file__).resolve().parents[2]
INTAKE = yaml.safe_load(
    (REPO_ROOT / "examples" / "answers" / "intake-low-risk.yaml").read_text(encoding="utf-8")
)
OWNER = "U03PLANLEAD"
SPONSOR = "U02SUPPLYDIR"
NAME = "Churn model [emea] pilot [/] v2"
KPI = "Churn [bold]rate[/bold] per [/] month"
DECISION_REASON = "Fine [red]for[/] [emea]"
STALLED_NAME = "Invoice triage [/] [b]v3[/b]"


@dataclass(frozen=True)
class Seeded:
    approved: str
    stalled: str


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """One initiative with brackets everywhere, approved through intake, and one stalled in idea."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")  # rows on one line each, so the text can be compared whole
    for name in ("SHEPHERD_DATABASE_URL", "SHEPHERD_PIPELINE"):
        monkeypatch.delenv(name, raising=False)
    services = bootstrap(Settings(data_dir=tmp_path, embeddings="none"))
    pipeline = services.pipeline
    now = datetime.now(UTC)
    try:
        approved = usecases.register(
            pipeline,
            services.uow(),
            name=NAME,
            owner_id=OWNER,
            sponsor_id=SPONSOR,
            answers={**INTAKE, "primary_kpi": KPI},
            actor_id=OWNER,
            now=now - timedelta(days=3),
        )
        usecases.set_role_holders(pipeline, services.uow(), "sponsor", [SPONSOR], "test", now)
        review = usecases.submit(pipeline, services.uow(), approved.ref, OWNER, now - timedelta(days=2))
        assert review.id is not None
        usecases.decide(
            pipeline,
            services.uow(),
            review.id,
            SPONSOR,
            DecisionKind.APPROVE,
            DECISION_REASON,
            now - timedelta(days=1),
        )
        stalled = usecases.register(
            pipeline,
            services.uow(),
            name=STALLED_NAME,
            owner_id=OWNER,
            answers=INTAKE,
            actor_id=OWNER,
            now=now - timedelta(days=60),
        )
        yield Seeded(approved.ref, stalled.ref)
    finally:
        services.database.dispose()


def run(*args: str) -> Any:
    """Invoke the root `shepherd` app the way a person would."""
    return CliRunner().invoke(app, list(args))


def cells(output: str) -> list[list[str]]:
    """The rows of every table in the output, each as its stripped cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if "│" in line]


def test_list_shows_names_with_brackets_as_typed(seeded: Seeded) -> None:
    result = run("initiatives", "list")
    assert result.exit_code == 0, result.output
    rows = cells(result.stdout)
    assert [seeded.approved, NAME, "poc", "active", OWNER, "1", ""] in rows
    assert [seeded.stalled, STALLED_NAME, "idea", "active", OWNER, "60", "STALLED"] in rows


def test_show_prints_the_name_answers_and_decision_reason_as_typed(seeded: Seeded) -> None:
    result = run("initiatives", "show", seeded.approved)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f" {seeded.approved} {NAME} " in lines[0]  # the rule
    assert lines[1].startswith("Stage poc for 1 day(s); status active")
    kpi = next(row for row in cells(result.stdout) if row[:2] == ["intake", "primary_kpi"])
    assert kpi[:4] == ["intake", "primary_kpi", KPI, OWNER]
    decision = next(line for line in lines if line.startswith(f"  approve by {SPONSOR} as sponsor "))
    assert decision.endswith(f": {DECISION_REASON}")


def test_portfolio_lists_a_stalled_name_with_brackets_as_typed(seeded: Seeded) -> None:
    result = run("portfolio")
    assert result.exit_code == 0, result.output
    assert [seeded.stalled, STALLED_NAME, "idea", "60", OWNER] in cells(result.stdout)


def test_hold_and_retire_confirm_a_reason_with_brackets_as_typed(seeded: Seeded) -> None:
    held = run("initiatives", "hold", seeded.stalled, "--reason", "waiting on [/] legal [emea]")
    assert held.exit_code == 0, held.output
    assert held.stdout == f"{seeded.stalled} is on hold: waiting on [/] legal [emea]\n"
    shown = run("initiatives", "show", seeded.stalled)
    assert shown.exit_code == 0, shown.output
    status = shown.stdout.splitlines()[1]
    assert status == "Stage idea for 60 day(s); status on hold (waiting on [/] legal [emea])"
    retired = run("initiatives", "retire", seeded.stalled, "--reason", "bought [bold]it[/] instead")
    assert retired.exit_code == 0, retired.output
    assert retired.stdout == f"{seeded.stalled} is retired: bought [bold]it[/] instead\n"


def test_an_unknown_ref_with_brackets_is_one_error_line(seeded: Seeded) -> None:
    result = run("initiatives", "show", "AI-[/]x")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # not a MarkupError traceback
    assert "AI-[/]x" in result.stderr


def test_pipeline_show_prints_labels_with_brackets_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = (REPO_ROOT / "gates" / "defaults" / "pipeline.yaml").read_text(encoding="utf-8")
    label = "label: What problem does this initiative solve, and for whom?"
    assert text.count(label) == 1
    file = tmp_path / "pipeline.yaml"
    file.write_text(text.replace(label, 'label: "Problem [/] statement [b]now[/b]"'), encoding="utf-8")
    result = run("pipeline", "show", str(file), "--gate", "intake")
    assert result.exit_code == 0, result.output
    assert "Problem [/] statement [b]now[/b]" in result.stdout
