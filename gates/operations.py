"""Use cases for time boxes and the operations stage, and the scheduler's one step.

- ``extend_time_box``: a later end for the current stage's time box, with a reason;
- ``stop``: retire an initiative from its stalled notice, with a reason;
- ``record_operations_review``: a periodic review of a system in operations;
- ``fire_due_events``: queue a notification for every due event not fired before.

Like ``gates.usecases``: each call is one transaction, audited, notifications queued with it;
time comes from the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from gates.answers import AnswerValue, coerce, for_rules
from gates.conditions import ConditionError, MissingAnswer, make_context
from gates.errors import InvalidAnswer, InvalidTransition, NotPermitted, UnknownQuestion
from gates.lifecycle import Initiative, Status
from gates.loader import CompiledPipeline
from gates.pipeline import Question
from gates.ports import (
    FiredEvents,
    InitiativeFilter,
    OperationsReview,
    OperationsUnitOfWork,
    TimeBoxExtension,
    UnitOfWork,
)
from gates.readiness import hidden_questions
from gates.schedule import (
    NO_PLAN,
    DueEvent,
    ReviewPlan,
    due_events,
    next_review_after,
    operations_review_due,
    review_plan,
)
from gates.usecases import RESUMED, retire, retrying, roles_of, time_box_ends

SCHEDULER_ACTOR = "shepherd"
"""The actor recorded on the audit log for what the scheduler does."""

MAX_EXTENSION = timedelta(days=366)
OPERATIONS_QUESTIONNAIRE = "operations_review"
"""The gate id under which periodic review questions are reported (there is no such gate)."""


# ---------------------------------------------------------------- time boxes


LAST_DAY_ENDS = timezone(timedelta(hours=-12))
"""Where a calendar day ends last on Earth (UTC-12)."""


def end_of_day(day: date) -> datetime:
    """The moment ``day`` has ended everywhere on Earth, in UTC: "extend until the 15th"
    includes the whole 15th wherever the owner and the team are (a picker gives a plain day,
    with no time zone), and picking today is never already past."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=LAST_DAY_ENDS).astimezone(UTC)


def picked_day(end: datetime) -> date:
    """The day an extension's end was picked as: the inverse of ``end_of_day`` (and the day of
    the ends older Shepherds gave, the last second of a day in UTC). Shown as a plain date, never
    as a moment: in a reader's own time zone it would fall on the next day east of UTC-12."""
    aware = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
    return aware.astimezone(LAST_DAY_ENDS).date()


def extend_time_box(
    pipeline: CompiledPipeline,
    uow: OperationsUnitOfWork,
    ref: str,
    until: date,
    reason: str,
    actor_id: str,
    now: datetime,
) -> Initiative:
    """Move the end of the current stage's time box to the end of ``until``.

    The owner or the sponsor may; the reason and the previous end are kept as a record and on
    the audit log, and the card is refreshed.

    Raises:
        InvalidTransition: no time box here, not theirs to extend, a date not later than the
            current end or more than a year away, or no reason.
    """
    text = reason.strip()
    if not text:
        raise InvalidTransition("Say why the time box should be extended.")
    new_end = end_of_day(until)

    def attempt() -> Initiative:
        with uow:
            initiative = uow.initiatives.get(ref)
            _require_owner_or_sponsor(initiative, actor_id, "extend its time box")
            current = require_time_box(pipeline, initiative)
            if new_end <= now:
                raise InvalidTransition("Pick today or a later date.")
            # An extension's end is the day it was picked as; a stage's own end may be extended
            # to the rest of its day (it ran out at 09:00, the demo is at 5 pm).
            current_day = picked_day(current) if current == initiative.extended_until else current.date()
            if new_end <= current or until < current_day:
                raise InvalidTransition(
                    f"The time box already runs until {current_day.isoformat()}; pick a later date."
                )
            if new_end - now > MAX_EXTENSION:
                raise InvalidTransition(
                    "Extensions reach at most a year ahead; a longer delay calls for a new plan with the sponsor."
                )
            initiative.extended_until = new_end
            initiative.updated_at = now
            uow.initiatives.save(initiative)
            uow.operations.add_extension(
                TimeBoxExtension(ref, initiative.stage, current, new_end, text, actor_id, now)
            )
            uow.audit.append(
                actor_id,
                "timebox.extended",
                ref,
                {"stage": initiative.stage, "previous_end": current, "until": new_end, "reason": text},
                now,
            )
            uow.outbox.put(
                "timebox.extended",
                {"ref": ref, "stage": initiative.stage, "until": new_end, "actor": actor_id},
                now,
                dedupe_key=f"extended:{ref}:{initiative.stage}:{until.isoformat()}",
            )
            uow.commit()
            return initiative

    # A questionnaire page saved meanwhile moves the initiative's version on (``touch``).
    return retrying(attempt)


def require_time_box(pipeline: CompiledPipeline, initiative: Initiative) -> datetime:
    """When the initiative's running time box ends, refusing one that has none to extend (held,
    retired, or a stage without a time box): checked by the Extend button before its form opens
    as well, so nobody types a reason for nothing.

    Raises:
        InvalidTransition: saying why.
    """
    if initiative.status in (Status.RETIRED, Status.ON_HOLD):
        raise InvalidTransition(
            f"{initiative.ref} is {initiative.status.value.replace('_', ' ')}; it has no time box running."
        )
    current = time_box_ends(pipeline, initiative)
    if current is None:
        raise InvalidTransition(f"The {initiative.stage} stage has no time box to extend.")
    return current


def require_stoppable(initiative: Initiative) -> None:
    """Refuse to stop an initiative retired already (the Stop button checks it before its form
    opens, as ``Initiative.retire`` does on submission).

    Raises:
        InvalidTransition: saying so.
    """
    if initiative.status is Status.RETIRED:
        raise InvalidTransition(f"{initiative.ref} is already retired.")


def stop(uow: OperationsUnitOfWork, ref: str, actor_id: str, reason: str, now: datetime) -> Initiative:
    """Stop an initiative: its owner or sponsor retires it with a reason.

    Raises:
        InvalidTransition: not theirs to stop, already retired, or no reason.
    """
    with uow:
        _require_owner_or_sponsor(uow.initiatives.get(ref), actor_id, "stop it")
    # Checked here: retire's own check lets only the owner or a steward, not the sponsor.
    return retire(uow, ref, actor_id, reason, now, steward=True)


# ---------------------------------------------------------------- periodic operations reviews


def operations_questions(pipeline: CompiledPipeline) -> list[Question]:
    return list(pipeline.operations_questions.values())


def validate_operations_answers(
    pipeline: CompiledPipeline, raw: Mapping[str, Any]
) -> tuple[dict[str, AnswerValue], dict[str, str]]:
    """Coerce a periodic review's answers and check required ones, collecting every problem.

    As in a gate's questionnaire (``readiness.hidden_questions``), an answer to a question its
    show_if hides counts for nothing: it feeds no condition, makes nothing required, and is left
    out of the review (the form shows every question, so one may have been filled in before the
    answer that hides it changed).

    Returns:
        (typed answers to the questions shown, without empties; {question id: message}).

    Raises:
        UnknownQuestion: an answer to a question the operations questionnaire does not have.
    """
    questions = pipeline.operations_questions
    typed: dict[str, AnswerValue] = {}
    errors: dict[str, str] = {}
    for qid, value in raw.items():
        question = questions.get(qid)
        if question is None:
            raise UnknownQuestion(OPERATIONS_QUESTIONNAIRE, qid)
        try:
            coerced = coerce(question, value)
        except InvalidAnswer as error:
            errors[qid] = error.reason
            continue
        if coerced is not None:
            typed[qid] = coerced
    hidden = hidden_questions(pipeline, questions, pipeline.operations_visibility_rounds, typed)
    typed = {qid: value for qid, value in typed.items() if qid not in hidden}
    errors = {qid: message for qid, message in errors.items() if qid not in hidden}
    context = make_context(for_rules(questions, typed))
    for question in questions.values():
        if question.id in typed or question.id in errors or question.id in hidden:
            continue
        if question.required or _holds(pipeline, question.required_if, context, default=False):
            errors[question.id] = "This question is required."
    return typed, errors


OPERATIONS_REVIEWERS_ONLY = (
    "Only the owner, the sponsor, the operations owner or the operations role can record the periodic review."
)


def operations_owner(pipeline: CompiledPipeline, uow: UnitOfWork, ref: str) -> str | None:
    """The system's operations owner, as the handover named them
    (``Pipeline.operations_owner_question_id``), or None; inside an open ``uow``."""
    question_id = pipeline.model.operations_owner_question_id
    if question_id is None:
        return None
    version = uow.answers.current(ref).get(question_id)
    return version.value if version is not None and isinstance(version.value, str) else None


def review_plans(
    pipeline: CompiledPipeline, uow: UnitOfWork, initiatives: Collection[Initiative]
) -> dict[str, ReviewPlan]:
    """The review plan (``gates.schedule.ReviewPlan``) of each of ``initiatives`` that is an
    active system in the operations stage: what the team gave at handover
    (``gates.schedule.review_plan``) and when it last came back from a hold; inside an open
    ``uow``."""
    model = pipeline.model
    refs = [i.ref for i in initiatives if i.stage == model.operations_stage and i.status is Status.ACTIVE]
    if not refs:
        return {}
    asked = model.operations_cadence_question_id or model.operations_first_review_question_id
    current = uow.answers.current_many(refs) if asked else {}
    resumed = uow.audit.last_at(RESUMED, refs)
    plans = {}
    for ref in refs:
        answers = {qid: version.value for qid, version in current.get(ref, {}).items()}
        plan = replace(review_plan(pipeline, answers), resumed_at=resumed.get(ref))
        if plan != NO_PLAN:
            plans[ref] = plan
    return plans


def may_record_operations_review(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    user_id: str,
    roles: Collection[str],
    owner_of_operations: str | None = None,
) -> bool:
    """Whether ``user_id``, holding ``roles``, may record the initiative's periodic review;
    ``owner_of_operations``: its operations owner (``operations_owner``), who may."""
    role = pipeline.model.operations.role if pipeline.model.operations is not None else None
    reviewers = (initiative.owner_id, initiative.sponsor_id, owner_of_operations)
    return user_id in reviewers or (role is not None and role in roles)


def require_reviewable(pipeline: CompiledPipeline, initiative: Initiative) -> None:
    """Refuse a periodic review of anything but an active system in the operations stage (one
    held or retired has none).

    Raises:
        InvalidTransition: saying so.
    """
    stage = pipeline.model.operations_stage
    if initiative.stage != stage or initiative.status is not Status.ACTIVE:
        raise InvalidTransition(
            f"{initiative.ref} is not an active system in the {stage} stage, so it has no periodic review."
        )


def record_operations_review(
    pipeline: CompiledPipeline,
    uow: OperationsUnitOfWork,
    ref: str,
    answers: Mapping[str, Any],
    reviewer_id: str,
    now: datetime,
    extra_roles: Collection[str] = (),
    form: str | None = None,
) -> OperationsReview | None:
    """Record a periodic review; the next one falls due one cadence from now: the one the team
    gave at handover, else ``review_every_days``.

    The owner, the sponsor, the operations owner or a holder of the operations role may record
    it; ``extra_roles`` are roles the reviewer holds beyond the stored and configured ones
    (through a Slack user group).
    ``form``: the id of the form it was typed in (Slack's view id). Slack sends a form again when
    its first answer came late, and the person presses Submit again: that records nothing more.

    Returns:
        The review, or None when ``form`` was recorded before.

    Raises:
        InvalidAnswer: the first problem with the answers (nothing recorded);
        InvalidTransition: no operations reviews in this pipeline, or not in that stage;
        NotPermitted: the reviewer may not record it.
    """
    operations = pipeline.model.operations
    if operations is None:
        raise InvalidTransition("This pipeline defines no periodic operations reviews.")
    typed, errors = validate_operations_answers(pipeline, answers)
    if errors:
        qid, message = next(iter(errors.items()))
        raise InvalidAnswer(qid, message)
    with uow:
        initiative = uow.initiatives.get(ref)
        require_reviewable(pipeline, initiative)
        roles = roles_of(pipeline, uow, reviewer_id) | set(extra_roles)
        named = operations_owner(pipeline, uow, ref)
        if not may_record_operations_review(pipeline, initiative, reviewer_id, roles, named):
            raise NotPermitted(OPERATIONS_REVIEWERS_ONLY)
        if form is not None and not uow.dedupe.first_time(f"opsform:{form}", now):
            return None
        earlier = uow.operations.reviews(ref)
        plan = review_plans(pipeline, uow, [initiative]).get(ref, NO_PLAN)
        # The due date this review answers: the notices sent about it are redrawn as done.
        answered = operations_review_due(pipeline, initiative, earlier[-1] if earlier else None, plan)
        review = OperationsReview(ref, reviewer_id, now, typed, next_review_after(pipeline, plan, now))
        uow.operations.add_review(review)
        uow.audit.append(
            reviewer_id,
            "operations.reviewed",
            ref,
            {"answers": dict(typed), "next_due": review.next_due},
            now,
        )
        uow.outbox.put(
            "operations.reviewed",
            {"ref": ref, "reviewer": reviewer_id, "next_due": review.next_due, "due": answered},
            now,
            dedupe_key=f"opsreviewed:{ref}:{now.isoformat()}",
        )
        uow.commit()
    return review


# ---------------------------------------------------------------- the scheduler's step


def fire_due_events(
    pipeline: CompiledPipeline, uow: OperationsUnitOfWork, now: datetime, page_size: int = 500
) -> list[DueEvent]:
    """Queue the notification of every due event that never fired; returns those queued now.

    Each event is its own transaction: the fired-event record, the outbox message and the audit
    entry commit together, so an event is either fully fired or left for the next tick, and
    concurrent schedulers settle on one winner per key in the database.
    """
    with uow:
        initiatives: list[Initiative] = []
        offset = 0
        while True:
            page = list(uow.initiatives.list(InitiativeFilter(limit=page_size, offset=offset)))
            initiatives += [i for i in page if i.status in (Status.ACTIVE, Status.IN_REVIEW)]
            if len(page) < page_size:
                break
            offset += page_size
        open_reviews = list(uow.reviews.pending_for(sorted(pipeline.model.roles)))
        latest = uow.operations.latest_reviews()
        plans = review_plans(pipeline, uow, initiatives)
    fired = []
    for event in due_events(pipeline, initiatives, open_reviews, latest, now, plans):
        with uow:
            if not uow.fired.first_time(event.key, event.kind.value, now):
                continue
            if fired_under_legacy_key(uow.fired, event):
                uow.commit()  # told already, under the key it had then: remember it by this one
                continue
            uow.outbox.put(event.kind.value, dict(event.payload), now, dedupe_key=event.key)
            uow.audit.append(
                SCHEDULER_ACTOR, event.kind.value, event.ref, {"key": event.key, **event.payload}, now
            )
            uow.commit()
        fired.append(event)
    return fired


def fired_under_legacy_key(fired: FiredEvents, event: DueEvent) -> bool:
    """True when ``event`` fired under the key an older Shepherd gave it (``DueEvent.legacy``):
    recorded after the moment that made it this occurrence, the old key was about this one."""
    if event.legacy is None:
        return False
    at = fired.fired_at(event.legacy.key)
    return at is not None and at > event.legacy.covers_if_fired_after


# ---------------------------------------------------------------- helpers


def _require_owner_or_sponsor(initiative: Initiative, user_id: str, action: str) -> None:
    if user_id not in (initiative.owner_id, initiative.sponsor_id):
        raise InvalidTransition(f"Only the owner or the sponsor of {initiative.ref} can {action}.")


def _holds(pipeline: CompiledPipeline, source: str | None, context: Any, default: bool) -> bool:
    if source is None:
        return default
    try:
        return pipeline.condition(source).holds(context)
    except (MissingAnswer, ConditionError):
        return default
