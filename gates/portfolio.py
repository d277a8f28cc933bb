"""The portfolio: where every initiative stands, how many make it through each gate, how long
each stage takes, what is stuck, and why reviews say no.

``compute_portfolio`` is pure (initiatives, reviews and ``now`` in, figures out). Stage history
is rebuilt from approved reviews: an initiative enters the first stage when it is registered and
each approved review moves it from ``from_stage`` to ``to_stage`` at ``closed_at``, which is
exactly when ``decide`` advances it. ``load_portfolio`` reads what it needs through the ports.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gates.lifecycle import DecisionKind, Initiative, Review, ReviewStatus, Status
from gates.loader import CompiledPipeline
from gates.operations import review_plans
from gates.ports import InitiativeFilter, OperationsReview, OperationsUnitOfWork
from gates.schedule import NO_PLAN, ReviewPlan, operations_review_due, operations_review_overdue
from gates.usecases import is_stalled

DECISION_WINDOW_DAYS = 30
TOP_REASONS = 5
_PAGE = 500
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage: who is in it now, how many ever reached it, how long they stay."""

    stage: str
    active: int
    in_review: int
    on_hold: int
    retired: int
    reached: int
    """Initiatives that ever entered this stage (the funnel)."""
    advanced: int
    """Of those, how many went on to the next stage (0 for the last stage)."""
    conversion: float | None
    """advanced / reached; None for the last stage or when nobody reached it."""
    median_days: float | None
    """Median over completed stays (entered, then advanced) and current stays (still there)."""
    median_days_completed: float | None
    median_days_current: float | None

    @property
    def current(self) -> int:
        """Initiatives sitting in this stage now and not retired."""
        return self.active + self.in_review + self.on_hold


@dataclass(frozen=True, slots=True)
class StalledInitiative:
    ref: str
    name: str
    stage: str
    owner_id: str
    days_in_stage: float


@dataclass(frozen=True, slots=True)
class OverdueOperationsReview:
    """A system in operations whose periodic review is past its due date and the grace."""

    ref: str
    name: str
    owner_id: str
    due: datetime
    days_overdue: float
    """Days since the review fell due."""


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    """The first wording seen for the group, as a person wrote it."""
    count: int
    kinds: tuple[str, ...]
    """Which decisions gave it: ``reject``, ``request_changes`` or both."""


@dataclass(frozen=True, slots=True)
class Portfolio:
    generated_at: datetime
    total: int
    stages: tuple[StageFigures, ...]
    stalled: tuple[StalledInitiative, ...]
    decisions_last_30_days: dict[str, int]
    top_reasons: tuple[ReasonCount, ...]
    open_reviews: int
    window_days: int = DECISION_WINDOW_DAYS
    notes: tuple[str, ...] = field(default_factory=tuple)
    overdue_operations: tuple[OverdueOperationsReview, ...] = field(default_factory=tuple)
    """Systems whose periodic operations review is overdue, longest overdue first."""

    def stage(self, stage: str) -> StageFigures:
        return next(s for s in self.stages if s.stage == stage)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-serialisable data (the CLI's ``--json``)."""
        data = asdict(self)
        data["generated_at"] = _iso(self.generated_at)
        for figures, stage in zip(data["stages"], self.stages, strict=True):
            figures["current"] = stage.current
        data["top_reasons"] = [
            {"reason": r.reason, "count": r.count, "kinds": list(r.kinds)} for r in self.top_reasons
        ]
        data["notes"] = list(self.notes)
        for item, overdue in zip(data["overdue_operations"], self.overdue_operations, strict=True):
            item["due"] = _iso(overdue.due)
        data["overdue_operations"] = list(data["overdue_operations"])
        return data


@dataclass(frozen=True, slots=True)
class Stay:
    """One initiative's time in one stage; ``left`` is None while it is still there."""

    stage: str
    entered: datetime
    left: datetime | None


def stays(stages: Sequence[str], initiative: Initiative, reviews: Sequence[Review]) -> list[Stay]:
    """The stages the initiative went through, oldest first, from its approved reviews."""
    moves = sorted(
        (r for r in reviews if r.status is ReviewStatus.APPROVED and r.closed_at is not None),
        key=lambda r: _aware(r.closed_at),
    )
    found: list[Stay] = []
    stage, entered = (stages[0] if stages else initiative.stage), _aware(initiative.created_at)
    for review in moves:
        at = _aware(review.closed_at)
        found.append(Stay(review.from_stage, entered, at))
        stage, entered = review.to_stage, at
    if stage != initiative.stage:
        # History that reviews do not explain (an imported initiative): trust the record's stage.
        stage = initiative.stage
    found.append(Stay(stage, _aware(initiative.stage_entered_at or entered), None))
    return found


def normalise_reason(text: str) -> str:
    """Group key for a free-text reason: lower case, words only, single spaces."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def compute_portfolio(
    pipeline: CompiledPipeline,
    initiatives: Sequence[Initiative],
    reviews: Sequence[Review],
    now: datetime,
    latest_operations_reviews: Mapping[str, OperationsReview] | None = None,
    plans: Mapping[str, ReviewPlan] | None = None,
) -> Portfolio:
    """Figures for the whole portfolio at ``now``.

    ``latest_operations_reviews`` and ``plans`` (the latest periodic review and the handover's
    review plan per ref, as for ``gates.schedule.due_events``) find the overdue periodic reviews.

    Retired initiatives count in the funnel for the stages they reached, but their last stay is
    left out of the medians: it ended in retirement, not in a move forward nor ongoing.
    """
    now = _aware(now)
    stages = list(pipeline.model.stages)
    index = {stage: i for i, stage in enumerate(stages)}
    by_ref: dict[str, list[Review]] = {}
    for review in reviews:
        by_ref.setdefault(review.initiative_ref, []).append(review)

    status_counts: dict[str, Counter[Status]] = {stage: Counter() for stage in stages}
    reached: Counter[str] = Counter()
    completed: dict[str, list[float]] = {stage: [] for stage in stages}
    current: dict[str, list[float]] = {stage: [] for stage in stages}
    notes: list[str] = []
    for initiative in initiatives:
        if initiative.stage not in index:
            notes.append(
                f"{initiative.ref} is in stage {initiative.stage!r}, which the pipeline no longer has."
            )
            continue
        status_counts[initiative.stage][initiative.status] += 1
        for stage in stages[: index[initiative.stage] + 1]:
            reached[stage] += 1
        for stay in stays(stages, initiative, by_ref.get(initiative.ref, [])):
            if stay.stage not in index:
                continue
            if stay.left is not None:
                completed[stay.stage].append(_days(stay.left - stay.entered))
            elif initiative.status is not Status.RETIRED:
                current[stay.stage].append(_days(now - stay.entered))

    figures = []
    for i, stage in enumerate(stages):
        counts = status_counts[stage]
        advanced = reached[stages[i + 1]] if i + 1 < len(stages) else 0
        last = i + 1 == len(stages)
        figures.append(
            StageFigures(
                stage=stage,
                active=counts[Status.ACTIVE],
                in_review=counts[Status.IN_REVIEW],
                on_hold=counts[Status.ON_HOLD],
                retired=counts[Status.RETIRED],
                reached=reached[stage],
                advanced=advanced,
                conversion=None if last or not reached[stage] else round(advanced / reached[stage], 4),
                median_days=_median(completed[stage] + current[stage]),
                median_days_completed=_median(completed[stage]),
                median_days_current=_median(current[stage]),
            )
        )

    stalled = sorted(
        (
            StalledInitiative(
                i.ref,
                i.name,
                i.stage,
                i.owner_id,
                round(_days(now - _aware(i.stage_entered_at or i.created_at)), 1),
            )
            for i in initiatives
            if is_stalled(pipeline, i, now)
        ),
        key=lambda s: (-s.days_in_stage, s.ref),
    )

    latest, plan_of = latest_operations_reviews or {}, plans or {}
    overdue = []
    for system in initiatives:
        plan, previous = plan_of.get(system.ref, NO_PLAN), latest.get(system.ref)
        if operations_review_overdue(pipeline, system, previous, now, plan):
            due = operations_review_due(pipeline, system, previous, plan)
            assert due is not None
            days = round(_days(now - _aware(due)), 1)
            overdue.append(OverdueOperationsReview(system.ref, system.name, system.owner_id, due, days))
    overdue.sort(key=lambda o: (-o.days_overdue, o.ref))

    since = now - timedelta(days=DECISION_WINDOW_DAYS)
    recent: dict[str, int] = {kind.value: 0 for kind in DecisionKind}
    groups: dict[str, tuple[str, int, set[str]]] = {}
    for review in reviews:
        for decision in review.decisions:
            if _aware(decision.decided_at) >= since:
                recent[decision.kind.value] += 1
            if decision.kind is DecisionKind.APPROVE or not decision.reason:
                continue
            key = normalise_reason(decision.reason)
            if not key:
                continue
            first, count, kinds = groups.get(key, (" ".join(decision.reason.split()), 0, set()))
            groups[key] = (first, count + 1, kinds | {decision.kind.value})
    top = sorted(groups.items(), key=lambda item: (-item[1][1], item[0]))[:TOP_REASONS]

    return Portfolio(
        generated_at=now,
        total=sum(1 for i in initiatives if i.stage in index),
        stages=tuple(figures),
        stalled=tuple(stalled),
        decisions_last_30_days=recent,
        top_reasons=tuple(
            ReasonCount(first, count, tuple(sorted(kinds))) for _, (first, count, kinds) in top
        ),
        open_reviews=sum(1 for r in reviews if r.is_open),
        notes=tuple(notes),
        overdue_operations=tuple(overdue),
    )


def load_portfolio(pipeline: CompiledPipeline, uow: OperationsUnitOfWork, now: datetime) -> Portfolio:
    """Read every initiative, review and latest periodic review (and the handover's review
    plans of the systems in operations), and compute."""
    initiatives: list[Initiative] = []
    with uow:
        while True:
            page = uow.initiatives.list(InitiativeFilter(limit=_PAGE, offset=len(initiatives)))
            initiatives.extend(page)
            if len(page) < _PAGE:
                break
        reviews = list(uow.reviews.all_reviews())
        latest = uow.operations.latest_reviews()
        plans = review_plans(pipeline, uow, initiatives)
    return compute_portfolio(pipeline, initiatives, reviews, now, latest, plans)


def _days(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds() / _SECONDS_PER_DAY)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _aware(at: datetime | None) -> datetime:
    assert at is not None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _iso(at: datetime) -> str:
    return _aware(at).astimezone(UTC).isoformat(timespec="seconds")
