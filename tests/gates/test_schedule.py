"""Due events at a given moment: time boxes, review reminders and escalation, periodic reviews."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gates.lifecycle import DecisionKind, Initiative, Requirement, Review, Status
from gates.loader import CompiledPipeline
from gates.ports import OperationsReview
from gates.schedule import (
    EventKind,
    EventSubject,
    due_events,
    legacy_stalled_key,
    moment_key,
    operations_review_due,
    operations_review_overdue,
    review_plan,
    subject_of,
)
from tests.gates.conftest import build
from tests.gates.ops_pipeline import BOSS, OPS_LEAD, OPS_PIPELINE, OWNER, SPONSOR, ops_pipeline

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def pipeline() -> CompiledPipeline:
    """The operations test pipeline (intake time box 30 days, reminders 3, escalation 7)."""
    return ops_pipeline()


def initiative(stage: str = "idea", status: Status = Status.ACTIVE, **kw: object) -> Initiative:
    return Initiative(
        ref="AI-0001",
        name="Forecast",
        owner_id=OWNER,
        stage=stage,
        created_at=T0,
        status=status,
        **kw,  # type: ignore[arg-type]
    )


def ops_pipeline_with_reminders(days: int) -> CompiledPipeline:
    """The operations test pipeline with the intake reminding every ``days`` days."""
    text = OPS_PIPELINE.replace("review_reminder_days: 3", f"review_reminder_days: {days}")
    return build(text.replace("review_escalation_days: 7", "review_escalation_days: 30"), "ops.yaml")


def review(review_id: int = 5, roles: tuple[str, ...] = ("sponsor", "risk")) -> Review:
    return Review(
        initiative_ref="AI-0001",
        gate_id="intake",
        from_stage="idea",
        to_stage="poc",
        submitted_by=OWNER,
        owner_id=OWNER,
        submitted_at=T0,
        pipeline_version="1-x",
        evidence_hash="h",
        requirements=tuple(Requirement(role, 1) for role in roles),
        id=review_id,
    )


def keys(pipeline: CompiledPipeline, now: datetime, **state: object) -> list[str]:
    events = due_events(
        pipeline,
        state.get("initiatives", []),  # type: ignore[arg-type]
        state.get("reviews", []),  # type: ignore[arg-type]
        state.get("latest", {}),  # type: ignore[arg-type]
        now,
    )
    return [event.key for event in events]


def test_an_initiative_within_its_time_box_is_not_stalled(pipeline: CompiledPipeline) -> None:
    assert keys(pipeline, T0 + timedelta(days=29), initiatives=[initiative()]) == []


def test_an_initiative_past_its_time_box_is_stalled_once_per_time_box(pipeline: CompiledPipeline) -> None:
    later = [keys(pipeline, T0 + timedelta(days=d), initiatives=[initiative()]) for d in (31, 45)]
    assert later[0] == later[1] == ["stalled:AI-0001:idea:20260131T090000Z"]
    event = due_events(pipeline, [initiative()], [], {}, T0 + timedelta(days=31))[0]
    assert event.kind is EventKind.STALLED
    assert event.payload["stage"] == "idea"


def test_an_end_moved_to_the_evening_of_the_same_day_is_a_new_occurrence(pipeline: CompiledPipeline) -> None:
    # Ran out at 09:00, noticed at 09:05, then extended "until" that day: it ends again at 23:59:59.
    first = keys(pipeline, T0 + timedelta(days=30, minutes=5), initiatives=[initiative()])
    evening = initiative(extended_until=datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
    second = keys(pipeline, datetime(2026, 2, 1, 0, 5, tzinfo=UTC), initiatives=[evening])
    assert first == ["stalled:AI-0001:idea:20260131T090000Z"]
    assert second == ["stalled:AI-0001:idea:20260131T235959Z"]


def test_a_moment_key_is_exact_and_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert moment_key(datetime(2026, 1, 31, 10, 0, tzinfo=paris)) == "20260131T090000Z"
    assert moment_key(datetime(2026, 1, 31, 10, 0, 0, 250, tzinfo=paris)) == "20260131T090000.000250Z"


def test_an_extension_is_honoured_and_its_end_is_a_new_occurrence(pipeline: CompiledPipeline) -> None:
    extended = initiative(extended_until=T0 + timedelta(days=50))
    assert keys(pipeline, T0 + timedelta(days=40), initiatives=[extended]) == []
    assert keys(pipeline, T0 + timedelta(days=51), initiatives=[extended]) == [
        "stalled:AI-0001:idea:20260220T090000Z"
    ]


def test_an_extension_shorter_than_the_time_box_changes_nothing(pipeline: CompiledPipeline) -> None:
    earlier = initiative(extended_until=T0 + timedelta(days=10))
    assert keys(pipeline, T0 + timedelta(days=20), initiatives=[earlier]) == []


@pytest.mark.parametrize("status", [Status.IN_REVIEW, Status.ON_HOLD, Status.RETIRED])
def test_initiatives_in_review_on_hold_or_retired_are_not_chased(
    pipeline: CompiledPipeline, status: Status
) -> None:
    assert keys(pipeline, T0 + timedelta(days=90), initiatives=[initiative(status=status)]) == []


def test_a_stage_without_a_time_box_never_stalls(pipeline: CompiledPipeline) -> None:
    assert keys(pipeline, T0 + timedelta(days=30), initiatives=[initiative(stage="operations")]) == []


def test_reminders_come_every_n_days_and_only_the_latest_after_an_outage(pipeline: CompiledPipeline) -> None:
    def at(days: float) -> list[str]:
        return [k for k in keys(pipeline, T0 + timedelta(days=days), reviews=[review()]) if "remind" in k]

    assert at(2.9) == []
    assert at(3) == ["remind:5:20260104T090000Z"]
    assert at(6.5) == ["remind:5:20260107T090000Z"]
    assert at(10) == ["remind:5:20260110T090000Z"]


def test_a_reminder_is_named_by_when_it_fell_due_whatever_the_interval(pipeline: CompiledPipeline) -> None:
    """The second reminder every 3 days and the first every 6 are the same occurrence (day 6);
    the reminder every 7 days on day 14 is a new one, however many were sent every 3 days. One
    keyed by its number (an older Shepherd) covers it if it fired after it fell due."""
    slower = ops_pipeline_with_reminders(6)
    [every_three] = [
        e for e in due_events(pipeline, [], [review()], {}, T0 + timedelta(days=6.5)) if "remind" in e.key
    ]
    [every_six] = [
        e for e in due_events(slower, [], [review()], {}, T0 + timedelta(days=6.5)) if "remind" in e.key
    ]
    assert every_three.key == every_six.key == "remind:5:20260107T090000Z"
    assert every_three.legacy is not None and every_three.legacy.key == "remind:5:2"
    assert every_three.legacy.covers_if_fired_after < T0 + timedelta(days=6)
    weekly = ops_pipeline_with_reminders(7)
    [later] = [
        e for e in due_events(weekly, [], [review()], {}, T0 + timedelta(days=14)) if "remind" in e.key
    ]
    assert later.key == "remind:5:20260115T090000Z" and later.payload["number"] == 2


def test_escalation_goes_to_the_contacts_of_roles_still_needed(pipeline: CompiledPipeline) -> None:
    pending = review()
    assert [k for k in keys(pipeline, T0 + timedelta(days=6), reviews=[pending]) if "escalate" in k] == []
    events = due_events(pipeline, [], [pending], {}, T0 + timedelta(days=7))
    escalation = next(e for e in events if e.kind is EventKind.ESCALATION)
    assert escalation.key == "escalate:5"
    # risk has no escalation contact configured, so only the sponsor's contact hears of it.
    assert escalation.payload["contacts"] == {"sponsor": BOSS}


def test_no_escalation_once_the_roles_with_contacts_have_approved(pipeline: CompiledPipeline) -> None:
    pending = review()
    pending.decide(SPONSOR, {"sponsor"}, DecisionKind.APPROVE, None, T0 + timedelta(days=1))
    assert [k for k in keys(pipeline, T0 + timedelta(days=8), reviews=[pending]) if "escalate" in k] == []


def test_a_closed_review_is_neither_reminded_nor_escalated(pipeline: CompiledPipeline) -> None:
    closed = review()
    closed.withdraw(T0)
    assert keys(pipeline, T0 + timedelta(days=30), reviews=[closed]) == []


def test_operations_reviews_fall_due_then_overdue(pipeline: CompiledPipeline) -> None:
    system = initiative(stage="operations")
    assert operations_review_due(pipeline, system, None) == T0 + timedelta(days=90)
    assert keys(pipeline, T0 + timedelta(days=89), initiatives=[system]) == []
    assert keys(pipeline, T0 + timedelta(days=90), initiatives=[system]) == ["opsreview:AI-0001:2026-04-01"]
    assert not operations_review_overdue(pipeline, system, None, T0 + timedelta(days=103))
    assert keys(pipeline, T0 + timedelta(days=104), initiatives=[system]) == [
        "opsoverdue:AI-0001:2026-04-01",
        "opsreview:AI-0001:2026-04-01",
    ]
    assert operations_review_overdue(pipeline, system, None, T0 + timedelta(days=104))


def test_the_next_operations_review_counts_from_the_last_one(pipeline: CompiledPipeline) -> None:
    system = initiative(stage="operations")
    last = OperationsReview("AI-0001", OPS_LEAD, T0 + timedelta(days=95), {}, T0 + timedelta(days=185))
    latest = {"AI-0001": last}
    assert keys(pipeline, T0 + timedelta(days=150), initiatives=[system], latest=latest) == []
    assert keys(pipeline, T0 + timedelta(days=185), initiatives=[system], latest=latest) == [
        "opsreview:AI-0001:2026-07-05"
    ]


def test_retired_systems_get_no_operations_review(pipeline: CompiledPipeline) -> None:
    retired = initiative(stage="operations", status=Status.RETIRED)
    assert keys(pipeline, T0 + timedelta(days=400), initiatives=[retired]) == []


def test_every_key_names_the_review_or_initiative_it_is_about(pipeline: CompiledPipeline) -> None:
    # The retention pass forgets a fired key once this subject is closed or retired.
    stalled = initiative()
    system = replace(initiative(stage="operations"), ref="AI-0002")
    due = due_events(pipeline, [stalled, system], [review()], {}, T0 + timedelta(days=120))
    assert {event.kind for event in due} == set(EventKind)
    for event in due:
        expected = EventSubject(review_id=5) if "review" in event.payload else EventSubject(ref=event.ref)
        assert subject_of(event.key) == expected, event.key
    legacy = legacy_stalled_key("AI-0001", "idea", T0)
    assert subject_of(legacy) == EventSubject(ref="AI-0001")
    assert subject_of("greeted:U1") is None and subject_of("remind:x:1") is None


def test_the_review_plan_given_at_handover_sets_the_due_dates(pipeline: CompiledPipeline) -> None:
    """The first review on the day the team named (at once if it passed before the handover),
    then every so many calendar months; unanswered, the pipeline's review_every_days."""
    system = initiative("operations", stage_entered_at=T0)
    plan = replace(review_plan(pipeline, {}), every_months=3, first_on=datetime(2026, 3, 1).date())
    assert operations_review_due(pipeline, system, None, plan) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    early = replace(plan, first_on=datetime(2025, 12, 1).date())
    assert operations_review_due(pipeline, system, None, early) == T0
    only_cadence = replace(plan, first_on=None)
    assert operations_review_due(pipeline, system, None, only_cadence) == datetime(2026, 4, 1, 9, tzinfo=UTC)
    assert operations_review_due(pipeline, system, None) == T0 + timedelta(days=90)
    month_end = replace(system, stage_entered_at=datetime(2026, 11, 30, 9, tzinfo=UTC))
    assert operations_review_due(pipeline, month_end, None, only_cadence) == datetime(
        2027, 2, 28, 9, tzinfo=UTC
    )
    assert keys(pipeline, datetime(2026, 3, 1, 12, tzinfo=UTC), initiatives=[system]) == []
    events = due_events(pipeline, [system], [], {}, datetime(2026, 3, 1, 12, tzinfo=UTC), {"AI-0001": plan})
    assert [e.key for e in events] == ["opsreview:AI-0001:2026-03-01"]


def test_a_review_that_fell_due_on_hold_turns_overdue_a_grace_after_the_resume(
    pipeline: CompiledPipeline,
) -> None:
    """Due on day 90, held until day 120: due (not overdue) on resume, overdue on day 134."""
    system = initiative("operations", stage_entered_at=T0)
    plan = replace(review_plan(pipeline, {}), resumed_at=T0 + timedelta(days=120))
    at = T0 + timedelta(days=120)
    assert operations_review_overdue(pipeline, system, None, at)  # without the hold: long overdue
    assert not operations_review_overdue(pipeline, system, None, at, plan)
    assert [e.key for e in due_events(pipeline, [system], [], {}, at, {"AI-0001": plan})] == [
        "opsreview:AI-0001:2026-04-01"
    ]
    assert operations_review_overdue(pipeline, system, None, T0 + timedelta(days=134), plan)
    resumed_early = replace(plan, resumed_at=T0 + timedelta(days=60))  # back before it fell due
    assert operations_review_overdue(pipeline, system, None, T0 + timedelta(days=104), resumed_early)
