"""The portfolio chart: the funnel (initiatives reaching each stage) beside the median days in
each stage, as PNG bytes.

Rendered with matplotlib's Agg canvas on a ``Figure`` of its own (not ``pyplot``): no display,
no global state, safe from Bolt's worker threads.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gates.portfolio import Portfolio

WIDTH_PX = 1200
HEIGHT_PX = 600
DPI = 100

_FUNNEL = "#2f6db5"
_MEDIAN = "#e08a2c"


def render_png(portfolio: Portfolio, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX) -> bytes:
    """The chart as a PNG of exactly ``width_px`` x ``height_px`` pixels."""
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    funnel, medians = figure.subplots(1, 2)
    stages = [s.stage for s in portfolio.stages]
    labels = [stage.replace("_", " ") for stage in stages]
    positions = list(range(len(stages)))

    reached = [s.reached for s in portfolio.stages]
    bars = funnel.barh(positions, reached, color=_FUNNEL)
    funnel.set_yticks(positions, labels)
    funnel.invert_yaxis()
    funnel.set_title("Initiatives reaching each stage")
    funnel.set_xlabel("initiatives")
    for bar, figures in zip(bars, portfolio.stages, strict=True):
        note = f"{figures.reached}"
        if figures.conversion is not None:
            note += f"  ({figures.conversion:.0%} went on)"
        funnel.annotate(
            note,
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    funnel.set_xlim(0, max([1, *reached]) * 1.5)

    days = [s.median_days or 0.0 for s in portfolio.stages]
    bars = medians.barh(positions, days, color=_MEDIAN)
    medians.set_yticks(positions, labels)
    medians.invert_yaxis()
    medians.set_title("Median days in stage (completed and current stays)")
    medians.set_xlabel("days")
    for bar, figures in zip(bars, portfolio.stages, strict=True):
        text = "-" if figures.median_days is None else f"{figures.median_days:g}"
        medians.annotate(
            text,
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    medians.set_xlim(0, max([1.0, *days]) * 1.3)

    stalled = len(portfolio.stalled)
    figure.suptitle(
        f"Shepherd portfolio: {portfolio.total} initiatives, {stalled} stalled, "
        f"{portfolio.open_reviews} reviews open · {portfolio.generated_at:%Y-%m-%d}"
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
