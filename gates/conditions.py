"""CEL conditions: compiled once at load time, evaluated against an initiative's answers.

Expressions see two variables: ``answers`` (a map from question id to the coerced answer, only
for questions that have an answer) and ``tier`` (the risk tier, for approval rules). Reading an
answer that is absent raises ``MissingAnswer`` naming it, so readiness can say "cannot be
evaluated until X is answered" instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

# `answers.<id>` not followed by "(": `answers.exists(k, ...)` is a macro over the map, not a question.
_ANSWER_REF = re.compile(
    r"\banswers\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()|\banswers\s*\[\s*[\"']([^\"']+)[\"']\s*\]"
)
# Macros bind their own iteration variables (`answers.regions.exists(r, r == "eu")`); the library
# lists those among the expression's variables, but they are not names the pipeline must know.
_BOUND_VARIABLES = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,(?:\s*([A-Za-z_]\w*)\s*,)?"
)
_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")
_ANSWERS_WORD = re.compile(r"\banswers\b")
KNOWN_VARIABLES = frozenset({"answers", "tier"})
# The functions the library evaluates, as a rule may call them (Shepherd registers none of its
# own). The library names operators among an expression's functions too (`_==_`, `@in`, `!_`).
# `max`, `min` and the extensions of `cel.stdlib` are not registered; the library also knows
# `value`, `orValue` and the other functions of optional values, which no rule can make.
CEL_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches",
        "int", "uint", "double", "string", "bytes", "dyn", "type", "timestamp", "duration",
        "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_FUNCTION_NAME = re.compile(r"[A-Za-z_]\w*")


class ConditionSyntaxError(ValueError):
    """The expression does not parse. ``column`` is 1-based within the expression."""

    def __init__(self, message: str, column: int | None) -> None:
        self.column = column
        self.reason = message
        where = f" at column {column}" if column else ""
        super().__init__(f"CEL syntax error{where}: {message}")


class MissingAnswer(LookupError):
    """The expression read an answer that has not been given."""

    def __init__(self, question_id: str) -> None:
        self.question_id = question_id
        super().__init__(question_id)


class ConditionError(ValueError):
    """The expression parsed but could not be evaluated (wrong types, unknown function...)."""


@dataclass(frozen=True)
class Condition:
    """One compiled CEL expression.

    Attributes:
        source: the expression as written.
        answer_refs: question ids the expression reads through ``answers.<id>``.
        variables: top-level variables it uses (``answers``, ``tier``, or a typo).
        functions: functions it calls, by name (``size``, or a typo), operators left out.
        reads_all_answers: the expression uses ``answers`` other than as ``answers.<id>`` or
            ``answers["<id>"]`` (``size(answers)``, a macro over it), so ``answer_refs`` is not
            the whole of what it reads.
    """

    source: str
    program: Any = field(repr=False, compare=False)
    answer_refs: frozenset[str]
    variables: frozenset[str]
    reads_all_answers: bool = False
    functions: frozenset[str] = frozenset()

    def evaluate(self, context: Any) -> Any:
        """Evaluate against a context made by :func:`make_context`.

        Raises:
            MissingAnswer: the expression needs an answer that is absent.
            ConditionError: anything else that prevents a value.
        """
        try:
            return self.program.execute(context)
        except KeyError as error:
            key = str(error.args[0]) if error.args else "?"
            # Only an answer the rule reads is waiting to be given; any other key missing is a
            # map in the rule without an entry (`{"low": 1, "high": 3}[answers.level]` for
            # "medium"), which no answer will ever fill. (A rule reading the answers as a whole
            # could ask for any question by a key it builds: that counts as waiting, as before.)
            if key in self.answer_refs or self.reads_all_answers:
                raise MissingAnswer(key) from None
            raise ConditionError(f"the map has no entry for {key!r}") from None
        except LookupError as error:
            # A list index past its end (`["low", "high"][answers.score]` with a score of 5).
            raise ConditionError(_first_line(str(error)) or type(error).__name__) from None
        except (RuntimeError, TypeError, ValueError, ArithmeticError) as error:
            # ArithmeticError: a division by a zero answer, an integer past 64 bits.
            raise ConditionError(_first_line(str(error)) or type(error).__name__) from None

    def holds(self, context: Any) -> bool:
        """Evaluate and insist on a boolean result."""
        value = self.evaluate(context)
        if not isinstance(value, bool):
            raise ConditionError(f"expected true or false, got {value!r}")
        return value


def compile_condition(source: str) -> Condition:
    """Compile ``source``.

    Raises:
        ConditionSyntaxError: with the column of the problem when the library reports one.
    """
    text = str(source).strip()
    if not text:
        raise ConditionSyntaxError("the expression is empty", None)
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as error:
        raise _syntax_error(str(error)) from None
    bound = {name for pair in _BOUND_VARIABLES.findall(text) for name in pair if name}
    variables = frozenset(program.variables()) - (bound - KNOWN_VARIABLES)
    matches = _ANSWER_REF.findall(text)
    refs = frozenset(a or b for a, b in matches)
    # Any mention of `answers` beyond a plain field read (even inside a string literal) counts as
    # reading them all: being wrong that way only costs speed, the other way would cost answers.
    reads_all = len(_ANSWERS_WORD.findall(text)) != len(matches)
    functions = frozenset(name for name in program.functions() if _FUNCTION_NAME.fullmatch(name))
    return Condition(
        source=text,
        program=program,
        answer_refs=refs,
        variables=variables,
        reads_all_answers=reads_all,
        functions=functions,
    )


def make_context(answers: Mapping[str, Any], tier: str | None = None) -> Any:
    """Build the evaluation context once per readiness computation (conversion is the slow part)."""
    context = cel.Context()
    context.add_variable("answers", dict(answers))
    context.add_variable("tier", tier if tier is not None else "")
    return context


def set_tier(context: Any, tier: str | None) -> Any:
    """Set ``tier`` on an existing context, without converting the answers again."""
    context.add_variable("tier", tier if tier is not None else "")
    return context


def _syntax_error(message: str) -> ConditionSyntaxError:
    for line in message.splitlines():
        match = _POSITION.search(line)
        if match:
            message = re.sub(r"^Syntax error:\s*", "", match.group(3).strip())
            return ConditionSyntaxError(message, int(match.group(2)))
    return ConditionSyntaxError(_first_line(message), None)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"
