"""Text helpers for Block Kit: escaping, truncation and keeping block lists within Slack's limits.

Everything Shepherd shows comes partly from people (initiative names, answers, reasons) and
partly from an LLM. Slack rejects a whole message when one field is too long, and treats ``<``,
``>`` and ``&`` as markup (``<!channel>`` pings everyone), so every piece of outside text passes
through ``escape`` and one of the length helpers before it reaches a block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from gates.pipeline import OPTION_TEXT_MAX

ELLIPSIS = "…"

# Slack's limits (https://api.slack.com/reference/block-kit/blocks), gathered in one place.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_LABEL = 2000
MAX_HINT = 2000
MAX_PLACEHOLDER = 150
MAX_OPTION_TEXT = OPTION_TEXT_MAX  # the loader checks options against it
MAX_OPTION_VALUE = 150
MAX_SELECT_OPTIONS = 100
MAX_INPUT_VALUE = 3000
MAX_VIEW_TITLE = 24
MAX_PRIVATE_METADATA = 3000
MAX_VIEW_BYTES = 250_000
MAX_FALLBACK_TEXT = 3000
# Slack's guidance for a message's top-level ``text`` when it is the whole message (a reply with
# no blocks): longer text is cut off or split by some clients.
MAX_MESSAGE_TEXT = 4000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300


def escape(text: object) -> str:
    """Escape ``&``, ``<`` and ``>`` so outside text cannot become links, mentions or pings."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: object, limit: int) -> str:
    """Outside text made safe for mrkdwn: escaped, then cut to ``limit`` characters."""
    return truncate(escape(text), limit)


def truncate(text: object, limit: int, *, markup: bool = True) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut.

    Mrkdwn (``markup``) is never cut inside a Slack token (``<@U123>``) or an escape sequence
    (``&amp;``), which Slack would show as raw markup (``_whole_tokens``); a token too long to
    keep at all is left out. Plain text has no markup, so a ``<`` there is only a character.
    """
    value = str(text)
    if limit <= 0:
        return ""
    if len(value) <= limit:
        return value
    if limit == 1:
        return ELLIPSIS
    cut = _whole_tokens(value, limit - 1, limit - 1) if markup else limit - 1
    return value[:cut].rstrip() + ELLIPSIS


_ESCAPE = re.compile(r"&(?:amp|lt|gt);")  # what ``escape`` writes


def _whole_tokens(text: str, cut: int, limit: int) -> int:
    """Where to cut ``text`` at or near ``cut`` (at most ``limit``) so that the part before keeps
    every Slack token whole (``<@U123>``, ``<https://…|a label with spaces>``, ``<!date^…>``) and
    every escape sequence (``&amp;``): Slack shows a token cut in two as raw markup.

    A cut inside a token moves before its ``<`` when that keeps at least half of ``limit``, else
    just after its ``>`` when that still fits, else before its ``<`` all the same; 0 means the
    token starts ``text`` and is longer than ``limit``, so no cut keeps it whole.
    """
    start = text.rfind("<", 0, cut)
    end = text.find(">", cut) if start != -1 and text.find(">", start, cut) == -1 else -1
    if end != -1:  # inside <start..end>
        cut = end + 1 if start < limit // 2 and end < limit else start
    amp = text.rfind("&", max(0, cut - len("&amp;") + 1), cut)
    found = _ESCAPE.match(text, amp) if amp != -1 else None
    return amp if found is not None and found.end() > cut else cut


def plain(text: object, limit: int) -> dict[str, Any]:
    """A ``plain_text`` object, truncated to ``limit`` and never empty (Slack refuses empty text)."""
    value = truncate(str(text).strip(), limit, markup=False)
    return {"type": "plain_text", "text": value or "-", "emoji": True}


def mrkdwn(text: object, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A ``mrkdwn`` object truncated to ``limit``; the caller escapes outside text first."""
    value = truncate(text, limit)
    return {"type": "mrkdwn", "text": value if value.strip() else "-"}


def section(text: str, limit: int = MAX_SECTION_TEXT, **extra: Any) -> dict[str, Any]:
    """A section block with mrkdwn text (already escaped by the caller)."""
    return {"type": "section", "text": mrkdwn(text, limit), **extra}


def context(*texts: str) -> dict[str, Any]:
    """A context block with up to 10 mrkdwn elements; extra elements are dropped."""
    elements = [mrkdwn(text, MAX_CONTEXT_TEXT) for text in texts[:MAX_CONTEXT_ELEMENTS]]
    return {"type": "context", "elements": elements or [mrkdwn("-")]}


def header(text: object) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def mention(user_id: str | None) -> str:
    """``<@U123>``, or ``-`` when nobody is set."""
    if not user_id:
        return "-"
    return f"<@{escape(user_id)}>"


def usergroup(group_id: str) -> str:
    return f"<!subteam^{escape(group_id)}>"


def slack_date(moment: datetime | None, style: str = "{date_short} {time}") -> str:
    """A Slack date token: shown in each reader's time zone, with a UTC fallback."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    fallback = aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(aware.timestamp())}^{style}|{fallback}>"


def plain_date(day: date) -> str:
    """A calendar day as Slack's ``{date_short}`` writes one ("Jan 15, 2027"), for a day that is
    no moment: a date token would show it in each reader's time zone."""
    return f"{day:%b} {day.day}, {day.year}"


def mention_list(users: Sequence[str], limit: int) -> str:
    """``users`` mentioned (each once), as many as fit in ``limit`` characters, then ``and N
    more``: a role with hundreds of holders must not take a message past Slack's limits (a
    review's approvers each get it by DM as well)."""
    unique = list(dict.fromkeys(users))
    room = limit - len(f" and {len(unique)} more")
    shown: list[str] = []
    used = -1  # no space before the first
    for user in unique:
        token = mention(user)
        used += 1 + len(token)
        if used > room:
            break
        shown.append(token)
    hidden = len(unique) - len(shown)
    return " ".join(shown) + (f" and {hidden} more" if hidden else "")


def bullet_list(
    items: Sequence[str],
    limit: int = MAX_SECTION_TEXT,
    max_items: int = 10,
    item_limit: int = 300,
    total: int | None = None,
) -> str:
    """Lines ``• item``, ending with ``• and N more`` when the items do not all fit.

    ``total``: how many items there are in all, when ``items`` holds only the first of them.
    """
    count = len(items) if total is None else max(total, len(items))
    shown: list[str] = []
    for item in items[:max_items]:
        line = "• " + truncate(item, item_limit)
        hidden = count - len(shown) - 1
        reserve = len(f"\n• and {hidden} more") if hidden > 0 else 0
        if shown and len("\n".join([*shown, line])) + reserve > limit:
            break
        shown.append(line)
    hidden = count - len(shown)
    if hidden:
        shown.append(f"• and {hidden} more")
    return truncate("\n".join(shown), limit)


def split_text(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Split long mrkdwn into pieces of at most ``limit`` characters, preferring paragraph, then
    line, then word boundaries, so each piece can be its own section block; never inside a
    Slack token or an escape sequence (``_whole_tokens``) shorter than a piece."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        # A token longer than a whole piece cannot stay whole: it is cut where the piece ends.
        cut = _whole_tokens(rest, cut, limit) or limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def more_block(hidden: int) -> dict[str, Any]:
    return context(f"…and {hidden} more")


def clamp_blocks(blocks: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """``blocks`` cut to at most ``limit``: when some must go, the last kept block is a context
    block saying how many were left out, so nothing disappears silently."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(blocks) <= limit:
        return list(blocks)
    kept = list(blocks[: limit - 1])
    return [*kept, more_block(len(blocks) - len(kept))]


def fit_blocks(blocks: Sequence[dict[str, Any]], limit: int, budget: int) -> list[dict[str, Any]]:
    """``clamp_blocks`` by size too: at most ``limit`` blocks and ``budget`` bytes of JSON (a
    view's 250 kB fills up long before its 100 blocks when answers are long and not ASCII)."""
    sizes = [json_bytes(block) for block in blocks]
    if len(blocks) <= limit and sum(sizes) <= budget:
        return list(blocks)
    kept: list[dict[str, Any]] = []
    used = json_bytes(more_block(len(blocks)))
    for block, size in zip(blocks, sizes, strict=True):
        if len(kept) == limit - 1 or used + size > budget:
            break
        kept.append(block)
        used += size
    return [*kept, more_block(len(blocks) - len(kept))]


def json_bytes(value: Any) -> int:
    """The size of ``value`` as Slack receives it: UTF-8 JSON."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
