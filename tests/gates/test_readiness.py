"""Readiness: what stands between an initiative and a gate decision, computed from answers."""

from __future__ import annotations

from typing import Any

import pytest

from gates.errors import UnknownGate
from gates.loader import CompiledPipeline
from gates.readiness import CriterionStatus, Readiness, readiness
from tests.gates.conftest import build

READINESS = """
version: 1
stages: [poc, pilot]
risk_tiers: [low, medium, high]
roles:
  sponsor: {label: Sponsor, slack_users: [USPONSOR]}
  risk: {label: Risk, slack_users: [URISK1, URISK2]}
  dpo: {label: DPO, slack_users: [UDPO]}
  ops: {label: Operations owner, slack_usergroup: SOPS}
gates:
  - id: pilot
    from: poc
    to: pilot
    questions:
      - {id: personal_data, label: Personal data, type: yes_no, required: true}
      - {id: customer_facing, label: Customer facing, type: yes_no}
      - {id: dpia, label: DPIA link, type: url, required_if: answers.personal_data == "yes"}
      - {id: users, label: Pilot users, type: number, show_if: answers.customer_facing == "yes"}
      - {id: users_note, label: Who are they, type: text, required: true,
         show_if: answers.customer_facing == "yes"}
      - {id: accuracy, label: Accuracy, type: percent, validation: {min: 0, max: 100}}
      - {id: go_live, label: Go-live date, type: date}
    criteria:
      - id: accurate
        rule: answers.accuracy >= 80
        explain: Accuracy must reach 80%.
        policy_tags: [quality]
      - id: dated
        rule: answers.go_live < timestamp("2026-01-01T00:00:00Z")
        explain: Go live this year.
        blocking: false
      - id: dpia_done
        rule: answers.personal_data == "no" || has(answers.dpia)
        explain: Personal data needs a DPIA.
    risk_tier:
      - {tier: high, when: 'answers.personal_data == "yes" && answers.customer_facing == "yes"'}
      - {tier: medium, when: 'answers.personal_data == "yes"'}
      - {tier: low, when: "true"}
    approvals:
      - {role: sponsor, min: 1}
      - {role: dpo, min: 1, when: 'answers.personal_data == "yes"'}
      - {role: risk, min: 2, when: 'tier == "high"'}
      - {role: ops, min: 1, when: 'answers.customer_facing == "yes"'}
"""

COMPLETE = {
    "personal_data": "no",
    "customer_facing": "no",
    "accuracy": "91%",
    "go_live": "2025-06-30",
}


@pytest.fixture(scope="module")
def pipeline() -> CompiledPipeline:
    """A one-gate pipeline exercising every readiness rule."""
    return build(READINESS)


def check(pipeline: CompiledPipeline, answers: dict[str, Any], **kwargs: Any) -> Readiness:
    return readiness(pipeline, "pilot", answers, **kwargs)


def criterion(report: Readiness, criterion_id: str) -> Any:
    return next(c for c in report.criteria if c.id == criterion_id)


def test_complete_answers_are_ready(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, COMPLETE)
    assert report.ready, report.blockers
    assert report.tier == "low"
    assert [c.status for c in report.criteria] == [CriterionStatus.MET] * 3


def test_an_unknown_gate_is_refused(pipeline: CompiledPipeline) -> None:
    with pytest.raises(UnknownGate):
        readiness(pipeline, "nope", {})


@pytest.mark.parametrize(
    ("answers", "missing"),
    [
        ({}, ["personal_data", "users_note"]),
        ({**COMPLETE, "personal_data": "yes"}, ["dpia"]),
        ({**COMPLETE, "personal_data": "yes", "dpia": "https://x.org/dpia"}, []),
        ({**COMPLETE, "customer_facing": "yes"}, ["users_note"]),
        ({**COMPLETE, "customer_facing": "no"}, []),
        ({**COMPLETE, "personal_data": ""}, ["personal_data"]),
    ],
    ids=[
        "required question unanswered",
        "required_if holds",
        "required_if satisfied",
        "show_if shows a required question",
        "show_if hides a required question",
        "a blank answer is no answer",
    ],
)
def test_missing_questions_honour_required_if_and_show_if(
    pipeline: CompiledPipeline, answers: dict[str, Any], missing: list[str]
) -> None:
    report = check(pipeline, answers)
    assert [q.id for q in report.missing] == missing
    for question in report.missing:
        assert f"'{question.label}' is not answered" in report.blockers


def test_show_if_hides_a_question_from_the_visible_list(pipeline: CompiledPipeline) -> None:
    hidden = check(pipeline, COMPLETE)
    shown = check(pipeline, {**COMPLETE, "customer_facing": "yes"})
    assert "users" not in [q.id for q in hidden.visible_questions]
    assert "users" in [q.id for q in shown.visible_questions]


def test_show_if_that_cannot_be_judged_yet_shows_the_question(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {"personal_data": "no"})
    assert "users" in [q.id for q in report.visible_questions]


def test_an_answer_that_does_not_fit_is_reported_not_raised(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "accuracy": "140%"})
    assert [error.question_id for error in report.invalid] == ["accuracy"]
    assert not report.ready
    assert any("accuracy: must be at most 100%" in reason for reason in report.blockers)


@pytest.mark.parametrize(
    ("answers", "criterion_id", "status", "waiting_for"),
    [
        (COMPLETE, "accurate", CriterionStatus.MET, ()),
        ({**COMPLETE, "accuracy": "79.5"}, "accurate", CriterionStatus.UNMET, ()),
        ({**COMPLETE, "accuracy": None}, "accurate", CriterionStatus.UNKNOWN, ("accuracy",)),
        ({**COMPLETE, "go_live": "2026-02-01"}, "dated", CriterionStatus.UNMET, ()),
        ({**COMPLETE, "personal_data": "yes"}, "dpia_done", CriterionStatus.UNMET, ()),
        ({"customer_facing": "no"}, "dpia_done", CriterionStatus.UNKNOWN, ("personal_data",)),
    ],
)
def test_each_criterion_is_met_unmet_or_waiting_for_a_named_answer(
    pipeline: CompiledPipeline,
    answers: dict[str, Any],
    criterion_id: str,
    status: CriterionStatus,
    waiting_for: tuple[str, ...],
) -> None:
    result = criterion(check(pipeline, answers), criterion_id)
    assert result.status is status
    assert result.waiting_for == waiting_for


def test_a_criterion_waiting_for_an_answer_says_which(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "accuracy": None})
    assert "Accuracy must reach 80%. (waiting for: accuracy)" in report.blockers


def test_an_unmet_advisory_criterion_does_not_block(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "go_live": "2026-02-01"})
    assert [c.id for c in report.advisory_unmet] == ["dated"]
    assert report.blocking_unmet == ()
    assert report.ready


def test_an_unmet_blocking_criterion_blocks_with_its_explanation(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "accuracy": "50%"})
    assert [c.id for c in report.blocking_unmet] == ["accurate"]
    assert report.blockers == ["Accuracy must reach 80%."]
    assert criterion(report, "accurate").policy_tags == ("quality",)


@pytest.mark.parametrize(
    ("answers", "tier", "waiting_for"),
    [
        ({"personal_data": "yes", "customer_facing": "yes"}, "high", ()),
        ({"personal_data": "yes", "customer_facing": "no"}, "medium", ()),
        ({"personal_data": "no"}, "low", ()),
        ({"personal_data": "yes"}, None, ("customer_facing",)),
        ({"customer_facing": "yes"}, None, ("personal_data",)),
    ],
    ids=["first rule", "second rule", "fallback", "earlier rule waits", "first rule waits"],
)
def test_risk_tier_first_match_wins_and_waits_for_an_earlier_rules_answer(
    pipeline: CompiledPipeline, answers: dict[str, Any], tier: str | None, waiting_for: tuple[str, ...]
) -> None:
    report = check(pipeline, answers)
    assert report.tier == tier
    assert report.tier_waiting_for == waiting_for
    if waiting_for:
        assert any("risk tier cannot be set" in reason for reason in report.blockers)


def test_a_risk_rule_that_fails_to_evaluate_stops_the_search_instead_of_being_skipped() -> None:
    """Skipping it placed a high-risk initiative in the lower tier, with fewer approvers."""
    pipeline = build(
        """
        version: 1
        stages: [a, b]
        gates:
          - id: g
            from: a
            to: b
            questions: [{id: n, label: N, type: number}]
            risk_tier:
              # This fails for an answer of 0 (a division by zero): the loader refuses only a
              # rule that fails for every answer of some kind.
              - {tier: high, when: '10 / int(answers.n) > 2'}
              - {tier: low, when: 'true'}
        """
    )
    report = readiness(pipeline, "g", {"n": 0})
    assert report.tier is None and report.tier_error is not None and not report.ready
    assert readiness(pipeline, "g", {"n": 3}).tier == "high"


def approvals(report: Readiness) -> dict[str, tuple[int, tuple[str, ...]]]:
    return {need.role: (need.min, need.holders) for need in report.approvals}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"personal_data": "no", "customer_facing": "no"}, {"sponsor"}),
        ({"personal_data": "yes", "customer_facing": "no"}, {"sponsor", "dpo"}),
        ({"personal_data": "yes", "customer_facing": "yes"}, {"sponsor", "dpo", "risk", "ops"}),
        ({"personal_data": "no", "customer_facing": "yes"}, {"sponsor", "ops"}),
    ],
)
def test_approvals_follow_their_when_conditions_including_tier(
    pipeline: CompiledPipeline, answers: dict[str, Any], expected: set[str]
) -> None:
    assert set(approvals(check(pipeline, answers))) == expected


def test_approvals_name_how_many_and_who_can_give_them(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {"personal_data": "yes", "customer_facing": "yes"})
    needs = approvals(report)
    assert needs["risk"] == (2, ("URISK1", "URISK2"))
    assert needs["sponsor"] == (1, ("USPONSOR",))
    ops = next(need for need in report.approvals if need.role == "ops")
    assert ops.usergroup == "SOPS"
    assert not ops.short_of_holders


def test_an_approval_whose_condition_cannot_be_judged_is_required(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {"customer_facing": "no"})
    dpo = next(need for need in report.approvals if need.role == "dpo")
    assert dpo.because is not None and "personal_data" in dpo.because


def test_role_holders_from_storage_add_to_the_pipeline_file(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, COMPLETE, role_holders={"sponsor": ["UOTHER", "USPONSOR"]})
    assert approvals(report)["sponsor"] == (1, ("USPONSOR", "UOTHER"))


def test_the_owner_is_not_among_the_holders_who_can_approve(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, COMPLETE, role_holders={"sponsor": ["UOWNER"]}, owner_id="USPONSOR")
    assert approvals(report)["sponsor"] == (1, ("UOWNER",))


def test_a_role_with_too_few_eligible_holders_blocks(pipeline: CompiledPipeline) -> None:
    answers = {**COMPLETE, "personal_data": "yes", "customer_facing": "yes", "dpia": "https://x.org/d"}
    answers |= {"users_note": "staff"}
    report = check(pipeline, answers, owner_id="URISK1")
    risk = next(need for need in report.approvals if need.role == "risk")
    assert risk.holders == ("URISK2",)
    assert risk.short_of_holders
    assert not report.ready
    assert (
        "the Risk role needs 2 approver(s) but 1 eligible person(s) hold it "
        "(the owner and whoever submits cannot approve)" in report.blockers
    )


def test_the_owner_of_the_only_sponsor_seat_blocks_the_gate(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, COMPLETE, owner_id="USPONSOR")
    assert not report.ready
    assert any("Sponsor role needs 1" in reason for reason in report.blockers)


def test_rules_read_answers_given_at_earlier_gates(two_gates: CompiledPipeline) -> None:
    pipeline = build(
        """
        version: 1
        stages: [a, b, c]
        gates:
          - id: first
            from: a
            to: b
            questions: [{id: pd, label: PD, type: yes_no}]
          - id: second
            from: b
            to: c
            questions: [{id: dpia, label: DPIA, type: url, required_if: answers.pd == "yes"}]
        """
    )
    assert [q.id for q in readiness(pipeline, "second", {"pd": "yes"}).missing] == ["dpia"]
    assert readiness(pipeline, "second", {"pd": "no"}).ready


def test_answers_to_questions_no_longer_in_the_pipeline_are_ignored(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "removed_question": "whatever"})
    assert report.ready
    assert "removed_question" not in report.answers


def test_the_report_counts_answered_visible_questions(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, COMPLETE)
    assert report.answered == 4
    assert len(report.visible_questions) == 5


def test_an_invalid_answer_to_a_required_question_is_reported_once(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {**COMPLETE, "personal_data": "perhaps"})
    assert [error.question_id for error in report.invalid] == ["personal_data"]
    assert "personal_data" not in [q.id for q in report.missing]


def test_a_tier_dependent_approval_is_required_while_the_tier_is_unknown(pipeline: CompiledPipeline) -> None:
    report = check(pipeline, {"personal_data": "yes"})
    assert report.tier is None
    risk = next(need for need in report.approvals if need.role == "risk")
    assert risk.min == 2
    assert risk.because is not None and "tier" in risk.because


RULES_READING_EVERY_ANSWER = """
version: 1
stages: [a, b]
gates:
  - id: g
    from: a
    to: b
    questions:
      - {id: x, label: X, type: text}
      - {id: y, label: Y, type: text}
      - {id: z, label: Z, type: text}
    criteria:
      - {id: enough, rule: size(answers) >= 3, explain: Answer everything.}
      - {id: x_given, rule: has(answers.x), explain: X please.}
"""


def test_rules_that_read_the_answers_as_a_whole_see_every_answer() -> None:
    pipeline = build(RULES_READING_EVERY_ANSWER)
    assert pipeline.rule_inputs is None
    report = readiness(pipeline, "g", {"x": "1", "y": "2", "z": "3"})
    assert [c.status for c in report.criteria] == [CriterionStatus.MET, CriterionStatus.MET]
    assert criterion(readiness(pipeline, "g", {"x": "1"}), "enough").status is CriterionStatus.UNMET


def test_rules_see_only_the_answers_they_name(pipeline: CompiledPipeline) -> None:
    assert pipeline.rule_inputs == {"personal_data", "customer_facing", "accuracy", "go_live", "dpia"}


# A rule can fail with the answers given rather than wait for one: CEL refuses to multiply an
# integer by a double ("500000" is stored as an int, "500000.0" as a float), and answers can make
# a division by zero. Such a failure must never make a gate easier to pass.
FAILING_RULES = """
version: 1
stages: [idea, poc]
roles:
  risk: {slack_users: [UR1, UR2, UR3]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: cost, label: Cost, type: number, required: true}
      - {id: annual_value, label: Annual value, type: number}
      - {id: business_case, label: Business case, type: url, required_if: '1000000 / int(answers.cost) < 10'}
    criteria:
      - id: roi
        rule: 'int(answers.annual_value) / int(answers.cost) >= 2'
        explain: The value must be twice the cost.
    risk_tier:
      # Each rule divides by the cost: it fails when the cost is 0.
      - {tier: high, when: '1000000 / int(answers.cost) < 10'}
      - {tier: low, when: 'true'}
    approvals:
      - {role: risk, min: 1}
      - {role: risk, min: 3, when: 'tier == "high"'}
"""


def test_a_tier_rule_that_fails_leaves_the_tier_unknown_instead_of_falling_to_a_lower_one() -> None:
    pipeline = build(FAILING_RULES)
    report = readiness(pipeline, "intake", {"cost": "0", "annual_value": "2000000"}, {}, "U0OWNER")
    assert report.tier is None and report.tier_unknown
    assert not report.ready
    assert any(
        "the risk tier cannot be set: the rule for 'high' fails" in reason for reason in report.blockers
    )
    # With a cost the rule can divide by: the high tier and its three approvers.
    fine = readiness(pipeline, "intake", {"cost": "500000", "annual_value": "2000000"}, {}, "U0OWNER")
    assert fine.tier == "high" and not fine.tier_unknown


def test_a_required_if_that_fails_keeps_its_question_required() -> None:
    pipeline = build(FAILING_RULES)
    report = readiness(pipeline, "intake", {"cost": "0", "annual_value": "2000000"}, {}, "U0OWNER")
    assert "business_case" in [q.id for q in report.missing]


def test_a_division_by_a_zero_answer_is_an_unmet_criterion_not_a_crash() -> None:
    pipeline = build(FAILING_RULES)
    report = readiness(pipeline, "intake", {"cost": "0", "annual_value": "10"}, {}, "U0OWNER")
    [roi] = report.criteria
    assert roi.status is not CriterionStatus.MET
    assert not report.ready


# A vendor's questions only apply when there is a vendor; the DPA only when it is outside the EU.
VENDOR = """
version: 1
stages: [idea, poc]
roles:
  sponsor: {slack_users: [USPONSOR]}
  dpo: {slack_users: [UDPO]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - {id: uses_vendor, label: Uses a vendor, type: yes_no, required: true}
      - id: vendor_in_eu
        label: Vendor in the EU
        type: yes_no
        show_if: answers.uses_vendor == "yes"
        required_if: answers.uses_vendor == "yes"
      - id: dpa_link
        label: Data processing agreement
        type: url
        show_if: answers.vendor_in_eu == "no"
        required_if: answers.vendor_in_eu == "no"
      - {id: transfer_note, label: Transfer safeguards, type: text, required_if: answers.vendor_in_eu == "no"}
      - {id: region, label: Hosting region, type: choice, options: [eu, us], show_if: answers.uses_vendor == "yes"}
    criteria:
      - id: data_stays
        rule: '!has(answers.vendor_in_eu) || answers.vendor_in_eu == "yes"'
        explain: Data stays in the EU.
    risk_tier:
      - {tier: high, when: 'has(answers.vendor_in_eu) && answers.vendor_in_eu == "no"'}
      - {tier: low, when: "true"}
    approvals:
      - {role: sponsor}
      - {role: dpo, when: 'has(answers.vendor_in_eu) && answers.vendor_in_eu == "no"'}
"""


def _judged(report: Readiness) -> tuple[Any, ...]:
    return (
        [q.id for q in report.visible_questions],
        [q.id for q in report.missing],
        [str(error) for error in report.invalid],
        [(c.id, c.status) for c in report.criteria],
        report.tier,
        [need.role for need in report.approvals],
        report.blockers,
    )


def test_a_hidden_answer_counts_for_nothing_as_if_never_given() -> None:
    """The team said there is a vendor outside the EU, then that there is no vendor: the stored
    "no" stays on record, but no longer asks for a DPA, fails a criterion, raises the tier or
    calls in the DPO."""
    pipeline = build(VENDOR)
    hidden = readiness(pipeline, "intake", {"uses_vendor": "no", "vendor_in_eu": "no", "region": "us"})
    never = readiness(pipeline, "intake", {"uses_vendor": "no"})
    assert _judged(hidden) == _judged(never)
    assert [q.id for q in hidden.visible_questions] == ["uses_vendor", "transfer_note"]
    assert hidden.ready and hidden.tier == "low"
    assert hidden.answers["vendor_in_eu"] == "no"  # kept: an answer is evidence
    assert "vendor_in_eu" not in hidden.counted and "region" not in hidden.counted
    shown = readiness(pipeline, "intake", {"uses_vendor": "yes", "vendor_in_eu": "no"})
    assert [q.id for q in shown.missing] == ["dpa_link", "transfer_note"]
    assert shown.tier == "high" and "dpo" in [need.role for need in shown.approvals]


def test_a_question_that_depends_only_on_a_hidden_one_is_hidden_too() -> None:
    """Its premise cannot be answered while hidden, so whether or not it ever was, the DPA
    question goes with it; while the premise is merely unanswered, it stays in view."""
    pipeline = build(VENDOR)
    no_vendor = readiness(pipeline, "intake", {"uses_vendor": "no"})
    vendor = readiness(pipeline, "intake", {"uses_vendor": "yes"})
    assert "dpa_link" not in [q.id for q in no_vendor.visible_questions]
    assert "dpa_link" in [q.id for q in vendor.visible_questions]


def test_a_chain_of_show_ifs_resolves_whatever_the_order_of_its_questions() -> None:
    """The DPA question (in an earlier gate) depends on the vendor's location, which depends on
    whether there is a vendor (in a later gate)."""
    pipeline = build(
        """
        version: 1
        stages: [a, b, c]
        gates:
          - id: first
            from: a
            to: b
            questions:
              - {id: dpa_link, label: DPA, type: url, show_if: answers.vendor_in_eu == "no",
                 required_if: answers.vendor_in_eu == "no"}
              - {id: vendor_in_eu, label: In the EU, type: yes_no, show_if: answers.uses_vendor == "yes"}
          - id: second
            from: b
            to: c
            questions: [{id: uses_vendor, label: Vendor, type: yes_no}]
        """
    )
    report = readiness(pipeline, "first", {"uses_vendor": "no", "vendor_in_eu": "no"})
    assert [q.id for q in report.visible_questions] == [] and report.ready
    report = readiness(pipeline, "first", {"uses_vendor": "yes", "vendor_in_eu": "no"})
    assert [q.id for q in report.missing] == ["dpa_link"]


def test_an_answer_that_no_longer_fits_a_hidden_question_does_not_block() -> None:
    """It cannot be corrected in the form, which does not show the question."""
    pipeline = build(VENDOR)
    report = readiness(pipeline, "intake", {"uses_vendor": "no", "region": "apac"})
    assert report.invalid == () and report.ready
    shown = readiness(pipeline, "intake", {"uses_vendor": "yes", "vendor_in_eu": "yes", "region": "apac"})
    assert [error.question_id for error in shown.invalid] == ["region"]
