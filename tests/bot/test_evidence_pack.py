"""The evidence pack (`shepherd export`), built from a real SQLite database: what an auditor reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.bootstrap import Services, bootstrap
from bot.evidence_pack import evidence_json, evidence_markdown
from bot.settings import Settings
from gates import usecases
from gates.lifecycle import DecisionKind

REPO_ROOT = Path(__file__).resolve().parents[2]
INTAKE: dict[str, Any] = yaml.safe_load(
    (REPO_ROOT / "examples" / "answers" / "intake-low-risk.yaml").read_text(encoding="utf-8")
)
OWNER, SPONSOR = "U03PLANLEAD", "U02SUPPLYDIR"
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Shepherd's services on an empty SQLite database, with SPONSOR holding the sponsor role."""
    built = bootstrap(Settings(data_dir=tmp_path / "data", embeddings="none"))
    usecases.set_role_holders(built.pipeline, built.uow(), "sponsor", [SPONSOR], "test", T0)
    yield built
    built.database.dispose()


def registered(services: Services, answers: dict[str, Any] | None = None) -> str:
    return usecases.register(
        services.pipeline,
        services.uow(),
        name="Forecast",
        owner_id=OWNER,
        sponsor_id=SPONSOR,
        answers=answers or INTAKE,
        actor_id=OWNER,
        now=T0,
    ).ref


def submitted(services: Services, ref: str) -> int:
    review = usecases.submit(services.pipeline, services.uow(), ref, OWNER, T0 + timedelta(hours=1))
    assert review.id is not None
    return review.id


def approved(services: Services, ref: str) -> int:
    review_id = submitted(services, ref)
    outcome = usecases.decide(
        services.pipeline,
        services.uow(),
        review_id,
        SPONSOR,
        DecisionKind.APPROVE,
        "ok",
        T0 + timedelta(days=1),
    )
    assert outcome.advanced
    return review_id


def pack(services: Services, ref: str, gate: str | None = None) -> tuple[dict[str, Any], str]:
    view = usecases.show(services.pipeline, services.read_uow(), ref)
    return evidence_json(services.pipeline, view, gate), evidence_markdown(services.pipeline, view, gate)


def test_retiring_under_review_shows_the_review_withdrawn_on_the_timeline(services: Services) -> None:
    ref = registered(services)
    review_id = submitted(services, ref)
    usecases.retire(services.uow(), ref, OWNER, "budget cut", T0 + timedelta(days=2))

    data, text = pack(services, ref)
    assert data["reviews"][0]["status"] == "withdrawn"
    assert [(e["actor"], e["action"], e["detail"]) for e in data["timeline"]][-2:] == [
        (OWNER, "review.withdrawn", {"review": review_id, "gate": "intake"}),
        (OWNER, "initiative.retired", {"reason": "budget cut"}),
    ]
    at = "2026-09-03T09:00:00+00:00"
    assert f"| {at} | {OWNER} | review.withdrawn | gate: intake; review: {review_id} |" in text
    assert f"| {at} | {OWNER} | initiative.retired | reason: budget cut |" in text
