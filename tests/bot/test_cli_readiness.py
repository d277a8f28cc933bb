"""`shepherd readiness --answers FILE`: an answers file it cannot read is named, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app


def readiness(answers: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["readiness", "--gate", "intake", "--answers", str(answers)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.split())


def test_sample_answers_are_checked() -> None:
    code, output = readiness(Path(__file__).parents[2] / "examples" / "answers" / "intake-low-risk.yaml")
    assert code in (0, 2)
    assert output.startswith("Intake gate:")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"),
            "is not UTF-8 text; the answers file is YAML.",
        ),
        (lambda p: p.mkdir(), "Cannot read the answers file"),
        (lambda p: None, "Answers file not found"),
        (lambda p: p.write_text("- a list\n"), "must be a mapping of question id to answer."),
        (
            lambda p: p.write_text("q: " + "[" * 3000 + "]" * 3000 + "\n"),
            "nests its values too deeply to read.",
        ),
    ],
)
def test_an_answers_file_that_cannot_be_read_is_named(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "answers.yaml"
    make(path)
    code, output = readiness(path)
    assert code == 1
    assert message in output
    assert "answers.yaml" in output


def test_an_answers_file_with_a_yaml_mistake_says_where_in_one_line(tmp_path: Path) -> None:
    """As ``pipeline validate`` says it: the file and line, then what is wrong, with nothing of
    the mistyped text read as markup (a ``[`` opens a list in YAML and a style in Rich)."""
    path = tmp_path / "answers.yaml"
    path.write_text("problem_statement: x\ndata_sources: [customer records\nfoo: 1\n", encoding="utf-8")
    code, output = readiness(path)
    assert code == 1
    assert output == f"{path}:3: YAML syntax error (column 4): expected ',' or ']', but got ':'"


PIPELINE_WITH_TEXT_THAT_YAML_1_1_READS_AS_BOOLEANS = """\
version: 1
stages: [idea, poc]
roles: {risk: {slack_users: [URISK]}}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - id: country
        label: Country code
        required: true
        validation: {pattern: '[A-Z]{2}', message: 'two capital letters, like DE'}
      - {id: logging, label: Request logging, type: choice, options: [on, off], required: true}
    approvals:
      - {role: risk}
"""


def test_the_answers_file_is_read_as_the_pipeline_is_and_as_slack_takes_answers(tmp_path: Path) -> None:
    """Read with YAML 1.1 booleans, `country: NO` (Norway) became "False" and `logging: on` became
    "yes": both called invalid, where Slack accepts them (and the pipeline keeps [on, off] as text)."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE_WITH_TEXT_THAT_YAML_1_1_READS_AS_BOOLEANS, encoding="utf-8")
    answers = tmp_path / "answers.yaml"
    answers.write_text("country: NO\nlogging: on\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["readiness", "--gate", "intake", "--answers", str(answers), "--pipeline", str(pipeline)]
    )
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert output.startswith("Intake gate: READY (2/2 answered)"), output


PIPELINE_WITH_A_NUMBER = """\
version: 1
stages: [idea, poc]
roles: {risk: {slack_users: [URISK]}}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: budget_meur, label: Budget (million EUR), type: number, required: true}
    approvals:
      - {role: risk}
"""


@pytest.mark.parametrize("typed", ["1,5", "1.000,5", "1 000,5"])
def test_a_decimal_comma_in_the_answers_file_is_refused_not_read_as_a_bigger_number(
    tmp_path: Path, typed: str
) -> None:
    """A European decimal comma was dropped: "1,5" (one and a half) was read as 15, "1.000,5" as
    1.0005, and the gate judged on a number the person never meant."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE_WITH_A_NUMBER, encoding="utf-8")
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"budget_meur: '{typed}'\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["readiness", "--gate", "intake", "--answers", str(answers), "--pipeline", str(pipeline)]
    )
    output = " ".join(result.output.split())
    assert "READY" not in output.replace("NOT READY", ""), output
    assert "decimal" in output, output
