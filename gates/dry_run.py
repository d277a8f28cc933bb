"""Conditions checked at load time, so that a rule which can never be evaluated, or can never
hold, is a problem of the pipeline file rather than a gate that silently never passes.

A rule that parses can still fail on every answer: a number compared with text
(``answers.weeks <= "twelve"``), a rule that gives text instead of true or false. Each condition
is tried on sample answers, with every option of the choice and yes/no questions it reads and,
when it reads ``tier``, every risk tier: ``tier == "high" && answers.weeks <= "twelve"`` only
fails for the high tier, which a single sample would never show. (A misspelt function is found
by name, in ``gates.loader``.)

And a comparison with a value the question cannot take (``tier == "hgih"``, ``== "Yes"`` on a
yes/no question, whose answers are ``yes`` and ``no``, ``== 3`` on a choice question, ``== "3"``
on a number) is never true: those are found by reading the expression, in every branch, since
an evaluation would not fail on them. Each is reported with its place, like a syntax error.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from gates.cel_tree import Node, Unreadable, parse
from gates.conditions import Condition, ConditionError, MissingAnswer, make_context
from gates.pipeline import Pipeline, Question, QuestionType

# Numbers twice: answers are kept whole or decimal as typed, and CEL compares ints with doubles
# but does not add them, so an expression that fails for either kind is reported (the gate would
# be stuck for whoever types that kind).
_NUMBERS = (1, 1.5)
_NUMBER_KINDS = {1: "a whole number (like 1)", 1.5: "a decimal (like 1.5)"}
_SAMPLES: dict[QuestionType, Any] = {
    QuestionType.TEXT: "sample",
    QuestionType.LONG_TEXT: "sample",
    QuestionType.YES_NO: "yes",
    QuestionType.DATE: datetime(2025, 1, 1, tzinfo=UTC),  # as gates.answers.for_rules gives dates
    QuestionType.USER: "U012AB3CD",
    QuestionType.URL: "https://example.com/",
    QuestionType.CHOICE: "sample",  # a choice without options, reported by the loader
    QuestionType.MULTI_CHOICE: ["sample"],
}
# Every combination of the options a condition reads is tried up to this many; past it, each
# option at least once. The bundled pipeline's largest condition has 32.
MAX_COMBINATIONS = 256
# A failure that only some combinations show names them when they are this few values.
_NAMED_VALUES = 3
_KINDS = {str: "text", int: "a number", float: "a number", list: "a list", dict: "a map"}
_TYPE_KINDS = {
    QuestionType.TEXT: "text",
    QuestionType.LONG_TEXT: "text",
    QuestionType.USER: "text",
    QuestionType.URL: "text",
    QuestionType.NUMBER: "a number",
    QuestionType.PERCENT: "a number",
    QuestionType.DATE: "a date",
    QuestionType.MULTI_CHOICE: "the list of options chosen",
}

Dimension = tuple[str, list[Any]]
"""Something a condition reads that takes one of a few values (``tier``, ``answers.<id>``), with them."""


class DryRun:
    """Checks each condition of one pipeline against what its questions and tiers can be."""

    def __init__(self, model: Pipeline) -> None:
        self._model = model
        self._questions = {q.id: q for q in _questions(model)}
        self._found: dict[str, list[str]] = {}

    def problems(self, condition: Condition) -> Iterator[str]:
        """What is wrong with ``condition`` that its syntax and names do not show."""
        found = self._found.get(condition.source)
        if found is None:
            found = [*self._evaluation_problems(condition), *self._comparison_problems(condition)]
            # YAML anchors repeat one rule in several gates: try it once.
            self._found[condition.source] = found
        yield from found

    def _evaluation_problems(self, condition: Condition) -> Iterator[str]:
        named = [self._questions[ref] for ref in sorted(condition.answer_refs) if ref in self._questions]
        read = list(self._questions.values()) if condition.reads_all_answers else named
        # Only the answers a rule names take each of their values: one that reads them all
        # (`size(answers)`) sees every other answer once, as building that context is the slow part.
        dimensions: list[Dimension] = [
            (f"answers.{q.id}", values) for q in named if (values := _options(q)) is not None
        ]
        if "tier" in condition.variables and self._model.risk_tiers:
            dimensions.append(("tier", list(self._model.risk_tiers)))
        numeric = any(q.type in (QuestionType.NUMBER, QuestionType.PERCENT) for q in read)
        first_tier = self._model.risk_tiers[0] if self._model.risk_tiers else None
        failed: list[tuple[dict[str, Any], str, str | None]] = []
        # A rule that works for one kind of number and not the other: (kind that fails, detail).
        one_kind: tuple[str, str | None] | None = None
        combinations = _combinations(dimensions)
        for chosen in combinations:
            failures: list[tuple[str, str | None]] = []
            numbers = _NUMBERS if numeric else _NUMBERS[:1]
            for number in numbers:
                context = make_context(_sample_answers(read, number, chosen), chosen.get("tier", first_tier))
                try:
                    value = condition.evaluate(context)
                except MissingAnswer:  # an answer no question gives: reported by the loader already
                    return
                except ConditionError as error:
                    failures.append(("cannot be evaluated", str(error)))
                    one_kind = one_kind or (_NUMBER_KINDS[number], str(error))
                    continue
                if not isinstance(value, bool):
                    problem = f"gives {_KINDS.get(type(value), 'a value')} where true or false is needed"
                    failures.append((problem, None))
                    one_kind = one_kind or (_NUMBER_KINDS[number], problem)
            if len(failures) == len(numbers):
                failed.append((chosen, *failures[0]))
        if not failed:
            if one_kind is not None:
                yield self._one_kind_of_number(named, *one_kind)
            return
        chosen, problem, detail = failed[0]
        if len(failed) == len(combinations):
            when = "with answers of the questions' types" if detail else ""
        elif len(chosen) <= _NAMED_VALUES:
            when = "when " + " and ".join(f"{name} is {_shown(value)}" for name, value in chosen.items())
        else:
            when = "with some of the answers the questions can take"
        yield " ".join(part for part in (problem, when) if part) + (f": {detail}" if detail else "")

    @staticmethod
    def _one_kind_of_number(named: list[Question], kind: str, detail: str | None) -> str:
        """Answers are kept as typed, whole (5000) or decimal (5000.5), and CEL does not mix the
        two in arithmetic: a rule that works for only one kind leaves the gate stuck for the other."""
        numbers = [q.id for q in named if q.type is QuestionType.NUMBER] or ["<id>"]
        return (
            f"cannot be evaluated when a number is answered as {kind}: {detail}; read it as "
            f"double(answers.{numbers[0]}) and write numbers with a decimal point (1000.0) so that "
            "both whole and decimal answers work"
        )

    def _comparison_problems(self, condition: Condition) -> Iterator[str]:
        try:
            tree = parse(condition.source)
        except Unreadable:  # syntax this reader does not follow: the sample answers still apply
            return
        for node in tree.walk():
            if node.kind != "operator" or node.text not in ("==", "!=", "in"):
                continue
            left, right = node.args
            if node.text == "in":
                if right.kind == "list":
                    for item in right.args:
                        yield from self._never_equal(left, item)
                else:
                    yield from self._never_contained(left, right)
            else:
                yield from self._never_equal(left, right)
                yield from self._never_equal(right, left)

    def _never_equal(self, subject: Node, other: Node) -> Iterator[str]:
        """``subject == other`` can never hold: ``other`` is a value ``subject`` never has."""
        read = self._subject(subject)
        if read is None or other.kind != "literal" or other.value is None:
            return
        name, question = read
        value = other.value
        if question is None:
            if not self._model.risk_tiers:
                return
            allowed: list[Any] | None = list(self._model.risk_tiers)
            kind = "text"
        else:
            allowed = _options(question) if question.type is not QuestionType.MULTI_CHOICE else None
            kind = _TYPE_KINDS.get(question.type, "text")
        if allowed is not None:
            if isinstance(value, str) and value in allowed:
                return
            because = f"it is one of {', '.join(_shown(option) for option in allowed)}"
        elif _fits(value, kind):
            return
        else:
            because = f"it is {kind}"
        yield f"{name} is never {_literal(other)} ({because}), so this comparison never holds as meant"

    def _never_contained(self, item: Node, container: Node) -> Iterator[str]:
        """``item in answers.<multi choice>`` with an item that is not one of its options."""
        read = self._subject(container)
        if read is None or item.kind != "literal":
            return
        name, question = read
        if question is None or question.type is not QuestionType.MULTI_CHOICE or not question.options:
            return
        if isinstance(item.value, str) and item.value in question.options:
            return
        shown = ", ".join(_shown(option) for option in question.options)
        yield f"{name} never contains {_literal(item)} (its options are {shown}), so this test never holds as meant"

    def _subject(self, node: Node) -> tuple[str, Question | None] | None:
        """What ``node`` reads, when it is the tier (no question) or one answer as a whole."""
        if node.kind == "name" and node.text == "tier":
            return "tier", None
        if not node.args or node.args[0] != Node("name", "answers"):
            return None
        if node.kind == "field":
            question_id = node.text
        elif node.kind == "index" and node.args[1].kind == "literal" and isinstance(node.args[1].value, str):
            question_id = node.args[1].value
        else:
            return None
        question = self._questions.get(question_id)
        return (f"answers.{question_id}", question) if question is not None else None


def _questions(model: Pipeline) -> Iterable[Question]:
    for gate in model.gates:
        yield from gate.questions
    if model.operations is not None:
        yield from model.operations.questions


def _options(question: Question) -> list[Any] | None:
    """Every answer ``question`` can have, when they are a closed set (as CEL sees them)."""
    if question.type is QuestionType.YES_NO:
        return ["yes", "no"]
    if question.type is QuestionType.CHOICE and question.options:
        return list(question.options)
    if question.type is QuestionType.MULTI_CHOICE and question.options:
        return [[option] for option in question.options]
    return None


def _combinations(dimensions: list[Dimension]) -> list[dict[str, Any]]:
    """Every combination of the dimensions' values or, when there are too many, each value once
    and then combinations drawn at random up to ``MAX_COMBINATIONS``."""
    if not dimensions:
        return [{}]
    names = [name for name, _ in dimensions]
    if math.prod(len(values) for _, values in dimensions) <= MAX_COMBINATIONS:
        return [
            dict(zip(names, chosen, strict=True)) for chosen in itertools.product(*(v for _, v in dimensions))
        ]
    widest = max(len(values) for _, values in dimensions)
    chosen = [{name: values[n % len(values)] for name, values in dimensions} for n in range(widest)]
    draw = random.Random(0)  # the same draws each time a file is checked: its verdict is stable
    chosen += [
        {name: draw.choice(values) for name, values in dimensions} for _ in range(MAX_COMBINATIONS - widest)
    ]
    return chosen


def _sample_answers(questions: Iterable[Question], number: float, chosen: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for question in questions:
        kind = question.type
        if f"answers.{question.id}" in chosen:
            answers[question.id] = chosen[f"answers.{question.id}"]
        elif kind in (QuestionType.NUMBER, QuestionType.PERCENT):
            answers[question.id] = float(number) if kind is QuestionType.PERCENT else number
        elif (values := _options(question)) is not None:
            answers[question.id] = values[0]
        else:
            answers[question.id] = _SAMPLES[kind]
    return answers


def _fits(value: Any, kind: str) -> bool:
    """Whether a literal ``value`` could equal an answer of this kind."""
    if kind == "a number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    return False  # a date is a timestamp and a list a list: no literal equals either


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _literal(node: Node) -> str:
    return _shown(node.value) if isinstance(node.value, str) else node.text
