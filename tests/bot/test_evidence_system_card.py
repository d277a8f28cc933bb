"""The evidence pack carries the draft system card (whole pack and production gate only)."""

from __future__ import annotations

from bot.evidence_pack import evidence_json, evidence_markdown
from gates import usecases
from gates.loader import load_pipeline
from gates.ports import AnswerVersion
from tests.gates.fakes import FakeUnitOfWork
from tests.gates.portfolio_seed import day, seed_initiatives


def view():
    uow = FakeUnitOfWork()
    with uow:
        uow.initiatives.add(seed_initiatives()[0])
        uow.answers.append(AnswerVersion("AI-0001", "production", "residual_risk", "low", "UOWN1", day(100)))
        uow.commit()
    return usecases.show(load_pipeline(None), uow, "AI-0001")


def test_the_whole_pack_and_the_production_gate_carry_the_card() -> None:
    pipeline = load_pipeline(None)
    whole = evidence_json(pipeline, view())
    assert whole["system_card"].startswith("## System card (draft): Initiative AI-0001 (AI-0001)")
    assert "- **Residual risk after controls:** low" in whole["system_card"]
    assert evidence_json(pipeline, view(), "production")["system_card"] == whole["system_card"]
    assert evidence_json(pipeline, view(), "pilot")["system_card"] is None


def test_the_markdown_pack_puts_the_card_before_the_audit_timeline() -> None:
    text = evidence_markdown(load_pipeline(None), view())
    assert text.index("## System card (draft)") < text.index("## Audit timeline")
    assert "### Risks and mitigations" in text
    assert "## System card" not in evidence_markdown(load_pipeline(None), view(), "pilot")


def test_the_pack_s_card_leaves_out_an_answer_other_answers_hide() -> None:
    uow = FakeUnitOfWork()
    with uow:
        uow.initiatives.add(seed_initiatives()[0])
        for qid, value in [
            ("third_party_ai", "yes"),
            ("third_party_vendor", "Acme LLM"),
            ("third_party_ai", "no"),
        ]:
            uow.answers.append(AnswerVersion("AI-0001", "production", qid, value, "UOWN1", day(100)))
        uow.commit()
    card = evidence_json(load_pipeline(None), usecases.show(load_pipeline(None), uow, "AI-0001"))[
        "system_card"
    ]
    assert "- **Provider(s) and model(s):** Does not apply" in card
    assert "Acme LLM" not in card
