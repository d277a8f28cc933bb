"""Turn what people type into typed answers, or say precisely why not.

Slack modals and YAML files hand us strings, numbers and lists; rules need values of the right
type ("12%" must compare as 12.0, "Yes" as "yes", a date as a timestamp). ``coerce`` is the one
place that conversion happens, and it is strict: an answer that does not fit is refused with a
message naming the question, never stored half-understood.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlparse

from gates.errors import InvalidAnswer
from gates.pipeline import Question, QuestionType

AnswerValue = str | float | int | list[str]
"""What a coerced answer is: dates are kept as ISO text, converted for CEL in ``for_rules``."""

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_SLACK_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^@?([UW][A-Z0-9]{2,})$")
_SLACK_LINK = re.compile(r"^<(https?://[^|>]+)(?:\|[^>]*)?>$")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
"""Commas a number may hold: between groups of three digits, before any decimal point (1,250.5)."""
_DECIMAL_COMMA = re.compile(r"[+-]?[\d.]*,\d+")
"""A number written with a decimal comma (1,5 or 1.000,5), which is refused saying so."""
_ECHO_MAX = 30
"""How much of a refused answer its message repeats: enough to recognise it, while the reason,
said first, stays within the 150 characters Slack shows under a field."""


def coerce(question: Question, raw: Any) -> AnswerValue | None:
    """Convert ``raw`` to the question's type and check its validation rules.

    Returns None for an empty answer (nothing typed, an empty list): the caller treats that as
    "no answer", which readiness then reports if the question is required.

    Raises:
        InvalidAnswer: naming the question and what is wrong with the value.
    """
    if (
        raw is None
        or (isinstance(raw, str) and not raw.strip())
        or (isinstance(raw, list | tuple) and not raw)
    ):
        return None
    kind = question.type
    try:
        value = _CONVERTERS[kind](question, raw)
    except _Refused as refusal:
        raise InvalidAnswer(question.id, str(refusal)) from None
    _check_limits(question, value)
    return value


def fingerprint(value: AnswerValue | None) -> str:
    """A short digest of an answer, for a form to remember what it showed (8 characters).

    Equal answers give equal digests however they were typed: a whole float is its integer (5.0
    and 5 are one answer) and a list's order does not count (the options picked, not the order
    Slack lists them in). A collision would only make a changed answer look untouched once in
    2^48, which is why 6 bytes are enough to stay inside Slack's 3,000 characters of metadata.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, list):
        value = sorted(value)
    canonical = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(hashlib.blake2b(canonical.encode(), digest_size=6).digest()).decode()


def for_rules(questions: Mapping[str, Question], answers: Mapping[str, AnswerValue]) -> dict[str, Any]:
    """The answers as CEL sees them: dates become UTC timestamps, everything else as stored."""
    out: dict[str, Any] = {}
    for qid, value in answers.items():
        question = questions.get(qid)
        if question is not None and question.type is QuestionType.DATE and isinstance(value, str):
            day = date.fromisoformat(value)
            out[qid] = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            out[qid] = value
    return out


def display(question: Question, value: AnswerValue | None) -> str:
    """A short human rendering, for Slack and the evidence pack."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value)
    if question.type is QuestionType.PERCENT and isinstance(value, int | float):
        return f"{_number_text(value)}%"
    if question.type is QuestionType.USER:
        return f"<@{value}>"
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


class _Refused(ValueError):
    pass


def _text(question: Question, raw: Any) -> str:
    if isinstance(raw, list | dict):
        raise _Refused("expected text")
    return str(raw).strip()


def _number(question: Question, raw: Any) -> float | int:
    if isinstance(raw, bool):
        raise _Refused(f"expected a number, got {_echo(raw)}")
    if isinstance(raw, int | float):
        return raw
    text = str(raw).strip().replace("_", "").replace(" ", "")
    if "," in text:
        # Only thousands separators are dropped. A decimal comma ("1,5", "1.000,5") is refused
        # saying so: dropping it would read the number ten or a thousand times off.
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        elif _DECIMAL_COMMA.fullmatch(text):
            raise _Refused(f"write decimals with a point (1.5), not a comma; got {_echo(raw)}")
        # Else no number at all ("5,000 EUR"): refused below as such, not as a decimal comma.
    try:
        number = float(text)
    except ValueError:
        raise _Refused(f"expected a number, got {_echo(raw)}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _Refused(f"expected a finite number, got {_echo(raw)}")
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _percent(question: Question, raw: Any) -> float:
    text = str(raw).strip()
    if text.endswith("%"):
        text = text[:-1]
    return float(_number(question, text))


def _choice(question: Question, raw: Any) -> str:
    return _match_option(question, raw)


def _multi_choice(question: Question, raw: Any) -> list[str]:
    items = raw if isinstance(raw, list | tuple) else [part for part in str(raw).split(",")]
    chosen: list[str] = []
    for item in items:
        if str(item).strip():
            option = _match_option(question, item)
            if option not in chosen:
                chosen.append(option)
    if not chosen:
        raise _Refused("choose at least one option")
    # Keep the pipeline's order, so the same selection always hashes the same.
    order = question.options or []
    return sorted(chosen, key=order.index)


def _yes_no(question: Question, raw: Any) -> str:
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    text = str(raw).strip().lower()
    if text in _YES:
        return "yes"
    if text in _NO:
        return "no"
    raise _Refused(f"expected yes or no, got {_echo(raw)}")


def _date(question: Question, raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    text = str(raw).strip()
    try:
        return date.fromisoformat(text[:10] if "T" in text else text).isoformat()
    except ValueError:
        raise _Refused(f"expected a date as YYYY-MM-DD, got {_echo(raw)}") from None


def _user(question: Question, raw: Any) -> str:
    text = str(raw).strip()
    match = _SLACK_USER.match(text)
    if not match:
        raise _Refused(f"expected a Slack user (like <@U012AB3CD>), got {_echo(raw)}")
    return match.group(1) or match.group(2)


def _url(question: Question, raw: Any) -> str:
    text = str(raw).strip()
    link = _SLACK_LINK.match(text)
    if link:
        text = link.group(1)
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise _Refused(f"expected a link starting with https://, got {_echo(raw)}")
    # Chat link syntax is <address|label>: a | in the address would let the rest of it pose as
    # the label of a link going elsewhere. None of these belongs in a URL unencoded (RFC 3986).
    if any(c.isspace() or c in "|<>" for c in text):
        raise _Refused(
            f"a link cannot contain spaces, |, < or > (encoded, they are %20, %7C, %3C, %3E), got {_echo(raw)}"
        )
    return text


def _match_option(question: Question, raw: Any) -> str:
    options = question.options or []
    text = ("yes" if raw else "no") if isinstance(raw, bool) else str(raw).strip()
    for option in options:
        if option == text or option.lower() == text.lower():
            return option
    raise _Refused(f"{_echo(text)} is not one of: {', '.join(options)}")


_CONVERTERS = {
    QuestionType.TEXT: _text,
    QuestionType.LONG_TEXT: _text,
    QuestionType.NUMBER: _number,
    QuestionType.PERCENT: _percent,
    QuestionType.CHOICE: _choice,
    QuestionType.MULTI_CHOICE: _multi_choice,
    QuestionType.YES_NO: _yes_no,
    QuestionType.DATE: _date,
    QuestionType.USER: _user,
    QuestionType.URL: _url,
}


def _check_limits(question: Question, value: AnswerValue) -> None:
    rules = question.validation
    if rules is None:
        return
    if isinstance(value, int | float):
        unit = "%" if question.type is QuestionType.PERCENT else ""
        if rules.min is not None and value < rules.min:
            raise InvalidAnswer(question.id, f"must be at least {_number_text(rules.min)}{unit}")
        if rules.max is not None and value > rules.max:
            raise InvalidAnswer(question.id, f"must be at most {_number_text(rules.max)}{unit}")
    if isinstance(value, str):
        if rules.max_length is not None and len(value) > rules.max_length:
            raise InvalidAnswer(
                question.id, f"must be at most {rules.max_length} characters (got {len(value)})"
            )
        if rules.pattern is not None and not re.fullmatch(rules.pattern, value):
            # The reason comes first and the answer is clipped: Slack cuts an error at 150
            # characters, which a long answer would otherwise fill with nothing but itself.
            if rules.message is not None:
                raise InvalidAnswer(question.id, f"expected {rules.message}, got {_echo(value)}")
            raise InvalidAnswer(
                question.id, f"does not have the expected format ({rules.pattern}), got {_echo(value)}"
            )


def _echo(raw: Any) -> str:
    """``raw`` quoted on one line, cut at a word to about ``_ECHO_MAX`` characters."""
    text = " ".join(str(raw).split())
    if len(text) > _ECHO_MAX:
        cut = text[: _ECHO_MAX - 1]
        space = cut.rfind(" ")
        text = (cut[:space] if space >= _ECHO_MAX // 2 else cut).rstrip() + "…"
    return f"'{text}'"


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
