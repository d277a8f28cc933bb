"""The scheduler's DMs and the extend / stop / periodic review modals are valid Block Kit and say
what the person needs, whatever the names."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot import ids
from bot.blocks import operations as blocks
from bot.blocks.operations import MAX_OPERATIONS_QUESTIONS
from bot.bootstrap import bootstrap
from bot.cli import app
from bot.settings import Settings
from gates.errors import PipelineError
from gates.loader import load_pipeline
from tests.bot.blockkit_checks import (
    NOW,
    assert_valid_message,
    assert_valid_view,
    buttons,
    initiative,
    review,
    texts,
)
from tests.gates.ops_pipeline import OPS_PIPELINE

LONG_NAME = "Forecast <!channel> & " + "x" * 400
LONG_OPTIONS = [f"option {n:03d} " + "x" * 140 for n in range(100)]


def test_the_stalled_notice_offers_submit_extend_and_stop() -> None:
    message = blocks.stalled_notice(load_pipeline(), initiative(name=LONG_NAME), NOW + timedelta(days=90))
    assert_valid_message(message)
    assert [b["action_id"] for b in buttons(message["blocks"])] == [
        ids.ACTION_SUBMIT_REVIEW,
        ids.ACTION_EXTEND_TIME_BOX,
        ids.ACTION_STOP_INITIATIVE,
    ]
    assert "<!channel>" not in texts(message["blocks"])
    assert "Pilot" in texts(message["blocks"])


def test_reminders_carry_the_decision_buttons_and_escalations_name_the_approvers() -> None:
    pipeline = load_pipeline()
    reminder = blocks.reminder_notice(pipeline, initiative(), review(), 4)
    assert_valid_message(reminder)
    assert ids.ACTION_APPROVE in [b["action_id"] for b in buttons(reminder["blocks"])]
    assert "waited 4 day(s)" in texts(reminder["blocks"])
    escalation = blocks.escalation_notice(pipeline, initiative(), review(), "risk", 8, ["U0RISK001"])
    assert_valid_message(escalation)
    assert "<@U0RISK001>" in texts(escalation["blocks"]) and "AI risk" in texts(escalation["blocks"])
    assert "waiting for AI risk approval" in escalation["text"]  # the notification, by label too


def test_the_operations_review_notice_has_a_button_only_for_the_owner() -> None:
    due = NOW + timedelta(days=90)
    to_owner = blocks.operations_review_notice(
        initiative(stage="operations"), due, overdue=False, to_owner=True
    )
    flagged = blocks.operations_review_notice(
        initiative(stage="operations"), due, overdue=True, to_owner=False
    )
    for message in (to_owner, flagged):
        assert_valid_message(message)
    assert [b["action_id"] for b in buttons(to_owner["blocks"])] == [ids.ACTION_OPEN_OPERATIONS_REVIEW]
    assert buttons(flagged["blocks"]) == [] and "overdue" in flagged["text"]


def test_the_extend_modal_suggests_a_date_after_today_and_asks_why() -> None:
    view = blocks.extend_modal(initiative(name=LONG_NAME), NOW - timedelta(days=3), NOW, "D0123")
    assert_valid_view(view)
    [picker] = [b for b in view["blocks"] if b.get("block_id") == ids.EXTEND_UNTIL_BLOCK]
    assert picker["element"]["initial_date"] == (NOW + timedelta(days=30)).date().isoformat()
    assert any(b.get("block_id") == ids.REASON_BLOCK for b in view["blocks"])
    assert json.loads(view["private_metadata"]) == {"ref": "AI-0007", "channel": "D0123"}


def test_the_stop_and_periodic_review_modals_are_valid() -> None:
    assert_valid_view(blocks.stop_modal(initiative(name=LONG_NAME)))
    pipeline = load_pipeline()
    view = blocks.operations_review_modal(pipeline, initiative(stage="operations"))
    assert_valid_view(view)
    assert pipeline.model.operations is not None
    wanted = {ids.question_block_id(q.id) for q in pipeline.model.operations.questions}
    assert wanted == {b["block_id"] for b in view["blocks"] if b["type"] == "input"}


def test_app_home_marks_initiatives_past_their_time_box() -> None:
    from datetime import UTC, datetime

    from bot.blocks import home_view
    from gates.lifecycle import Initiative

    late = Initiative(
        ref="AI-0001", name="Late", owner_id="U1", stage="poc", created_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    fine = Initiative(
        ref="AI-0002", name="Fine", owner_id="U1", stage="poc", created_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    view = home_view("U1", [(late, None), (fine, None)], [], [], stalled={"AI-0001"})
    texts = [b["text"]["text"] for b in view["blocks"] if b.get("type") == "section"]
    assert any("Late" in t and "past its time box" in t for t in texts)
    assert not any("Fine" in t and "past its time box" in t for t in texts)


def _with_operations_questions(tmp_path: Path, questions: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(OPS_PIPELINE)
    data["operations"]["questions"] = questions
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("questions", "said"),
    [
        ([{"id": f"q{n}", "label": f"Check {n}", "type": "yes_no"} for n in range(105)], "105 questions"),
        (
            [
                {"id": f"q{n}", "label": f"Check {n}", "type": "multi_choice", "options": LONG_OPTIONS}
                for n in range(12)
            ],
            "kB",
        ),
    ],
)
def test_an_operations_review_too_big_for_one_slack_form_is_refused_when_the_pipeline_loads(
    tmp_path: Path, questions: list[dict[str, Any]], said: str
) -> None:
    path = _with_operations_questions(tmp_path, questions)
    result = CliRunner().invoke(app, ["pipeline", "validate", str(path)])
    printed = " ".join(result.output.split())  # as wrapped to the terminal's width
    assert result.exit_code == 1
    assert "operations.questions" in printed and said in printed and "one Slack form" in printed
    assert "Traceback" not in printed
    with pytest.raises(PipelineError, match="one Slack form"):
        bootstrap(Settings(data_dir=tmp_path / "data", pipeline=path, embeddings="none"))


def test_the_largest_operations_review_a_pipeline_may_have_fits_one_slack_form(tmp_path: Path) -> None:
    questions = [
        {"id": f"q{n}", "label": f"Check {n}", "type": "yes_no"} for n in range(MAX_OPERATIONS_QUESTIONS)
    ]
    pipeline = blocks.load_checked_pipeline(_with_operations_questions(tmp_path, questions))
    assert_valid_view(blocks.operations_review_modal(pipeline, initiative()))
