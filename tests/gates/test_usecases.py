"""Use cases over the in-memory unit of work: what people do with an initiative, end to end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gates import usecases
from gates.errors import (
    AlreadyDecided,
    ConcurrentUpdate,
    GateDecided,
    InvalidAnswer,
    InvalidTransition,
    NotAnApprover,
    NotPermitted,
    NotReady,
    ReviewClosed,
    SelfApproval,
    UnknownGate,
    UnknownInitiative,
    UnknownQuestion,
    UnknownReview,
    UnknownRole,
)
from gates.lifecycle import DecisionKind, ReviewStatus, Status, evidence_hash
from gates.loader import CompiledPipeline, load_pipeline
from tests.gates.conftest import DPO, NOW, OWNER, RISK_1, RISK_2, SPONSOR, SUBMITTER, build
from tests.gates.fakes import FakeUnitOfWork

APPROVE, REJECT, CHANGES = DecisionKind.APPROVE, DecisionKind.REJECT, DecisionKind.REQUEST_CHANGES
LATER = NOW + timedelta(days=1)
INTAKE = {"problem": "Claims take 9 days to triage", "personal_data": "no", "budget": "25,000"}


def register(pipeline: CompiledPipeline, uow: FakeUnitOfWork, **answers: object) -> str:
    initiative = usecases.register(
        pipeline, uow, name="Claims triage", owner_id=OWNER, answers=INTAKE | answers, actor_id=OWNER, now=NOW
    )
    return initiative.ref


def submit(pipeline: CompiledPipeline, uow: FakeUnitOfWork, ref: str, **kwargs: object) -> int:
    review = usecases.submit(pipeline, uow, ref, SUBMITTER, NOW, **kwargs)  # type: ignore[arg-type]
    assert review.id is not None
    return review.id


def register_sponsored(pipeline: CompiledPipeline, uow: FakeUnitOfWork) -> str:
    """An initiative whose intake named SPONSOR its sponsor."""
    initiative = usecases.register(
        pipeline,
        uow,
        name="Claims triage",
        owner_id=OWNER,
        answers=INTAKE,
        actor_id=OWNER,
        now=NOW,
        sponsor_id=SPONSOR,
    )
    return initiative.ref


@pytest.fixture
def registered(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> str:
    """An initiative registered with complete intake answers (no personal data)."""
    return register(two_gates, uow)


@pytest.fixture
def in_pilot_review(two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str) -> int:
    """The initiative past intake, with its pilot gate answered and submitted for review."""
    review_id = submit(two_gates, uow, registered)
    usecases.decide(two_gates, uow, review_id, SPONSOR, APPROVE, None, NOW)
    usecases.answer(two_gates, uow, registered, "pilot", {"success": "partly"}, OWNER, NOW)
    return submit(two_gates, uow, registered)


# ---------------------------------------------------------------- register and answer


def test_register_gives_the_first_initiative_ref_ai_0001(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = register(two_gates, uow)
    assert ref == "AI-0001"
    assert register(two_gates, uow) == "AI-0002"
    stored = uow.stored_initiative(ref)
    assert (stored.stage, stored.status, stored.owner_id) == ("idea", Status.ACTIVE, OWNER)
    assert {v.question_id: v.value for v in uow.stored_answers(ref)} == {
        "problem": "Claims take 9 days to triage",
        "personal_data": "no",
        "budget": 25000,
    }
    assert uow.audit_actions == ["initiative.registered", "initiative.registered"]
    assert uow.message_kinds == ["initiative.registered", "initiative.registered"]
    assert uow.messages[0].dedupe_key == "registered:AI-0001"


def test_register_refuses_an_answer_that_does_not_fit_and_records_nothing(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    with pytest.raises(InvalidAnswer, match="budget"):
        register(two_gates, uow, budget="-5")
    assert uow.committed.initiatives == {}
    assert uow.audit_entries == []


def test_register_needs_a_name(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidAnswer, match="name"):
        usecases.register(two_gates, uow, name="  ", owner_id=OWNER, answers={}, actor_id=OWNER, now=NOW)


def test_answer_records_only_changed_versions(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    result = usecases.answer(
        two_gates, uow, registered, "intake", {"personal_data": "No", "budget": "30000"}, OWNER, LATER
    )
    assert result.changed == ("budget",)
    history = uow.stored_answers(registered)
    assert [(v.question_id, v.value) for v in history][-1] == ("budget", 30000)
    assert len(history) == 4
    assert uow.audit_actions[-1] == "answers.recorded"
    assert uow.audit_entries[-1].payload == {"gate": "intake", "answers": {"budget": 30000}}


def test_saves_of_one_initiative_queue_card_redraws_that_merge(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    # Each save asks for the card to be redrawn from the current state, under one merge key:
    # while a redraw waits, the next save adds none (the outbox decides; the fake never sends).
    before = len(uow.messages)
    for budget in ("30000", "35000"):
        usecases.answer(two_gates, uow, registered, "intake", {"budget": budget}, OWNER, LATER)
    redraws = [m for m in uow.messages[before:] if m.kind == "answers.recorded"]
    assert [m.merge_key for m in redraws] == [f"card:{registered}"]


def test_an_unchanged_answer_records_nothing(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    result = usecases.answer(two_gates, uow, registered, "intake", {"budget": 25000}, OWNER, LATER)
    assert result.changed == ()
    assert uow.audit_actions == ["initiative.registered"]


def test_an_empty_answer_clears_it_as_a_new_version(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    result = usecases.answer(two_gates, uow, registered, "intake", {"budget": ""}, OWNER, LATER)
    assert result.changed == ("budget",)
    with uow:
        assert usecases.current_answers(uow, registered)["budget"] is None
    assert [q.id for q in result.readiness.missing] == []


def test_answer_returns_fresh_readiness(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    result = usecases.answer(two_gates, uow, registered, "intake", {"personal_data": "yes"}, OWNER, LATER)
    assert [q.id for q in result.readiness.missing] == ["dpia"]
    assert {need.role for need in result.readiness.approvals} == {"sponsor", "dpo"}


@pytest.mark.parametrize(
    ("gate", "answers", "error"),
    [
        ("intake", {"budget": "lots"}, InvalidAnswer),
        ("intake", {"nonsense": "x"}, UnknownQuestion),
        ("nope", {"budget": 1}, UnknownGate),
    ],
)
def test_answer_refuses_bad_input_and_records_nothing(
    two_gates: CompiledPipeline,
    uow: FakeUnitOfWork,
    registered: str,
    gate: str,
    answers: dict[str, object],
    error: type[Exception],
) -> None:
    before = len(uow.stored_answers(registered))
    with pytest.raises(error):
        usecases.answer(two_gates, uow, registered, gate, answers, OWNER, LATER)
    assert len(uow.stored_answers(registered)) == before


def test_answering_an_unknown_initiative_is_refused(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnknownInitiative, match="AI-0042"):
        usecases.answer(two_gates, uow, "AI-0042", "intake", {"budget": 1}, OWNER, NOW)


def test_answers_are_frozen_while_their_gate_is_under_review(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    submit(two_gates, uow, registered)
    with pytest.raises(InvalidTransition, match="frozen"):
        usecases.answer(two_gates, uow, registered, "intake", {"budget": 1}, OWNER, LATER)
    # The next gate's questionnaire can be prepared meanwhile.
    usecases.answer(two_gates, uow, registered, "pilot", {"success": "yes"}, OWNER, LATER)


def test_a_retired_initiative_takes_no_answers(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    usecases.retire(uow, registered, OWNER, "No longer needed", NOW)
    with pytest.raises(InvalidTransition, match="retired"):
        usecases.answer(two_gates, uow, registered, "intake", {"budget": 1}, OWNER, LATER)


def test_evidence_links_are_checked_and_audited(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    link = usecases.add_link(
        two_gates, uow, registered, "intake", "<https://wiki.x/dpia|DPIA>", "", OWNER, NOW
    )
    assert (link.url, link.title) == ("https://wiki.x/dpia", "https://wiki.x/dpia")
    assert uow.audit_actions[-1] == "evidence.linked"
    with pytest.raises(InvalidAnswer):
        usecases.add_link(two_gates, uow, registered, "intake", "not a link", "", OWNER, NOW)


def test_a_page_sent_twice_with_its_link_lists_the_link_once(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    """A retried submission (its first ack timed out but landed) must not list evidence twice."""
    for _ in range(2):
        usecases.answer(
            two_gates,
            uow,
            registered,
            "intake",
            {"budget": 1},
            OWNER,
            NOW,
            link=("https://wiki.x/plan", "Plan"),
        )
    with uow:
        links = [(link.url, link.title) for link in uow.answers.links(registered)]
    assert links == [("https://wiki.x/plan", "Plan")]
    assert uow.audit_actions.count("evidence.linked") == 1


# ---------------------------------------------------------------- submit


def test_submit_refused_with_not_ready_listing_every_reason(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = register(two_gates, uow, personal_data="yes", problem="AI")
    with pytest.raises(NotReady) as caught:
        submit(two_gates, uow, ref)
    assert caught.value.gate_id == "intake"
    assert caught.value.reasons == [
        "'Link to the privacy impact assessment' is not answered",
        "The problem has to be stated.",
    ]
    assert uow.committed.reviews == {}
    assert uow.stored_initiative(ref).status is Status.ACTIVE


def test_submit_opens_a_review_pinning_version_evidence_and_requirements(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    review_id = submit(two_gates, uow, registered)
    review = uow.stored_review(review_id)
    assert (review.gate_id, review.from_stage, review.to_stage) == ("intake", "idea", "poc")
    assert review.pipeline_version == two_gates.version
    assert len(review.evidence_hash) == 64
    assert [(r.role, r.min) for r in review.requirements] == [("sponsor", 1)]
    assert uow.stored_initiative(registered).status is Status.IN_REVIEW
    assert uow.audit_actions[-1] == "review.submitted"
    assert uow.messages[-1].kind == "review.requested"
    assert uow.messages[-1].payload["review"] == review_id


def test_a_second_submit_while_a_review_is_open_is_refused(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    submit(two_gates, uow, registered)
    with pytest.raises(InvalidTransition):
        submit(two_gates, uow, registered)
    assert len(uow.committed.reviews) == 1


def test_an_exception_with_justification_opens_a_review_when_the_gate_allows_it(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    review_id = submit(two_gates, uow, registered)
    usecases.decide(two_gates, uow, review_id, SPONSOR, APPROVE, None, NOW)
    usecases.answer(two_gates, uow, registered, "pilot", {"success": "no"}, OWNER, NOW)
    with pytest.raises(NotReady, match="hypotheses held"):
        submit(two_gates, uow, registered)
    pilot_id = submit(two_gates, uow, registered, exception_reason="Regulator asked for a live trial")
    review = uow.stored_review(pilot_id)
    assert review.exception_reason == "Regulator asked for a live trial"
    assert uow.audit_entries[-1].payload["exception_reason"] == "Regulator asked for a live trial"


def test_an_exception_never_covers_missing_answers(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    review_id = submit(two_gates, uow, registered)
    usecases.decide(two_gates, uow, review_id, SPONSOR, APPROVE, None, NOW)
    with pytest.raises(NotReady, match="not answered"):
        submit(two_gates, uow, registered, exception_reason="Please")


def test_a_gate_without_allow_exceptions_ignores_a_justification(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = register(two_gates, uow, problem="AI")
    with pytest.raises(NotReady, match="problem has to be stated"):
        submit(two_gates, uow, ref, exception_reason="Trust me")


def test_a_ready_gate_records_no_exception(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    review_id = submit(two_gates, uow, registered, exception_reason="not needed")
    assert uow.stored_review(review_id).exception_reason is None


# ---------------------------------------------------------------- decide


def test_decide_path_advances_the_stage_with_audit_and_outbox(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    first = usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)
    assert not first.advanced and first.result.remaining == {"risk": 1, "sponsor": 1}
    usecases.decide(two_gates, uow, in_pilot_review, SPONSOR, APPROVE, "Go", LATER)
    last = usecases.decide(two_gates, uow, in_pilot_review, RISK_2, APPROVE, None, LATER)
    assert last.advanced
    stored = uow.stored_initiative(registered)
    assert (stored.stage, stored.status, stored.stage_entered_at) == ("pilot", Status.ACTIVE, LATER)
    assert uow.stored_review(in_pilot_review).status is ReviewStatus.APPROVED
    assert uow.audit_actions[-4:] == [
        "decision.recorded",
        "decision.recorded",
        "decision.recorded",
        "stage.advanced",
    ]
    assert uow.message_kinds[-4:] == [
        "decision.recorded",
        "decision.recorded",
        "decision.recorded",
        "stage.advanced",
    ]
    assert uow.audit_entries[-1].payload == {"review": in_pilot_review, "from": "poc", "to": "pilot"}
    keys = [m.dedupe_key for m in uow.messages]
    assert len(keys) == len(set(keys))


def test_check_decision_answers_as_decide_would_and_records_nothing(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    audit, messages = len(uow.audit_entries), len(uow.messages)
    assert (
        usecases.check_decision(two_gates, uow, in_pilot_review, RISK_1, REJECT, "Too risky", LATER)
        == registered
    )
    with pytest.raises(SelfApproval):
        usecases.check_decision(two_gates, uow, in_pilot_review, OWNER, REJECT, "mine", LATER)
    with pytest.raises(NotAnApprover):
        usecases.check_decision(two_gates, uow, in_pilot_review, DPO, REJECT, "not mine", LATER)
    assert (len(uow.audit_entries), len(uow.messages)) == (audit, messages)  # a dry run
    assert uow.stored_review(in_pilot_review).status is ReviewStatus.OPEN

    usecases.decide(two_gates, uow, in_pilot_review, RISK_2, REJECT, "No", LATER)
    with pytest.raises(ReviewClosed):
        usecases.check_decision(two_gates, uow, in_pilot_review, RISK_1, REJECT, "Too risky", LATER)


def test_a_repeated_click_records_nothing_new(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)
    audit, messages = len(uow.audit_entries), len(uow.messages)
    again = usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)
    assert again.result.duplicate and not again.advanced
    assert (len(uow.audit_entries), len(uow.messages)) == (audit, messages)
    assert len(uow.stored_review(in_pilot_review).decisions) == 1


def test_the_stage_advances_once_under_repeated_final_clicks(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    for user in (RISK_1, SPONSOR, RISK_2, RISK_2, RISK_2):
        usecases.decide(two_gates, uow, in_pilot_review, user, APPROVE, None, LATER)
    assert uow.audit_actions.count("stage.advanced") == 2  # intake, then pilot
    assert uow.stored_initiative(registered).stage == "pilot"


@pytest.mark.parametrize(
    ("user", "kind", "reason", "error"),
    [
        (OWNER, APPROVE, None, SelfApproval),
        (SUBMITTER, REJECT, "no", SelfApproval),
        (DPO, APPROVE, None, NotAnApprover),
    ],
)
def test_a_refused_decision_is_audited_and_changes_nothing(
    two_gates: CompiledPipeline,
    uow: FakeUnitOfWork,
    registered: str,
    in_pilot_review: int,
    user: str,
    kind: DecisionKind,
    reason: str | None,
    error: type[Exception],
) -> None:
    messages = len(uow.messages)
    with pytest.raises(error):
        usecases.decide(two_gates, uow, in_pilot_review, user, kind, reason, LATER)
    entry = uow.audit_entries[-1]
    assert (entry.action, entry.actor_id, entry.target) == ("decision.refused", user, registered)
    assert entry.payload["review"] == in_pilot_review
    assert uow.stored_review(in_pilot_review).decisions == []
    assert len(uow.messages) == messages


def test_owner_cannot_approve_own_gate_even_when_holding_the_role(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.set_role_holders(two_gates, uow, "risk", [OWNER], "UADMIN", NOW)
    with pytest.raises(SelfApproval):
        usecases.decide(two_gates, uow, in_pilot_review, OWNER, APPROVE, None, LATER)


def test_roles_set_in_storage_and_from_user_groups_can_decide(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.set_role_holders(two_gates, uow, "risk", ["UNEWRISK", " ", "UNEWRISK"], "UADMIN", NOW)
    assert uow.committed.roles == {"risk": ["UNEWRISK"]}
    usecases.decide(two_gates, uow, in_pilot_review, "UNEWRISK", APPROVE, None, LATER)
    outcome = usecases.decide(
        two_gates, uow, in_pilot_review, "UGROUP", APPROVE, None, LATER, extra_roles={"risk"}
    )
    assert outcome.result.remaining == {"sponsor": 1}


def test_setting_holders_of_an_unknown_role_is_refused(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    with pytest.raises(UnknownRole, match="sponsor"):
        usecases.set_role_holders(two_gates, uow, "cfo", ["U1"], "UADMIN", NOW)


def test_a_rejection_returns_the_initiative_to_the_team(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    outcome = usecases.decide(two_gates, uow, in_pilot_review, RISK_1, REJECT, "No bias testing", LATER)
    assert outcome.review.status is ReviewStatus.REJECTED and not outcome.advanced
    stored = uow.stored_initiative(registered)
    assert (stored.stage, stored.status) == ("poc", Status.ACTIVE)
    with pytest.raises(ReviewClosed):
        usecases.decide(two_gates, uow, in_pilot_review, RISK_2, APPROVE, None, LATER)
    with pytest.raises(AlreadyDecided):
        usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)


def test_after_changes_are_requested_the_team_can_answer_and_resubmit(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.decide(two_gates, uow, in_pilot_review, RISK_1, CHANGES, "Say more", LATER)
    usecases.answer(two_gates, uow, registered, "pilot", {"success": "yes"}, OWNER, LATER)
    again = submit(two_gates, uow, registered)
    assert again != in_pilot_review
    assert uow.stored_review(again).is_open


def test_deciding_on_an_unknown_review_is_refused(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnknownReview):
        usecases.decide(two_gates, uow, 99, RISK_1, APPROVE, None, NOW)


def test_decide_retries_when_it_loses_a_race(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    uow.conflicts_to_raise = 1
    outcome = usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)
    assert not outcome.result.duplicate
    assert len(uow.stored_review(in_pilot_review).decisions) == 1
    assert uow.audit_actions.count("decision.recorded") == 2  # sponsor at intake, risk now


def test_decide_gives_up_after_repeated_races(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    uow.conflicts_to_raise = 3
    with pytest.raises(ConcurrentUpdate):
        usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)
    assert uow.stored_review(in_pilot_review).decisions == []


# ---------------------------------------------------------------- withdraw, hold, resume, retire


def test_the_submitter_can_withdraw_and_the_team_gets_it_back(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    review = usecases.withdraw(uow, registered, SUBMITTER, LATER)
    assert review.status is ReviewStatus.WITHDRAWN
    assert uow.stored_review(in_pilot_review).status is ReviewStatus.WITHDRAWN
    assert uow.stored_initiative(registered).status is Status.ACTIVE
    assert uow.message_kinds[-1] == "review.withdrawn"
    with pytest.raises(InvalidTransition, match="no open review"):
        usecases.withdraw(uow, registered, SUBMITTER, LATER)


def test_an_approver_cannot_withdraw_a_review(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    with pytest.raises(InvalidTransition, match="submitted the review or the owner"):
        usecases.withdraw(uow, registered, RISK_1, LATER)
    assert uow.stored_review(in_pilot_review).is_open


def test_hold_and_resume_are_audited(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    usecases.hold(uow, registered, OWNER, "Budget freeze", NOW)
    assert uow.stored_initiative(registered).status is Status.ON_HOLD
    with pytest.raises(InvalidTransition):
        submit(two_gates, uow, registered)
    usecases.resume(uow, registered, OWNER, LATER)
    assert uow.stored_initiative(registered).status is Status.ACTIVE
    assert uow.audit_actions[-2:] == ["initiative.held", "initiative.resumed"]


def test_submitting_from_slack_is_for_the_owner_the_sponsor_or_a_steward(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = register_sponsored(two_gates, uow)
    with pytest.raises(NotPermitted, match=f"Only the owner of {ref}, its sponsor or a governance lead"):
        usecases.submit(two_gates, uow, ref, RISK_1, NOW, steward=False)
    assert "review.submitted" not in uow.audit_actions
    usecases.set_role_holders(two_gates, uow, "sponsor", [DPO], OWNER, NOW)  # a second sponsor
    for who, steward in [(RISK_1, True), (SPONSOR, False), (OWNER, False)]:
        review = usecases.submit(two_gates, uow, ref, who, NOW, steward=steward)
        assert review.submitted_by == who
        usecases.withdraw(uow, ref, who, NOW)


def test_a_sponsor_cannot_submit_a_gate_only_they_could_approve(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    ref = register_sponsored(two_gates, uow)
    # SPONSOR is the only sponsor and may not approve what they submitted: nobody could decide.
    with pytest.raises(NotReady) as refused:
        usecases.submit(two_gates, uow, ref, SPONSOR, NOW, steward=False)
    assert refused.value.reasons == [
        "the Sponsor role needs 1 approver(s) but 0 eligible person(s) hold it "
        "(the owner and whoever submits cannot approve)"
    ]
    assert "review.submitted" not in uow.audit_actions
    review = usecases.submit(two_gates, uow, ref, OWNER, NOW, steward=False)
    assert review.requirements[0].role == "sponsor"


def test_hold_resume_and_retire_are_for_the_owner_or_a_steward(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    for change in (
        lambda **kw: usecases.hold(uow, registered, RISK_1, "pause", NOW, **kw),
        lambda **kw: usecases.retire(uow, registered, RISK_1, "gone", NOW, **kw),
    ):
        with pytest.raises(NotPermitted, match=f"Only the owner of {registered}"):
            change()
    assert uow.stored_initiative(registered).status is Status.ACTIVE
    assert "initiative.held" not in uow.audit_actions
    usecases.hold(uow, registered, RISK_1, "pause", NOW, steward=True)
    assert uow.message_kinds[-1] == "initiative.held"  # the card is redrawn
    with pytest.raises(NotPermitted):
        usecases.resume(uow, registered, RISK_1, LATER)
    usecases.resume(uow, registered, RISK_1, LATER, steward=True)
    assert uow.stored_initiative(registered).status is Status.ACTIVE
    # The redraw still waiting shows the resumed card too: no second one.
    assert uow.message_kinds.count("initiative.held") == 1 and "initiative.resumed" not in uow.message_kinds


def test_hold_needs_a_reason(two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str) -> None:
    with pytest.raises(InvalidTransition, match="reason is required"):
        usecases.hold(uow, registered, OWNER, "  ", NOW)
    assert uow.stored_initiative(registered).status is Status.ACTIVE


def test_an_initiative_under_review_cannot_be_put_on_hold(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    with pytest.raises(InvalidTransition, match="in review"):
        usecases.hold(uow, registered, OWNER, "pause", LATER)
    assert uow.audit_actions[-1] != "initiative.held"


def test_retire_withdraws_the_open_review(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.retire(uow, registered, OWNER, "Vendor product bought instead", LATER)
    assert uow.stored_initiative(registered).status is Status.RETIRED
    assert uow.stored_review(in_pilot_review).status is ReviewStatus.WITHDRAWN
    assert uow.message_kinds[-1] == "initiative.retired"
    with pytest.raises(ReviewClosed):
        usecases.decide(two_gates, uow, in_pilot_review, RISK_1, APPROVE, None, LATER)


def test_retiring_under_review_logs_the_review_withdrawn_before_the_retirement(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    usecases.retire(uow, registered, OWNER, "Vendor product bought instead", LATER)
    withdrawn, retired = uow.audit_entries[-2:]
    assert (withdrawn.actor_id, withdrawn.action, withdrawn.target, withdrawn.at) == (
        OWNER,
        "review.withdrawn",
        registered,
        LATER,
    )
    assert withdrawn.payload == {"review": in_pilot_review, "gate": "pilot"}  # as `withdraw` logs it
    assert (retired.action, retired.payload) == (
        "initiative.retired",
        {"reason": "Vendor product bought instead"},
    )


def test_retiring_without_an_open_review_logs_no_withdrawal(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    usecases.retire(uow, registered, OWNER, "Vendor product bought instead", LATER)
    assert uow.audit_actions[-1] == "initiative.retired"
    assert "review.withdrawn" not in uow.audit_actions


def test_retire_needs_a_reason_and_records_nothing_without_one(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    with pytest.raises(InvalidTransition):
        usecases.retire(uow, registered, OWNER, " ", LATER)
    assert uow.stored_initiative(registered).status is Status.ACTIVE


# ---------------------------------------------------------------- listing and showing


def test_list_filters_by_stage_status_owner_and_stalled(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork
) -> None:
    first = register(two_gates, uow)
    second = usecases.register(
        two_gates,
        uow,
        name="Other",
        owner_id="UOTHER",
        answers=INTAKE,
        actor_id="UOTHER",
        now=NOW + timedelta(days=40),
    ).ref
    usecases.hold(uow, second, "UOTHER", "pause", NOW)
    soon = NOW + timedelta(days=45)
    refs = lambda **kw: [i.ref for i in usecases.list_initiatives(two_gates, uow, soon, **kw)]  # noqa: E731
    assert refs() == [first, second]
    assert refs(owner_id="UOTHER") == [second]
    assert refs(status=Status.ON_HOLD) == [second]
    assert refs(stalled=True) == [first]
    assert refs(stage="poc") == []
    assert refs(limit=1, offset=1) == [second]
    assert usecases.is_stalled(two_gates, uow.stored_initiative(first), soon)
    assert not usecases.is_stalled(two_gates, uow.stored_initiative(second), soon)


def test_listing_an_unknown_stage_is_refused(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnknownGate):
        usecases.list_initiatives(two_gates, uow, NOW, stage="space")


def test_show_gathers_answers_history_reviews_timeline_and_readiness(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    view = usecases.show(two_gates, uow, registered)
    assert view.initiative.stage == "poc"
    assert set(view.answers) == {"problem", "personal_data", "budget", "success"}
    assert [r.gate_id for r in view.reviews] == ["intake", "pilot"]
    assert view.timeline[0].action == "initiative.registered"
    assert view.readiness is not None and view.readiness.gate_id == "pilot"


def test_show_keeps_the_answers_each_closed_review_was_submitted_with(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    sent_back = submit(two_gates, uow, registered)
    usecases.decide(two_gates, uow, sent_back, SPONSOR, CHANGES, "Say how long triage takes now", NOW)
    usecases.answer(two_gates, uow, registered, "intake", {"problem": "Claims take 12 days"}, OWNER, LATER)
    submit(two_gates, uow, registered)
    view = usecases.show(two_gates, uow, registered)
    assert view.answers["problem"].value == "Claims take 12 days"
    # The open review's gate is frozen: only the review sent back has answers of then.
    assert set(view.as_submitted) == {sent_back}
    then = view.as_submitted[sent_back]
    assert then["problem"].value == INTAKE["problem"]
    assert then == usecases.evidence_as_submitted(uow, sent_back).answers


def test_answer_readiness_is_computed_from_exactly_what_was_recorded(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    result = usecases.answer(
        two_gates, uow, registered, "intake", {"budget": "", "personal_data": "yes"}, OWNER, LATER
    )
    again = usecases.check_readiness(two_gates, uow, registered)
    assert dict(result.readiness.answers) == dict(again.answers)
    assert [q.id for q in result.readiness.missing] == [q.id for q in again.missing]
    assert "budget" not in result.readiness.answers  # cleared in this very save


def test_a_page_saved_in_a_batch_returns_the_answers_as_recorded(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    # What the next questionnaire page is drawn from: every current answer, this save included.
    page = usecases.check_page(
        two_gates, registered, "intake", {"budget": "", "personal_data": "yes"}, OWNER, LATER
    )
    [result] = usecases.answer_many(uow, [page])
    assert not isinstance(result, Exception) and result.readiness is None
    assert result.changed == ("budget", "personal_data")
    assert {q: v for q, v in result.answers.items() if v is not None} == dict(
        usecases.check_readiness(two_gates, uow, registered).answers
    )
    assert result.answers["budget"] is None  # cleared in this very save


def test_status_reads_the_initiative_its_open_review_and_readiness(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    view = usecases.status(two_gates, uow, registered)
    assert view.initiative.ref == registered and view.initiative.status is Status.IN_REVIEW
    assert view.open_review is not None and view.open_review.id == in_pilot_review
    assert view.readiness is not None and view.readiness.gate_id == "pilot"


def test_status_of_an_initiative_in_its_last_stage_has_no_readiness(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    for user in (RISK_1, RISK_2, SPONSOR):
        usecases.decide(two_gates, uow, in_pilot_review, user, APPROVE, None, LATER)
    view = usecases.status(two_gates, uow, registered)
    assert view.open_review is None and view.readiness is None


def test_status_of_an_unknown_initiative_is_refused(two_gates: CompiledPipeline, uow: FakeUnitOfWork) -> None:
    with pytest.raises(UnknownInitiative):
        usecases.status(two_gates, uow, "AI-9999")


def test_check_readiness_defaults_to_the_next_gate(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    assert usecases.check_readiness(two_gates, uow, registered).gate_id == "intake"
    assert usecases.check_readiness(two_gates, uow, registered, "pilot").missing[0].id == "success"


def test_the_last_stage_has_no_next_gate(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str, in_pilot_review: int
) -> None:
    for user in (RISK_1, RISK_2, SPONSOR):
        usecases.decide(two_gates, uow, in_pilot_review, user, APPROVE, None, LATER)
    with pytest.raises(InvalidTransition, match="no further gate"):
        usecases.check_readiness(two_gates, uow, registered)
    with pytest.raises(InvalidTransition, match="no further gate"):
        submit(two_gates, uow, registered)


def test_answering_the_intakes_sponsor_question_later_names_the_sponsor(uow: FakeUnitOfWork) -> None:
    pipeline = load_pipeline()  # its intake asks for the business sponsor, optional at registration
    ref = usecases.register(
        pipeline, uow, name="Claims triage", owner_id=OWNER, answers={}, actor_id=OWNER, now=NOW
    ).ref
    assert uow.stored_initiative(ref).sponsor_id is None
    usecases.answer(pipeline, uow, ref, "intake", {"business_sponsor": SPONSOR}, OWNER, LATER)
    assert uow.stored_initiative(ref).sponsor_id == SPONSOR
    assert uow.audit_actions[-1] == "initiative.sponsor_changed"
    # Through the batch path too, and an answer cleared clears the sponsor.
    page = usecases.check_page(pipeline, ref, "intake", {"business_sponsor": ""}, OWNER, LATER)
    assert not isinstance(usecases.answer_many(uow, [page])[0], Exception)
    assert uow.stored_initiative(ref).sponsor_id is None
    # Other pages leave it alone.
    usecases.answer(pipeline, uow, ref, "intake", {"business_sponsor": SPONSOR}, OWNER, LATER)
    usecases.answer(pipeline, uow, ref, "intake", {"problem_statement": "Triage takes 9 days"}, OWNER, LATER)
    assert uow.stored_initiative(ref).sponsor_id == SPONSOR


def test_only_the_owner_the_sponsor_or_a_steward_may_change_the_sponsor(uow: FakeUnitOfWork) -> None:
    """Naming the sponsor gives them the right to submit: a teammate may answer the rest of the
    intake, but may not name themselves (or anyone else) sponsor."""
    pipeline = load_pipeline()
    ref = usecases.register(
        pipeline, uow, name="Claims triage", owner_id=OWNER, answers={}, actor_id=OWNER, now=NOW
    ).ref
    usecases.answer(pipeline, uow, ref, "intake", {"business_sponsor": SPONSOR}, OWNER, LATER)
    teammate = "U0TEAMMATE"

    def save(author: str, answers: dict[str, str], steward: bool = False) -> object:
        page = usecases.check_page(pipeline, ref, "intake", answers, author, LATER, steward=steward)
        return usecases.answer_many(uow, [page])[0]

    refused = save(teammate, {"business_sponsor": teammate, "problem_statement": "Triage takes 9 days"})
    assert isinstance(refused, InvalidAnswer) and refused.question_id == "business_sponsor"
    assert "Only the owner of" in refused.reason
    assert uow.stored_initiative(ref).sponsor_id == SPONSOR
    with uow:
        assert "problem_statement" not in usecases.current_answers(uow, ref)  # nothing of the page kept
    # The sponsor answer sent back as it is, with the rest of the page, is fine.
    assert not isinstance(
        save(teammate, {"business_sponsor": SPONSOR, "problem_statement": "Triage takes 9 days"}), Exception
    )
    with uow:
        assert usecases.current_answers(uow, ref)["problem_statement"] == "Triage takes 9 days"
    # A steward may; so may the sponsor (handing over), and the owner.
    assert not isinstance(save("U0LEAD001", {"business_sponsor": teammate}, steward=True), Exception)
    assert not isinstance(save(teammate, {"business_sponsor": SPONSOR}), Exception)
    assert not isinstance(save(OWNER, {"business_sponsor": ""}), Exception)
    assert uow.stored_initiative(ref).sponsor_id is None


def test_a_reviews_evidence_is_shown_as_submitted_and_hashes_as_it_did(
    two_gates: CompiledPipeline, uow: FakeUnitOfWork, registered: str
) -> None:
    review_id = submit(two_gates, uow, registered)
    usecases.decide(two_gates, uow, review_id, SPONSOR, CHANGES, "Say more", NOW)
    usecases.answer(two_gates, uow, registered, "intake", {"budget": "30,000"}, OWNER, LATER)
    usecases.answer(two_gates, uow, registered, "pilot", {"success": "partly"}, OWNER, LATER)
    evidence = usecases.evidence_as_submitted(uow, review_id)
    assert evidence.review.id == review_id and evidence.initiative.ref == registered
    assert {qid: version.value for qid, version in evidence.answers.items()} == {
        "problem": "Claims take 9 days to triage",
        "personal_data": "no",
        "budget": 25000,
    }
    values = {qid: version.value for qid, version in evidence.answers.items()}
    links = [(link.url, link.title) for link in evidence.links]
    assert evidence_hash(values, links) == evidence.review.evidence_hash


CROSS_GATE = """
version: 1
stages: [idea, poc, pilot]
roles:
  sponsor: {slack_users: [USPONSOR]}
  dpo: {slack_users: [UDPO]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: personal_data, label: Personal data, type: yes_no, required: true}
      - {id: notes, label: Notes, type: text}
    approvals:
      - {role: sponsor}
  - id: pilot
    from: poc
    to: pilot
    questions:
      - {id: dpia, label: DPIA, type: url, required_if: 'answers.personal_data == "yes"'}
    approvals:
      - {role: sponsor}
      - {role: dpo, when: 'answers.personal_data == "yes"'}
"""


def test_the_answers_of_a_gate_already_decided_no_longer_change(uow: FakeUnitOfWork) -> None:
    """A form opened before the intake was approved and saved after it would change the evidence
    the intake was decided on, and what the pilot requires: here "no personal data" after the
    fact, and the pilot no longer needs its DPIA nor the DPO."""
    pipeline = build(CROSS_GATE)
    ref = usecases.register(
        pipeline, uow, name="x", owner_id=OWNER, answers={"personal_data": "yes"}, actor_id=OWNER, now=NOW
    ).ref
    first = usecases.submit(pipeline, uow, ref, OWNER, NOW)
    usecases.decide(pipeline, uow, first.id, "USPONSOR", APPROVE, None, NOW)
    recorded = len(uow.stored_answers(ref))

    with pytest.raises(GateDecided, match=r"The intake gate of AI-0001 has been decided .*poc stage"):
        usecases.answer(pipeline, uow, ref, "intake", {"personal_data": "no"}, OWNER, LATER)
    page = usecases.check_page(pipeline, ref, "intake", {"personal_data": "no", "notes": "x"}, OWNER, LATER)
    [refused] = usecases.answer_many(uow, [page])
    assert isinstance(refused, GateDecided)
    with pytest.raises(GateDecided):
        usecases.add_link(pipeline, uow, ref, "intake", "https://wiki.example.com/x", "", OWNER, LATER)
    assert len(uow.stored_answers(ref)) == recorded and uow.committed.links == []
    assert [q.id for q in usecases.check_readiness(pipeline, uow, ref).missing] == ["dpia"]

    # The gate the initiative works towards takes answers, and a pilot review withdrawn does
    # not reopen the intake.
    usecases.answer(pipeline, uow, ref, "pilot", {"dpia": "https://wiki.example.com/dpia"}, OWNER, LATER)
    usecases.submit(pipeline, uow, ref, OWNER, LATER)
    usecases.withdraw(uow, ref, OWNER, LATER)
    with pytest.raises(GateDecided):
        usecases.answer(pipeline, uow, ref, "intake", {"notes": "context"}, OWNER, LATER)


FORWARD_READ = """
version: 1
stages: [idea, poc, pilot]
roles:
  sponsor: {slack_users: [USPONSOR]}
  dpo: {slack_users: [UDPO]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: problem, label: Problem, type: text, required: true}
    approvals:
      - {role: sponsor}
      - {role: dpo, when: 'answers.hosting == "external"'}
  - id: pilot
    from: poc
    to: pilot
    questions:
      - {id: hosting, label: Hosting, type: choice, options: [internal, external]}
      - {id: notes, label: Notes, type: text}
    approvals:
      - {role: sponsor}
"""


def test_an_answer_of_a_later_gate_the_gate_under_review_reads_is_frozen_with_it(
    uow: FakeUnitOfWork,
) -> None:
    """A later gate's questionnaire may be prepared early, but an answer there that the gate
    under review reads would change what the review requires after its approvers were asked:
    here external hosting after a sponsor alone was asked, without the DPO."""
    pipeline = build(FORWARD_READ)
    ref = usecases.register(
        pipeline, uow, name="x", owner_id=OWNER, answers={"problem": "Slow"}, actor_id=OWNER, now=NOW
    ).ref
    usecases.answer(pipeline, uow, ref, "pilot", {"hosting": "internal"}, OWNER, NOW)
    usecases.submit(pipeline, uow, ref, OWNER, NOW)
    with pytest.raises(InvalidAnswer, match=r"The intake review of .* depends on this answer"):
        usecases.answer(pipeline, uow, ref, "pilot", {"hosting": "external"}, OWNER, LATER)
    page = usecases.check_page(pipeline, ref, "pilot", {"hosting": "external", "notes": "x"}, OWNER, LATER)
    [refused] = usecases.answer_many(uow, [page])
    assert isinstance(refused, InvalidAnswer) and set(refused.problems) == {"hosting"}
    # An answer the intake does not read may change; once the review is withdrawn, any may.
    usecases.answer(pipeline, uow, ref, "pilot", {"notes": "context"}, OWNER, LATER)
    usecases.withdraw(uow, ref, OWNER, LATER)
    usecases.answer(pipeline, uow, ref, "pilot", {"hosting": "external"}, OWNER, LATER)


def test_an_answer_that_hides_one_the_gate_under_review_reads_is_frozen_with_it(uow: FakeUnitOfWork) -> None:
    """The intake's DPO approval reads whether the vendor is in the EU, a pilot question shown
    only when there is a vendor: saying mid-review that there is none would hide that answer,
    and with it the DPO's approval the review was opened with."""
    pipeline = build(
        FORWARD_READ.replace(
            "      - {id: notes, label: Notes, type: text}\n",
            "      - {id: notes, label: Notes, type: text}\n"
            "      - {id: vendor, label: Vendor, type: yes_no}\n"
            "      - {id: vendor_in_eu, label: In the EU, type: yes_no, show_if: 'answers.vendor == \"yes\"'}\n",
        ).replace("when: 'answers.hosting == \"external\"'", "when: 'answers.vendor_in_eu == \"no\"'")
    )
    assert {"vendor_in_eu", "vendor"} <= pipeline.gate_inputs["intake"]
    ref = usecases.register(
        pipeline, uow, name="x", owner_id=OWNER, answers={"problem": "Slow"}, actor_id=OWNER, now=NOW
    ).ref
    usecases.answer(pipeline, uow, ref, "pilot", {"vendor": "yes", "vendor_in_eu": "no"}, OWNER, NOW)
    usecases.submit(pipeline, uow, ref, OWNER, NOW)
    with pytest.raises(InvalidAnswer, match=r"The intake review of .* depends on this answer"):
        usecases.answer(pipeline, uow, ref, "pilot", {"vendor": "no"}, OWNER, LATER)


TIER_SET_AT_INTAKE_ONLY = """\
version: 1
stages: [idea, poc, pilot]
roles:
  risk: {slack_users: [URISK]}
  dpo: {slack_users: [UDPO]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: personal_data, label: Personal data, type: yes_no, required: true}
    risk_tier:
      - {tier: high, when: 'answers.personal_data == "yes"'}
      - {tier: low, when: 'true'}
    approvals:
      - {role: risk}
  - id: pilot
    from: poc
    to: pilot
    questions:
      - {id: dpia, label: DPIA link, type: url}
    criteria:
      - id: dpia_for_high_risk
        rule: tier != "high" || has(answers.dpia)
        explain: A high-risk initiative needs a DPIA.
    approvals:
      - {role: risk}
      - {role: dpo, when: 'tier == "high"'}
"""


def test_a_gate_without_risk_tier_rules_judges_tier_by_the_earlier_gates_rules() -> None:
    """The pilot gate has no risk_tier rules: the tier set at intake carries forward, so a
    high-risk initiative needs its DPIA and the DPO's approval there (they read tier as empty)."""
    pipeline = build(TIER_SET_AT_INTAKE_ONLY)
    uow = FakeUnitOfWork()
    initiative = usecases.register(
        pipeline, uow, name="Claims triage", owner_id=OWNER, answers={"personal_data": "yes"},
        actor_id=OWNER, now=NOW,
    )  # fmt: skip
    intake = usecases.submit(pipeline, uow, initiative.ref, SUBMITTER, NOW)
    usecases.decide(pipeline, uow, intake.id, "URISK", DecisionKind.APPROVE, None, NOW)
    with pytest.raises(NotReady, match="A high-risk initiative needs a DPIA"):
        usecases.submit(pipeline, uow, initiative.ref, SUBMITTER, NOW)
    usecases.answer(pipeline, uow, initiative.ref, "pilot", {"dpia": "https://wiki.example/dpia"}, OWNER, NOW)
    review = usecases.submit(pipeline, uow, initiative.ref, SUBMITTER, NOW)
    assert review.tier == "high"
    assert {r.role for r in review.requirements} == {"risk", "dpo"}
