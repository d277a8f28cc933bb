"""Channel and DM messages: initiative cards, readiness, review requests and outcomes, answers.

Every builder returns ``{"text": fallback, "blocks": [...]}`` (``text`` is what notifications
and screen readers show) except ``readiness_blocks`` (blocks to embed) and ``decision_notice``
(one mrkdwn string). Messages stay within 50 blocks whatever the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence, Sized
from typing import Any, Protocol

from bot import ids
from bot.blocks.labels import (
    DECISION_EMOJI,
    DECISION_WORDS,
    REVIEW_EMOJI,
    REVIEW_WORDS,
    STATUS_WORDS,
    gate_title,
    remaining_text,
    requirements_text,
    role_label,
    stage_label,
)
from bot.blocks.text import (
    MAX_BUTTON_TEXT,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    bullet_list,
    clamp_blocks,
    clip,
    context,
    divider,
    escape,
    header,
    mention,
    mention_list,
    plain,
    section,
    slack_date,
    split_text,
    truncate,
    usergroup,
)
from gates.lifecycle import Decision, DecisionKind, Initiative, Review, ReviewStatus, Status
from gates.loader import CompiledPipeline
from gates.readiness import CriterionStatus, Readiness
from knowledge.types import Answer

Message = dict[str, Any]


def _message(text: str, blocks: list[dict[str, Any]], mentions: Sequence[str] = ()) -> Message:
    """``text`` is outside text (names, LLM output): escaped here, because Slack parses the
    fallback as mrkdwn too and a name like ``<!channel>`` would ping everyone."""
    tail = mention_list(mentions, MAX_FALLBACK_TEXT // 2)
    fallback = clip(text, MAX_FALLBACK_TEXT - len(tail) - 1)
    return {
        "text": f"{fallback} {tail}" if tail else fallback,
        "blocks": clamp_blocks(blocks, MAX_MESSAGE_BLOCKS),
    }


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def _field(title: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(f"*{title}*\n{value}", MAX_FIELD_TEXT)}


def _quote(text: str, limit: int = 2500) -> str:
    return "\n".join(f">{line}" for line in clip(text.strip(), limit).splitlines() or [""])


def _question_labels(pipeline: CompiledPipeline, question_ids: Sequence[str]) -> str:
    questions = pipeline.model.all_questions()
    return ", ".join(f"'{questions[q][1].label}'" if q in questions else q for q in question_ids)


# --- initiative card and readiness -------------------------------------------------------------


def readiness_line(readiness: Readiness | None) -> str:
    """``Pilot gate: 7/12 answered · 2 blocking criteria unmet · risk tier medium`` (mrkdwn)."""
    if readiness is None:
        return "_No further gate: this initiative is in its final stage._"
    total = len(readiness.visible_questions)
    parts = [f"{readiness.answered}/{total} answered"]
    if readiness.ready:
        parts.insert(0, "ready for review")
    else:
        if readiness.missing:
            parts.append(f"{len(readiness.missing)} required unanswered")
        if readiness.invalid:
            parts.append(f"{len(readiness.invalid)} answer(s) to fix")
        if readiness.blocking_unmet:
            parts.append(f"{len(readiness.blocking_unmet)} blocking criteria unmet")
    parts.append(f"risk tier {escape(readiness.tier)}" if readiness.tier else "risk tier not set yet")
    emoji = ":white_check_mark:" if readiness.ready else ":construction:"
    return f"{emoji} *{escape(readiness.gate_title)} gate:* " + " · ".join(parts)


def progress_line(initiative: Initiative, readiness: Readiness | None) -> str:
    """Where the initiative stands on its way (mrkdwn): its next gate's ``readiness_line``, or,
    once retired, that no gate applies any more. No readiness is judged for a retired initiative,
    and its line used to claim it had reached its final stage, wherever it was retired."""
    if initiative.status is Status.RETIRED:
        return f"_Retired in the {escape(stage_label(initiative.stage))} stage: no further gate applies._"
    return readiness_line(readiness)


def initiative_card(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    readiness: Readiness | None,
    open_review: Review | None,
    stalled: bool = False,
) -> Message:
    """The initiative's card in the registry channel; its thread is the initiative's home."""
    gate = pipeline.model.gate_from(initiative.stage)
    fields = [
        _field("Ref", escape(initiative.ref)),
        _field("Stage", escape(stage_label(initiative.stage))),
        _field("Status", STATUS_WORDS[initiative.status]),
        _field("Owner", mention(initiative.owner_id)),
        _field("Sponsor", mention(initiative.sponsor_id)),
    ]
    blocks: list[dict[str, Any]] = [
        header(initiative.name),
        {"type": "section", "fields": fields},
        section(progress_line(initiative, readiness if gate is not None else None)),
    ]
    notes = []
    if stalled:
        limit = f" (time box {gate.time_box_days} days)" if gate is not None and gate.time_box_days else ""
        notes.append(
            f":warning: Stalled: in {escape(stage_label(initiative.stage))} since "
            f"{slack_date(initiative.stage_entered_at, '{date_short}')}{limit}"
        )
    if initiative.status_reason and initiative.status in (Status.ON_HOLD, Status.RETIRED):
        notes.append(f"{STATUS_WORDS[initiative.status].capitalize()}: {clip(initiative.status_reason, 500)}")
    if open_review is not None:
        notes.append(
            f":hourglass_flowing_sand: In review since {slack_date(open_review.submitted_at)} "
            f"({escape(gate_title(pipeline, open_review.gate_id))} gate)"
        )
    if notes:
        blocks.append(context(*notes))
    if initiative.status is not Status.RETIRED and gate is not None:
        buttons = [button("Answer questionnaire", ids.ACTION_OPEN_QUESTIONNAIRE, initiative.ref)]
        if open_review is None and initiative.status is Status.ACTIVE:
            ready = readiness is not None and readiness.ready
            buttons.append(
                button(
                    "Submit for review",
                    ids.ACTION_SUBMIT_REVIEW,
                    initiative.ref,
                    "primary" if ready else None,
                )
            )
        blocks.append({"type": "actions", "block_id": f"card:{initiative.ref}", "elements": buttons})
    return _message(_card_text(initiative), blocks)


def _card_text(initiative: Initiative) -> str:
    stage = stage_label(initiative.stage)
    return f"{initiative.ref} · {initiative.name} · {stage}, {STATUS_WORDS[initiative.status]}"


# What a registry channel whose posting permissions leave Shepherd out is told with.
_MAY_NOT_POST = (
    "Shepherd may not post there (the channel's posting permissions)",
    "Ask a workspace admin to let Shepherd post in {channel}, or a Shepherd admin to point "
    "SHEPHERD_REGISTRY_CHANNEL at a channel where it can.",
)

# Why a card could not be posted in the registry channel, and who can fix it, by Slack error.
# ``{channel}`` in the fix is where it was tried. Any other error gets the generic pair below.
_UNPOSTED_CARD_REASONS = {
    "restricted_action": _MAY_NOT_POST,
    "restricted_action_read_only_channel": _MAY_NOT_POST,
    "restricted_action_thread_only_channel": (
        "Shepherd may not post there (the channel's posting permissions allow replies in threads "
        "only, and a card starts a thread of its own)",
        _MAY_NOT_POST[1],
    ),
    "posting_to_general_channel_denied": _MAY_NOT_POST,
    "not_in_channel": (
        "Shepherd is not a member of that channel",
        "Ask someone in {channel} to invite Shepherd there (`/invite @Shepherd`).",
    ),
    "is_archived": (
        "the channel is archived",
        "Ask a Shepherd admin to unarchive it, or to point SHEPHERD_REGISTRY_CHANNEL at a channel in use.",
    ),
    "channel_not_found": (
        "Slack cannot find it (it does not exist, or it is private and Shepherd is not in it)",
        "Ask a Shepherd admin to fix SHEPHERD_REGISTRY_CHANNEL (`shepherd doctor` says what is wrong), "
        "or to invite Shepherd if the channel is private.",
    ),
}


def card_not_posted(
    initiative: Initiative, channel: str, error: str, card: Message, intro: str = ""
) -> Message:
    """Tell the owner their initiative's card could not be posted in the registry channel: why,
    who can fix it, and, until then, the card's own buttons, so the questionnaire and the
    submission stay within reach (the card and its thread are where they would be otherwise).

    Args:
        channel: the registry channel the card was refused in (an id, or a name as configured).
        error: Slack's error code, e.g. ``not_in_channel``.
        card: the ``initiative_card`` message that could not be posted; its buttons are reused.
        intro: mrkdwn to say first (the welcome, when this is told at registration).
    """
    # <#C123> shows the channel's name, but a channel Slack cannot find would show as garbage.
    if ids.CHANNEL_ID_PATTERN.match(channel) and error != "channel_not_found":
        where = f"<#{channel}>"
    else:
        where = f"`{clip(channel, 80)}`"
    reason, fix = _UNPOSTED_CARD_REASONS.get(
        error,
        (
            f"Slack refused it ({escape(error)})",
            "Ask a Shepherd admin to run `shepherd doctor` and check the logs.",
        ),
    )
    actions = [b for b in card.get("blocks", []) if b.get("type") == "actions"]
    offered = {e.get("action_id") for b in actions for e in b.get("elements", [])}
    if ids.ACTION_SUBMIT_REVIEW in offered:
        meanwhile = "Until then, use the buttons below to answer its questionnaire and submit it for review"
    elif offered:
        meanwhile = "Until then, use the button below to answer its questionnaire"
    else:
        meanwhile = "Until then"
    notice = (
        f":warning: Shepherd could not post the card of {escape(initiative.ref)} in {where}: "
        f"{reason}. The card is its home in Slack: its thread carries its reviews. "
        f"{fix.format(channel=where)}\n"
        f"{meanwhile}; `{ids.COMMAND} status {escape(initiative.ref)}` shows where it stands. "
        "Shepherd posts the card at the next change once it can."
    )
    blocks = [*([section(intro)] if intro else []), section(notice), *actions]
    # Not through ``_message``: both texts are mrkdwn already escaped here, and the fallback is
    # what the notification shows, so it carries the warning too.
    return {"text": truncate(f"{intro}\n{notice}" if intro else notice, MAX_FALLBACK_TEXT), "blocks": blocks}


def card_posted_after_all(
    initiative: Initiative, channel: str | None, link: str | None, intro: str = ""
) -> Message:
    """What the owner's "could not post the card" DM becomes once the card is posted: where it
    is now, and no buttons (the card has them, and keeps them current).

    Args:
        channel: the channel id the card is in, if known.
        link: the card's permalink, if Slack gave one.
        intro: mrkdwn to say first (the welcome, when the DM was the welcome).
    """
    where = f" in <#{channel}>" if channel and ids.CHANNEL_ID_PATTERN.match(channel) else ""
    notice = f":white_check_mark: The card of {escape(initiative.ref)} is posted now{where}" + (
        f": {link}" if link else "."
    )
    blocks = [*([section(intro)] if intro else []), section(notice)]
    return {"text": truncate(f"{intro}\n{notice}" if intro else notice, MAX_FALLBACK_TEXT), "blocks": blocks}


def readiness_blocks(
    pipeline: CompiledPipeline, initiative: Initiative, readiness: Readiness
) -> list[dict[str, Any]]:
    """What stands between the initiative and its next gate, compact: a handful of sections."""
    limit = MAX_SECTION_TEXT - 60
    blocks: list[dict[str, Any]] = [
        section(
            f"*What {escape(initiative.ref)} needs for the {escape(readiness.gate_title)} gate*\n"
            + readiness_line(readiness)
        )
    ]
    if readiness.missing:
        items = [clip(q.label, 200) for q in readiness.missing]
        blocks.append(section("*Unanswered required questions*\n" + bullet_list(items, limit)))
    if readiness.invalid:
        items = [clip(str(error), 300) for error in readiness.invalid]
        blocks.append(section("*Answers to fix*\n" + bullet_list(items, limit)))
    unmet = []
    for criterion in readiness.blocking_unmet:
        line = clip(criterion.explain, 300)
        if criterion.status is CriterionStatus.UNKNOWN:
            if criterion.waiting_for:
                waiting = clip(_question_labels(pipeline, criterion.waiting_for), 300)
                line += f" _(cannot be evaluated: waiting for {waiting})_"
            else:
                line += " _(cannot be evaluated)_"
        unmet.append(line)
    if unmet:
        blocks.append(section("*Blocking criteria not met*\n" + bullet_list(unmet, limit)))
    advisory = [clip(c.explain, 300) for c in readiness.advisory_unmet]
    if advisory:
        blocks.append(section("*Advisory (not blocking)*\n" + bullet_list(advisory, limit)))
    # By name only: a criterion's ``explain`` says why it matters when it is not met.
    met = [
        escape(c.id.replace("_", " ").capitalize())
        for c in readiness.criteria
        if c.status is CriterionStatus.MET
    ]
    if met:
        blocks.append(section("*Criteria met*\n" + bullet_list(met, limit)))
    approvals = []
    for need in readiness.approvals:
        who = [mention(h) for h in need.holders[:10]]
        if len(need.holders) > 10:
            who.append(f"and {len(need.holders) - 10} more")
        if need.usergroup:
            who.append(usergroup(need.usergroup))
        line = (
            f"{need.min} × {escape(need.label)}: {', '.join(who) if who else '_nobody holds this role yet_'}"
        )
        if need.because:
            line += f" _({escape(need.because)})_"
        approvals.append(line)
    tier = f"*Risk tier:* {escape(readiness.tier)}" if readiness.tier else "*Risk tier:* not set yet"
    if readiness.tier_waiting_for:
        tier += f" (waiting for {clip(_question_labels(pipeline, readiness.tier_waiting_for), 300)})"
    elif readiness.tier_error:
        tier += f" ({clip(escape(readiness.tier_error), 300)})"
    approval_text = bullet_list(approvals, limit - len(tier)) if approvals else "• none required"
    blocks.append(section(f"{tier}\n*Approvals needed*\n{approval_text}"))
    return blocks


# --- reviews ------------------------------------------------------------------------------------


def _decision_line(pipeline: CompiledPipeline, review: Review, decision: Decision) -> str:
    # The role it counts for now: a later approver may have moved a two-role approver over.
    counted = review.counted_for(decision)
    role = f" as {escape(role_label(pipeline, counted))}" if counted else ""
    line = (
        f"{DECISION_EMOJI[decision.kind]} {mention(decision.approver_id)} "
        f"{DECISION_WORDS[decision.kind]}{role} {slack_date(decision.decided_at)}"
    )
    if decision.reason:
        line += "\n" + _quote(decision.reason, 600)
    return line


def _review_head(
    pipeline: CompiledPipeline, initiative: Initiative, review: Review, title: str
) -> list[dict[str, Any]]:
    gate = escape(gate_title(pipeline, review.gate_id))
    move = f"{escape(stage_label(review.from_stage))} → {escape(stage_label(review.to_stage))}"
    blocks: list[dict[str, Any]] = [
        section(f"{title} · {gate} gate\n*{clip(initiative.name, 300)}* ({escape(initiative.ref)}) · {move}"),
        {
            "type": "section",
            "fields": [
                _field("Submitted by", f"{mention(review.submitted_by)} {slack_date(review.submitted_at)}"),
                _field("Risk tier", escape(review.tier) if review.tier else "not set"),
                _field("Approvals required", escape(requirements_text(pipeline, review.requirements))),
                _field("Status", f"{REVIEW_EMOJI[review.status]} {REVIEW_WORDS[review.status]}"),
            ],
        },
    ]
    if review.exception_reason:
        blocks.append(
            section(
                ":warning: *Submitted as an exception* to unmet criteria:\n" + _quote(review.exception_reason)
            )
        )
    return blocks


def _decision_blocks(pipeline: CompiledPipeline, review: Review) -> list[dict[str, Any]]:
    """The decisions so far, packed into as few sections as their text allows."""
    blocks: list[dict[str, Any]] = []
    current = "*Decisions*"
    for decision in review.decisions:
        line = _decision_line(pipeline, review, decision)
        if len(current) + 1 + len(line) > MAX_SECTION_TEXT:
            blocks.append(section(current))
            current = line
        else:
            current += "\n" + line
    if review.decisions:
        blocks.append(section(current))
    return blocks


def decision_buttons(review_id: str, initiative: Initiative) -> list[dict[str, Any]]:
    confirm = {
        "title": plain("Reject this review?", 100),
        "text": plain(f"Rejecting ends the review of {initiative.ref}. You will be asked for a reason.", 300),
        "confirm": plain("Reject", 30),
        "deny": plain("Cancel", 30),
        "style": "danger",
    }
    return [
        button("Approve", ids.ACTION_APPROVE, review_id, "primary"),
        button("Reject", ids.ACTION_REJECT, review_id, "danger", confirm),
        button("Request changes", ids.ACTION_REQUEST_CHANGES, review_id),
        button("View evidence", ids.ACTION_VIEW_EVIDENCE, review_id),
    ]


def _review_actions(review: Review, initiative: Initiative, decide: bool) -> dict[str, Any]:
    value = str(review.id)
    elements = (
        decision_buttons(value, initiative)
        if decide
        else [button("View evidence", ids.ACTION_VIEW_EVIDENCE, value)]
    )
    return {"type": "actions", "block_id": f"review:{value}", "elements": elements}


class UnmetCriteria(Protocol):
    """The criteria a review's submission left unmet: a ``Readiness``, or what the submission's
    audit entry records (``bot.notify``)."""

    @property
    def blocking_unmet(self) -> Sized: ...

    @property
    def advisory_unmet(self) -> Sized: ...


def review_request(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    review: Review,
    readiness: UnmetCriteria | None,
    approvers: Sequence[str],
) -> Message:
    """Ask the approvers to decide: mentions them, summarises the review, carries the buttons."""
    return review_progress(pipeline, initiative, review, readiness, approvers)


def review_progress(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    review: Review,
    readiness: UnmetCriteria | None = None,
    approvers: Sequence[str] = (),
    viewer_id: str | None = None,
    viewer_roles: Iterable[str] = (),
) -> Message:
    """An open review, with the decisions so far and the approvals still needed.

    The thread message is shared by every approver, so its decision buttons stay live while the
    review is open: an approver who already decided gets an explanation if they click again (the
    domain treats a repeat as a duplicate). ``viewer_id`` is for a message only one person sees
    (their DM), who holds ``viewer_roles``: once that person can no longer decide
    (``Review.can_decide``: they decided, or their roles' approvals are all in), their copy keeps
    only View evidence, with a line saying why.
    Closed reviews render as ``review_outcome``.
    """
    if not review.is_open:
        return review_outcome(pipeline, initiative, review)
    blocks = _review_head(pipeline, initiative, review, ":inbox_tray: *Review requested*")
    if approvers:
        blocks.insert(1, section(f"Approvers: {mention_list(approvers, 2900)}"))
    if readiness is not None and (readiness.advisory_unmet or readiness.blocking_unmet):
        notes = []
        if readiness.blocking_unmet:
            notes.append(f"{len(readiness.blocking_unmet)} blocking criteria unmet")
        if readiness.advisory_unmet:
            notes.append(f"{len(readiness.advisory_unmet)} advisory criteria unmet")
        blocks.append(context(":clipboard: At submission: " + " · ".join(notes)))
    decisions = _decision_blocks(pipeline, review)
    if decisions:
        blocks += decisions
        blocks.append(context(f"Still needed: {escape(remaining_text(pipeline, review.remaining()))}"))
    decide = viewer_id is None or review.can_decide(viewer_id, viewer_roles)
    if viewer_id is not None and review.decision_by(viewer_id) is not None:
        blocks.append(context("You have decided on this review; the others' decisions will follow here."))
    elif not decide:
        blocks.append(
            context(
                "None of your roles is still needed on this review; the others' decisions will follow here."
            )
        )
    blocks.append(_review_actions(review, initiative, decide=decide))
    text = (
        f"Review requested: {initiative.ref} {initiative.name} for the "
        f"{gate_title(pipeline, review.gate_id)} gate"
    )
    return _message(text, blocks, mentions=approvers)


_OUTCOME_TITLES = {
    ReviewStatus.APPROVED: ":white_check_mark: *Review approved*",
    ReviewStatus.REJECTED: ":x: *Review rejected*",
    ReviewStatus.CHANGES_REQUESTED: ":leftwards_arrow_with_hook: *Changes requested*",
    ReviewStatus.WITHDRAWN: ":heavy_minus_sign: *Review withdrawn*",
    ReviewStatus.OPEN: ":hourglass_flowing_sand: *Review in progress*",
}


def review_outcome(pipeline: CompiledPipeline, initiative: Initiative, review: Review) -> Message:
    """The review message once decided or closed: no decision buttons left, View evidence kept."""
    blocks = _review_head(pipeline, initiative, review, _OUTCOME_TITLES[review.status])
    blocks += _decision_blocks(pipeline, review)
    if review.closed_at is not None:
        blocks.append(context(f"Closed {slack_date(review.closed_at)}"))
    elif review.is_open:
        blocks.append(context(f"Still needed: {escape(remaining_text(pipeline, review.remaining()))}"))
    blocks.append(_review_actions(review, initiative, decide=False))
    text = (
        f"{initiative.ref} {initiative.name}: {gate_title(pipeline, review.gate_id)} review "
        f"{REVIEW_WORDS[review.status]}"
    )
    return _message(text, blocks)


def decision_notice(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    review: Review,
    decision: Decision,
    advanced: bool,
    next_gate_title: str | None,
) -> str:
    """One mrkdwn paragraph for the thread and the DMs of who submitted the review and of the
    owner, naming roles and stages by their labels."""
    who = mention(decision.approver_id)
    what = f"*{clip(initiative.name, 300)}* ({escape(initiative.ref)})"
    reason = f"\n{_quote(decision.reason, 1500)}" if decision.reason else ""
    if decision.kind is DecisionKind.REJECT:
        return f":x: {who} rejected the review of {what}. The review is closed.{reason}"
    if decision.kind is DecisionKind.REQUEST_CHANGES:
        return (
            f":leftwards_arrow_with_hook: {who} requested changes to {what}. It is back with the team; "
            f"submit again when the changes are made.{reason}"
        )
    if advanced:
        nxt = (
            f" Next: the *{escape(next_gate_title)}* questionnaire."
            if next_gate_title
            else " This is the last stage."
        )
        return (
            f":tada: {who} gave the last approval: {what} moves to "
            f"*{escape(stage_label(review.to_stage))}*.{nxt}{reason}"
        )
    still = escape(remaining_text(pipeline, review.remaining()))
    return f":white_check_mark: {who} approved {what}. Still needed: {still}.{reason}"


# --- answers to questions -----------------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^)\s]{1,1000})\)")


def to_mrkdwn(markdown: str) -> str:
    """LLM Markdown as Slack mrkdwn, escaped so the model cannot ping or link arbitrarily.

    A Markdown link is shown as its label followed by its URL, never as a Slack link behind a
    label: what the model writes can be steered by a passage or a question (prompt injection),
    and "[the governance portal](https://evil.example/login)" must not pass for the portal.
    """
    text = escape(markdown.replace("\r\n", "\n"))
    text = _HEADING.sub(lambda m: f"*{m.group(1).strip('* ')}*", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)
    return _LINK.sub(_visible_link, text)


def _visible_link(link: re.Match[str]) -> str:
    label, url = link.group(1), link.group(2)
    return url if label.strip() == url else f"{label} ({url})"


def ask_reply(
    answer: Answer, readiness: list[dict[str, Any]] | None, feedback_key: str, *, finished: bool = True
) -> Message:
    """The reply to a question: readiness first when it concerns an initiative, then the answer
    (split over sections), its numbered sources, and helpful / not helpful buttons once it is
    ``finished``: a vote on an answer still being written would judge (and record) half of it."""
    head = clamp_blocks(readiness, 15) if readiness else []
    if head:
        head = [*head, divider()]
    notes = []
    if not answer.covered:
        notes.append(":information_source: The policies do not clearly cover this question.")
    if not answer.grounded and answer.hits:
        notes.append(":page_facing_up: The most relevant policy passages (no AI summary available).")
    sources = []
    for number, hit in enumerate(answer.hits[:9], start=1):
        sources.append(f"*[{number}]* {clip(hit.citation, 400)}")
    if len(answer.hits) > 9:
        sources.append(f"and {len(answer.hits) - 9} more source(s)")
    tail: list[dict[str, Any]] = []
    if notes:
        tail.append(context(*notes))
    if sources:
        tail.append(context(*sources))
    if finished:
        tail.append(
            {
                "type": "actions",
                "block_id": "feedback",
                "elements": [
                    button("Helpful", ids.ACTION_FEEDBACK_HELPFUL, truncate(feedback_key, 2000)),
                    button("Not helpful", ids.ACTION_FEEDBACK_UNHELPFUL, truncate(feedback_key, 2000)),
                ],
            }
        )
    pieces = [section(p) for p in split_text(to_mrkdwn(answer.text or "_No answer._"), MAX_SECTION_TEXT)]
    room = MAX_MESSAGE_BLOCKS - len(head) - len(tail)
    body = clamp_blocks(pieces, room) if pieces else [section("_No answer._")]
    return _message(answer.text or "No answer.", [*head, *body, *tail])


def no_such_initiatives(refs: Sequence[str]) -> list[dict[str, Any]]:
    """In place of the checklist, for a question naming refs of no initiative (mistyped, or the
    greeting's example): the answer that follows is about the policies, not about them."""
    named = ", ".join(refs[:5])
    kind = "initiative" if len(refs) == 1 else "initiatives"
    return [
        context(
            f":grey_question: There is no {kind} {escape(named)}, so this answer is about the policies "
            f"only. `{ids.COMMAND} status` lists your initiatives."
        )
    ]


def which_initiative(refs: Sequence[str]) -> list[dict[str, Any]]:
    """In place of the checklist, for a DM question about "our" initiative from someone who
    owns or sponsors several: which one is for them to say."""
    named = ", ".join(refs[:10]) + (f" and {len(refs) - 10} more" if len(refs) > 10 else "")
    return [
        context(
            f":grey_question: You own or sponsor {escape(named)}: name one in your question "
            f"(`what does {escape(refs[0])} need?`) for its checklist. This answer is about the "
            "policies only."
        )
    ]


def ask_placeholder() -> Message:
    return _message("Looking into it…", [context(":mag: Looking into it…")])


def ask_busy() -> Message:
    """In place of the placeholder (or as the reply to ``/shepherd ask``) when Shepherd is
    answering as many questions as it can and this one cannot even wait its turn."""
    text = "Sorry, I am answering too many questions at the moment. Please ask again in a minute."
    return _message(text, [section(f":hourglass: {text}")])


def ask_failed() -> Message:
    """In place of the placeholder when the answer could not be made."""
    text = (
        "Sorry, I could not finish this answer (a problem on Shepherd's side). Please ask again in a minute."
    )
    return _message(text, [section(f":warning: {text}")])


def ask_restarted() -> Message:
    """In place of the placeholder (or as a reply to ``/shepherd ask``) when Shepherd stopped
    before the answer was made: it will not come, and asking again now reaches the new process."""
    text = "Shepherd restarted before it could answer: please ask again."
    return _message(text, [section(f":arrows_counterclockwise: {text}")])


# --- commands -----------------------------------------------------------------------------------


def help_message() -> Message:
    command = ids.COMMAND
    lines = [
        f"`{command} new` register a new AI initiative (also in the shortcuts menu)",
        f"`{command} status [REF]` where an initiative stands and what its next gate needs "
        f"(`{command} AI-0001` alone looks one up too); without REF, those you own or sponsor",
        f"`{command} ask QUESTION` ask about the governance policies",
        f"`{command} withdraw REF` take back a review you submitted, to change its answers",
        f"`{command} hold REF REASON` / `{command} resume REF` pause an initiative, or go on",
        f"`{command} retire REF REASON` retire an initiative whose value is gone",
        f"`{command} roles` see who holds the approver roles; `{command} roles set ROLE @person` "
        f"and `{command} roles clear ROLE` change them (role admins)",
        f"`{command} portfolio` the portfolio: stages, conversion, time in stage, stalled (governance leads)",
        f"`{command} help` this message",
    ]
    blocks = [
        section("*Shepherd* takes AI initiatives from idea to operations, one gate at a time."),
        section("\n".join(lines)),
        context(
            "Mention @Shepherd in an initiative's thread to ask what its next gate needs. "
            "The approvals waiting for you, your initiatives and their recent decisions are on the Home tab."
        ),
    ]
    return _message(
        "Shepherd commands: new, status, ask, withdraw, hold, resume, retire, roles, portfolio, help", blocks
    )


def status_message(
    pipeline: CompiledPipeline,
    initiative: Initiative,
    readiness: Readiness | None,
    open_review: Review | None,
    stalled: bool = False,
) -> Message:
    """The card plus, when there is a next gate, what it still needs; the card's buttons last.
    ``stalled``: past its stage's time box, said as the card says it."""
    card = initiative_card(pipeline, initiative, readiness, open_review, stalled=stalled)
    blocks = [b for b in card["blocks"] if b.get("type") != "actions"]
    actions = [b for b in card["blocks"] if b.get("type") == "actions"]
    if readiness is not None:
        blocks += [divider(), *readiness_blocks(pipeline, initiative, readiness)]
    return _message(_card_text(initiative), [*blocks, *actions])


def error_message(text: str) -> Message:
    return _message(text, [section(f":warning: {clip(text, MAX_SECTION_TEXT - 20)}")])
