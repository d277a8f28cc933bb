"""The pipeline's operations settings: reminders, escalation contacts, periodic reviews, handover."""

from __future__ import annotations

import pytest

from gates.errors import PipelineError
from gates.loader import load_pipeline
from tests.gates.conftest import build
from tests.gates.ops_pipeline import OPS_PIPELINE


def problems(text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        build(text)
    return str(caught.value)


def test_the_operations_test_pipeline_loads_with_its_settings() -> None:
    model = build(OPS_PIPELINE).model
    assert model.operations is not None
    assert model.operations_stage == "operations"
    assert model.roles["sponsor"].escalation_contact == "UBOSS"
    assert (model.gates[0].review_reminder_days, model.gates[0].review_escalation_days) == (3, 7)


def test_escalating_before_reminding_is_refused() -> None:
    text = OPS_PIPELINE.replace("review_escalation_days: 7", "review_escalation_days: 2")
    assert "gates[0].review_escalation_days: escalation after 2 day(s) comes before the reminder" in problems(
        text
    )


def test_an_escalation_contact_must_be_a_slack_user_id() -> None:
    assert "roles.sponsor.escalation_contact" in problems(OPS_PIPELINE.replace("UBOSS", "the boss"))


def test_an_empty_escalation_contact_means_none() -> None:
    model = build(OPS_PIPELINE.replace("escalation_contact: UBOSS", 'escalation_contact: ""')).model
    assert model.roles["sponsor"].escalation_contact is None


def test_an_unknown_operations_stage_or_role_is_refused() -> None:
    found = problems(OPS_PIPELINE.replace("  role: operations\n", "  role: ops\n  stage: run\n"))
    assert "operations.stage: 'run' is not one of the stages" in found
    assert "operations.role: role 'ops' is not defined" in found


def test_operations_question_ids_are_unique_across_the_pipeline() -> None:
    text = OPS_PIPELINE.replace("{id: value,", "{id: problem,")
    assert "question id 'problem' is used twice" in problems(text)


def test_operations_question_rules_are_checked() -> None:
    text = OPS_PIPELINE.replace("show_if: answers.incidents > 0", "show_if: answers.incidnets > 0")
    assert "no question has the id 'incidnets'" in problems(text)


def test_an_operations_rule_reading_a_gate_answer_is_refused() -> None:
    """A periodic review judges its rules with its own answers only: a required_if on the
    intake's personal data would never hold, so the privacy check would never be required."""
    text = OPS_PIPELINE.replace(
        "      - {id: problem, label: Problem, type: text, required: true}",
        "      - {id: problem, label: Problem, type: text, required: true}\n"
        "      - {id: personal_data, label: Personal data, type: yes_no, required: true}",
    ) + (
        "    - {id: privacy_check, label: Privacy check done, type: yes_no, required_if: 'answers.personal_data == \"yes\"'}\n"
    )
    assert (
        "operations.questions[3].required_if: the required_if of periodic-review question 'privacy_check' "
        "reads answers.personal_data, a question of gate 'intake': periodic-review rules can only read "
        "the review's own questions"
    ) in problems(text)


def test_the_handover_must_always_require_the_receiving_operations_role() -> None:
    without = OPS_PIPELINE.replace("      - {role: operations}\n", "      - {role: sponsor}\n")
    assert "the handover into 'operations' must always require the 'operations' role" in problems(without)
    conditional = OPS_PIPELINE.replace(
        "      - {role: operations}\n", "      - {role: operations, when: 'answers.problem == \"x\"'}\n"
    )
    assert "must always require" in problems(conditional)


def test_the_default_pipeline_reminds_escalates_and_reviews_operations() -> None:
    model = load_pipeline().model
    assert all((g.review_reminder_days, g.review_escalation_days) == (3, 7) for g in model.gates)
    assert all(role.escalation_contact is None for role in model.roles.values())
    assert model.operations is not None
    assert (model.operations.review_every_days, model.operations.role) == (90, "operations")
    ids = {q.id for q in model.operations.questions}
    assert {
        "ops_still_delivering_value",
        "ops_drift_detected",
        "ops_owner_still_right",
        "ops_retraining_done",
    } <= ids
    handover = next(g for g in model.gates if g.to == model.operations_stage)
    assert any(rule.role == "operations" and rule.when is None for rule in handover.approvals)


def test_the_review_cadence_and_first_review_questions_are_named_and_checked_at_load() -> None:
    """The handover's answers drive the periodic reviews: a pipeline names the questions that
    give them (a number and a date question), or uses the conventional ids."""
    extra = (
        "      - {id: every, label: Every how many months, type: number}\n"
        "      - {id: first, label: First review, type: date}\n"
    )
    asked = OPS_PIPELINE.replace(
        "      - {id: ops_owner, label: Operations owner, type: user, required: true}\n",
        "      - {id: ops_owner, label: Operations owner, type: user, required: true}\n" + extra,
    )
    named = asked.replace(
        "  role: operations\n",
        "  role: operations\n  cadence_question: every\n  first_review_question: first\n",
    )
    model = build(named).model
    assert (model.operations_cadence_question_id, model.operations_first_review_question_id) == (
        "every",
        "first",
    )
    model = build(asked).model  # not the conventional ids
    assert (model.operations_cadence_question_id, model.operations_first_review_question_id) == (None, None)
    conventional = build(
        asked.replace("{id: every,", "{id: review_cadence_months,").replace(
            "{id: first,", "{id: first_review_date,"
        )
    ).model
    assert conventional.operations_cadence_question_id == "review_cadence_months"
    assert conventional.operations_first_review_question_id == "first_review_date"
    found = problems(named.replace("cadence_question: every", "cadence_question: first"))
    assert "operations.cadence_question: 'first' is a date question" in found
    found = problems(named.replace("first_review_question: first", "first_review_question: every"))
    assert "operations.first_review_question: 'every' is a number question" in found
    found = problems(named.replace("cadence_question: every", "cadence_question: nope"))
    assert "operations.cadence_question: 'nope' is not a question of any gate" in found


def test_the_operations_owner_question_must_be_a_person_question_of_a_gate() -> None:
    named = OPS_PIPELINE.replace("  role: operations\n", "  role: operations\n  owner_question: ops_owner\n")
    assert build(named).model.operations_owner_question_id == "ops_owner"
    assert build(OPS_PIPELINE).model.operations_owner_question_id is None  # not the conventional id
    found = problems(named.replace("owner_question: ops_owner", "owner_question: problem"))
    assert "operations.owner_question: 'problem' is a text question" in found
    found = problems(named.replace("owner_question: ops_owner", "owner_question: ops_lead"))
    assert "operations.owner_question: 'ops_lead' is not a question of any gate" in found
    conventional = OPS_PIPELINE.replace("{id: ops_owner,", "{id: operations_owner,")
    assert build(conventional).model.operations_owner_question_id == "operations_owner"
