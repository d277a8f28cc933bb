"""CEL conditions: compiled once, evaluated against answers, precise about what went wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gates.conditions import (
    CEL_FUNCTIONS,
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


def test_a_map_without_an_entry_for_an_answer_is_a_condition_error_not_a_missing_answer() -> None:
    """Read as a missing answer it said "waiting for: medium", a question that does not exist."""
    condition = compile_condition('{"low": 1, "high": 3}[answers.level] >= 1')
    with pytest.raises(ConditionError, match="the map has no entry for 'medium'"):
        condition.holds(make_context({"level": "medium"}))
    with pytest.raises(MissingAnswer) as caught:
        condition.holds(make_context({}))
    assert caught.value.question_id == "level"


def test_a_false_branch_does_not_wait_for_an_absent_answer() -> None:
    condition = compile_condition('answers.pd == "yes" && answers.volume > 1000')
    assert condition.holds(make_context({"pd": "no"})) is False


def test_comparing_mismatched_types_is_a_condition_error() -> None:
    with pytest.raises(ConditionError):
        compile_condition("answers.x > 3").holds(make_context({"x": "abc"}))


def test_a_list_index_past_the_end_is_a_condition_error() -> None:
    with pytest.raises(ConditionError, match="out of bounds"):
        compile_condition('["low", "high"][answers.score] == "high"').holds(make_context({"score": 5}))


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


# One call of each function a rule may use, as the library evaluates it with no function
# registered: a name the loader accepts must work, or a misspelt one would pass for known.
CALLS = {
    "size": 'size("ab") == 2',
    "contains": '"abc".contains("b")',
    "startsWith": '"abc".startsWith("a")',
    "endsWith": '"abc".endsWith("c")',
    "matches": '"abc".matches("^a.c$")',
    "int": 'int("5") == 5',
    "uint": "uint(5) == 5u",
    "double": "double(5) == 5.0",
    "string": 'string(5) == "5"',
    "bytes": 'bytes("a") == b"a"',
    "dyn": "dyn(5) == 5",
    "type": "type(5) == int",
    "timestamp": 'timestamp("2025-01-01T00:00:00Z") == answers.day',
    "duration": 'answers.day - duration("24h") < answers.day',
    "getFullYear": "answers.day.getFullYear() == 2025",
    "getMonth": "answers.day.getMonth() == 0",
    "getDayOfYear": "answers.day.getDayOfYear() == 0",
    "getDayOfMonth": "answers.day.getDayOfMonth() == 0",
    "getDate": "answers.day.getDate() == 1",
    "getDayOfWeek": "answers.day.getDayOfWeek() == 3",
    "getHours": "answers.day.getHours() == 0",
    "getMinutes": "answers.day.getMinutes() == 0",
    "getSeconds": "answers.day.getSeconds() == 0",
    "getMilliseconds": "answers.day.getMilliseconds() == 0",
}


def test_every_function_a_rule_may_call_is_tried_below() -> None:
    assert set(CALLS) == CEL_FUNCTIONS


@pytest.mark.parametrize(("name", "source"), sorted(CALLS.items()))
def test_every_function_a_rule_may_call_works(name: str, source: str) -> None:
    condition = compile_condition(source)
    assert name in condition.functions
    assert condition.holds(make_context({"day": datetime(2025, 1, 1, tzinfo=UTC)})) is True


@pytest.mark.parametrize(
    ("source", "functions"),
    [
        ('sizee(answers) > 0 && tier == "high"', {"sizee"}),
        ('answers.dpia.startsWith("https") || !has(answers.x) || -answers.n < 3', {"startsWith"}),
        ('answers.regions.exists(r, r in ["eu"]) ? true : answers.x[0] == "a"', set()),
    ],
)
def test_compilation_lists_the_functions_called_but_not_the_operators(
    source: str, functions: set[str]
) -> None:
    assert compile_condition(source).functions == functions
