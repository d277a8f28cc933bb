"""``answer_many`` records questionnaire pages saved at the same moment in one transaction, each
exactly as ``answer`` would: the same answer versions, audit entries, card redraws and links as
saving them one by one, with a page the state refuses answered in place and nothing of it kept."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gates import usecases
from gates.errors import InvalidAnswer, InvalidTransition, UnknownInitiative
from gates.loader import CompiledPipeline
from tests.gates.conftest import NOW, OWNER, SUBMITTER
from tests.gates.fakes import FakeUnitOfWork

INTAKE = {"problem": "Claims take 9 days to triage", "personal_data": "no"}
LATER = NOW + timedelta(minutes=5)


def registered(pipeline: CompiledPipeline, uow: FakeUnitOfWork, *names: str) -> list[str]:
    return [
        usecases.register(
            pipeline, uow, name=name, owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
        ).ref
        for name in names
    ]


def page(
    pipeline: CompiledPipeline, ref: str, answers: dict[str, str], link: tuple[str, str] | None = None
) -> usecases.PageOfAnswers:
    return usecases.check_page(pipeline, ref, "intake", answers, OWNER, LATER, link)


def test_pages_saved_together_are_recorded_in_one_transaction_as_one_by_one(
    two_gates: CompiledPipeline,
) -> None:
    pages_of = [
        ("Claims triage", {"budget": "12000"}, None),
        (
            "Fraud scoring",
            {"budget": "5000", "problem": "Fraud is found late"},
            ("https://wiki.example.com/f", "Plan"),
        ),
        ("Churn", {"problem": INTAKE["problem"]}, None),  # unchanged: records nothing
    ]
    together, alone = FakeUnitOfWork(), FakeUnitOfWork()
    together_refs = registered(two_gates, together, *(name for name, _, _ in pages_of))
    alone_refs = registered(two_gates, alone, *(name for name, _, _ in pages_of))
    transactions = together.transactions

    results = usecases.answer_many(
        together,
        [
            page(two_gates, ref, answers, link)
            for ref, (_, answers, link) in zip(together_refs, pages_of, strict=True)
        ],
    )
    for ref, (_, answers, link) in zip(alone_refs, pages_of, strict=True):
        usecases.answer(two_gates, alone, ref, "intake", answers, OWNER, LATER, link=link)

    assert together.transactions == transactions + 1
    assert [r.changed for r in results if not isinstance(r, Exception)] == [
        ("budget",),
        ("budget", "problem"),
        (),
    ]
    assert results[1].answers["budget"] == 5000 and results[1].answers["personal_data"] == "no"  # type: ignore[union-attr]
    for a, b in zip(together_refs, alone_refs, strict=True):
        assert [(v.question_id, v.value) for v in together.stored_answers(a)] == [
            (v.question_id, v.value) for v in alone.stored_answers(b)
        ]
    assert together.audit_entries == alone.audit_entries
    assert together.message_kinds == alone.message_kinds
    assert [(link.url, link.title) for link in together.committed.links] == [
        ("https://wiki.example.com/f", "Plan")
    ]


def test_a_refused_page_is_answered_in_place_and_the_others_are_recorded(two_gates: CompiledPipeline) -> None:
    uow = FakeUnitOfWork()
    kept, frozen, retired = registered(two_gates, uow, "Kept", "Frozen", "Retired")
    usecases.submit(two_gates, uow, frozen, SUBMITTER, NOW)
    usecases.retire(uow, retired, OWNER, "Stopped", NOW)
    audit_before = len(uow.audit_entries)

    results = usecases.answer_many(
        uow,
        [
            page(two_gates, frozen, {"budget": "1"}),
            page(two_gates, "AI-999", {"budget": "2"}),
            page(two_gates, kept, {"budget": "3"}),
            page(two_gates, retired, {"budget": "4"}, ("https://wiki.example.com/r", "Retired plan")),
        ],
    )

    assert isinstance(results[0], InvalidTransition) and "under review" in str(results[0])
    assert isinstance(results[1], UnknownInitiative)
    assert not isinstance(results[2], Exception) and results[2].answers["budget"] == 3
    assert isinstance(results[3], InvalidTransition) and "retired" in str(results[3])
    assert {v.initiative_ref for v in uow.stored_answers(kept) if v.question_id == "budget"} == {kept}
    assert not [v for ref in (frozen, retired) for v in uow.stored_answers(ref) if v.question_id == "budget"]
    assert uow.committed.links == []
    assert [e.target for e in uow.audit_entries[audit_before:]] == [kept]


def test_two_pages_of_one_initiative_in_a_batch_build_on_each_other(two_gates: CompiledPipeline) -> None:
    uow = FakeUnitOfWork()
    (ref,) = registered(two_gates, uow, "Claims triage")

    first, second = usecases.answer_many(
        uow,
        [
            page(two_gates, ref, {"budget": "100"}),
            page(two_gates, ref, {"budget": "100", "personal_data": "yes"}),
        ],
    )

    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    assert (first.changed, second.changed) == (("budget",), ("personal_data",))
    assert second.answers["budget"] == 100 and second.answers["personal_data"] == "yes"
    assert [v.value for v in uow.stored_answers(ref) if v.question_id == "budget"] == [100]


def test_check_page_names_every_answer_that_does_not_fit_before_anything_is_queued(
    two_gates: CompiledPipeline,
) -> None:
    with pytest.raises(InvalidAnswer) as raised:
        usecases.check_page(
            two_gates, "AI-001", "intake", {"budget": "lots", "personal_data": "maybe"}, OWNER, NOW
        )
    assert set(raised.value.problems) == {"budget", "personal_data"}
    with pytest.raises(InvalidAnswer):
        usecases.check_page(two_gates, "AI-001", "intake", {}, OWNER, NOW, ("not a link", "x"))
