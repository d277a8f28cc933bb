"""`shepherd pipeline validate`: a rule that cannot work is named with its file, line and place."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from gates.loader import DEFAULT_PIPELINE

BUNDLED = DEFAULT_PIPELINE.read_text(encoding="utf-8")


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["pipeline", "validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def unwrapped(text: str) -> str:
    """``text`` without its white space: the console wraps long paths to its width, mid-word."""
    return "".join(text.split())


def test_the_bundled_pipeline_validates() -> None:
    code, output = validate(DEFAULT_PIPELINE)
    assert code == 0, output
    assert unwrapped(output).startswith("OK")


@pytest.mark.parametrize(
    ("written", "edited", "said"),
    [
        (
            'when: tier == "high"',
            'when: tier == "high" && sizee(answers) > 0',
            "gates[0].approvals[1].when: unknown function 'sizee' in `tier == \"high\" && sizee(answers) > 0` "
            "(did you mean size?)",
        ),
        (
            'rule: answers.personal_data == "no" ||',
            'rule: answers.personal_data == "no" && sise(answers) > 0 ||',
            "gates[0].criteria[5].rule: unknown function 'sise'",
        ),
        (
            'rule: answers.pilot_exit_criteria_met in ["yes", "partly"]',
            "rule: answers.pilot_exit_criteria_met == 3",
            "gates[2].criteria[2].rule: `answers.pilot_exit_criteria_met == 3` answers.pilot_exit_criteria_met "
            'is never 3 (it is one of "yes", "partly", "no"), so this comparison never holds as meant',
        ),
    ],
)
def test_a_rule_that_cannot_work_in_some_branch_fails_validation(
    tmp_path: Path, written: str, edited: str, said: str
) -> None:
    text = BUNDLED.replace(written, edited, 1)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(n for n, content in enumerate(text.splitlines(), 1) if edited in content)
    code, output = validate(path)
    assert code == 1
    assert unwrapped(output).startswith(unwrapped("The pipeline has 1 problem(s):"))
    assert unwrapped(f"{path}:{line}: {said}") in unwrapped(output)
