"""Conditions tried at load time against sample answers, so that a rule which can never be
evaluated, or can never hold, is a problem of the pipeline file rather than a gate that silently
never passes.

A rule that parses can still fail on every answer: a misspelt function (``sise(...)``), a number
compared with text (``answers.weeks <= "twelve"``), a rule that gives text instead of true or
false. And a comparison with a value the question cannot take (``tier == "hgih"``, ``== "Yes"``
on a yes/no question, whose answers are ``yes`` and ``no``) is never true. Each is reported with
its place, like a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from gates.conditions import Condition, ConditionError, MissingAnswer, make_context
from gates.pipeline import Pipeline, Question, QuestionType

# Numbers twice: CEL compares ints with doubles but does not add them, so an expression is only
# reported when it fails whichever kind of number people type.
_NUMBERS = (1, 1.5)
_SAMPLES: dict[QuestionType, Any] = {
    QuestionType.TEXT: "sample",
    QuestionType.LONG_TEXT: "sample",
    QuestionType.YES_NO: "yes",
    QuestionType.DATE: datetime(2025, 1, 1, tzinfo=UTC),  # as gates.answers.for_rules gives dates
    QuestionType.USER: "U012AB3CD",
    QuestionType.URL: "https://example.com/",
}
_KINDS = {str: "text", int: "a number", float: "a number", list: "a list", dict: "a map"}
_COMPARED = re.compile(r"""\b(?:answers\s*\.\s*([A-Za-z_]\w*)|(tier))\s*(?:==|!=)\s*(["'])(.*?)\3""")


class DryRun:
    """Sample answers for every question of a pipeline, made once (converting answers for CEL
    is the slow part), against which each of its conditions is tried."""

    def __init__(self, model: Pipeline) -> None:
        self._model = model
        self._questions = {q.id: q for q in _questions(model)}
        tier = model.risk_tiers[0] if model.risk_tiers else None
        self._contexts = [make_context(_sample_answers(self._questions.values(), n), tier) for n in _NUMBERS]

    def problems(self, condition: Condition) -> Iterator[str]:
        """What is wrong with ``condition`` that its syntax and names do not show."""
        failures = []
        for context in self._contexts:
            try:
                value = condition.evaluate(context)
            except MissingAnswer:  # an answer no question gives: reported by the loader already
                return
            except ConditionError as error:
                failures.append(f"cannot be evaluated with answers of the questions' types: {error}")
                continue
            if not isinstance(value, bool):
                failures.append(f"gives {_KINDS.get(type(value), 'a value')} where true or false is needed")
                continue
            break  # it works for one kind of answer: nothing to report
        else:
            yield failures[0]
        for question_id, tier, _, literal in _COMPARED.findall(condition.source):
            allowed = self._model.risk_tiers if tier else _values(self._questions.get(question_id))
            if allowed is not None and literal not in allowed:
                what = "tier" if tier else f"answers.{question_id}"
                shown = ", ".join(f'"{value}"' for value in allowed)
                yield f'{what} is never "{literal}" (it is one of {shown}), so this comparison never holds as meant'


def _questions(model: Pipeline) -> Iterable[Question]:
    for gate in model.gates:
        yield from gate.questions
    if model.operations is not None:
        yield from model.operations.questions


def _sample_answers(questions: Iterable[Question], number: float) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for question in questions:
        kind = question.type
        if kind in (QuestionType.NUMBER, QuestionType.PERCENT):
            answers[question.id] = float(number) if kind is QuestionType.PERCENT else number
        elif kind is QuestionType.CHOICE:
            answers[question.id] = (question.options or ["sample"])[0]
        elif kind is QuestionType.MULTI_CHOICE:
            answers[question.id] = (question.options or ["sample"])[:1]
        else:
            answers[question.id] = _SAMPLES[kind]
    return answers


def _values(question: Question | None) -> list[str] | None:
    """The only answers ``question`` can have, when they are a closed set."""
    if question is None:
        return None
    if question.type is QuestionType.YES_NO:
        return ["yes", "no"]
    if question.type is QuestionType.CHOICE:
        return question.options
    return None
