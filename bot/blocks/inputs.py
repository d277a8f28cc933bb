"""One Block Kit input per question type, prefilled with the current answer.

Every question becomes an input block with ``block_id = ids.question_block_id(q.id)`` and
``action_id = ids.ANSWER_ACTION``; ``bot.parse.answers_from_state`` reads them back. Inputs are
always optional in Slack (a person may save half a questionnaire); required questions say so in
their label and readiness reports them until answered.

Slack's radio buttons and single select menus cannot be emptied once something is picked, so an
optional yes/no or choice question also offers "No answer" (``NO_ANSWER_VALUE``, read back as no
answer): without it, an answer picked by mistake could never be taken back. Offered whether or
not the question is answered yet, so that a pick made by mistake in a form still open can be
undone too, and so that a question's block, and with it the pages, do not depend on the answers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot import ids
from bot.blocks.text import (
    MAX_HINT,
    MAX_INPUT_VALUE,
    MAX_LABEL,
    MAX_OPTION_TEXT,
    MAX_OPTION_VALUE,
    MAX_PLACEHOLDER,
    MAX_SELECT_OPTIONS,
    json_bytes,
    plain,
    truncate,
)
from gates.answers import AnswerValue
from gates.pipeline import Question, QuestionType, option_text

REQUIRED_NOTE = "Needed before the gate can be submitted for review."
PERCENT_MARK = " (%)"
# Option values longer than Slack allows are sent as their position instead.
_INDEX_PREFIX = "#opt:"
# The value of the option that takes an answer back. Under the prefix no option's own value may
# use, and never a position, so it cannot be taken for an option.
NO_ANSWER_VALUE = f"{_INDEX_PREFIX}none"
NO_ANSWER_TEXT = "No answer"


def option_value(question: Question, index: int) -> str:
    """The ``value`` sent for option ``index``: the option itself, or its position when too long."""
    option = (question.options or [])[index]
    if len(option) <= MAX_OPTION_VALUE and not option.startswith(_INDEX_PREFIX):
        return option
    return f"{_INDEX_PREFIX}{index}"


def option_from_value(question: Question, value: str) -> str:
    """Invert ``option_value``; unknown values are returned as they are (``coerce`` refuses them)."""
    options = question.options or []
    if value.startswith(_INDEX_PREFIX):
        position = value[len(_INDEX_PREFIX) :]
        if position.isdigit() and int(position) < len(options):
            return options[int(position)]
    return value


def _option(question: Question, index: int) -> dict[str, Any]:
    # Cut as the loader expects (it refuses options this would make look the same).
    text = option_text((question.options or [])[index])
    return {"text": plain(text, MAX_OPTION_TEXT), "value": option_value(question, index)}


def _no_answer() -> dict[str, Any]:
    return {"text": plain(NO_ANSWER_TEXT, MAX_OPTION_TEXT), "value": NO_ANSWER_VALUE}


def _menu(question: Question, options: list[dict[str, Any]]) -> dict[str, Any]:
    """A single select's ``options``, led by "No answer" when the question is optional (first,
    where a menu's way back to no selection usually is)."""
    if question.required:
        return {"options": options}
    if len(options) < MAX_SELECT_OPTIONS:
        return {"options": [_no_answer(), *options]}
    # A menu holds 100 options, and the pipeline may give that many; groups hold 100 each.
    return {
        "option_groups": [
            {"label": plain("Take the answer back", MAX_OPTION_TEXT), "options": [_no_answer()]},
            {"label": plain("Answers", MAX_OPTION_TEXT), "options": options},
        ]
    }


def menu_options(element: dict[str, Any]) -> list[dict[str, Any]]:
    """Every option of a select or radio element, in groups or not."""
    groups = element.get("option_groups") or [element]
    return [option for group in groups for option in group.get("options", [])]


def question_label(question: Question) -> str:
    """The label text, with ``(%)`` for percentages.

    Whether a question is required goes in the hint, not here: every input is optional in Slack
    (so half a questionnaire can be saved) and Slack itself appends "(optional)" to the label.
    """
    suffix = PERCENT_MARK if question.type is QuestionType.PERCENT else ""
    return truncate(question.label.strip(), MAX_LABEL - len(suffix)) + suffix


def question_hint(question: Question, required_now: bool = False, problem: str | None = None) -> str | None:
    parts = []
    if problem:
        # The stored answer cannot be prefilled; say so rather than show an unexplained blank.
        parts.append(f"The saved answer no longer fits ({problem}); saving leaves this unanswered.")
    if question.required:
        parts.append(REQUIRED_NOTE)
    elif question.required_if is not None:
        # required_if may not hold now; say it is required only when it does.
        parts.append(
            REQUIRED_NOTE if required_now else "Needed for the review when it applies to this initiative."
        )
    if question.help:
        parts.append(question.help.strip())
    if question.policy_refs:
        parts.append("Policies: " + ", ".join(question.policy_refs))
    text = "\n".join(parts)
    return truncate(text, MAX_HINT) if text else None


def fits_input(question: Question, value: AnswerValue | None) -> bool:
    """False when the current answer is longer than a Slack input can hold: prefilling a cut
    version would silently shorten it on the next save."""
    return not (isinstance(value, str) and _is_text(question) and len(value) > MAX_INPUT_VALUE)


def _is_text(question: Question) -> bool:
    return question.type in (QuestionType.TEXT, QuestionType.LONG_TEXT, QuestionType.URL)


def element_for(question: Question, value: AnswerValue | None = None) -> dict[str, Any]:
    """The input element for ``question``, prefilled with ``value`` when it is set and fits."""
    kind = question.type
    rules = question.validation
    element: dict[str, Any]
    if kind in (QuestionType.TEXT, QuestionType.LONG_TEXT):
        element = {"type": "plain_text_input", "multiline": kind is QuestionType.LONG_TEXT}
        if rules is not None and rules.max_length is not None:
            element["max_length"] = min(rules.max_length, MAX_INPUT_VALUE)
        if isinstance(value, str) and value and len(value) <= MAX_INPUT_VALUE:
            element["initial_value"] = value
    elif kind in (QuestionType.NUMBER, QuestionType.PERCENT):
        element = {"type": "number_input", "is_decimal_allowed": True}
        if rules is not None and rules.min is not None:
            element["min_value"] = _number_text(rules.min)
        if rules is not None and rules.max is not None:
            element["max_value"] = _number_text(rules.max)
        if isinstance(value, int | float) and not isinstance(value, bool):
            element["initial_value"] = _number_text(value)
    elif kind is QuestionType.CHOICE:
        options = [_option(question, i) for i in range(len(question.options or []))]
        element = {"type": "static_select", **_menu(question, options)}
        chosen = _find(question, [value] if isinstance(value, str) else [])
        if chosen:
            element["initial_option"] = chosen[0]
    elif kind is QuestionType.MULTI_CHOICE:
        options = [_option(question, i) for i in range(len(question.options or []))]
        element = {"type": "multi_static_select", "options": options}
        chosen = _find(
            question, value if isinstance(value, list) else [value] if isinstance(value, str) else []
        )
        if chosen:
            element["initial_options"] = chosen
    elif kind is QuestionType.YES_NO:
        options = [
            {"text": plain("Yes", MAX_OPTION_TEXT), "value": "yes"},
            {"text": plain("No", MAX_OPTION_TEXT), "value": "no"},
        ]
        # After Yes and No, which keep the places people know them in.
        taken_back = [] if question.required else [_no_answer()]
        element = {"type": "radio_buttons", "options": options + taken_back}
        if value in ("yes", "no"):
            element["initial_option"] = options[0] if value == "yes" else options[1]
    elif kind is QuestionType.DATE:
        element = {"type": "datepicker"}
        if isinstance(value, str) and len(value) >= 10:
            element["initial_date"] = value[:10]
    elif kind is QuestionType.USER:
        element = {"type": "users_select"}
        if isinstance(value, str) and value:
            element["initial_user"] = value
    else:
        element = {"type": "url_text_input"}
        if isinstance(value, str) and value and len(value) <= MAX_INPUT_VALUE:
            element["initial_value"] = value
    if question.placeholder and kind not in (QuestionType.YES_NO,):
        element["placeholder"] = plain(question.placeholder, MAX_PLACEHOLDER)
    element["action_id"] = ids.ANSWER_ACTION
    return element


def _find(question: Question, values: list[str]) -> list[dict[str, Any]]:
    """The options matching ``values`` (an initial option must equal one of the options)."""
    options = question.options or []
    found = []
    for value in values:
        for index, option in enumerate(options):
            if option == value or option.lower() == str(value).lower():
                found.append(_option(question, index))
                break
    return found


def question_input(
    question: Question,
    value: AnswerValue | None = None,
    required_now: bool = False,
    problem: str | None = None,
) -> dict[str, Any]:
    """The input block for one question; optional in Slack so partial saves work."""
    block: dict[str, Any] = {
        "type": "input",
        "block_id": ids.question_block_id(question.id),
        "optional": True,
        "label": plain(question_label(question), MAX_LABEL),
        "element": element_for(question, value),
    }
    hint = question_hint(question, required_now, problem)
    if hint:
        block["hint"] = plain(hint, MAX_HINT)
    return block


def text_input(
    block_id: str,
    label: str,
    *,
    multiline: bool = False,
    optional: bool = False,
    initial: str | None = None,
    max_length: int | None = None,
    placeholder: str | None = None,
    hint: str | None = None,
    url: bool = False,
) -> dict[str, Any]:
    """A free-text (or URL) input outside the questionnaire: names, reasons, evidence links."""
    element: dict[str, Any] = {
        "type": "url_text_input" if url else "plain_text_input",
        "action_id": ids.ANSWER_ACTION,
    }
    if not url:
        element["multiline"] = multiline
        if max_length is not None:
            element["max_length"] = min(max_length, MAX_INPUT_VALUE)
    if initial:
        element["initial_value"] = truncate(initial, max_length or MAX_INPUT_VALUE)
    if placeholder:
        element["placeholder"] = plain(placeholder, MAX_PLACEHOLDER)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": plain(label, MAX_LABEL),
        "element": element,
    }
    if hint:
        block["hint"] = plain(hint, MAX_HINT)
    return block


def worst_case_size(question: Question) -> int:
    """Bytes the question's block can take in a view whatever the answer, so that pages can be
    cut from the pipeline alone and stay the same while answers change."""
    block = question_input(question, None, required_now=True)
    size = json_bytes(block)
    kind = question.type
    if kind in (QuestionType.TEXT, QuestionType.LONG_TEXT, QuestionType.URL):
        limit = (
            question.validation.max_length if question.validation and question.validation.max_length else None
        )
        # 3 bytes a character covers any text in the Basic Multilingual Plane as UTF-8.
        size += 3 * min(limit or MAX_INPUT_VALUE, MAX_INPUT_VALUE) + 20
    elif kind is QuestionType.MULTI_CHOICE:
        size += json_bytes(block["element"]["options"]) + 20
    elif kind is QuestionType.CHOICE:
        size += max((json_bytes(o) for o in menu_options(block["element"])), default=0)
        size += 20
    else:
        size += 80
    return size


def _number_text(value: float) -> str:
    """Plain decimal notation: Slack's number input does not take ``1e-05``."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")
