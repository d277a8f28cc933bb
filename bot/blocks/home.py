"""The App Home tab: my initiatives, approvals waiting for me, recent decisions, paged.

One page index moves all three lists together; each list shows ``page_size`` items, so the tab
stays under Slack's 100 blocks however long the lists grow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from typing import Any

from bot import ids
from bot.blocks.labels import (
    REVIEW_EMOJI,
    REVIEW_WORDS,
    STATUS_WORDS,
    gate_title,
    remaining_text,
    stage_label,
)
from bot.blocks.messages import button, decision_buttons, progress_line
from bot.blocks.text import (
    MAX_SECTION_TEXT,
    MAX_VIEW_BLOCKS,
    clamp_blocks,
    clip,
    context,
    divider,
    escape,
    header,
    mention,
    section,
    slack_date,
    truncate,
)
from gates.lifecycle import Initiative, Review, Status
from gates.loader import CompiledPipeline
from gates.readiness import Readiness

MAX_GOVERNANCE_BLOCKS = 6
"""The portfolio section for governance leads; the lists below are clamped around it."""

MAX_HOME_PAGE_SIZE = 20
"""Four blocks an item at most (a pending approval takes two) plus the frame stay under 100."""

HOME_PAGE_SIZE = 10
"""Items each list shows on a page, unless the caller asks for another size."""


def _gate_words(pipeline: CompiledPipeline | None, gate_id: str) -> str:
    return gate_title(pipeline, gate_id) if pipeline is not None else gate_id.replace("_", " ").capitalize()


def _needed(pipeline: CompiledPipeline | None, review: Review) -> str:
    remaining = review.remaining()
    if pipeline is not None:
        return remaining_text(pipeline, remaining)
    return ", ".join(f"{n} × {role}" for role, n in remaining.items()) or "none"


def _initiative_item(
    initiative: Initiative, readiness: Readiness | None, stalled: bool = False, user_id: str | None = None
) -> dict[str, Any]:
    status = STATUS_WORDS[initiative.status] + (" · :warning: past its time box" if stalled else "")
    # Listed to its sponsor too (``bot.home``), said as `/shepherd status` says it.
    sponsored = (
        f" · you sponsor it for {mention(initiative.owner_id)}"
        if user_id is not None and initiative.owner_id != user_id
        else ""
    )
    text = (
        f"*{clip(initiative.name, 200)}* · {escape(initiative.ref)}\n"
        f"{escape(stage_label(initiative.stage))} · {status}{sponsored}\n"
        f"{progress_line(initiative, readiness)}"
    )
    block = section(text)
    if initiative.status is not Status.RETIRED and readiness is not None:
        block["accessory"] = button("Answer questions", ids.ACTION_OPEN_QUESTIONNAIRE, initiative.ref)
    return block


def _pending_item(
    pipeline: CompiledPipeline | None, review: Review, initiative: Initiative
) -> list[dict[str, Any]]:
    needed = escape(_needed(pipeline, review))
    text = (
        f"*{clip(initiative.name, 200)}* · {escape(initiative.ref)} · "
        f"{escape(_gate_words(pipeline, review.gate_id))} gate\n"
        f"Submitted by {mention(review.submitted_by)} {slack_date(review.submitted_at)} · "
        f"still needed: {needed}"
    )
    warning = "\n:warning: Submitted as an exception" if review.exception_reason else ""
    # The warning is kept whole however long the rest is (pipeline labels have no cap).
    blocks = [section(truncate(text, MAX_SECTION_TEXT - len(warning)) + warning)]
    actions = {
        "type": "actions",
        "block_id": f"home:review:{review.id}",
        "elements": decision_buttons(str(review.id), initiative),
    }
    return [*blocks, actions]


def _recent_item(pipeline: CompiledPipeline | None, review: Review, initiative: Initiative) -> dict[str, Any]:
    when = slack_date(review.closed_at or review.submitted_at, "{date_short}")
    return context(
        f"{REVIEW_EMOJI[review.status]} *{clip(initiative.name, 200)}* · {escape(initiative.ref)} · "
        f"{escape(_gate_words(pipeline, review.gate_id))} gate {REVIEW_WORDS[review.status]} · {when}"
    )


def _window(items: Sequence[Any], page: int, size: int) -> Sequence[Any]:
    return items[page * size : (page + 1) * size]


def home_page_size(page_size: int) -> int:
    """The page size ``home_view`` uses when asked for ``page_size``."""
    return max(1, min(page_size, MAX_HOME_PAGE_SIZE))


def home_pages(page_size: int, *lengths: int) -> int:
    """How many pages lists of ``lengths`` items fill, ``page_size`` to a page (one at least)."""
    size = home_page_size(page_size)
    return max(1, *(math.ceil(length / size) for length in lengths))


def home_page(page: int, page_size: int, *lengths: int) -> int:
    """``page`` clamped to the pages that lists of ``lengths`` items fill, as ``home_view``
    clamps it: a caller that reads only the page shown reads the page that is shown."""
    return max(0, min(page, home_pages(page_size, *lengths) - 1))


def _nav(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": [element]}


def home_view(
    user_id: str,
    my_initiatives: Sequence[tuple[Initiative, Readiness | None]],
    pending: Sequence[tuple[Review, Initiative]],
    recent: Sequence[tuple[Review, Initiative]],
    page: int = 0,
    page_size: int = HOME_PAGE_SIZE,
    *,
    pipeline: CompiledPipeline | None = None,
    governance: Sequence[dict[str, Any]] | None = None,
    stalled: Collection[str] = (),
    my_count: int | None = None,
) -> dict[str, Any]:
    """The Home tab for ``user_id``. ``page`` is clamped to the pages that exist; the Previous /
    Next buttons carry the page number to show in their value (``ids.ACTION_HOME_PAGE``).
    With ``pipeline``, gates and roles show their labels instead of their ids. ``governance``
    (blocks, for governance leads) goes first, so clamping to 100 blocks never drops it.
    With ``my_count`` (how many initiatives the user owns or sponsors), ``my_initiatives`` is only those of
    the page to show (``home_page`` says which): an owner of hundreds is not read whole."""
    size = home_page_size(page_size)
    # A review listed twice would repeat its block_id, which Slack rejects.
    pending = list({review.id: (review, initiative) for review, initiative in pending}.values())
    owned = len(my_initiatives) if my_count is None else my_count
    pages = home_pages(size, owned, len(pending), len(recent))
    page = max(0, min(page, pages - 1))

    body: list[dict[str, Any]] = [
        header("Shepherd"),
        context(
            f"Hello {mention(user_id)}: your initiatives, the approvals waiting for you and the recent "
            "decisions on your initiatives."
        ),
        divider(),
    ]
    if governance:
        body += [*governance[:MAX_GOVERNANCE_BLOCKS], divider()]
    body.append(section(f"*My initiatives* ({owned})"))
    mine = _window(my_initiatives, page, size) if my_count is None else my_initiatives[:size]
    if mine:
        body += [
            _initiative_item(initiative, readiness, initiative.ref in stalled, user_id)
            for initiative, readiness in mine
        ]
    elif not owned:
        body.append(context(f"You own or sponsor no initiatives yet. Register one with `{ids.COMMAND} new`."))
    else:
        body.append(context("Nothing more on this page."))

    body += [divider(), section(f"*Approvals waiting for me* ({len(pending)})")]
    waiting = _window(pending, page, size)
    if waiting:
        for review, initiative in waiting:
            body += _pending_item(pipeline, review, initiative)
    else:
        body.append(context("Nothing waiting for you." if not pending else "Nothing more on this page."))

    # Decisions on the initiatives listed above (``bot.home``), not the ones the reader gave: an
    # approver who just approved must not read "No decisions yet." under it.
    body += [divider(), section("*Recent decisions on my initiatives*")]
    latest = _window(recent, page, size)
    if latest:
        body += [_recent_item(pipeline, review, initiative) for review, initiative in latest]
    else:
        body.append(
            context("No decisions on your initiatives yet." if not recent else "Nothing more on this page.")
        )

    footer: list[dict[str, Any]] = []
    if pages > 1:
        footer = [divider(), context(f"Page {page + 1} of {pages}")]
        # One block each: Slack refuses a block whose elements repeat an action_id, and both
        # buttons are ACTION_HOME_PAGE (one listener, the page to show in the value).
        if page > 0:
            footer.append(
                _nav("home:pages:previous", button("Previous", ids.ACTION_HOME_PAGE, str(page - 1)))
            )
        if page < pages - 1:
            footer.append(_nav("home:pages:next", button("Next", ids.ACTION_HOME_PAGE, str(page + 1))))
    blocks = clamp_blocks(body, MAX_VIEW_BLOCKS - len(footer)) + footer
    return {
        "type": "home",
        "private_metadata": json.dumps({"page": page}),
        "blocks": blocks,
    }
