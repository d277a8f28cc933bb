"""What is due at a given moment: stalled initiatives, review reminders and escalations, and
periodic operations reviews. Pure: the state and ``now`` come in, events go out.

Every event carries a ``key`` that names the occurrence, not the moment it was noticed
(``stalled:AI-0003:poc:20261201T090000Z`` is "AI-0003's PoC time box ending on 1 December at
09:00 UTC"). However many schedulers notice it, however often, storage records each key once and
only the first records the notification, so each occurrence reaches people exactly once. A new
occurrence gets a new key: an extended time box ends at another moment (even on the same day),
a reminder is named by the moment it fell due.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from gates.answers import AnswerValue
from gates.lifecycle import Initiative, Review, Status
from gates.loader import CompiledPipeline
from gates.ports import OperationsReview
from gates.usecases import is_stalled, time_box_ends


class EventKind(StrEnum):
    """Outbox kinds of scheduled events."""

    STALLED = "schedule.stalled"
    REMINDER = "schedule.review_reminder"
    ESCALATION = "schedule.review_escalation"
    OPERATIONS_DUE = "schedule.operations_review_due"
    OPERATIONS_OVERDUE = "schedule.operations_review_overdue"


@dataclass(frozen=True, slots=True)
class LegacyKey:
    """The key an occurrence had in an older Shepherd (a stalled notice was keyed by the day its
    time box ended); it fired for this occurrence if it fired after ``covers_if_fired_after``."""

    key: str
    covers_if_fired_after: datetime


@dataclass(frozen=True, slots=True)
class DueEvent:
    kind: EventKind
    key: str
    ref: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    legacy: LegacyKey | None = None


def moment_key(moment: datetime) -> str:
    """An exact moment as a short key part, in UTC: ``20261202T090000Z`` (``.123456`` before the
    ``Z`` when it has microseconds). Two moments get the same text only if they are equal."""
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y%m%dT%H%M%S") + fraction + "Z"


def legacy_stalled_key(ref: str, stage: str, ends: datetime) -> str:
    """The key a stalled notice had before keys named the exact end: only the day."""
    return f"stalled:{ref}:{stage}:{ends.date().isoformat()}"


class EventSubject(NamedTuple):
    """What a scheduled event is about: a review (reminders, escalations) or an initiative."""

    review_id: int | None = None
    ref: str | None = None


_REVIEW_EVENTS = ("remind", "escalate")
_INITIATIVE_EVENTS = ("stalled", "opsreview", "opsoverdue")


def subject_of(key: str) -> EventSubject | None:
    """The review or initiative the event ``key`` is about (legacy keys included); None for a
    key this Shepherd does not make.

    ``due_events`` only makes keys about open reviews and about initiatives that are not
    retired, and neither ever comes back: once a key's subject is closed or retired, the key is
    never due again, so its fired record can go (``storage.retention``).
    """
    kind, _, rest = key.partition(":")
    subject = rest.split(":", 1)[0]
    if kind in _REVIEW_EVENTS and subject.isdigit():
        return EventSubject(review_id=int(subject))
    if kind in _INITIATIVE_EVENTS and subject:
        return EventSubject(ref=subject)
    return None


MAX_CADENCE_MONTHS = 120
"""A cadence answer beyond this (or not above zero) is no cadence: the pipeline's applies."""


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    """What the team said at handover about the system's periodic reviews
    (``Pipeline.operations_cadence_question_id``, ``operations_first_review_question_id``);
    None where they did not, and the pipeline's ``review_every_days`` applies."""

    every_months: float | None = None
    first_on: date | None = None
    resumed_at: datetime | None = None
    """When the system last came back from a hold, during which nobody could record its review
    (nor was told of it): the grace before a review is overdue runs from then at the earliest."""


NO_PLAN = ReviewPlan()


def review_plan(pipeline: CompiledPipeline, answers: Mapping[str, AnswerValue | None]) -> ReviewPlan:
    """The review plan in an initiative's current answers (question id -> value)."""
    model = pipeline.model
    months = answers.get(model.operations_cadence_question_id or "")
    first = answers.get(model.operations_first_review_question_id or "")
    every = (
        float(months)
        if isinstance(months, int | float)
        and not isinstance(months, bool)
        and 0 < months <= MAX_CADENCE_MONTHS
        else None
    )
    try:
        first_on = date.fromisoformat(first) if isinstance(first, str) else None
    except ValueError:
        first_on = None
    return ReviewPlan(every, first_on)


def next_review_after(pipeline: CompiledPipeline, plan: ReviewPlan, moment: datetime) -> datetime:
    """When the review after one at ``moment`` falls due: the team's cadence in calendar
    months (every 3 months from 1 March is 1 June), else the pipeline's ``review_every_days``."""
    operations = pipeline.model.operations
    if plan.every_months is None:
        return moment + timedelta(days=operations.review_every_days if operations else 90)
    whole = int(plan.every_months)
    month = moment.month - 1 + whole
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    # A fractional cadence (1.5 months) adds the fraction as days of an average month.
    return moment.replace(year=year, month=month, day=day) + timedelta(
        days=round((plan.every_months - whole) * 365.25 / 12)
    )


FIRST_REVIEW_TIME = time(12, 0, tzinfo=UTC)
"""When on the day the team named the first review falls due: noon UTC is that day in the
time zones from UTC-11 to UTC+11, so the notice and its date read as the day they gave."""


def due_events(
    pipeline: CompiledPipeline,
    initiatives: Iterable[Initiative],
    open_reviews: Iterable[Review],
    latest_reviews: Mapping[str, OperationsReview],
    now: datetime,
    plans: Mapping[str, ReviewPlan] | None = None,
) -> list[DueEvent]:
    """Every event due at ``now``, sorted by key (already fired ones included: storage skips them).

    Args:
        initiatives: initiatives to consider (retired and on-hold ones are ignored).
        open_reviews: reviews waiting for decisions.
        latest_reviews: the most recent periodic operations review per initiative ref.
        plans: the review plan given at handover per initiative ref (none: the pipeline's).
    """
    events: list[DueEvent] = []
    for initiative in initiatives:
        events += _stalled(pipeline, initiative, now)
        plan = (plans or {}).get(initiative.ref, NO_PLAN)
        events += _operations(pipeline, initiative, latest_reviews.get(initiative.ref), now, plan)
    for review in open_reviews:
        events += _review_events(pipeline, review, now)
    return sorted(events, key=lambda event: event.key)


def operations_review_due(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    latest: OperationsReview | None,
    plan: ReviewPlan = NO_PLAN,
) -> datetime | None:
    """When the initiative's next periodic review is due; None outside the operations stage.

    After a review, the due date it set; before the first, the day the team gave at handover
    (``plan.first_on``; at once on entering the stage if that day is already past), else one
    cadence after entering the stage.
    """
    operations = pipeline.model.operations
    if operations is None or initiative.stage != pipeline.model.operations_stage:
        return None
    if latest is not None:
        return latest.next_due
    entered = initiative.stage_entered_at or initiative.created_at
    if plan.first_on is not None:
        return max(datetime.combine(plan.first_on, FIRST_REVIEW_TIME), entered)
    return next_review_after(pipeline, plan, entered)


def operations_review_overdue(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    latest: OperationsReview | None,
    now: datetime,
    plan: ReviewPlan = NO_PLAN,
) -> bool:
    """True when the periodic review is past its due date (or the system's resume from a hold,
    if later) plus the pipeline's grace."""
    due = operations_review_due(pipeline, initiative, latest, plan)
    operations = pipeline.model.operations
    if due is None or operations is None or initiative.status is not Status.ACTIVE:
        return False
    # Held past its due date, it is due at once on resume and overdue a grace later: not
    # escalated before anyone could record it, or was even told it was due.
    grace_from = max(due, plan.resumed_at) if plan.resumed_at is not None else due
    return now >= grace_from + timedelta(days=operations.overdue_after_days)


def _stalled(pipeline: CompiledPipeline, initiative: Initiative, now: datetime) -> list[DueEvent]:
    # is_stalled leaves out one in review: it waits for its approvers, who are reminded of their own.
    if not is_stalled(pipeline, initiative, now):
        return []
    ends = time_box_ends(pipeline, initiative)
    assert ends is not None
    # Keyed by the exact end: a box extended to the end of the day it ran out ends again that
    # night, and that is a new occurrence. A notice recorded under the day's key after this end
    # (before keys named the moment) was about this end, and counts.
    return [
        DueEvent(
            EventKind.STALLED,
            f"stalled:{initiative.ref}:{initiative.stage}:{moment_key(ends)}",
            initiative.ref,
            {"ref": initiative.ref, "stage": initiative.stage, "time_box_ended": ends.isoformat()},
            LegacyKey(legacy_stalled_key(initiative.ref, initiative.stage, ends), ends),
        )
    ]


def _review_events(pipeline: CompiledPipeline, review: Review, now: datetime) -> list[DueEvent]:
    gate = pipeline.model.gate(review.gate_id)
    if gate is None or not review.is_open or review.id is None:
        return []
    waited = now - review.submitted_at
    base = {"review": review.id, "ref": review.initiative_ref, "gate": review.gate_id}
    events = []
    if gate.review_reminder_days is not None:
        # Only the latest reminder due: after a scheduler outage people get one nudge, not a backlog.
        every = timedelta(days=gate.review_reminder_days)
        number = int(waited / every)
        if number >= 1:
            # Keyed by the moment it fell due, not by its number: once the interval changes
            # (3 days to 7), the new numbers would repeat keys the old interval's reminders
            # used, and nobody would be reminded until the count passed them. A reminder keyed
            # by its number (an older Shepherd) fired after this moment was about this one.
            due = review.submitted_at + number * every
            events.append(
                DueEvent(
                    EventKind.REMINDER,
                    f"remind:{review.id}:{moment_key(due)}",
                    review.initiative_ref,
                    {**base, "number": number, "days_waiting": waited.days, "due": due.isoformat()},
                    LegacyKey(f"remind:{review.id}:{number}", due - timedelta(microseconds=1)),
                )
            )
    if gate.review_escalation_days is not None and waited >= timedelta(days=gate.review_escalation_days):
        contacts = {
            role: contact
            for role in review.remaining()
            if role in pipeline.model.roles
            and (contact := pipeline.model.roles[role].escalation_contact) is not None
        }
        if contacts:
            events.append(
                DueEvent(
                    EventKind.ESCALATION,
                    f"escalate:{review.id}",
                    review.initiative_ref,
                    {**base, "contacts": contacts, "days_waiting": waited.days},
                )
            )
    return events


def _operations(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    latest: OperationsReview | None,
    now: datetime,
    plan: ReviewPlan,
) -> list[DueEvent]:
    if initiative.status is not Status.ACTIVE:
        return []
    due = operations_review_due(pipeline, initiative, latest, plan)
    if due is None or now < due:
        return []
    day = due.date().isoformat()
    payload = {"ref": initiative.ref, "due": due.isoformat()}
    events = [
        DueEvent(EventKind.OPERATIONS_DUE, f"opsreview:{initiative.ref}:{day}", initiative.ref, payload)
    ]
    if operations_review_overdue(pipeline, initiative, latest, now, plan):
        events.append(
            DueEvent(
                EventKind.OPERATIONS_OVERDUE, f"opsoverdue:{initiative.ref}:{day}", initiative.ref, payload
            )
        )
    return events
