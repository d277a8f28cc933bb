"""Time box extensions, stopping, periodic operations reviews and the scheduler's step."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gates import operations, usecases
from gates.errors import InvalidAnswer, InvalidTransition, NotPermitted, UnknownQuestion
from gates.lifecycle import Status
from gates.loader import CompiledPipeline
from tests.gates.fakes import FakeUnitOfWork
from tests.gates.ops_pipeline import OPS, OUTSIDER, OWNER, SPONSOR, ops_pipeline, seed

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def pipeline() -> CompiledPipeline:
    """The operations test pipeline (intake time box 30 days, reviews every 90 days)."""
    return ops_pipeline()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    """An empty in-memory unit of work."""
    return FakeUnitOfWork()


def test_the_owner_extends_a_stalled_time_box_with_a_reason(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "idea", T0)
    now = T0 + timedelta(days=35)
    assert usecases.is_stalled(pipeline, uow.stored_initiative("AI-0001"), now)
    operations.extend_time_box(
        pipeline, uow, "AI-0001", date(2026, 3, 1), "Data access took a month", OWNER, now
    )
    stored = uow.stored_initiative("AI-0001")
    assert stored.extended_until == datetime(2026, 3, 2, 11, 59, 59, tzinfo=UTC)  # 1 March ends at UTC-12
    assert not usecases.is_stalled(pipeline, stored, now)
    assert usecases.is_stalled(pipeline, stored, datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert usecases.list_initiatives(pipeline, uow, now, stalled=True) == []
    with uow:
        [record] = uow.operations.extensions("AI-0001")
    assert (record.reason, record.previous_end, record.author_id) == (
        "Data access took a month",
        T0 + timedelta(days=30),
        OWNER,
    )
    assert uow.audit_actions == ["timebox.extended"]
    assert uow.message_kinds == ["timebox.extended"]


def test_the_sponsor_may_extend_but_an_outsider_may_not(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "idea", T0)
    now = T0 + timedelta(days=35)
    with pytest.raises(InvalidTransition, match="Only the owner or the sponsor"):
        operations.extend_time_box(pipeline, uow, "AI-0001", date(2026, 3, 1), "why not", OUTSIDER, now)
    operations.extend_time_box(pipeline, uow, "AI-0001", date(2026, 3, 1), "budget approved", SPONSOR, now)
    assert uow.stored_initiative("AI-0001").extended_until is not None


@pytest.mark.parametrize(
    ("until", "reason", "message"),
    [
        (date(2026, 3, 1), "  ", "Say why"),
        (date(2026, 1, 20), "late", "today or a later date"),
        (date(2026, 1, 30), "late", "already runs until 2026-01-31"),
        (date(2027, 6, 1), "late", "at most a year"),
    ],
)
def test_an_extension_needs_a_reason_and_a_sensible_date(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork, until: date, reason: str, message: str
) -> None:
    seed(uow, "AI-0001", "idea", T0)
    with pytest.raises(InvalidTransition, match=message):
        operations.extend_time_box(pipeline, uow, "AI-0001", until, reason, OWNER, T0 + timedelta(days=25))
    assert uow.stored_initiative("AI-0001").extended_until is None
    assert uow.audit_actions == []


def test_a_stage_without_a_time_box_cannot_be_extended(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "operations", T0)
    with pytest.raises(InvalidTransition, match="no time box"):
        operations.extend_time_box(pipeline, uow, "AI-0001", date(2026, 3, 1), "late", OWNER, T0)


def test_advancing_a_stage_clears_its_extension(pipeline: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    system = seed(uow, "AI-0001", "idea", T0, extended_until=T0 + timedelta(days=60))
    system.status = Status.IN_REVIEW
    system.advance("idea", "poc", T0 + timedelta(days=40))
    assert system.extended_until is None


def test_stopping_retires_with_the_reason_and_only_for_owner_or_sponsor(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "idea", T0)
    with pytest.raises(InvalidTransition, match="Only the owner or the sponsor"):
        operations.stop(uow, "AI-0001", OUTSIDER, "not worth it", T0)
    operations.stop(uow, "AI-0001", OWNER, "The vendor tool does it already", T0)
    stored = uow.stored_initiative("AI-0001")
    assert (stored.status, stored.status_reason) == (Status.RETIRED, "The vendor tool does it already")
    assert uow.audit_actions == ["initiative.retired"]


def test_the_sponsor_may_stop_an_initiative_too(pipeline: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    seed(uow, "AI-0001", "idea", T0)
    operations.stop(uow, "AI-0001", SPONSOR, "The business case changed", T0 + timedelta(days=35))
    stored = uow.stored_initiative("AI-0001")
    assert (stored.status, stored.status_reason) == (Status.RETIRED, "The business case changed")


def test_operations_answers_are_checked_for_type_and_requirement(pipeline: CompiledPipeline) -> None:
    typed, errors = operations.validate_operations_answers(pipeline, {"value": "Yes", "incidents": "2"})
    assert typed == {"value": "yes", "incidents": 2}
    assert errors == {"incident_notes": "This question is required."}
    _, errors = operations.validate_operations_answers(pipeline, {"value": "maybe", "incidents": "0"})
    assert set(errors) == {"value"}
    with pytest.raises(UnknownQuestion):
        operations.validate_operations_answers(pipeline, {"colour": "blue"})


def test_an_answer_to_a_hidden_operations_question_is_left_out(pipeline: CompiledPipeline) -> None:
    """No incident: the notes are hidden, so what was typed there is neither checked nor kept."""
    typed, errors = operations.validate_operations_answers(
        pipeline, {"value": "yes", "incidents": "0", "incident_notes": "x" * 10}
    )
    assert (typed, errors) == ({"value": "yes", "incidents": 0}, {})


def test_a_periodic_review_is_recorded_with_its_next_due_date(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "operations", T0)
    now = T0 + timedelta(days=92)
    review = operations.record_operations_review(
        pipeline, uow, "AI-0001", {"value": "yes", "incidents": "0"}, OPS, now
    )
    assert review.next_due == now + timedelta(days=90)
    with uow:
        assert uow.operations.latest_reviews()["AI-0001"].answers == {"value": "yes", "incidents": 0}
    assert uow.audit_actions == ["operations.reviewed"]
    assert uow.audit_entries[0].payload["answers"] == {"value": "yes", "incidents": 0}
    # The review moves the next one 90 days on, so nothing is due right after it.
    with uow:
        latest = uow.operations.latest_reviews()
    assert operations.fire_due_events(pipeline, uow, now + timedelta(days=1)) == []
    assert latest["AI-0001"].next_due == now + timedelta(days=90)


def test_the_same_form_sent_again_records_the_periodic_review_once(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "operations", T0)
    answers = {"value": "yes", "incidents": "0"}
    first = operations.record_operations_review(pipeline, uow, "AI-0001", answers, OPS, T0, form="V1")
    again = operations.record_operations_review(pipeline, uow, "AI-0001", answers, OPS, T0, form="V1")
    assert first is not None and again is None
    assert uow.audit_actions == ["operations.reviewed"]
    # Another form is another review.
    later = T0 + timedelta(days=1)
    assert operations.record_operations_review(pipeline, uow, "AI-0001", answers, OPS, later, form="V2")
    with uow:
        assert len(uow.operations.reviews("AI-0001")) == 2


def test_a_form_refused_once_can_still_be_recorded(pipeline: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    seed(uow, "AI-0001", "operations", T0)
    answers = {"value": "yes", "incidents": "0"}
    with pytest.raises(NotPermitted):
        operations.record_operations_review(pipeline, uow, "AI-0001", answers, OUTSIDER, T0, form="V1")
    # The same form, now sent by someone who may record it (a role the refusal did not know).
    review = operations.record_operations_review(
        pipeline, uow, "AI-0001", answers, OUTSIDER, T0, ["operations"], "V1"
    )
    assert review is not None


def test_a_periodic_review_is_refused_outside_operations_or_to_outsiders(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "poc", T0)
    seed(uow, "AI-0002", "operations", T0)
    answers = {"value": "yes", "incidents": "0"}
    with pytest.raises(InvalidTransition, match="not an active system"):
        operations.record_operations_review(pipeline, uow, "AI-0001", answers, OWNER, T0)
    with pytest.raises(NotPermitted, match="Only the owner"):
        operations.record_operations_review(pipeline, uow, "AI-0002", answers, OUTSIDER, T0)
    with pytest.raises(InvalidAnswer, match="incident_notes"):
        operations.record_operations_review(
            pipeline, uow, "AI-0002", {"value": "no", "incidents": 3}, OWNER, T0
        )
    assert uow.audit_actions == []


def test_each_due_event_fires_once_however_often_the_scheduler_runs(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    seed(uow, "AI-0001", "idea", T0)
    seed(uow, "AI-0002", "operations", T0)
    now = T0 + timedelta(days=91)
    first = operations.fire_due_events(pipeline, uow, now)
    assert [event.key for event in first] == [
        "opsreview:AI-0002:2026-04-01",
        "stalled:AI-0001:idea:20260131T090000Z",
    ]
    assert operations.fire_due_events(pipeline, uow, now + timedelta(hours=1)) == []
    assert [m.dedupe_key for m in uow.messages] == [event.key for event in first]
    assert uow.message_kinds == ["schedule.operations_review_due", "schedule.stalled"]
    assert [e.actor_id for e in uow.audit_entries] == ["shepherd", "shepherd"]


def test_a_reminder_an_older_shepherd_sent_under_its_number_is_not_sent_again(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = usecases.register(
        pipeline,
        uow,
        name="Forecast",
        owner_id=OWNER,
        answers={"problem": "stock-outs"},
        actor_id=OWNER,
        now=T0,
    ).ref
    review = usecases.submit(pipeline, uow, ref, OWNER, T0)
    with uow:
        assert uow.fired.first_time(
            f"remind:{review.id}:1", "schedule.review_reminder", T0 + timedelta(days=3)
        )
        uow.commit()
    assert operations.fire_due_events(pipeline, uow, T0 + timedelta(days=4)) == []
    fired = operations.fire_due_events(pipeline, uow, T0 + timedelta(days=6))
    assert [e.key for e in fired] == [f"remind:{review.id}:20260107T090000Z"]


def test_reminders_and_escalation_fire_from_open_reviews(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = usecases.register(
        pipeline,
        uow,
        name="Forecast",
        owner_id=OWNER,
        answers={"problem": "stock-outs"},
        actor_id=OWNER,
        now=T0,
    ).ref
    review = usecases.submit(pipeline, uow, ref, OWNER, T0)
    fired = operations.fire_due_events(pipeline, uow, T0 + timedelta(days=3))
    assert [e.key for e in fired] == [f"remind:{review.id}:20260104T090000Z"]
    fired = operations.fire_due_events(pipeline, uow, T0 + timedelta(days=7))
    assert [e.key for e in fired] == [f"escalate:{review.id}", f"remind:{review.id}:20260107T090000Z"]
    assert operations.fire_due_events(pipeline, uow, T0 + timedelta(days=8)) == []
