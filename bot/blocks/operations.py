"""Messages and modals for time boxes, review reminders and escalation, and periodic reviews.

Pure builders like the rest of ``bot.blocks``: domain data in, Block Kit out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot import ids
from bot.blocks.inputs import question_input, text_input, worst_case_size
from bot.blocks.labels import gate_title, role_label, stage_label
from bot.blocks.messages import Message, _message, button, decision_buttons
from bot.blocks.modals import QUESTION_BYTES, REASON_MAX_LENGTH, _modal, _title
from bot.blocks.text import (
    MAX_HINT,
    MAX_LABEL,
    MAX_VIEW_BLOCKS,
    clip,
    context,
    escape,
    mention,
    plain,
    plain_date,
    section,
    slack_date,
)
from gates.errors import PipelineError, Problem
from gates.lifecycle import Initiative, Review, Status
from gates.loader import CompiledPipeline, load_pipeline
from gates.operations import picked_day


def _day(moment: datetime) -> str:
    return slack_date(moment, "{date_short}")


def _end(initiative: Initiative, end: datetime) -> str:
    """When a time box ends: an extension's end as the day its author picked (``picked_day``),
    a stage's own time box as a moment, in each reader's time zone."""
    if end == initiative.extended_until:
        return plain_date(picked_day(end))
    return _day(end)


def _metadata(ref: str, channel: str | None = None) -> str:
    return json.dumps({"ref": ref, "channel": channel}, separators=(",", ":"))


# --- DMs ---------------------------------------------------------------------------------------


def stalled_notice(pipeline: CompiledPipeline, initiative: Initiative, ended: datetime) -> Message:
    """To the owner: the stage's time box ran out; submit, extend (with a reason) or stop."""
    gate = pipeline.model.gate_from(initiative.stage)
    stage = stage_label(initiative.stage)
    next_gate = f"the *{escape(gate.title)}* gate" if gate is not None else "the next gate"
    text = (
        f":hourglass: *{clip(initiative.name, 200)}* ({escape(initiative.ref)}) has been in the "
        f"{escape(stage)} stage since {_day(initiative.stage_entered_at or initiative.created_at)}; "
        f"its time box ended on {_end(initiative, ended)}.\n"
        f"Submit it for {next_gate}, extend the time box with a reason, or stop it."
    )
    confirm = {
        "title": plain("Stop this initiative?", 100),
        "text": plain(f"Stopping retires {initiative.ref}. You will be asked for a reason.", 300),
        "confirm": plain("Continue", 30),
        "deny": plain("Cancel", 30),
        "style": "danger",
    }
    actions = {
        "type": "actions",
        "block_id": f"stalled:{initiative.ref}",
        "elements": [
            button("Submit for review", ids.ACTION_SUBMIT_REVIEW, initiative.ref, "primary"),
            button("Extend", ids.ACTION_EXTEND_TIME_BOX, initiative.ref),
            button("Stop", ids.ACTION_STOP_INITIATIVE, initiative.ref, "danger", confirm),
        ],
    }
    return _message(f"{initiative.ref} is past its {stage} time box", [section(text), actions])


def stalled_notice_closed(initiative: Initiative, stage: str) -> Message:
    """A stalled notice once its stage is over (approved, or the initiative retired): its
    buttons go, since Submit would now submit the next stage's gate."""
    if initiative.status is Status.RETIRED:
        outcome = "it has since been retired"
    else:
        outcome = f"it has since moved on to the {escape(stage_label(initiative.stage))} stage"
    text = (
        f":hourglass: *{clip(initiative.name, 200)}* ({escape(initiative.ref)}) ran past its "
        f"{escape(stage_label(stage))} stage's time box; {outcome}."
    )
    return _message(f"{initiative.ref} is past its {stage_label(stage)} time box", [section(text)])


def extended_notice(initiative: Initiative, until: datetime) -> Message:
    text = (
        f":white_check_mark: The {escape(stage_label(initiative.stage))} time box of "
        f"*{clip(initiative.name, 200)}* ({escape(initiative.ref)}) now runs until "
        f"{plain_date(picked_day(until))}."
    )
    return _message(f"{initiative.ref}: time box extended", [section(text)])


def reminder_notice(pipeline: CompiledPipeline, initiative: Initiative, review: Review, days: int) -> Message:
    """To an approver still needed: the review has been waiting ``days`` days."""
    text = (
        f":bell: *{clip(initiative.name, 200)}* ({escape(initiative.ref)}) has waited {days} day(s) "
        f"for your decision on the *{escape(gate_title(pipeline, review.gate_id))}* gate "
        f"(submitted by {mention(review.submitted_by)} {_day(review.submitted_at)})."
    )
    actions = {
        "type": "actions",
        "block_id": f"reminder:{review.id}",
        "elements": decision_buttons(str(review.id), initiative),
    }
    return _message(f"Reminder: {initiative.ref} is waiting for your review", [section(text), actions])


def escalation_notice(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    review: Review,
    role: str,
    days: int,
    approvers: Sequence[str],
) -> Message:
    """To a role's escalation contact: a review has waited past the escalation time, and who of
    the role (``approvers``) may still decide on it."""
    who = " ".join(mention(user) for user in approvers) or "_nobody who may still decide holds the role_"
    text = (
        f":rotating_light: *Escalation:* *{clip(initiative.name, 200)}* ({escape(initiative.ref)}) has "
        f"waited {days} day(s) for the *{escape(role_label(pipeline, role))}* approval at the "
        f"*{escape(gate_title(pipeline, review.gate_id))}* gate. You are the escalation contact for "
        f"this role.\nWho can approve: {who}"
    )
    label = role_label(pipeline, role)
    return _message(f"Escalation: {initiative.ref} is waiting for {label} approval", [section(text)])


def operations_review_notice(initiative: Initiative, due: datetime, overdue: bool, to_owner: bool) -> Message:
    """The periodic review is due (to the owner, with the questionnaire button) or overdue."""
    name = f"*{clip(initiative.name, 200)}* ({escape(initiative.ref)})"
    if overdue:
        text = f":warning: The periodic operations review of {name} was due on {_day(due)} and is overdue."
    else:
        text = f":clipboard: The periodic operations review of {name} is due ({_day(due)})."
    blocks: list[dict[str, Any]] = [section(text)]
    if to_owner:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"opsreview:{initiative.ref}",
                "elements": [
                    button("Start the review", ids.ACTION_OPEN_OPERATIONS_REVIEW, initiative.ref, "primary")
                ],
            }
        )
    else:
        blocks.append(context(f"Owner: {mention(initiative.owner_id)}"))
    word = "overdue" if overdue else "due"
    return _message(f"{initiative.ref}: periodic operations review {word}", blocks)


def operations_review_recorded(
    initiative: Initiative, due: datetime, reviewer: str, next_due: datetime
) -> Message:
    """A due or overdue notice once the review it asked for is recorded: no button any more."""
    text = (
        f":white_check_mark: The periodic operations review of *{clip(initiative.name, 200)}* "
        f"({escape(initiative.ref)}) due on {_day(due)} was recorded by {mention(reviewer)}. "
        f"The next one is due on {_day(next_due)}."
    )
    return _message(f"{initiative.ref}: periodic operations review recorded", [section(text)])


# --- modals ------------------------------------------------------------------------------------


def extend_modal(
    initiative: Initiative, current_end: datetime | None, now: datetime, channel: str | None = None
) -> dict[str, Any]:
    """A new end date (30 days on suggested) and the reason, both required."""
    if current_end is None:
        last = now.date()
    elif current_end == initiative.extended_until:
        last = picked_day(current_end)
    else:
        last = current_end.date()
    suggested = max(last, now.date()) + timedelta(days=30)
    if current_end is None:
        ended = ""
    elif current_end > now:  # opened again from a notice, after an extension
        ended = f" It runs until {_end(initiative, current_end)}."
    else:
        ended = f" It ended on {_end(initiative, current_end)}."
    blocks = [
        section(
            f"Extend the {escape(stage_label(initiative.stage))} time box of "
            f"*{clip(initiative.name, 300)}* ({escape(initiative.ref)}).{ended}"
        ),
        {
            "type": "input",
            "block_id": ids.EXTEND_UNTIL_BLOCK,
            "label": plain("New end date", MAX_LABEL),
            "element": {
                "type": "datepicker",
                "action_id": ids.ANSWER_ACTION,
                "initial_date": suggested.isoformat(),
            },
            "hint": plain("The time box runs until this day has ended everywhere.", MAX_HINT),
        },
        text_input(
            ids.REASON_BLOCK,
            "Why is more time needed?",
            multiline=True,
            max_length=REASON_MAX_LENGTH,
            hint="Kept with the initiative's record and on the audit log; the sponsor can read it.",
        ),
    ]
    return _modal(
        ids.VIEW_EXTEND,
        _title(initiative.ref, "Extend"),
        blocks,
        submit="Extend",
        private_metadata=_metadata(initiative.ref, channel),
    )


def stop_modal(initiative: Initiative, channel: str | None = None) -> dict[str, Any]:
    blocks = [
        section(
            f"Stop *{clip(initiative.name, 300)}* ({escape(initiative.ref)}): it is retired and any open "
            "review is withdrawn. This cannot be undone from Slack."
        ),
        text_input(
            ids.REASON_BLOCK,
            "Why is it stopping?",
            multiline=True,
            max_length=REASON_MAX_LENGTH,
            hint="For example: the PoC disproved the hypothesis, the business case changed.",
        ),
    ]
    return _modal(
        ids.VIEW_STOP,
        _title(initiative.ref, "Stop"),
        blocks,
        submit="Stop it",
        private_metadata=_metadata(initiative.ref, channel),
    )


# The operations review is one form, without pages: its answers are checked together on submit.
MAX_OPERATIONS_QUESTIONS = MAX_VIEW_BLOCKS - 1  # and the line that introduces them


def load_checked_pipeline(path: str | Path | None = None) -> CompiledPipeline:
    """The pipeline at ``path`` (None: the bundled one) as the bot uses it: loaded, and refused
    if its operations review would not fit one Slack form (Slack would refuse the form, and no
    periodic review could ever be recorded). `shepherd serve`, `pipeline validate` and
    `doctor` all load it this way.

    Raises:
        PipelineError: every problem of the file; or too many operations questions, or ones that
            can take more room than a form has.
    """
    pipeline = load_pipeline(path)
    operations = pipeline.model.operations
    questions = operations.questions if operations is not None else []
    if len(questions) > MAX_OPERATIONS_QUESTIONS:
        problem = (
            f"{len(questions)} questions, but the operations review is one Slack form, which holds "
            f"at most {MAX_OPERATIONS_QUESTIONS}"
        )
    elif (size := sum(worst_case_size(question) for question in questions)) > QUESTION_BYTES:
        problem = (
            f"the questions can take {size // 1000} kB, but the operations review is one Slack form, which "
            f"holds {QUESTION_BYTES // 1000} kB of them: use fewer or shorter options, or fewer questions"
        )
    else:
        return pipeline
    raise PipelineError([Problem(str(pipeline.source), "operations.questions", problem)])


def operations_review_modal(
    pipeline: CompiledPipeline, initiative: Initiative, channel: str | None = None
) -> dict[str, Any]:
    """The periodic review questionnaire of the pipeline's ``operations`` section."""
    operations = pipeline.model.operations
    questions = list(operations.questions) if operations is not None else []
    blocks: list[dict[str, Any]] = [
        section(f"Periodic operations review of *{clip(initiative.name, 300)}* ({escape(initiative.ref)})."),
        *[question_input(question, None, required_now=question.required) for question in questions],
    ]
    if not questions:
        blocks.append(section("_The pipeline defines no review questions; submitting records the review._"))
    return _modal(
        ids.VIEW_OPERATIONS_REVIEW,
        _title(initiative.ref, "Review"),
        blocks,
        submit="Record review",
        private_metadata=_metadata(initiative.ref, channel),
    )
