"""The portfolio in Block Kit: the `/shepherd portfolio` reply and the App Home governance section."""

from __future__ import annotations

from typing import Any

from bot.blocks.labels import stage_label
from bot.blocks.text import clip, context, escape, header, mention, section
from gates.portfolio import Portfolio

MAX_STALLED_SHOWN = 5


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
        lines.append(f"… and {len(portfolio.stalled) - limit} more (`shepherd portfolio` lists them all)")
    return lines


def summary_text(portfolio: Portfolio) -> str:
    """A one-line fallback for notifications."""
    return (
        f"Portfolio: {portfolio.total} initiatives, {len(portfolio.stalled)} stalled, "
        f"{portfolio.open_reviews} reviews open."
    )


def portfolio_message(portfolio: Portfolio, chart_follows: bool = True) -> dict[str, Any]:
    """The `/shepherd portfolio` reply (ephemeral), under Slack's 50 blocks by construction."""
    blocks: list[dict[str, Any]] = [
        header("AI portfolio"),
        section(
            f"*{portfolio.total}* initiatives · *{len(portfolio.stalled)}* stalled · "
            f"*{portfolio.open_reviews}* reviews open"
        ),
        section("\n".join(stage_lines(portfolio))),
        section(decisions_line(portfolio)),
    ]
    reasons = reasons_line(portfolio)
    if reasons:
        blocks.append(section(reasons))
    stalled = stalled_lines(portfolio)
    if stalled:
        blocks.append(section("*Stalled (past their stage's time box)*\n" + "\n".join(stalled)))
    if chart_follows:
        blocks.append(context("The chart of the funnel and time in stage follows in this channel."))
    return {"text": summary_text(portfolio), "blocks": blocks}


def home_governance_section(portfolio: Portfolio) -> list[dict[str, Any]]:
    """Five blocks at most for App Home, so the tab stays under 100 blocks."""
    blocks: list[dict[str, Any]] = [
        section(
            f"*Portfolio* · {portfolio.total} initiatives · {len(portfolio.stalled)} stalled · "
            f"{portfolio.open_reviews} reviews open"
        ),
        section("\n".join(stage_lines(portfolio))),
    ]
    stalled = stalled_lines(portfolio, limit=3)
    if stalled:
        blocks.append(section("*Stalled*\n" + "\n".join(stalled)))
    notes = [decisions_line(portfolio)]
    reasons = reasons_line(portfolio)
    if reasons:
        notes.append(reasons)
    blocks.append(context(*notes))
    blocks.append(context("`/shepherd portfolio` posts the chart; `shepherd portfolio --png FILE` saves it."))
    return blocks
