"""``decide_many`` records a burst of clicks in one transaction and judges each one exactly as
``decide`` would: the same reviews, decisions, audit trail and notifications as deciding them one
by one, with refusals audited and returned in place."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gates import usecases
from gates.errors import GateError, NotAnApprover, ReviewClosed, SelfApproval, UnknownReview
from gates.lifecycle import DecisionKind, ReviewStatus
from gates.loader import CompiledPipeline
from gates.ports import UnitOfWork
from tests.gates.conftest import DPO, NOW, OWNER, RISK_1, RISK_2, RISK_3, SPONSOR, SUBMITTER
from tests.gates.fakes import FakeUnitOfWork

APPROVE, REJECT = DecisionKind.APPROVE, DecisionKind.REJECT
LATER = NOW + timedelta(days=1)
INTAKE = {"problem": "Claims take 9 days to triage", "personal_data": "no"}


def in_pilot_review(pipeline: CompiledPipeline, uow: FakeUnitOfWork, name: str) -> tuple[str, int]:
    """An initiative past intake with its pilot gate submitted (needs 2 x risk and the sponsor)."""
    ref = usecases.register(
        pipeline, uow, name=name, owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
    ).ref
    intake = usecases.submit(pipeline, uow, ref, SUBMITTER, NOW).id
    assert intake is not None
    usecases.decide(pipeline, uow, intake, SPONSOR, APPROVE, None, NOW)
    usecases.answer(pipeline, uow, ref, "pilot", {"success": "partly"}, OWNER, NOW)
    review = usecases.submit(pipeline, uow, ref, SUBMITTER, NOW).id
    assert review is not None
    return ref, review


def world(pipeline: CompiledPipeline) -> tuple[FakeUnitOfWork, tuple[str, int], tuple[str, int]]:
    """Two initiatives, each with an open pilot review."""
    uow = FakeUnitOfWork()
    return (
        uow,
        in_pilot_review(pipeline, uow, "Claims triage"),
        in_pilot_review(pipeline, uow, "Fraud scoring"),
    )


def mixed_batch(first: int, second: int) -> list[usecases.DecisionRequest]:
    """A burst touching both reviews: the first reaches its quorum mid-batch, the second is
    rejected; with a double click, refusals, an unknown review and clicks after closing."""

    def click(
        review: int, user: str, kind: DecisionKind = APPROVE, reason: str | None = None, minute: int = 0
    ) -> usecases.DecisionRequest:
        return usecases.DecisionRequest(review, user, kind, reason, LATER + timedelta(minutes=minute))

    return [
        click(first, RISK_1, minute=1),
        click(first, RISK_1, minute=2),  # a double click
        click(first, OWNER, minute=3),  # self-approval
        click(second, RISK_1, minute=4),
        click(first, DPO, minute=5),  # holds no role the review needs
        click(999, RISK_2, minute=6),  # no such review
        click(first, SPONSOR, minute=7),
        click(second, RISK_2, REJECT, "No bias testing", minute=8),  # closes the second review
        click(first, RISK_2, minute=9),  # completes the quorum: the stage advances
        click(first, RISK_3, minute=10),  # the review is closed by now
        click(second, SPONSOR, minute=11),  # closed too
        click(first, RISK_2, minute=12),  # the same click again, after closing: a duplicate
    ]


def one_by_one(
    pipeline: CompiledPipeline, uow: FakeUnitOfWork, requests: list[usecases.DecisionRequest]
) -> list[usecases.DecideOutcome | GateError]:
    results: list[usecases.DecideOutcome | GateError] = []
    for r in requests:
        try:
            results.append(usecases.decide(pipeline, uow, r.review_id, r.user_id, r.kind, r.reason, r.at))
        except GateError as error:
            results.append(error)
    return results


def summary(result: usecases.DecideOutcome | GateError) -> tuple[object, ...]:
    if isinstance(result, GateError):
        return (type(result).__name__, str(result))
    # result.status is the review's status right after that decision; outcome.review is the
    # review object itself, which decide_many shares between the outcomes of one burst.
    return (
        "outcome",
        result.result.duplicate,
        result.advanced,
        result.result.status,
        result.result.remaining,
    )


def test_a_mixed_burst_gives_the_same_outcome_as_deciding_one_by_one(two_gates: CompiledPipeline) -> None:
    expected_uow, (ref_a, first), (ref_b, second) = world(two_gates)
    batch_uow, *_ = world(two_gates)
    requests = mixed_batch(first, second)

    expected = one_by_one(two_gates, expected_uow, requests)
    commits_before = batch_uow.commits
    got = usecases.decide_many(two_gates, batch_uow, requests)

    assert batch_uow.commits == commits_before + 1  # one transaction for the whole burst
    assert [summary(r) for r in got] == [summary(r) for r in expected]
    assert [type(r) for r in got[2:6]] == [SelfApproval, usecases.DecideOutcome, NotAnApprover, UnknownReview]
    assert [type(r) for r in got[9:11]] == [ReviewClosed, ReviewClosed]
    assert got[1].result.duplicate and got[11].result.duplicate  # type: ignore[union-attr]
    assert got[8].advanced  # type: ignore[union-attr]

    for review in (first, second):
        assert batch_uow.stored_review(review) == expected_uow.stored_review(review)
    for ref in (ref_a, ref_b):
        assert batch_uow.stored_initiative(ref) == expected_uow.stored_initiative(ref)
    assert batch_uow.audit_entries == expected_uow.audit_entries
    assert batch_uow.messages == expected_uow.messages

    # And what that is, in the domain's words.
    assert batch_uow.stored_review(first).status is ReviewStatus.APPROVED
    assert [d.approver_id for d in batch_uow.stored_review(first).decisions] == [RISK_1, SPONSOR, RISK_2]
    assert batch_uow.stored_review(second).status is ReviewStatus.REJECTED
    assert batch_uow.stored_initiative(ref_a).stage == "pilot"
    assert batch_uow.stored_initiative(ref_b).stage == "poc"
    burst = [e.action for e in batch_uow.audit_entries if e.at > LATER]
    assert burst.count("stage.advanced") == 1
    assert burst.count("decision.refused") == 4  # owner, DPO, and the two clicks after closing
    sent = [m.kind for m in batch_uow.messages if m.at > LATER]
    assert sent.count("stage.advanced") == 1 and sent.count("decision.recorded") == 5


def test_refusals_are_audited_and_told_in_the_same_transaction_with_the_right_request(
    two_gates: CompiledPipeline,
) -> None:
    uow, (ref, review), _ = world(two_gates)
    requests = [
        usecases.DecisionRequest(review, OWNER, APPROVE, None, LATER),
        usecases.DecisionRequest(review, RISK_1, APPROVE, None, LATER),
        usecases.DecisionRequest(review, DPO, APPROVE, None, LATER),
        usecases.DecisionRequest(4242, RISK_2, APPROVE, None, LATER),
    ]
    told: list[tuple[usecases.DecisionRequest, GateError]] = []

    def refused(inner: UnitOfWork, request: usecases.DecisionRequest, error: GateError) -> None:
        told.append((request, error))
        # Written through the same unit of work: it must be committed with the decisions.
        inner.outbox.put("ephemeral", {"user": request.user_id, "text": str(error)}, request.at)

    commits = uow.commits
    results = usecases.decide_many(two_gates, uow, requests, refused)

    assert uow.commits == commits + 1
    assert [request for request, _ in told] == [requests[0], requests[2], requests[3]]
    assert [error for _, error in told] == [results[0], results[2], results[3]]
    assert isinstance(results[0], SelfApproval) and "separation of duties" in str(results[0])
    assert isinstance(results[2], NotAnApprover)
    assert isinstance(results[3], UnknownReview)
    assert isinstance(results[1], usecases.DecideOutcome) and not results[1].result.duplicate

    refusals = [e for e in uow.audit_entries if e.action == "decision.refused"]
    assert [(e.actor_id, e.target, e.payload["review"]) for e in refusals[-2:]] == [
        (OWNER, ref, review),
        (DPO, ref, review),
    ]
    ephemerals = [m.payload for m in uow.messages if m.kind == "ephemeral"]
    assert [m["user"] for m in ephemerals] == [OWNER, DPO, RISK_2]
    assert [d.approver_id for d in uow.stored_review(review).decisions] == [RISK_1]


def test_a_burst_lost_to_a_concurrent_writer_is_retried_as_a_whole(two_gates: CompiledPipeline) -> None:
    uow, (_, review), _ = world(two_gates)
    told: list[str] = []
    uow.conflicts_to_raise = 1
    results = usecases.decide_many(
        two_gates,
        uow,
        [
            usecases.DecisionRequest(review, OWNER, APPROVE, None, LATER),
            usecases.DecisionRequest(review, RISK_1, APPROVE, None, LATER),
        ],
        lambda _uow, request, _error: told.append(request.user_id),
    )
    assert isinstance(results[0], SelfApproval) and isinstance(results[1], usecases.DecideOutcome)
    assert [d.approver_id for d in uow.stored_review(review).decisions] == [RISK_1]
    assert uow.audit_actions[-2:] == ["decision.refused", "decision.recorded"]  # once each, not twice
    # on_refused runs again on the retry: only what it writes through the unit of work counts.
    assert told == [OWNER, OWNER]


def test_an_empty_burst_records_nothing(two_gates: CompiledPipeline) -> None:
    uow, _, _ = world(two_gates)
    audit = list(uow.audit_entries)
    assert usecases.decide_many(two_gates, uow, []) == []
    assert uow.audit_entries == audit


@pytest.mark.parametrize("user", [RISK_1, SPONSOR])
def test_a_single_request_matches_decide(two_gates: CompiledPipeline, user: str) -> None:
    expected_uow, (_, review), _ = world(two_gates)
    batch_uow, *_ = world(two_gates)
    request = usecases.DecisionRequest(review, user, APPROVE, "fine", LATER)
    one_by_one(two_gates, expected_uow, [request])
    usecases.decide_many(two_gates, batch_uow, [request])
    assert batch_uow.stored_review(review) == expected_uow.stored_review(review)
    assert batch_uow.audit_entries == expected_uow.audit_entries
    assert batch_uow.messages == expected_uow.messages
