"""Block Kit knowledge the emulator shares with its payload builders.

Slack assigns ids to blocks and elements that arrive without them, checks blocks against its
limits, and reports form input in ``view.state.values`` with a shape that depends on the element
type. The Web API side (validating what the bot sends) and the client side (building the
``view_submission`` and ``block_actions`` payloads the bot receives) both need the same rules, so
they live here once.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_ID_LENGTH = 255
MAX_VIEW_TEXT = 24
MAX_PRIVATE_METADATA = 3000
MAX_VIEW_BYTES = 250_000

# Element type -> the key Slack uses for its value in state.values and in block_actions.
STATE_KEYS: dict[str, str] = {
    "plain_text_input": "value",
    "number_input": "value",
    "url_text_input": "value",
    "email_text_input": "value",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
}

# State key -> the element attribute Slack reads the pre-filled value from.
_INITIAL_KEYS: dict[str, str] = {
    "value": "initial_value",
    "selected_option": "initial_option",
    "selected_options": "initial_options",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
    "selected_date_time": "initial_date_time",
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
}

_LIST_KEYS = {"selected_options", "selected_users", "selected_conversations", "selected_channels"}


def _short_id(*parts: object) -> str:
    """A stable 5-character id, like the ones Slack generates (``hspI``, ``maBWU``)."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()
    return digest[:5]


def _elements_of(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The interactive elements a block holds, in order."""
    kind = block.get("type")
    if kind == "input" and isinstance(block.get("element"), dict):
        return [block["element"]]
    if kind == "actions":
        return [e for e in block.get("elements", []) if isinstance(e, dict)]
    if kind == "section" and isinstance(block.get("accessory"), dict):
        return [block["accessory"]]
    return []


def ensure_ids(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return a deep copy of ``blocks`` where every block and element carries an id.

    Slack fills missing ``block_id`` and ``action_id`` values when it stores a message or view;
    the ids are derived from the position so that a test building payloads from the same blocks
    gets the same ids the emulator stored.
    """
    result: list[dict[str, Any]] = []
    for index, original in enumerate(blocks):
        block = copy.deepcopy(dict(original))
        block.setdefault("block_id", _short_id("block", index, block.get("type")))
        for position, element in enumerate(_elements_of(block)):
            if element.get("type") in STATE_KEYS or element.get("type") in {"button", "overflow"}:
                element.setdefault("action_id", _short_id(block["block_id"], position))
        result.append(block)
    return result


def iter_elements(
    blocks: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(block, element)`` for every interactive element, ids filled in."""
    for block in ensure_ids(blocks):
        for element in _elements_of(block):
            yield block, element


def find_element(
    blocks: Sequence[Mapping[str, Any]], key: str, block_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find an element by its ``action_id`` or by its block's ``block_id``.

    ``block_id`` narrows the search to one block: the same ``action_id`` may repeat across
    blocks (one Approve button per review on the App Home), and a click names both.

    Raises:
        KeyError: nothing matches; the message lists the ids that exist.
    """
    found = list(iter_elements(blocks))
    if block_id is not None:
        found = [(b, e) for b, e in found if b.get("block_id") == block_id]
    for block, element in found:
        if element.get("action_id") == key:
            return block, element
    for block, element in found:
        if block.get("block_id") == key:
            return block, element
    known = sorted({str(e.get("action_id")) for _, e in found} | {str(b["block_id"]) for b, _ in found})
    raise KeyError(f"no block or element with id {key!r}; known ids: {', '.join(known) or 'none'}")


def _options_of(element: Mapping[str, Any]) -> list[dict[str, Any]]:
    options = [o for o in element.get("options", []) if isinstance(o, dict)]
    for group in element.get("option_groups", []):
        options.extend(o for o in group.get("options", []) if isinstance(o, dict))
    return options


def _pick_option(element: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """Turn an option value (or a whole option dict) into the option Slack would report."""
    if isinstance(value, Mapping):
        return dict(value)
    for option in _options_of(element):
        if option.get("value") == str(value):
            return copy.deepcopy(option)
    if element.get("type", "").endswith("external_select"):
        text = {"type": "plain_text", "text": str(value), "emoji": True}
        return {"text": text, "value": str(value)}
    available = ", ".join(str(o.get("value")) for o in _options_of(element))
    raise ValueError(f"{value!r} is not an option of {element.get('action_id')!r} (options: {available})")


def element_value(element: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """The ``{"type": ..., <state key>: ...}`` entry Slack reports for ``element`` set to ``value``.

    ``value`` is what a person would pick: text for inputs (numbers accepted for
    ``number_input``), an option value (or option dict) for single selects and radio buttons, a
    list of those for multi selects and checkboxes, ``YYYY-MM-DD`` (or a ``date``) for date
    pickers, a user / conversation / channel id for the pickers. ``None`` means left empty.

    Raises:
        ValueError: the element type holds no state, or the value does not fit it.
    """
    kind = str(element.get("type"))
    key = STATE_KEYS.get(kind)
    if key is None:
        raise ValueError(f"element type {kind!r} ({element.get('action_id')!r}) holds no value")
    entry: dict[str, Any] = {"type": kind}
    if value is None:
        entry[key] = [] if key in _LIST_KEYS else None
    elif key == "value":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"{element.get('action_id')!r} takes text, got {value!r}")
        entry[key] = str(value)
    elif key == "selected_option":
        entry[key] = _pick_option(element, value)
    elif key == "selected_options":
        entry[key] = [_pick_option(element, v) for v in _listed(element, value)]
    elif key == "selected_date":
        entry[key] = value.isoformat() if isinstance(value, dt.date) else str(value)
    elif key == "selected_date_time":
        if isinstance(value, dt.datetime):
            entry[key] = int(value.timestamp())
        elif isinstance(value, int | float | str) and not isinstance(value, bool):
            entry[key] = int(value)  # a ValueError for text that is not a number
        else:
            raise ValueError(f"{element.get('action_id')!r} takes a moment, got {value!r}")
    elif key in _LIST_KEYS:
        entry[key] = [str(v) for v in _listed(element, value)]
    else:
        entry[key] = str(value)
    return entry


def _listed(element: Mapping[str, Any], value: Any) -> list[Any]:
    """``value`` for a field that takes several: one value alone, or a list of them.

    Raises:
        ValueError: anything else (a number, true), said as Slack's form would not take it.
    """
    if isinstance(value, str | Mapping):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{element.get('action_id')!r} takes a list, got {value!r}")


def initial_value(element: Mapping[str, Any]) -> dict[str, Any]:
    """The state entry for an element nobody touched: its ``initial_*`` value, or empty."""
    kind = str(element.get("type"))
    key = STATE_KEYS[kind]
    entry: dict[str, Any] = {"type": kind}
    initial = element.get(_INITIAL_KEYS[key])
    if initial is None:
        entry[key] = [] if key in _LIST_KEYS else None
    else:
        entry[key] = copy.deepcopy(initial)
    return entry


def build_state_values(
    view_or_blocks: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    values: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Build ``view.state.values`` exactly as Slack reports it for a form.

    Args:
        view_or_blocks: a view (its ``blocks`` are used) or a list of blocks.
        values: what the person entered, keyed by ``action_id`` or ``block_id``. Elements not
            mentioned keep their ``initial_*`` value (Slack reports pre-filled values too).

    Returns:
        ``{block_id: {action_id: {"type": ..., <value key>: ...}}}`` for every input block and
        every stateful element in actions blocks and section accessories.

    Raises:
        KeyError: a key in ``values`` names no block or element.
        ValueError: a value does not fit its element (unknown option, wrong type).
    """
    blocks = view_or_blocks.get("blocks", []) if isinstance(view_or_blocks, Mapping) else list(view_or_blocks)
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for block, element in iter_elements(blocks):
        if element.get("type") in STATE_KEYS:
            state.setdefault(block["block_id"], {})[element["action_id"]] = initial_value(element)
    for key, value in (values or {}).items():
        block, element = find_element(blocks, key)
        state.setdefault(block["block_id"], {})[element["action_id"]] = element_value(element, value)
    return state


def action_payload(
    block: Mapping[str, Any], element: Mapping[str, Any], value: Any, action_ts: str
) -> dict[str, Any]:
    """The entry of ``actions`` in a ``block_actions`` payload for a click or a selection."""
    kind = element.get("type")
    action: dict[str, Any] = {
        "action_id": element.get("action_id"),
        "block_id": block.get("block_id"),
    }
    if kind == "button":
        action["text"] = copy.deepcopy(element.get("text"))
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
        action["type"] = "button"
    elif kind == "overflow":
        action["selected_option"] = _pick_option(element, value)
        action["type"] = "overflow"
    else:
        entry = element_value(element, value)
        action.update({k: v for k, v in entry.items() if k != "type"})
        action["type"] = kind
        if "placeholder" in element:
            action["placeholder"] = copy.deepcopy(element["placeholder"])
    action["action_ts"] = action_ts
    return action


def block_errors(blocks: Any, *, limit: int, pointer: str) -> list[str]:
    """Check blocks as Slack does; return its ``[ERROR] ...`` messages, empty when valid."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"[ERROR] must provide no more than {limit} items [json-pointer:{pointer}]")
    seen_block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > MAX_ID_LENGTH:
                errors.append(f"[ERROR] block_id too long [json-pointer:{where}/block_id]")
            if block_id in seen_block_ids:
                errors.append(f"[ERROR] duplicate block_id {block_id!r} [json-pointer:{where}]")
            seen_block_ids.add(str(block_id))
        action_ids = [e.get("action_id") for e in _elements_of(block) if e.get("action_id")]
        if len(action_ids) != len(set(action_ids)):
            errors.append(f"[ERROR] duplicate action_id [json-pointer:{where}]")
        if any(len(str(a)) > MAX_ID_LENGTH for a in action_ids):
            errors.append(f"[ERROR] action_id too long [json-pointer:{where}]")
        errors.extend(_model_errors(block, where))
    return errors


def _model_errors(block: dict[str, Any], where: str) -> list[str]:
    """Run slack_sdk's block model over one block (``to_dict`` validates nested objects too)."""
    try:
        parsed = Block.parse(copy.deepcopy(block))
        if parsed is None:
            return [f"[ERROR] unsupported type: {block['type']} [json-pointer:{where}/type]"]
        parsed.to_dict()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as error:
        return [f"[ERROR] {error} [json-pointer:{where}]"]
    return []


def view_errors(view: Any) -> tuple[str, list[str]] | None:
    """Check a view as Slack does.

    Returns:
        ``None`` when valid, else ``(error_code, messages)``: ``invalid_blocks`` when the blocks
        are at fault, ``invalid_arguments`` for the view's own fields.
    """
    if not isinstance(view, dict):
        return "invalid_arguments", ["[ERROR] view must be an object [json-pointer:/view]"]
    problems = block_errors(view.get("blocks", []), limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    if not view.get("blocks"):
        problems.append("[ERROR] must provide at least 1 item [json-pointer:/view/blocks]")
    if problems:
        return "invalid_blocks", problems
    messages: list[str] = []
    kind = view.get("type")
    if kind not in {"modal", "home"}:
        messages.append("[ERROR] type must be modal or home [json-pointer:/view/type]")
    if kind == "modal":
        if not isinstance(view.get("title"), dict):
            messages.append("[ERROR] missing required field: title [json-pointer:/view]")
        has_inputs = any(b.get("type") == "input" for b in view.get("blocks", []))
        if has_inputs and not isinstance(view.get("submit"), dict):
            messages.append("[ERROR] submit is required when an input block is present [json-pointer:/view]")
        for field in ("title", "submit", "close"):
            text = view.get(field)
            if isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_VIEW_TEXT:
                messages.append(
                    f"[ERROR] must be less than {MAX_VIEW_TEXT + 1} characters "
                    f"[json-pointer:/view/{field}/text]"
                )
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
        messages.append("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id", ""))) > MAX_ID_LENGTH:
        messages.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        messages.append("[ERROR] view is larger than 250 kB [json-pointer:/view]")
    return ("invalid_arguments", messages) if messages else None
