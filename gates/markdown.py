"""Text people typed, put into the Markdown Shepherd writes (the evidence pack, the system card).

An answer is evidence: a reader of the rendered pack must see what was typed, not HTML it
smuggled in (``<img onerror=...>``) or a link it dressed up (``[DPIA signed](https://...)``).
``markdown_text`` makes any text render (CommonMark, GitHub) as exactly itself.
"""

from __future__ import annotations

import re

# Backslash escapes for what starts emphasis, code, links, strikethrough and table cells (a
# backslash itself first: translate maps each character once), entities for what starts HTML,
# autolinks, blockquotes and entities themselves.
_INLINE = str.maketrans({c: "\\" + c for c in "\\`*_[]~|"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# At the start of a line, what would begin a heading (# to ######, then a space), a list item
# (- + 1. 1), then a space) or a setext underline or rule (=, -): "18.5%" or "-3" stay as they are.
_BLOCK_START = re.compile(
    r"^([ \t]*)(?:(#)(?=#{0,5}(?:[ \t]|$))|([-+=])(?=[ \t]|$|[-=])|(\d{1,9})([.)])(?=[ \t]|$))",
    re.MULTILINE,
)


def markdown_text(value: object) -> str:
    """``value`` as Markdown source that renders as the literal text, wherever it is placed."""
    escaped = str(value).translate(_INLINE)
    return _BLOCK_START.sub(_escape_block_start, escaped)


def _escape_block_start(match: re.Match[str]) -> str:
    indent, hash_mark, marker, number, delimiter = match.groups()
    if number is not None:
        return f"{indent}{number}\\{delimiter}"
    return f"{indent}\\{hash_mark or marker}"
