"""Lifecycle rules: reviews, decisions, quorum, separation of duties, initiative transitions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gates.errors import (
    AlreadyDecided,
    InvalidTransition,
    NotAnApprover,
    ReasonRequired,
    ReviewClosed,
    SelfApproval,
)
from gates.lifecycle import (
    DecisionKind,
    Initiative,
    Requirement,
    Review,
    ReviewStatus,
    Status,
    evidence_hash,
    format_ref,
)
from tests.gates.conftest import NOW, OWNER, SUBMITTER

APPROVE, REJECT, CHANGES = DecisionKind.APPROVE, DecisionKind.REJECT, DecisionKind.REQUEST_CHANGES
LATER = NOW + timedelta(hours=1)


def make_review(*requirements: tuple[str, int]) -> Review:
    """An open review of the pilot gate, submitted by SUBMITTER for OWNER's initiative."""
    return Review(
        initiative_ref="AI-0001",
        gate_id="pilot",
        from_stage="poc",
        to_stage="pilot",
        submitted_by=SUBMITTER,
        owner_id=OWNER,
        submitted_at=NOW,
        pipeline_version="1-abc",
        evidence_hash="0" * 64,
        requirements=tuple(Requirement(role, n) for role, n in requirements),
        id=1,
    )


def make_initiative(status: Status = Status.ACTIVE) -> Initiative:
    """An initiative owned by OWNER in the PoC stage."""
    return Initiative(
        ref="AI-0001", name="Claims triage", owner_id=OWNER, stage="poc", created_at=NOW, status=status
    )


# ---------------------------------------------------------------- quorum


def test_a_role_needing_two_approvals_stays_open_after_one() -> None:
    review = make_review(("risk", 2))
    result = review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    assert result.status is ReviewStatus.OPEN
    assert result.remaining == {"risk": 1}
    assert not result.approved


def test_the_last_required_approval_approves_the_review() -> None:
    review = make_review(("risk", 2), ("sponsor", 1))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    review.decide("USPONSOR", {"sponsor"}, APPROVE, None, NOW)
    result = review.decide("URISK2", {"risk"}, APPROVE, None, LATER)
    assert result.approved
    assert review.status is ReviewStatus.APPROVED
    assert review.closed_at == LATER
    assert review.remaining() == {}


def test_a_role_already_satisfied_takes_no_more_approvals() -> None:
    review = make_review(("risk", 1), ("sponsor", 1))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    with pytest.raises(NotAnApprover, match="sponsor"):
        review.decide("URISK2", {"risk"}, APPROVE, None, NOW)


def test_a_person_holding_two_roles_counts_once() -> None:
    review = make_review(("risk", 1), ("dpo", 1))
    result = review.decide("UBOTH", {"risk", "dpo"}, APPROVE, None, NOW)
    assert result.decision.role == "risk"
    assert result.remaining == {"dpo": 1}
    assert review.is_open


def test_a_holder_of_two_roles_counts_for_the_one_still_needed() -> None:
    review = make_review(("risk", 1), ("dpo", 1))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    result = review.decide("UBOTH", {"risk", "dpo"}, APPROVE, None, NOW)
    assert result.decision.role == "dpo"
    assert result.approved


def test_someone_without_a_needed_role_cannot_decide() -> None:
    review = make_review(("risk", 1))
    with pytest.raises(NotAnApprover, match="risk"):
        review.decide("USTRANGER", {"sponsor"}, APPROVE, None, NOW)
    assert review.decisions == []


# ---------------------------------------------------------------- rejection and changes


def test_any_rejection_ends_the_review() -> None:
    review = make_review(("risk", 2), ("sponsor", 1))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    review.decide("USPONSOR", {"sponsor"}, APPROVE, None, NOW)
    result = review.decide("URISK2", {"risk"}, REJECT, "Bias testing missing", NOW)
    assert result.status is ReviewStatus.REJECTED
    assert not result.approved
    with pytest.raises(ReviewClosed):
        review.decide("URISK3", {"risk"}, APPROVE, None, NOW)


def test_request_changes_returns_the_review_to_the_team() -> None:
    review = make_review(("risk", 1))
    result = review.decide("URISK1", {"risk"}, CHANGES, "Add the DPIA link", NOW)
    assert result.status is ReviewStatus.CHANGES_REQUESTED
    assert result.decision.reason == "Add the DPIA link"
    initiative = make_initiative(Status.IN_REVIEW)
    initiative.back_to_team(NOW)
    assert initiative.status is Status.ACTIVE


@pytest.mark.parametrize("kind", [REJECT, CHANGES])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_reason_is_required_to_reject_or_request_changes(kind: DecisionKind, reason: str | None) -> None:
    review = make_review(("risk", 1))
    with pytest.raises(ReasonRequired):
        review.decide("URISK1", {"risk"}, kind, reason, NOW)
    assert review.is_open and review.decisions == []


def test_an_approval_needs_no_reason_but_keeps_one_given() -> None:
    review = make_review(("risk", 1))
    result = review.decide("URISK1", {"risk"}, APPROVE, "  Looks solid ", NOW)
    assert result.decision.reason == "Looks solid"


# ---------------------------------------------------------------- separation of duties


@pytest.mark.parametrize("kind", [APPROVE, REJECT, CHANGES])
def test_owner_cannot_decide_on_own_gate(kind: DecisionKind) -> None:
    review = make_review(("risk", 1))
    with pytest.raises(SelfApproval):
        review.decide(OWNER, {"risk"}, kind, "reason", NOW)
    assert review.decisions == []


@pytest.mark.parametrize("kind", [APPROVE, REJECT, CHANGES])
def test_submitter_cannot_decide_on_own_review(kind: DecisionKind) -> None:
    review = make_review(("risk", 1))
    with pytest.raises(SelfApproval):
        review.decide(SUBMITTER, {"risk"}, kind, "reason", NOW)
    assert review.decisions == []


def test_owner_cannot_approve_own_gate_even_holding_every_role() -> None:
    review = make_review(("risk", 1), ("sponsor", 1))
    assert not review.can_decide(OWNER, {"risk", "sponsor"})
    with pytest.raises(SelfApproval):
        review.decide(OWNER, {"risk", "sponsor"}, APPROVE, None, NOW)


def test_can_decide_matches_what_decide_accepts() -> None:
    review = make_review(("risk", 1))
    assert review.can_decide("URISK1", {"risk"})
    assert not review.can_decide("USPONSOR", {"sponsor"})
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    assert not review.can_decide("URISK1", {"risk"})
    assert not review.can_decide("URISK2", {"risk"})


# ---------------------------------------------------------------- repeated clicks


def test_a_duplicate_click_is_idempotent() -> None:
    review = make_review(("risk", 2))
    first = review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    again = review.decide("URISK1", {"risk"}, APPROVE, None, LATER)
    assert again.duplicate and not first.duplicate
    assert again.decision == first.decision
    assert len(review.decisions) == 1
    assert review.remaining() == {"risk": 1}


def test_a_duplicate_of_the_approving_click_does_not_approve_again() -> None:
    review = make_review(("risk", 1))
    assert review.decide("URISK1", {"risk"}, APPROVE, None, NOW).approved
    again = review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    assert again.duplicate
    assert not again.approved


def test_a_different_second_decision_is_refused() -> None:
    review = make_review(("risk", 2))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    with pytest.raises(AlreadyDecided, match="approve"):
        review.decide("URISK1", {"risk"}, REJECT, "changed my mind", NOW)
    assert review.is_open


def test_a_decision_on_a_closed_review_is_refused() -> None:
    review = make_review(("risk", 1))
    review.withdraw(NOW)
    with pytest.raises(ReviewClosed, match="withdrawn"):
        review.decide("URISK1", {"risk"}, APPROVE, None, NOW)


def test_withdrawing_a_closed_review_is_refused() -> None:
    review = make_review(("risk", 1))
    review.decide("URISK1", {"risk"}, APPROVE, None, NOW)
    with pytest.raises(ReviewClosed):
        review.withdraw(NOW)


# ---------------------------------------------------------------- initiative transitions


def test_the_stage_advances_exactly_once() -> None:
    initiative = make_initiative()
    initiative.start_review("poc", NOW)
    initiative.advance("poc", "pilot", LATER)
    assert (initiative.stage, initiative.status, initiative.stage_entered_at) == (
        "pilot",
        Status.ACTIVE,
        LATER,
    )
    with pytest.raises(InvalidTransition, match="already left the poc stage"):
        initiative.advance("poc", "pilot", LATER)
    assert initiative.stage == "pilot"


def test_advancing_without_a_review_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        make_initiative().advance("poc", "pilot", NOW)


def test_submitting_from_another_stage_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="poc stage, not pilot"):
        make_initiative().start_review("pilot", NOW)


@pytest.mark.parametrize("status", [Status.IN_REVIEW, Status.ON_HOLD, Status.RETIRED])
def test_only_an_active_initiative_can_be_submitted(status: Status) -> None:
    with pytest.raises(InvalidTransition):
        make_initiative(status).start_review("poc", NOW)


def test_hold_and_resume_round_trip() -> None:
    initiative = make_initiative()
    initiative.hold("Waiting for budget", NOW)
    assert (initiative.status, initiative.status_reason) == (Status.ON_HOLD, "Waiting for budget")
    initiative.resume(LATER)
    assert (initiative.status, initiative.status_reason, initiative.updated_at) == (
        Status.ACTIVE,
        None,
        LATER,
    )


@pytest.mark.parametrize("status", [Status.IN_REVIEW, Status.ON_HOLD, Status.RETIRED])
def test_only_an_active_initiative_can_be_put_on_hold(status: Status) -> None:
    with pytest.raises(InvalidTransition, match="cannot put it on hold"):
        make_initiative(status).hold("why", NOW)


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.IN_REVIEW, Status.RETIRED])
def test_only_an_initiative_on_hold_can_be_resumed(status: Status) -> None:
    with pytest.raises(InvalidTransition, match="cannot resume it"):
        make_initiative(status).resume(NOW)


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.IN_REVIEW, Status.ON_HOLD])
def test_retire_works_from_any_live_status(status: Status) -> None:
    initiative = make_initiative(status)
    initiative.retire("  Value is gone ", NOW)
    assert (initiative.status, initiative.status_reason) == (Status.RETIRED, "Value is gone")


def test_retiring_twice_is_refused() -> None:
    initiative = make_initiative(Status.RETIRED)
    with pytest.raises(InvalidTransition, match="already retired"):
        initiative.retire("again", NOW)


def test_retiring_needs_a_reason() -> None:
    with pytest.raises(InvalidTransition, match="reason"):
        make_initiative().retire("  ", NOW)


def test_refs_are_zero_padded() -> None:
    assert format_ref(7) == "AI-0007"
    assert format_ref(12345) == "AI-12345"


def test_evidence_hash_is_canonical_and_sensitive() -> None:
    one = evidence_hash({"a": 1, "b": ["x", "y"]}, [("https://x", "X")])
    same = evidence_hash({"b": ["x", "y"], "a": 1}, [("https://x", "X")])
    other = evidence_hash({"a": 2, "b": ["x", "y"]}, [("https://x", "X")])
    assert one == same != other
    assert len(one) == 64
