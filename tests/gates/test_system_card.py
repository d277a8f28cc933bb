"""The draft system card: every template section, answers where given, gaps named."""

from __future__ import annotations

import pytest

from gates.loader import CompiledPipeline, load_pipeline, parse_pipeline
from gates.system_card import (
    DOES_NOT_APPLY,
    NOT_ANSWERED,
    SECTIONS,
    card_questions,
    draft_system_card,
    is_production_gate,
)

ANSWERS = {
    "problem_statement": "Billing queries wait two days for a first answer.",
    "pilot_users": "Twelve billing agents in Leeds",
    "data_sources": ["customer records", "internal operational data"],
    "kpi_improvement_pct": 18.5,
    "pilot_oversight": "a person reviews every output",
    "monitoring_signals": ["accuracy", "drift"],
    "business_sponsor": "USPONSOR",
    "rollback_plan": "Switch the feature flag off.\nQueue falls back to manual triage.",
    "residual_risk": None,
}


@pytest.fixture(scope="module")
def default_pipeline() -> CompiledPipeline:
    """The default pipeline shipped with Shepherd."""
    return load_pipeline(None)


def test_the_card_has_every_model_card_section_in_order(default_pipeline: CompiledPipeline) -> None:
    card = draft_system_card(default_pipeline, ref="AI-0007", name="Billing triage", answers=ANSWERS).markdown
    titles = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    assert titles == [section.title for section in SECTIONS]
    for wanted in ("Intended use", "Out-of-scope uses", "Data", "Evaluation and metrics", "Limitations"):
        assert wanted in titles
    assert card.startswith("# System card (draft): Billing triage (AI-0007)\n")


def test_answers_fill_their_fields_and_missing_ones_say_not_answered(
    default_pipeline: CompiledPipeline,
) -> None:
    card = draft_system_card(default_pipeline, ref="AI-0007", name="Billing triage", answers=ANSWERS).markdown
    assert "- **Problem and who has it:** Billing queries wait two days for a first answer." in card
    assert "- **Kinds of data:** customer records, internal operational data" in card
    assert "- **Improvement measured in the pilot:** 18.5%" in card
    assert "- **Business sponsor:** @USPONSOR" in card
    assert f"- **Residual risk after controls:** {NOT_ANSWERED}" in card  # None is not an answer
    assert f"- **Operations owner:** {NOT_ANSWERED}" in card
    # A multi-line answer stays inside its bullet.
    assert "- **Switch-off and rollback:**\n  Switch the feature flag off.\n  Queue falls back" in card


def test_the_header_counts_answered_fields(default_pipeline: CompiledPipeline) -> None:
    card = draft_system_card(default_pipeline, ref="AI-0007", name="x", answers=ANSWERS, tier="high").markdown
    # 8 distinct answered questions (residual_risk is None); pilot_scope etc. count once each.
    assert "8 of " in card.splitlines()[2]
    assert "Risk tier: high." in card


def test_the_card_s_figures_count_each_question_once(default_pipeline: CompiledPipeline) -> None:
    card = draft_system_card(default_pipeline, ref="AI-0007", name="x", answers=ANSWERS)
    assert f"{card.answered} of {card.applicable} fields answered" in card.markdown
    assert card.answered == 8
    assert card.applicable == len(card_questions(default_pipeline))
    assert card.gaps == card.applicable - 8
    # pilot_scope, automated_decisions and data_issues are shown twice, counted once.
    assert card.markdown.count(NOT_ANSWERED) - 1 > card.gaps


def test_a_question_hidden_by_other_answers_does_not_apply(default_pipeline: CompiledPipeline) -> None:
    # The vendor was named before the team said it uses no external AI: that answer no longer counts.
    named = {"third_party_ai": "yes", "third_party_vendor": "Acme LLM"}
    withdrawn = {"third_party_ai": "no", "third_party_vendor": "Acme LLM"}
    card = draft_system_card(default_pipeline, ref="AI-1", name="x", answers=withdrawn).markdown
    assert f"- **Provider(s) and model(s):** {DOES_NOT_APPLY}" in card
    assert "Acme" not in card
    before = draft_system_card(default_pipeline, ref="AI-1", name="x", answers=named).markdown
    assert "- **Provider(s) and model(s):** Acme LLM" in before
    used = len(card_questions(default_pipeline))
    assert f"2 of {used} fields answered" in before.splitlines()[2]
    # Hidden questions are neither answered nor gaps (the vendor's assessment hides with it).
    hidden_count = sum(1 for line in card.splitlines() if line.endswith(DOES_NOT_APPLY))
    assert hidden_count >= 1
    assert "1 of " in card.splitlines()[2] and f" of {used} " not in card.splitlines()[2]


def test_heading_level_shifts_every_heading(default_pipeline: CompiledPipeline) -> None:
    card = draft_system_card(default_pipeline, ref="AI-1", name="x", answers={}, heading_level=2).markdown
    assert card.startswith("## System card")
    assert "\n### Data\n" in card and "\n## Data\n" not in card


def test_a_pipeline_without_the_questions_says_the_section_is_not_covered() -> None:
    tiny = parse_pipeline(
        """
version: 1
stages: [idea, production]
gates:
  - id: go_live
    from: idea
    to: production
    questions:
      - {id: problem_statement, label: Problem, type: long_text}
"""
    )
    card = draft_system_card(tiny, ref="AI-1", name="x", answers={"problem_statement": "Slow"}).markdown
    assert "- **Problem and who has it:** Slow" in card
    assert "Not covered by this pipeline's questions." in card
    assert "1 of 1 fields answered" in card
    assert is_production_gate(tiny, "go_live")


def test_only_the_gate_into_production_is_the_production_gate(default_pipeline: CompiledPipeline) -> None:
    assert is_production_gate(default_pipeline, "production")
    assert not is_production_gate(default_pipeline, "pilot")
    assert not is_production_gate(default_pipeline, None)
    assert not is_production_gate(default_pipeline, "moonshot")
