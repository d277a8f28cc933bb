"""`shepherd pipeline validate`: a rule that cannot work is named with its file, line and place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from gates.loader import DEFAULT_PIPELINE

REPO = Path(__file__).resolve().parents[2]
BUNDLED = DEFAULT_PIPELINE.read_text(encoding="utf-8")


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["pipeline", "validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_the_bundled_pipeline_validates() -> None:
    code, output = validate(DEFAULT_PIPELINE)
    assert code == 0, output
    assert output.startswith(f"OK {DEFAULT_PIPELINE}: version ")
    assert len(output.splitlines()) == 1  # the long path does not break the line


def test_show_says_which_intake_questions_name_the_owner_and_the_sponsor() -> None:
    result = CliRunner().invoke(app, ["pipeline", "show"])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())  # the console wraps lines to its width
    assert "Owner: the answer to initiative_owner; sponsor: the answer to business_sponsor" in shown


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
    assert output.splitlines()[0] == "The pipeline has 1 problem(s):"
    assert output.splitlines()[1].startswith(f"  {path}:{line}: {said}"), output


def test_each_problem_is_one_line_when_piped_as_in_ci(tmp_path: Path) -> None:
    """Run as a process with stderr piped, as in CI or `| grep`: each problem is one
    `file:line: message` line, the format editors and CI problem matchers read, however long
    the path (the console once broke it at 80 columns, mid-path)."""
    folder = tmp_path / "governance" / "pipelines" / "shared-with-the-risk-office"
    folder.mkdir(parents=True)
    path = folder / "pipeline.yaml"
    text = BUNDLED.replace("rule: ", "rule: sizee(answers) > 0 && ", 1)
    path.write_text(text, encoding="utf-8")
    line = next(n for n, content in enumerate(text.splitlines(), 1) if "sizee" in content)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SHEPHERD_", "COLUMNS"))}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "pipeline", "validate", str(path)],
        cwd=tmp_path,  # no .env of the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "The pipeline has 1 problem(s):"
    problem = result.stderr.splitlines()[1]
    assert len(problem) > 80  # past the width the console broke lines at
    assert problem.startswith(f"  {path}:{line}: gates[0].criteria[0].rule: unknown function 'sizee'")


REVIEWED = "human in the loop: a person reviews every single output before it reaches "


@pytest.mark.parametrize(
    ("written", "edited", "said"),
    [
        (
            'options: ["yes", partly, "no"]',
            'options: ["yes", "partly ", "no"]',
            "gates[1].questions[0].options[1]: option 'partly ' of question 'success_metrics_met' in gate "
            "'pilot' starts or ends with a space, so no answer can ever match it: write 'partly'",
        ),
        (
            "options: [human in the loop, human on the loop, fully automated]",
            f'options: ["{REVIEWED}a customer", "{REVIEWED}a colleague", fully automated]',
            f"gates[1].questions[14].options[1]: option '{REVIEWED[:74].rstrip()}…' of question 'pilot_oversight' in "
            "gate 'pilot' looks the same as options[0] in a menu, which shows only 75 characters: make them "
            "differ within the first 74",
        ),
    ],
    ids=["an option with a space around it cannot be picked", "two options look the same in a menu"],
)
def test_options_a_menu_cannot_offer_as_written_fail_validation(
    tmp_path: Path, written: str, edited: str, said: str
) -> None:
    text = BUNDLED.replace(written, edited, 1)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(n for n, content in enumerate(text.splitlines(), 1) if edited in content)
    code, output = validate(path)
    assert code == 1
    assert f"{path}:{line}: {said}" in output
