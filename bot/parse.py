"""Read what Slack sends back: modal state, private_metadata, action values and slash-command text.

``view.state.values`` has the shape ``{block_id: {action_id: {"type": ..., <key>: ...}}}`` where
the key depends on the element type (``value``, ``selected_option``, ``selected_date``...).
These functions turn it into the raw values ``gates.answers.coerce`` accepts; converting and
validating stays in the domain. Malformed payloads raise ``PayloadError`` with a message that
can be shown to a person (and, for modal fields, the block to attach it to).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot import ids
from bot.blocks.inputs import NO_ANSWER_VALUE, option_from_value
from bot.blocks.modals import questions_layout
from bot.blocks.text import clip
from gates.errors import UnknownGate
from gates.loader import CompiledPipeline
from gates.pipeline import Question


class PayloadError(ValueError):
    """A Slack payload is not what Shepherd sent or expects.

    Attributes:
        block_id: the modal block to attach the message to (``response_action: errors``), if any.
    """

    def __init__(self, message: str, block_id: str | None = None) -> None:
        self.block_id = block_id
        super().__init__(message)


def _entry(state_values: Mapping[str, Any], block_id: str) -> Mapping[str, Any] | None:
    """The state of the block's ``ANSWER_ACTION`` element (or its only element)."""
    block = state_values.get(block_id)
    if not isinstance(block, Mapping) or not block:
        return None
    entry = block.get(ids.ANSWER_ACTION)
    if entry is None and len(block) == 1:
        entry = next(iter(block.values()))
    return entry if isinstance(entry, Mapping) else None


def _option_value(option: Any) -> str | None:
    if isinstance(option, Mapping) and isinstance(option.get("value"), str):
        return str(option["value"])
    return None


def element_raw(entry: Mapping[str, Any], question: Question | None = None) -> Any:
    """The raw value of one element's state entry; None when the element is empty."""
    kind = entry.get("type")
    if kind in ("static_select", "radio_buttons", "external_select"):
        value = _option_value(entry.get("selected_option"))
        if value is None or value == NO_ANSWER_VALUE:  # nothing picked, or the answer taken back
            return None
        return option_from_value(question, value) if question is not None else value
    if kind in ("multi_static_select", "checkboxes", "multi_external_select"):
        options = entry.get("selected_options") or []
        values = [v for v in (_option_value(o) for o in options) if v is not None]
        if question is not None:
            values = [option_from_value(question, v) for v in values]
        return values or None
    if kind == "datepicker":
        return entry.get("selected_date") or None
    if kind == "users_select":
        return entry.get("selected_user") or None
    if kind == "multi_users_select":
        return list(entry.get("selected_users") or []) or None
    value = entry.get("value")
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def answers_from_state(
    pipeline: CompiledPipeline, gate_id: str, state_values: Mapping[str, Any]
) -> dict[str, Any]:
    """Raw answers per question id, for the gate's questions present in the state.

    A question whose input is present but empty, or set to "No answer"
    (``blocks.inputs.NO_ANSWER_VALUE``), maps to None, so the use case records that the answer
    was cleared. Questions not in the state (other pages, hidden by ``show_if``) are left
    out, so a page save never clears what it did not show.

    Raises:
        UnknownGate: the pipeline has no such gate.
    """
    gate = pipeline.model.gate(gate_id)
    if gate is None:
        raise UnknownGate(gate_id)
    answers: dict[str, Any] = {}
    for block_id in state_values:
        question_id = ids.question_id_of(str(block_id))
        question = gate.question(question_id) if question_id is not None else None
        if question is None:
            continue
        entry = _entry(state_values, str(block_id))
        if entry is not None:
            answers[question.id] = element_raw(entry, question)
    return answers


def _text(state_values: Mapping[str, Any], block_id: str) -> str | None:
    entry = _entry(state_values, block_id)
    if entry is None:
        return None
    value = element_raw(entry)
    return value.strip() if isinstance(value, str) and value.strip() else None


def name_from_state(state_values: Mapping[str, Any]) -> str | None:
    """The initiative name typed in the intake modal, whitespace collapsed; None when empty."""
    value = _text(state_values, ids.NAME_BLOCK)
    return " ".join(value.split()) if value else None


def reason_from_state(state_values: Mapping[str, Any]) -> str | None:
    """The reason (or justification) typed in a reason / exception modal; None when empty."""
    return _text(state_values, ids.REASON_BLOCK)


def link_from_state(state_values: Mapping[str, Any]) -> tuple[str, str] | None:
    """The optional evidence link of a questionnaire page as ``(url, title)``.

    The title defaults to the URL. None when both fields are empty.

    Raises:
        PayloadError: a title was given without a URL (attached to the URL block).
    """
    url = _text(state_values, ids.LINK_URL_BLOCK)
    title = _text(state_values, ids.LINK_TITLE_BLOCK)
    if url is None:
        if title is not None:
            raise PayloadError("Add the link's URL, or clear the title.", ids.LINK_URL_BLOCK)
        return None
    return url, title or url


def metadata(view: Mapping[str, Any] | None) -> dict[str, Any]:
    """The view's private_metadata as a dict; {} when absent or not a JSON object."""
    if not isinstance(view, Mapping):
        return {}
    raw = view.get("private_metadata")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def shown_answers(pipeline: CompiledPipeline, gate_id: str, meta: Mapping[str, Any]) -> dict[str, str]:
    """What a questionnaire form showed in each field when it was opened, from its metadata
    (``blocks.modals.shown_fingerprints``): question id -> ``gates.answers.fingerprint``. {} for
    a form that does not say, and for one opened before the gate's questions were added,
    removed or moved (``blocks.modals.questions_layout``): its places name other questions now,
    and a change made on it that happened to match the answer shown next to it would be taken
    for untouched and lost. Every answer on such a form counts as changed: recorded as it was
    before forms remembered what they showed."""
    shown, gate = meta.get("shown"), pipeline.model.gate(gate_id)
    if not isinstance(shown, dict) or gate is None or meta.get("layout") != questions_layout(gate):
        return {}
    found: dict[str, str] = {}
    for place, digest in shown.items():
        if isinstance(digest, str) and str(place).isdigit() and int(place) < len(gate.questions):
            found[gate.questions[int(place)].id] = digest
    return found


def action_value(body: Mapping[str, Any]) -> str:
    """The ``value`` of the first action in a ``block_actions`` payload.

    Raises:
        PayloadError: the payload carries no action with a value.
    """
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        raise PayloadError("This button sent no action; try again from the latest message.")
    value = actions[0].get("value")
    if not isinstance(value, str) or not value:
        raise PayloadError("This button carries no value; try again from the latest message.")
    return value


def action_ref(body: Mapping[str, Any]) -> str:
    """The initiative reference a button carries.

    Raises:
        PayloadError: the button carries no value, or one that is not a reference (a forged or
            garbled payload; echoed escaped and clipped).
    """
    value = action_value(body)
    if len(value) > 20 or not ids.REF_PATTERN.fullmatch(value):
        raise PayloadError(
            f"'{clip(value, 40)}' is not an initiative reference; try again from the latest message."
        )
    return value


def review_id(value: Any) -> int:
    """A review id from a button value.

    Raises:
        PayloadError: the value is not a positive whole number.
    """
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or int(text) <= 0 or len(text) > 18:
        raise PayloadError(f"'{clip(text, 40)}' is not a review number; try again from the latest message.")
    return int(text)


def page_number(value: Any) -> int:
    """A page number from a Home or questionnaire button; garbage means the first page."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 6 else 0


# -- slash command text ------------------------------------------------------------------------
#
# The manifest turns Slack's escaping on (``should_escape: true``), so a command's text arrives
# the way message text does: a person picked with @ as ``<@U123|sam>``, a channel as
# ``<#C123|general>``, a link as ``<https://...>``, and a typed ``&``, ``<`` or ``>`` as
# ``&amp;``, ``&lt;`` or ``&gt;`` (a real ``<`` never reaches us unescaped, so every ``<...>``
# is one of Slack's tokens).

_TOKEN = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
# A bare user id, as the CLI and the pipeline file take them: Slack's are 9 or 11 characters
# with digits, which keeps a plain word such as WALTER from passing for one.
_USER_ID = re.compile(r"[UW](?=[A-Z]*[0-9])[A-Z0-9]{8,}")
_ARGUMENT = re.compile(r"<[^<>]*>|[^\s,<]+")
_ECHO = 40


def _readable(token: re.Match[str]) -> str:
    target, label = token.group(1), token.group(2)
    if target.startswith(("@", "#")):
        return target[0] + (label or target[1:])
    if target.startswith("!"):  # <!here>, <!subteam^S123|@team>
        return label or "@" + target[1:].split("^", 1)[0]
    return label or target  # a link


def command_text(text: str) -> str:
    """Free text of a slash command (a question, a reason) as the person typed it.

    Mentions become ``@name`` and ``#channel``, links their text, and ``&amp;``, ``&lt;`` and
    ``&gt;`` the characters typed; whatever shows it escapes it again (``blocks.text.escape``).
    """
    if "<" not in text and "&" not in text:
        return text
    return _TOKEN.sub(_readable, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def is_user_id(word: str) -> bool:
    """Whether ``word`` is a bare Slack user id (``U012AB3CD``), as the CLI takes them."""
    return _USER_ID.fullmatch(word) is not None


def initiative_ref(word: str) -> str | None:
    """The initiative reference a person typed (``ai-0001,`` gives ``AI-0001``); None if it is none."""
    ref = word.strip().rstrip(".,;:!?").upper()
    return ref if len(ref) <= 20 and ids.REF_PATTERN.fullmatch(ref) else None


def not_a_ref(word: str) -> str:
    """What to tell someone whose ``word`` is not an initiative reference (escaped and clipped)."""
    return f"“{clip(command_text(word), _ECHO)}” is not an initiative reference; they look like AI-0001."


def user_ids(text: str) -> list[str]:
    """The people named in a slash command's text, in order, without repeats: people picked with
    @ (``<@U123|sam>``) or Slack user ids, separated by spaces or commas.

    Raises:
        PayloadError: something in the text is neither (named, escaped and clipped).
    """
    found: list[str] = []
    for word in _ARGUMENT.findall(text):
        mention = _MENTION.fullmatch(word)
        user = mention.group(1) if mention else word if _USER_ID.fullmatch(word) else None
        if user is None:
            raise PayloadError(
                f"“{clip(command_text(word), _ECHO)}” is not someone Shepherd can recognise: pick each "
                "person from the list Slack offers as you type @, or give their Slack user id (like U012AB3CD)."
            )
        found.append(user)
    return list(dict.fromkeys(found))
