"""The portfolio in Block Kit: the `/shepherd portfolio` reply and the App Home governance section."""

from __future__ import annotations

from typing import Any

from bot.blocks.labels import stage_label
from bot.blocks.text import clip, context, escape, header, mention, section, slack_date, split_text
from gates.portfolio import Portfolio

MAX_STALLED_SHOWN = 3
"""Stalled initiatives and overdue reviews App Home lists; `/shepherd portfolio` lists more."""

MAX_LISTED = 100
"""Stalled initiatives and overdue reviews `/shepherd portfolio` lists, each: in Slack, where an
executive reads what is stuck, not only on the command line (``shepherd portfolio``). A hundred
lines of at most ~450 characters take 15 sections; two lists and the rest stay under 50 blocks."""


def _more(hidden: int, shown: int) -> str:
    """The line after the first ``shown`` of a list, ``hidden`` left out: where to read them."""
    if shown < MAX_LISTED and hidden + shown <= MAX_LISTED:
        return f"… and {hidden} more (`/shepherd portfolio` lists them)"
    if shown < MAX_LISTED:
        return (
            f"… and {hidden} more (`/shepherd portfolio` lists {MAX_LISTED - shown} of them; "
            "`shepherd portfolio` on the command line, all)"
        )
    return f"… and {hidden} more (`shepherd portfolio` on the command line lists them all)"


def stage_lines(portfolio: Portfolio) -> list[str]:
    """One line per stage: how many are in it, how many reached it and went on, median days."""
    lines = []
    for figures in portfolio.stages:
        parts = [f"{figures.current} now"]
        if figures.on_hold or figures.in_review:
            parts.append(f"{figures.in_review} in review, {figures.on_hold} on hold")
        if figures.retired:
            parts.append(f"{figures.retired} retired here")
        reach = f"reached by {figures.reached}"
        if figures.conversion is not None:
            reach += f", {figures.conversion:.0%} went on"
        parts.append(reach)
        if figures.median_days is not None:
            parts.append(f"median {figures.median_days:g} days")
        lines.append(f"• *{escape(stage_label(figures.stage))}*: " + "; ".join(parts))
    return lines


def decisions_line(portfolio: Portfolio) -> str:
    counts = portfolio.decisions_last_30_days
    return (
        f"Decisions in the last {portfolio.window_days} days: {counts.get('approve', 0)} approved, "
        f"{counts.get('reject', 0)} rejected, {counts.get('request_changes', 0)} changes requested."
    )


def reasons_line(portfolio: Portfolio) -> str | None:
    if not portfolio.top_reasons:
        return None
    reasons = "; ".join(f"“{clip(r.reason, 80)}” ×{r.count}" for r in portfolio.top_reasons[:3])
    return f"Most common reasons for rejection or changes: {reasons}"


def stalled_lines(portfolio: Portfolio, limit: int = MAX_STALLED_SHOWN) -> list[str]:
    lines = [
        f"• *{escape(s.ref)}* {clip(s.name, 80)}: {s.days_in_stage:g} days in "
        f"{escape(stage_label(s.stage))}, owner {mention(s.owner_id)}"
        for s in portfolio.stalled[:limit]
    ]
    if len(portfolio.stalled) > limit:
        lines.append(_more(len(portfolio.stalled) - limit, limit))
    return lines


def overdue_operations_lines(portfolio: Portfolio, limit: int = MAX_STALLED_SHOWN) -> list[str]:
    """The systems in operations whose periodic review is overdue: stuck, as stalled ones are."""
    overdue = portfolio.overdue_operations
    lines = [
        f"• *{escape(o.ref)}* {clip(o.name, 80)}: due {slack_date(o.due, '{date_short}')}, "
        f"{o.days_overdue:g} days overdue, owner {mention(o.owner_id)}"
        for o in overdue[:limit]
    ]
    if len(overdue) > limit:
        lines.append(_more(len(overdue) - limit, limit))
    return lines


def overdue_count(portfolio: Portfolio) -> str:
    """ ", 2 periodic reviews overdue" when there are any, else nothing."""
    count = len(portfolio.overdue_operations)
    if not count:
        return ""
    return f", {count} periodic review{'s' if count > 1 else ''} overdue"


def summary_text(portfolio: Portfolio) -> str:
    """A one-line fallback for notifications."""
    return (
        f"Portfolio: {portfolio.total} initiatives, {len(portfolio.stalled)} stalled"
        f"{overdue_count(portfolio)}, {portfolio.open_reviews} reviews open."
    )


def portfolio_message(portfolio: Portfolio, chart_follows: bool = True) -> dict[str, Any]:
    """The `/shepherd portfolio` reply (ephemeral), under Slack's 50 blocks by construction."""
    blocks: list[dict[str, Any]] = [
        header("AI portfolio"),
        section(
            f"*{portfolio.total}* initiatives · *{len(portfolio.stalled)}* stalled · "
            + (
                f"*{len(portfolio.overdue_operations)}* periodic reviews overdue · "
                if portfolio.overdue_operations
                else ""
            )
            + f"*{portfolio.open_reviews}* reviews open"
        ),
        section("\n".join(stage_lines(portfolio))),
        section(decisions_line(portfolio)),
    ]
    reasons = reasons_line(portfolio)
    if reasons:
        blocks.append(section(reasons))
    stalled = stalled_lines(portfolio, limit=MAX_LISTED)
    if stalled:
        blocks += _listed("*Stalled (past their stage's time box)*", stalled)
    overdue = overdue_operations_lines(portfolio, limit=MAX_LISTED)
    if overdue:
        blocks += _listed("*Periodic operations reviews overdue*", overdue)
    if chart_follows:
        blocks.append(context("The chart of the funnel and time in stage follows in this channel."))
    return {"text": summary_text(portfolio), "blocks": blocks}


def _listed(title: str, lines: list[str]) -> list[dict[str, Any]]:
    """A titled list as as many sections as its length takes, split between lines."""
    return [section(piece) for piece in split_text(title + "\n" + "\n".join(lines))]


def home_governance_section(portfolio: Portfolio) -> list[dict[str, Any]]:
    """Six blocks at most for App Home, so the tab stays under 100 blocks."""
    overdue_part = overdue_count(portfolio).removeprefix(", ")
    blocks: list[dict[str, Any]] = [
        section(
            f"*Portfolio* · {portfolio.total} initiatives · {len(portfolio.stalled)} stalled · "
            + (f"{overdue_part} · " if overdue_part else "")
            + f"{portfolio.open_reviews} reviews open"
        ),
        section("\n".join(stage_lines(portfolio))),
    ]
    stalled = stalled_lines(portfolio)
    if stalled:
        blocks.append(section("*Stalled*\n" + "\n".join(stalled)))
    overdue = overdue_operations_lines(portfolio)
    if overdue:
        blocks.append(section("*Periodic reviews overdue*\n" + "\n".join(overdue)))
    notes = [decisions_line(portfolio)]
    reasons = reasons_line(portfolio)
    if reasons:
        notes.append(reasons)
    blocks.append(context(*notes))
    blocks.append(context("`/shepherd portfolio` posts the chart; `shepherd portfolio --png FILE` saves it."))
    return blocks
