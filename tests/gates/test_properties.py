"""Property tests: random decision sequences never break the review rules.

Random users (the owner and the submitter, who also hold approver roles; holders of one role
or of two; someone with no role) click random buttons, repeatedly, with or without a reason.
Whatever the order, the stage advances at most once, self-decisions never count, a rejected
review never advances, nobody is counted twice, and a closed review stays closed.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gates import usecases
from gates.errors import DecisionRefused
from gates.lifecycle import DecisionKind, Requirement, Review, ReviewStatus
from tests.gates.conftest import NOW, OWNER, SUBMITTER, build
from tests.gates.fakes import FakeUnitOfWork

ONE_GATE = f"""
version: 1
stages: [poc, pilot]
roles:
  risk: {{slack_users: [URISK1, URISK2, URISK3, UBOTH, {OWNER}]}}
  dpo: {{slack_users: [UDPO, UBOTH]}}
  sponsor: {{slack_users: [USPONSOR, {SUBMITTER}]}}
gates:
  - id: pilot
    from: poc
    to: pilot
    questions: [{{id: scope, label: Scope, type: text, required: true}}]
    approvals:
      - {{role: risk, min: 2}}
      - {{role: dpo, min: 1}}
      - {{role: sponsor, min: 1}}
"""
PIPELINE = build(ONE_GATE)
ROLES = {
    OWNER: {"risk"},
    SUBMITTER: {"sponsor"},
    "URISK1": {"risk"},
    "URISK2": {"risk"},
    "URISK3": {"risk"},
    "UBOTH": {"risk", "dpo"},
    "UDPO": {"dpo"},
    "USPONSOR": {"sponsor"},
    "UNOBODY": set(),
}

clicks = st.lists(
    st.tuples(
        st.sampled_from(sorted(ROLES)),
        st.sampled_from(list(DecisionKind)),
        st.sampled_from([None, "", "Because the evidence says so"]),
    ),
    max_size=25,
)
# Approvals are the common click; weighting them makes approved reviews frequent too.
approving_clicks = st.lists(
    st.tuples(st.sampled_from(sorted(ROLES)), st.just(DecisionKind.APPROVE), st.just(None)), max_size=25
)


def new_review() -> Review:
    return Review(
        initiative_ref="AI-0001",
        gate_id="pilot",
        from_stage="poc",
        to_stage="pilot",
        submitted_by=SUBMITTER,
        owner_id=OWNER,
        submitted_at=NOW,
        pipeline_version="1",
        evidence_hash="0" * 64,
        requirements=(Requirement("risk", 2), Requirement("dpo", 1), Requirement("sponsor", 1)),
        id=1,
    )


@settings(max_examples=400, deadline=None)
@given(st.one_of(clicks, approving_clicks))
def test_review_rules_hold_for_any_sequence_of_clicks(
    sequence: list[tuple[str, DecisionKind, str | None]],
) -> None:
    review = new_review()
    closed_as: ReviewStatus | None = None
    approvals_announced = 0
    for user, kind, reason in sequence:
        try:
            result = review.decide(user, ROLES[user], kind, reason, NOW)
        except DecisionRefused:
            pass
        else:
            approvals_announced += result.approved
        if closed_as is not None:
            assert review.status is closed_as, "a closed review reopened or changed outcome"
        elif not review.is_open:
            closed_as = review.status
        deciders = [d.approver_id for d in review.decisions]
        assert len(deciders) == len(set(deciders)), "someone was counted twice"
        assert OWNER not in deciders and SUBMITTER not in deciders
        assert all(d.role in ROLES[d.approver_id] for d in review.decisions)
    assert approvals_announced <= 1
    kinds = [d.kind for d in review.decisions]
    if DecisionKind.REJECT in kinds:
        assert review.status is ReviewStatus.REJECTED
    if review.status is ReviewStatus.APPROVED:
        assert kinds == [DecisionKind.APPROVE] * 4
        assert review.remaining() == {}
    assert approvals_announced == (review.status is ReviewStatus.APPROVED)


@settings(max_examples=120, deadline=None)
@given(st.one_of(clicks, approving_clicks))
def test_the_stage_advances_at_most_once_through_the_use_cases(
    sequence: list[tuple[str, DecisionKind, str | None]],
) -> None:
    uow = FakeUnitOfWork()
    ref = usecases.register(
        PIPELINE, uow, name="Claims", owner_id=OWNER, answers={}, actor_id=OWNER, now=NOW
    ).ref
    usecases.answer(PIPELINE, uow, ref, "pilot", {"scope": "Two branches"}, OWNER, NOW)
    review_id = usecases.submit(PIPELINE, uow, ref, SUBMITTER, NOW).id
    assert review_id is not None
    at = NOW
    for user, kind, reason in sequence:
        at += timedelta(minutes=1)
        with contextlib.suppress(DecisionRefused):
            usecases.decide(PIPELINE, uow, review_id, user, kind, reason, at)
        advanced = uow.audit_actions.count("stage.advanced")
        assert advanced <= 1
        assert uow.message_kinds.count("stage.advanced") == advanced
        review = uow.stored_review(review_id)
        initiative = uow.stored_initiative(ref)
        assert initiative.stage == ("pilot" if advanced else "poc")
        assert (review.status is ReviewStatus.APPROVED) == bool(advanced)
        if any(d.kind is DecisionKind.REJECT for d in review.decisions):
            assert initiative.stage == "poc" and review.status is ReviewStatus.REJECTED
        deciders = [d.approver_id for d in review.decisions]
        assert OWNER not in deciders and SUBMITTER not in deciders
        assert len(deciders) == len(set(deciders))
    recorded = [e for e in uow.audit_entries if e.action == "decision.recorded"]
    assert len(recorded) == len(uow.stored_review(review_id).decisions)
