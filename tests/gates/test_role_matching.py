"""One person's approval counts for one role, and which role is recomputed at every decision
(``gates.matching``): a holder of two roles never leaves another role unreachable, and readiness
counts distinct people, not holders per role."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gates import usecases as uc
from gates.errors import NotAnApprover, NotReady
from gates.lifecycle import Decision, DecisionKind, Requirement, Review, ReviewStatus
from gates.matching import assign_roles, unmet
from gates.readiness import readiness
from tests.gates.conftest import NOW, OWNER, build
from tests.gates.fakes import FakeUnitOfWork


def _pipeline(roles: dict[str, list[str]], approvals: list[tuple[str, int]]) -> str:
    role_lines = "\n".join(
        f"  {role}: {{slack_users: [{', '.join(users)}]}}" for role, users in roles.items()
    )
    approval_lines = "\n".join(f"      - {{role: {role}, min: {n}}}" for role, n in approvals)
    return f"""
version: 1
stages: [idea, poc]
roles:
{role_lines}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {{id: problem, label: P, type: text, required: true}}
    approvals:
{approval_lines}
"""


GREEDY = _pipeline({"risk": ["URISK1", "URISKDPO"], "dpo": ["URISKDPO"]}, [("risk", 1), ("dpo", 1)])
SHARED = _pipeline({"risk": ["UBOTH"], "dpo": ["UBOTH"]}, [("risk", 1), ("dpo", 1)])


def _submit(text: str) -> tuple[object, FakeUnitOfWork, int]:
    pipeline = build(text)
    uow = FakeUnitOfWork()
    initiative = uc.register(
        pipeline, uow, name="x", owner_id=OWNER, answers={"problem": "abc"}, actor_id=OWNER, now=NOW
    )
    review = uc.submit(pipeline, uow, initiative.ref, OWNER, NOW)
    assert review.id is not None
    return pipeline, uow, review.id


def _review(requirements: list[tuple[str, int]]) -> Review:
    return Review(
        initiative_ref="AI-0001",
        gate_id="intake",
        from_stage="idea",
        to_stage="poc",
        submitted_by=OWNER,
        owner_id=OWNER,
        submitted_at=NOW,
        pipeline_version="v",
        evidence_hash="h",
        requirements=tuple(Requirement(role, n) for role, n in requirements),
    )


def _approve(review: Review, user: str, roles: set[str]) -> Decision:
    return review.decide(user, roles, DecisionKind.APPROVE, None, NOW).decision


# -- the matching itself -----------------------------------------------------------------------


def test_matching_moves_an_earlier_person_to_make_room() -> None:
    people = [("A", ["risk", "dpo"]), ("B", ["risk"])]
    assert assign_roles(people, {"risk": 1, "dpo": 1}) == {"A": "dpo", "B": "risk"}
    assert unmet(people, {"risk": 1, "dpo": 1}) == {}


def test_matching_never_drops_an_earlier_person() -> None:
    assert assign_roles([("A", ["risk"]), ("B", ["risk"])], {"risk": 1}) == {"A": "risk"}


def test_matching_counts_a_person_once() -> None:
    assert unmet([("A", ["risk", "dpo"])], {"risk": 1, "dpo": 1}) == {"dpo": 1}


def _largest(people: list[tuple[str, list[str]]], needs: dict[str, int]) -> int:
    """The size of a maximum assignment, by trying every role (or none) for every person."""
    best = 0
    for choice in itertools.product(*[[None, *roles] for _, roles in people]):
        used = Counter(role for role in choice if role is not None)
        if all(used[role] <= needs.get(role, 0) for role in used):
            best = max(best, sum(used.values()))
    return best


ROLES = ("risk", "dpo", "sponsor")


@settings(max_examples=300, deadline=None)
@given(
    holds=st.lists(st.lists(st.sampled_from(ROLES), max_size=3), max_size=6),
    counts=st.tuples(*[st.integers(0, 3)] * len(ROLES)),
)
def test_matching_is_maximum_and_keeps_everyone_it_took(
    holds: list[list[str]], counts: tuple[int, ...]
) -> None:
    needs = dict(zip(ROLES, counts, strict=True))
    people = [(f"U{i}", roles) for i, roles in enumerate(holds)]
    assigned = assign_roles(people, needs)
    assert len(assigned) == _largest(people, needs)
    for person, role in assigned.items():
        assert role in dict(people)[person]
    assert all(Counter(assigned.values())[role] <= needs[role] for role in ROLES)
    # An earlier person is never dropped for a later one: each prefix's assignees stay assigned.
    for end in range(len(people)):
        assert set(assign_roles(people[:end], needs)) <= set(assigned)


# -- reviewer case 1: a two-role approver first ---------------------------------------------------


def test_two_role_approver_first_does_not_block_the_other_role() -> None:
    pipeline, uow, review_id = _submit(GREEDY)
    first = uc.decide(pipeline, uow, review_id, "URISKDPO", DecisionKind.APPROVE, None, NOW)
    assert first.review.is_open and first.result.decision.role == "risk"  # for now
    assert first.review.can_decide("URISK1", {"risk"})  # URISKDPO can still move to dpo
    second = uc.decide(pipeline, uow, review_id, "URISK1", DecisionKind.APPROVE, None, NOW)
    assert second.result.decision.role == "risk"
    assert second.review.status is ReviewStatus.APPROVED and second.advanced


def test_earlier_approver_is_rebooked_when_a_later_one_needs_their_role() -> None:
    review = _review([("risk", 1), ("dpo", 1)])
    assert _approve(review, "URISKDPO", {"risk", "dpo"}).role == "risk"  # first role that fits
    assert review.remaining() == {"dpo": 1}
    assert review.can_decide("URISK1", {"risk"})  # URISKDPO moves to dpo
    assert _approve(review, "URISK1", {"risk"}).role == "risk"
    assert review.status is ReviewStatus.APPROVED and review.remaining() == {}


def test_decision_recorded_before_roles_were_kept_counts_for_its_role_only() -> None:
    review = _review([("risk", 1), ("dpo", 1)])
    review.decisions.append(Decision("URISKDPO", DecisionKind.APPROVE, "risk", None, NOW))
    assert review.remaining() == {"dpo": 1}
    assert not review.can_decide("URISK1", {"risk"})
    with pytest.raises(NotAnApprover):
        _approve(review, "URISK1", {"risk"})


def test_can_decide_agrees_with_decide() -> None:
    review = _review([("risk", 1)])
    _approve(review, "UA", {"risk", "dpo"})
    assert review.status is ReviewStatus.APPROVED
    review = _review([("risk", 1), ("dpo", 1)])
    _approve(review, "UA", {"risk"})
    assert not review.can_decide("UB", {"risk"})
    with pytest.raises(NotAnApprover):
        _approve(review, "UB", {"risk"})
    assert review.can_decide("UC", {"risk", "dpo"})
    assert _approve(review, "UC", {"risk", "dpo"}).role == "dpo"


def test_decide_many_books_roles_like_decide() -> None:
    pipeline, uow, review_id = _submit(GREEDY)
    requests = [
        uc.DecisionRequest(review_id, "URISKDPO", DecisionKind.APPROVE, None, NOW),
        uc.DecisionRequest(review_id, "URISK1", DecisionKind.APPROVE, None, NOW),
    ]
    outcomes = uc.decide_many(pipeline, uow, requests)
    assert all(isinstance(outcome, uc.DecideOutcome) for outcome in outcomes)
    last = outcomes[-1]
    assert isinstance(last, uc.DecideOutcome) and last.review.status is ReviewStatus.APPROVED


def test_three_roles_min_two_with_a_holder_of_all() -> None:
    review = _review([("risk", 2), ("dpo", 1), ("legal", 1)])
    everything = {"risk", "dpo", "legal"}
    _approve(review, "UALL", everything)
    _approve(review, "UDPO", {"dpo"})
    assert sum(review.remaining().values()) == 2
    _approve(review, "ULEGAL", {"legal"})
    assert review.remaining() == {"risk": 1}
    assert not review.can_decide("UDPO2", {"dpo", "legal"})
    _approve(review, "URISK", {"risk"})
    assert review.status is ReviewStatus.APPROVED


def test_simple_pipeline_unchanged() -> None:
    review = _review([("risk", 2)])
    assert _approve(review, "UA", {"risk"}).role == "risk"
    assert review.remaining() == {"risk": 1}
    assert not review.can_decide("UA", {"risk"})  # already decided
    assert not review.can_decide(OWNER, {"risk"})
    assert not review.can_decide("UX", {"dpo"})
    _approve(review, "UB", {"risk"})
    assert review.status is ReviewStatus.APPROVED and not review.can_decide("UC", {"risk"})


# -- reviewer case 2: readiness counts distinct people -----------------------------------------


def test_readiness_not_ready_when_one_person_holds_both_roles() -> None:
    pipeline = build(SHARED)
    report = readiness(pipeline, "intake", {"problem": "abc"}, {}, OWNER, submitter_id=OWNER)
    assert not report.ready
    assert any(need.short_of_holders for need in report.approvals)
    assert any("cannot all be covered" in b and "dpo" in b and "risk" in b for b in report.blockers)
    uow = FakeUnitOfWork()
    initiative = uc.register(
        pipeline, uow, name="x", owner_id=OWNER, answers={"problem": "abc"}, actor_id=OWNER, now=NOW
    )
    with pytest.raises(NotReady):
        uc.submit(pipeline, uow, initiative.ref, OWNER, NOW)


def test_readiness_ready_when_distinct_people_cover_all_roles() -> None:
    report = readiness(build(GREEDY), "intake", {"problem": "abc"}, {}, OWNER)
    assert report.ready and not any(need.short_of_holders for need in report.approvals)


def test_readiness_excludes_the_submitter_from_the_matching() -> None:
    report = readiness(build(GREEDY), "intake", {"problem": "abc"}, {}, OWNER, submitter_id="URISK1")
    assert not report.ready


def test_readiness_three_roles_min_two() -> None:
    text = _pipeline(
        {"risk": ["UALL", "UR"], "dpo": ["UALL"], "legal": ["UALL", "UL"]},
        [("risk", 2), ("dpo", 1), ("legal", 1)],
    )
    assert not readiness(build(text), "intake", {"problem": "abc"}, {}, OWNER).ready  # needs 4 people
    more = {"risk": ["UR2"]}
    assert readiness(build(text), "intake", {"problem": "abc"}, more, OWNER).ready


def test_readiness_simple_shortage_message_unchanged() -> None:
    text = _pipeline({"risk": ["UA"]}, [("risk", 2)])
    report = readiness(build(text), "intake", {"problem": "abc"}, {}, OWNER)
    assert report.blockers == [
        "the risk role needs 2 approver(s) but 1 eligible person(s) hold it "
        "(the owner and whoever submits cannot approve)"
    ]
