"""Answer coercion: what people type becomes a typed value, or a refusal naming the question."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from gates.answers import coerce, display, fingerprint, for_rules
from gates.errors import InvalidAnswer
from gates.pipeline import Question, QuestionType, Validation


def question(kind: str, **extra: Any) -> Question:
    """A question of type ``kind`` with id ``q``."""
    return Question(id="q", label="Q", type=QuestionType(kind), **extra)


LEVELS = ["Low", "Medium", "High"]


@pytest.mark.parametrize(
    ("kind", "extra", "raw", "expected"),
    [
        ("text", {}, "  a reason  ", "a reason"),
        ("long_text", {}, "line 1\nline 2", "line 1\nline 2"),
        ("number", {}, "12", 12),
        ("number", {}, "1,250.5", 1250.5),
        ("number", {}, "1,000,000", 1000000),
        ("number", {}, "-12,500", -12500),
        ("number", {}, 7, 7),
        ("number", {}, "-3", -3),
        ("percent", {}, "12%", 12.0),
        ("percent", {}, "12.5 %", 12.5),
        ("percent", {}, "40", 40.0),
        ("percent", {}, 35, 35.0),
        ("yes_no", {}, "Yes", "yes"),
        ("yes_no", {}, "no", "no"),
        ("yes_no", {}, "Y", "yes"),
        ("yes_no", {}, True, "yes"),
        ("yes_no", {}, False, "no"),
        ("date", {}, "2025-06-30", "2025-06-30"),
        ("date", {}, "2025-06-30T10:15:00", "2025-06-30"),
        ("date", {}, date(2025, 1, 2), "2025-01-02"),
        ("date", {}, datetime(2025, 1, 2, 23, 59), "2025-01-02"),
        ("user", {}, "<@U123ABC>", "U123ABC"),
        ("user", {}, "<@U123ABC|alice>", "U123ABC"),
        ("user", {}, "U123ABC", "U123ABC"),
        ("url", {}, "https://example.com/dpia", "https://example.com/dpia"),
        ("url", {}, "<https://x.org/doc|the DPIA>", "https://x.org/doc"),
        ("choice", {"options": LEVELS}, "high", "High"),
        ("choice", {"options": LEVELS}, " MEDIUM ", "Medium"),
        ("choice", {"options": ["yes", "partly", "no"]}, True, "yes"),
        ("multi_choice", {"options": LEVELS}, ["High", "low"], ["Low", "High"]),
        ("multi_choice", {"options": LEVELS}, "high, Low", ["Low", "High"]),
        ("multi_choice", {"options": LEVELS}, "Low,Low", ["Low"]),
    ],
)
def test_answers_are_coerced_to_their_question_type(
    kind: str, extra: dict[str, Any], raw: Any, expected: Any
) -> None:
    value = coerce(question(kind, **extra), raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("raw", [None, "", "   ", [], ()])
def test_an_empty_answer_is_no_answer(raw: Any) -> None:
    assert coerce(question("number"), raw) is None


@pytest.mark.parametrize(
    ("kind", "extra", "raw", "fragment"),
    [
        ("number", {}, "twelve", "expected a number"),
        ("number", {}, True, "expected a number"),
        ("number", {}, "nan", "finite"),
        # A decimal comma is refused, not dropped (1,5 was read as 15, 1.000,5 as 1.0005).
        ("number", {}, "1,5", "decimals with a point"),
        ("number", {}, "1.000,5", "decimals with a point"),
        ("number", {}, "1,2345", "decimals with a point"),
        ("number", {}, "1.5,000", "decimals with a point"),
        # Not a number with a decimal comma: told it is not a number, not to write decimals
        # with a point (which they did not write).
        ("number", {}, "5,000 EUR", "expected a number, got '5,000 EUR'"),
        ("number", {}, "€5,000", "expected a number"),
        ("number", {}, "about 5, maybe 6", "expected a number"),
        ("percent", {}, "12,5%", "decimals with a point"),
        ("percent", {}, "a lot%", "expected a number"),
        ("yes_no", {}, "maybe", "expected yes or no"),
        ("date", {}, "30/06/2025", "YYYY-MM-DD"),
        ("date", {}, "2025-02-30", "YYYY-MM-DD"),
        ("user", {}, "alice", "Slack user"),
        ("url", {}, "ftp://files.example.com/x", "https://"),
        ("url", {}, "example.com", "https://"),
        ("url", {}, "https://example.com/a b", "cannot contain spaces"),
        # In chat, <https://evil.example|https://intranet/dpia.pdf> shows the intranet address.
        ("url", {}, "https://evil.example|https://intranet/dpia.pdf", "cannot contain spaces, |"),
        ("url", {}, "https://example.com/<b>", "%3C"),
        ("choice", {"options": LEVELS}, "Extreme", "not one of: Low, Medium, High"),
        ("multi_choice", {"options": LEVELS}, "Low, Extreme", "'Extreme' is not one of"),
        ("multi_choice", {"options": LEVELS}, " , ", "choose at least one"),
        ("text", {}, ["a", "b"], "expected text"),
        ("number", {"validation": Validation(min=0)}, "-1", "at least 0"),
        ("number", {"validation": Validation(max=10)}, "10.5", "at most 10"),
        ("percent", {"validation": Validation(min=0, max=100)}, "120%", "at most 100%"),
        ("text", {"validation": Validation(max_length=5)}, "too long", "at most 5 characters (got 8)"),
        ("text", {"validation": Validation(pattern=r"[A-Z]{3}-\d+")}, "abc-1", "expected format"),
        ("url", {"validation": Validation(pattern=r"https://wiki\..*")}, "https://x.org", "expected format"),
    ],
)
def test_an_answer_that_does_not_fit_is_refused_naming_the_question(
    kind: str, extra: dict[str, Any], raw: Any, fragment: str
) -> None:
    with pytest.raises(InvalidAnswer) as caught:
        coerce(question(kind, **extra), raw)
    assert caught.value.question_id == "q"
    assert str(caught.value).startswith("q: ")
    assert fragment in str(caught.value)


def test_pattern_must_match_the_whole_answer() -> None:
    rules = Validation(pattern=r"[A-Z]{3}-\d+")
    assert coerce(question("text", validation=rules), "ABC-12") == "ABC-12"
    with pytest.raises(InvalidAnswer):
        coerce(question("text", validation=rules), "ABC-12 and more")


LONG_ANSWER = (
    "Alerts go to the on-call rota in PagerDuty and the team mailbox for now; a dedicated Slack "
    "channel will be created once the pilot team has been set up properly"
)


def refusal(q: Question, raw: Any) -> str:
    with pytest.raises(InvalidAnswer) as caught:
        coerce(q, raw)
    return caught.value.reason


def test_a_pattern_refusal_says_why_first_and_repeats_only_the_start_of_a_long_answer() -> None:
    message = refusal(
        question("text", validation=Validation(pattern=r"#?[a-z0-9][a-z0-9_-]{0,79}")), LONG_ANSWER
    )
    assert message.startswith(
        "does not have the expected format (#?[a-z0-9][a-z0-9_-]{0,79}), got 'Alerts go"
    )
    assert message.endswith("…'")
    assert len(message) < 110  # within the 150 characters Slack shows under a field


def test_a_pattern_refusal_uses_the_pipelines_words_when_it_has_them() -> None:
    rules = Validation(pattern=r"#?[a-z0-9][a-z0-9_-]{0,79}", message="a Slack channel, like #ops-alerts")
    assert refusal(question("text", validation=rules), "#Ops Alerts") == (
        "expected a Slack channel, like #ops-alerts, got '#Ops Alerts'"
    )


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("number", {}),
        ("yes_no", {}),
        ("date", {}),
        ("user", {}),
        ("url", {}),
        ("choice", {"options": LEVELS}),
    ],
)
def test_a_refusal_repeats_a_long_answer_cut_at_a_word(kind: str, extra: dict[str, Any]) -> None:
    message = refusal(question(kind, **extra), LONG_ANSWER + "\n" + LONG_ANSWER)
    assert "'Alerts go to the on-call…'" in message
    assert "PagerDuty" not in message


def test_limits_within_range_are_accepted() -> None:
    rules = Validation(min=0, max=100)
    assert coerce(question("percent", validation=rules), "100%") == 100.0
    assert coerce(question("percent", validation=rules), "0") == 0.0


def test_rules_see_dates_as_timestamps_and_other_answers_as_stored() -> None:
    questions = {"d": Question(id="d", label="D", type=QuestionType.DATE), "n": question("number")}
    seen = for_rules(questions, {"d": "2025-06-30", "n": 3})
    assert seen["d"] == datetime.fromisoformat("2025-06-30T00:00:00+00:00")
    assert seen["n"] == 3


@pytest.mark.parametrize(
    ("kind", "extra", "value", "shown"),
    [
        ("percent", {}, 12.0, "12%"),
        ("percent", {}, 12.5, "12.5%"),
        ("user", {}, "U1", "<@U1>"),
        ("multi_choice", {"options": LEVELS}, ["Low", "High"], "Low, High"),
        ("number", {}, 2.0, "2"),
        ("text", {}, None, "-"),
    ],
)
def test_answers_display_for_people(kind: str, extra: dict[str, Any], value: Any, shown: str) -> None:
    assert display(question(kind, **extra), value) == shown


@pytest.mark.parametrize(
    ("one", "other"),
    [(5, 5.0), (25.0, 25), (["b", "a"], ["a", "b"]), (None, None), ("déjà vu", "déjà vu")],
)
def test_equal_answers_have_one_fingerprint_however_they_were_typed(one: Any, other: Any) -> None:
    assert fingerprint(one) == fingerprint(other)
    assert len(fingerprint(one)) == 8


@pytest.mark.parametrize(
    ("one", "other"),
    [(5, 5.5), ("5", 5), (None, ""), (["a"], ["a", "b"]), ("yes", "Yes"), (None, 0)],
)
def test_different_answers_have_different_fingerprints(one: Any, other: Any) -> None:
    assert fingerprint(one) != fingerprint(other)
