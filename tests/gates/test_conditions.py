"""CEL conditions: compiled once, evaluated against answers, precise about what went wrong."""

from __future__ import annotations

from typing import Any

import pytest

from gates.conditions import (
    ConditionError,
    ConditionSyntaxError,
    MissingAnswer,
    compile_condition,
    make_context,
)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("answers.x ==", 13),
        ("(answers.x", 11),
        ('answers.x in ["a", "b"', 23),
        ('answers.x == "a" &&& true', 20),
    ],
)
def test_a_syntax_error_reports_its_column(source: str, column: int) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        compile_condition(source)
    assert caught.value.column == column
    assert f"column {column}" in str(caught.value)


def test_an_empty_expression_is_a_syntax_error() -> None:
    with pytest.raises(ConditionSyntaxError, match="empty"):
        compile_condition("   ")


@pytest.mark.parametrize(
    ("source", "answers", "tier", "expected"),
    [
        ('answers.pd == "yes"', {"pd": "yes"}, None, True),
        ('answers.pd == "yes"', {"pd": "no"}, None, False),
        ("answers.share >= 10", {"share": 12.0}, None, True),
        ("answers.n > 3.5", {"n": 5}, None, True),
        ('"eu" in answers.regions', {"regions": ["eu", "us"]}, None, True),
        ('answers.regions.exists(r, r == "us")', {"regions": ["eu"]}, None, False),
        ("has(answers.dpia)", {}, None, False),
        ('tier == "high"', {}, "high", True),
        ('answers["pd"] == "no"', {"pd": "no"}, None, True),
    ],
)
def test_conditions_evaluate_against_answers_and_tier(
    source: str, answers: dict[str, Any], tier: str | None, expected: bool
) -> None:
    assert compile_condition(source).holds(make_context(answers, tier)) is expected


def test_reading_an_absent_answer_names_it() -> None:
    condition = compile_condition('answers.pd == "yes" && answers.volume > 1000')
    with pytest.raises(MissingAnswer) as caught:
        condition.holds(make_context({"pd": "yes"}))
    assert caught.value.question_id == "volume"


def test_a_false_branch_does_not_wait_for_an_absent_answer() -> None:
    condition = compile_condition('answers.pd == "yes" && answers.volume > 1000')
    assert condition.holds(make_context({"pd": "no"})) is False


def test_comparing_mismatched_types_is_a_condition_error() -> None:
    with pytest.raises(ConditionError):
        compile_condition("answers.x > 3").holds(make_context({"x": "abc"}))


def test_a_non_boolean_result_is_a_condition_error() -> None:
    with pytest.raises(ConditionError, match="true or false"):
        compile_condition("answers.n + 1").holds(make_context({"n": 1}))


def test_compilation_lists_the_answers_and_variables_it_reads() -> None:
    condition = compile_condition('answers.a == "x" || answers["b"] > 2 || tier == "low"')
    assert condition.answer_refs == {"a", "b"}
    assert condition.variables == {"answers", "tier"}


def test_comprehension_variables_are_not_taken_for_unknown_names() -> None:
    condition = compile_condition('answers.regions.exists(r, r == "us") && answers.m.all(x, x != "")')
    assert condition.variables == {"answers"}


@pytest.mark.parametrize(
    ("source", "reads_all"),
    [
        ('answers.a == "x" && has(answers.b)', False),
        ('answers["a"] == "x"', False),
        ('answers.regions.exists(r, r == "eu")', False),
        ("size(answers) > 3", True),
        ('answers.exists(k, k == "a")', True),
        ('answers.a == "answers"', True),
    ],
)
def test_a_condition_knows_whether_it_reads_more_than_named_answers(source: str, reads_all: bool) -> None:
    assert compile_condition(source).reads_all_answers is reads_all
