"""The consoles every `shepherd` command writes with."""

from __future__ import annotations

from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """A console for a CLI module's output (``stderr=True``: its errors and problems).

    Soft wrap: a line is never broken at the console's width (80 columns when piped or in CI,
    even in the middle of a path), so each `file:line: message`, settings problem or row stays
    one line for grep, editors and CI problem matchers; a terminal still wraps it for the eye.
    """
    return Console(stderr=stderr, soft_wrap=True)
