"""`shepherd initiatives`, `roles` and `export` against a real SQLite database seeded through the use cases."""

from __future__ import annotations

import json
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
from gates.lifecycle import DecisionKind, Initiative

REPO_ROOT = Path(__file__).resolve().parents[2]
INTAKE = yaml.safe_load(
    (REPO_ROOT / "examples" / "answers" / "intake-low-risk.yaml").read_text(encoding="utf-8")
)
OWNER = "U03PLANLEAD"
SPONSOR = "U02SUPPLYDIR"
APPROVAL_REASON = "Baseline is measured and the PoC is time-boxed"


@dataclass(frozen=True)
class Seeded:
    approved: str
    stale: str
    fresh: str
    evidence_hash: str


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory the CLI's Settings point at (embedded SQLite)."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path))
    for name in ("SHEPHERD_DATABASE_URL", "SHEPHERD_PIPELINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def seeded(data_dir: Path) -> Iterator[Seeded]:
    """One initiative approved through intake, one stalled in idea, one registered today."""
    services = bootstrap(Settings(data_dir=data_dir, embeddings="none"))
    pipeline = services.pipeline
    now = datetime.now(UTC)
    try:
        start = now - timedelta(days=40)
        approved = usecases.register(
            pipeline,
            services.uow(),
            name="Spare parts demand forecast",
            owner_id=OWNER,
            sponsor_id=SPONSOR,
            answers=INTAKE,
            actor_id=OWNER,
            now=start,
        )
        usecases.answer(
            pipeline,
            services.uow(),
            approved.ref,
            "intake",
            {"poc_duration_weeks": 6},
            OWNER,
            start + timedelta(hours=1),
        )
        usecases.add_link(
            pipeline,
            services.uow(),
            approved.ref,
            "intake",
            "https://wiki.example.com/forecast-baseline",
            "Baseline | stock-out analysis",
            OWNER,
            start + timedelta(hours=2),
        )
        usecases.set_role_holders(pipeline, services.uow(), "sponsor", [SPONSOR], "test", start)
        review = usecases.submit(pipeline, services.uow(), approved.ref, OWNER, start + timedelta(hours=3))
        assert review.id is not None
        outcome = usecases.decide(
            pipeline,
            services.uow(),
            review.id,
            SPONSOR,
            DecisionKind.APPROVE,
            APPROVAL_REASON,
            start + timedelta(days=1),
        )
        assert outcome.advanced
        stale = usecases.register(
            pipeline,
            services.uow(),
            name="Invoice matching assistant",
            owner_id="U0STALE01",
            answers=INTAKE,
            actor_id="U0STALE01",
            now=now - timedelta(days=45),
        )
        fresh = usecases.register(
            pipeline,
            services.uow(),
            name="Route planning",
            owner_id="U0FRESH01",
            answers=INTAKE,
            actor_id="U0FRESH01",
            now=now,
        )
        yield Seeded(approved.ref, stale.ref, fresh.ref, review.evidence_hash)
    finally:
        services.database.dispose()


def run(*args: str) -> Any:
    """Invoke the root `shepherd` app the way a person would."""
    return CliRunner().invoke(app, list(args))


def test_list_json_shows_each_initiative_with_stage_status_and_owner(seeded: Seeded) -> None:
    result = run("initiatives", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["ref"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {seeded.approved, seeded.stale, seeded.fresh}
    assert rows[seeded.approved]["stage"] == "poc"
    assert rows[seeded.approved]["status"] == "active"
    assert rows[seeded.approved]["owner"] == OWNER
    assert rows[seeded.stale]["days_in_stage"] == 45


def test_stalled_filter_keeps_only_initiatives_past_their_time_box(seeded: Seeded) -> None:
    result = run("initiatives", "list", "--stalled", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["ref"] for row in rows] == [seeded.stale]
    assert rows[0]["stalled"] is True


def _submit_for_review(data_dir: Path, ref: str) -> None:
    """Submit ``ref`` for its next gate, as its owner would from Slack."""
    services = bootstrap(Settings(data_dir=data_dir, embeddings="none"))
    try:
        now = datetime.now(UTC)
        pipeline = services.pipeline
        usecases.answer(pipeline, services.uow(), ref, "intake", {"poc_duration_weeks": 6}, "U0STALE01", now)
        usecases.set_role_holders(pipeline, services.uow(), "sponsor", [SPONSOR], "test", now)
        usecases.submit(pipeline, services.uow(), ref, "U0STALE01", now)
    finally:
        services.database.dispose()


@pytest.mark.parametrize("leave", ["retired", "on hold", "in review"])
def test_stalled_filter_leaves_out_initiatives_that_are_not_active(
    seeded: Seeded, data_dir: Path, leave: str
) -> None:
    # Retired and on hold, nobody expects it to move; in review, it waits for its approvers.
    if leave == "retired":
        assert run("initiatives", "retire", seeded.stale, "--reason", "Dropped").exit_code == 0
    elif leave == "on hold":
        assert run("initiatives", "hold", seeded.stale, "--reason", "Waiting on budget").exit_code == 0
    else:
        _submit_for_review(data_dir, seeded.stale)
    result = run("initiatives", "list", "--stalled", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    table = run("initiatives", "list", "--stalled")
    assert table.exit_code == 0, table.output
    assert seeded.stale not in table.stdout
    assert "No initiatives match." in table.stdout


def test_list_shows_every_initiative_past_a_page(data_dir: Path) -> None:
    services = bootstrap(Settings(data_dir=data_dir, embeddings="none"))
    now = datetime.now(UTC)
    try:
        with services.uow() as uow:
            for n in range(1, 506):
                uow.initiatives.add(
                    Initiative(f"AI-{n:04d}", f"Initiative {n}", OWNER, "idea", now - timedelta(days=1))
                )
            uow.commit()
    finally:
        services.database.dispose()
    result = run("initiatives", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["ref"] for row in rows] == [f"AI-{n:04d}" for n in range(1, 506)]
    table = run("initiatives", "list", "--owner", OWNER)
    assert "AI-0505" in table.stdout


def test_list_table_marks_stalled_initiatives(seeded: Seeded) -> None:
    result = run("initiatives", "list", "--stage", "idea")
    assert result.exit_code == 0, result.output
    stale_line = next(line for line in result.stdout.splitlines() if seeded.stale in line)
    fresh_line = next(line for line in result.stdout.splitlines() if seeded.fresh in line)
    assert "STALLED" in stale_line
    assert "STALLED" not in fresh_line
    assert seeded.approved not in result.stdout


def test_unknown_status_lists_the_valid_ones(seeded: Seeded) -> None:
    result = run("initiatives", "list", "--status", "finished")
    assert result.exit_code == 1
    assert "finished" in result.stderr
    assert "active, in_review, on_hold, retired" in result.stderr


def test_unknown_stage_lists_the_stages(seeded: Seeded) -> None:
    result = run("initiatives", "list", "--stage", "moon")
    assert result.exit_code == 1
    assert "moon" in result.stderr and "idea, poc" in result.stderr


def test_show_prints_readiness_answers_links_reviews_and_timeline(seeded: Seeded) -> None:
    result = run("initiatives", "show", seeded.approved)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Spare parts demand forecast" in text
    assert "Next gate: Pilot" in text and "NOT READY" in text
    assert "https://wiki.example.com/forecast-baseline" in text
    assert f"approve by {SPONSOR} as sponsor" in text
    assert "stage.advanced" in text


def test_show_names_the_role_each_approval_counted_for_in_the_end(data_dir: Path) -> None:
    # The high tier needs the sponsor and risk: the two-role approver who came first is moved
    # to risk when the sponsor, who can fill only that role, approves.
    dual, now = "U05BOTHROLES", datetime.now(UTC)
    services = bootstrap(Settings(data_dir=data_dir, embeddings="none"))
    try:
        pipeline = services.pipeline
        usecases.set_role_holders(pipeline, services.uow(), "sponsor", [SPONSOR, dual], "test", now)
        usecases.set_role_holders(pipeline, services.uow(), "risk", [dual], "test", now)
        ref = usecases.register(
            pipeline, services.uow(), name="Claims triage", owner_id=OWNER, sponsor_id=SPONSOR,
            answers={**INTAKE, "regulated_domain": "yes"}, actor_id=OWNER, now=now,
        ).ref  # fmt: skip
        review = usecases.submit(pipeline, services.uow(), ref, OWNER, now)
        assert review.id is not None
        for approver in (dual, SPONSOR):
            usecases.decide(pipeline, services.uow(), review.id, approver, DecisionKind.APPROVE, None, now)
    finally:
        services.database.dispose()
    result = run("initiatives", "show", ref)
    assert result.exit_code == 0, result.output
    assert f"approve by {dual} as risk (first counted as sponsor)" in result.stdout
    assert f"approve by {SPONSOR} as sponsor " in result.stdout


def test_show_json_carries_readiness_and_the_evidence(seeded: Seeded) -> None:
    result = run("initiatives", "show", seeded.approved.lower(), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["initiative"]["ref"] == seeded.approved
    assert data["readiness"]["gate"] == "pilot"
    assert data["readiness"]["ready"] is False
    assert data["reviews"][0]["status"] == "approved"


def test_roles_set_then_list_shows_the_holders(seeded: Seeded) -> None:
    result = run("roles", "set", "risk", "U0RISK001", "U0RISK002")
    assert result.exit_code == 0, result.output
    listed = run("roles", "list", "--json")
    assert listed.exit_code == 0, listed.output
    roles = json.loads(listed.stdout)
    assert roles["risk"]["holders"] == ["U0RISK001", "U0RISK002"]
    assert roles["sponsor"]["holders"] == [SPONSOR]


def test_roles_set_is_audited_with_the_cli_as_actor(data_dir: Path) -> None:
    assert run("roles", "set", "privacy", "U0PRIV001").exit_code == 0
    services = bootstrap(Settings(data_dir=data_dir, embeddings="none"))
    try:
        with services.read_uow() as uow:
            entries = uow.audit.timeline("role:privacy")
    finally:
        services.database.dispose()
    assert [(e.actor_id, e.action) for e in entries] == [("cli", "roles.set")]


def test_unknown_role_exits_1_naming_it(seeded: Seeded) -> None:
    result = run("roles", "set", "wizard", "U0SOMEONE")
    assert result.exit_code == 1
    assert "wizard" in result.stderr
    assert "Traceback" not in result.output


def test_export_markdown_contains_decisions_and_evidence_hash(seeded: Seeded) -> None:
    result = run("export", seeded.approved, "--format", "md")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"# Evidence pack: {seeded.approved} Spare parts demand forecast")
    assert "## Intake gate (intake)" in text
    assert seeded.evidence_hash in text
    assert f"| {SPONSOR} | sponsor | approve | {APPROVAL_REASON} |" in text
    assert "Decided on pipeline version **" in text
    assert "Baseline \\| stock-out analysis" in text  # a pipe in a title does not break the table
    assert "#### Answer history" in text and "`poc_duration_weeks`" in text
    assert "## Audit timeline" in text and "decision.recorded" in text


def test_export_json_parses_with_answer_history_and_review(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "packs" / "pack.json"
    result = run("export", seeded.approved, "--format", "json", "--output", str(target))
    assert result.exit_code == 0, result.output
    pack = json.loads(target.read_text(encoding="utf-8"))
    assert pack["initiative"]["ref"] == seeded.approved
    weeks = next(a for a in pack["answers"] if a["question"] == "poc_duration_weeks")
    assert [v["value"] for v in weeks["history"]] == [8, 6]
    assert weeks["history"][0]["author"] == OWNER
    (review,) = pack["reviews"]
    assert review["evidence_hash"] == seeded.evidence_hash
    assert review["evidence_hash_holds"] is True  # recomputed from the answers as submitted
    assert review["pipeline_version"]
    assert review["decisions"][0] == {
        "approver": SPONSOR,
        "role": "sponsor",
        "counted_for": "sponsor",
        "decision": "approve",
        "reason": APPROVAL_REASON,
        "decided_at": review["decisions"][0]["decided_at"],
        "audit": {"entry": True, "differs": {}},  # as its audit entry records it
    }
    assert pack["links"][0]["url"] == "https://wiki.example.com/forecast-baseline"


def test_export_gate_filter_leaves_out_other_gates(seeded: Seeded) -> None:
    result = run("export", seeded.approved, "--format", "json", "--gate", "pilot")
    assert result.exit_code == 0, result.output
    pack = json.loads(result.stdout)
    assert pack["gate"] == "pilot"
    assert pack["answers"] == [] and pack["reviews"] == [] and pack["links"] == []
    assert pack["timeline"]


def test_export_unknown_gate_exits_1_naming_it(seeded: Seeded) -> None:
    result = run("export", seeded.approved, "--gate", "moonshot")
    assert result.exit_code == 1
    assert "moonshot" in result.stderr


@pytest.mark.parametrize("command", [("initiatives", "show"), ("export",)])
def test_unknown_ref_exits_1_naming_the_ref(seeded: Seeded, command: tuple[str, ...]) -> None:
    result = run(*command, "AI-9999")
    assert result.exit_code == 1
    assert "AI-9999" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_export_format_is_refused(seeded: Seeded) -> None:
    result = run("export", seeded.approved, "--format", "pdf")
    assert result.exit_code == 1
    assert "pdf" in result.stderr and "md, json" in result.stderr


def test_hold_resume_and_retire_from_the_terminal(seeded: Seeded) -> None:
    ref = seeded.fresh
    held = run("initiatives", "hold", ref.lower(), "--reason", "Budget freeze")
    assert held.exit_code == 0, held.output
    assert "on hold: Budget freeze" in held.stdout
    again = run("initiatives", "hold", ref, "--reason", "Twice")
    assert again.exit_code == 1 and "on hold, so you cannot put it on hold" in again.stderr
    assert run("initiatives", "resume", ref).exit_code == 0
    blank = run("initiatives", "retire", ref, "--reason", " ")
    assert blank.exit_code == 1 and "reason is required" in blank.stderr
    assert run("initiatives", "retire", ref, "--reason", "Bought instead").exit_code == 0
    shown = json.loads(run("initiatives", "list", "--json").stdout)
    assert {i["ref"]: i["status"] for i in shown}[ref] == "retired"
    services = bootstrap(Settings(embeddings="none"))
    try:
        with services.read_uow() as uow:
            entries = [(e.actor_id, e.action) for e in uow.audit.timeline(ref)][-3:]
    finally:
        services.database.dispose()
    assert entries == [
        ("cli", "initiative.held"),
        ("cli", "initiative.resumed"),
        ("cli", "initiative.retired"),
    ]


def test_roles_set_refuses_what_is_not_a_slack_user_id_and_changes_nothing(seeded: Seeded) -> None:
    result = run("roles", "set", "sponsor", "U0RISK001", "not an id", "@sam")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "not an id, @sam: not a Slack user id" in said and "nothing was changed" in said
    roles = json.loads(run("roles", "list", "--json").stdout)
    assert roles["sponsor"]["holders"] == [SPONSOR]


@pytest.mark.parametrize(
    "command", [("initiatives", "list"), ("roles", "list"), ("portfolio",), ("schedule", "due")]
)
def test_a_mistyped_sqlite_path_is_refused_and_not_created(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """A database URL set on purpose that names no file is a typo, not an empty workspace: the
    command says so and leaves no new file behind."""
    typo = tmp_path / "shepherd.bd"
    monkeypatch.setenv("SHEPHERD_DATABASE_URL", f"sqlite:///{typo}")
    result = run(*command)
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert f"There is no database at {typo} (SHEPHERD_DATABASE_URL)" in said
    assert "`shepherd db upgrade` creates a new one there" in said
    assert not typo.exists()
    # The same URL naming the real file works.
    monkeypatch.setenv("SHEPHERD_DATABASE_URL", f"sqlite:///{tmp_path / 'shepherd.db'}")
    listed = run("initiatives", "list", "--json")
    assert listed.exit_code == 0
    assert {row["ref"] for row in json.loads(listed.stdout)} >= {seeded.approved, seeded.stale, seeded.fresh}
