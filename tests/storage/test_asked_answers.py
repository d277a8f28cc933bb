"""``AskedAnswers``: answers kept under their feedback key for the votes on them."""

from __future__ import annotations

from storage import Database
from storage.asked_answers import MAX_KEPT_TEXT, AskedAnswer, AskedAnswers
from tests.storage.test_repositories import NOW


def test_an_answer_is_kept_under_its_key_with_its_question_and_sources(database: Database) -> None:
    answers = AskedAnswers(database)
    sources = ["08-handover-and-operations.md > Sign-off", "01-ai-use-policy.md > The four gates"]
    answers.keep("ask:0123456789ab", "who signs off the handover?", "The operations owner [1].", sources, NOW)
    assert answers.get("ask:0123456789ab") == AskedAnswer(
        "who signs off the handover?", "The operations owner [1].", tuple(sources), NOW
    )
    assert answers.get("ask:unknown") is None


def test_a_key_kept_twice_keeps_the_first_answer_and_long_texts_are_cut(database: Database) -> None:
    answers = AskedAnswers(database)
    answers.keep("ask:1", "q", "x" * (MAX_KEPT_TEXT + 50), [], NOW)
    answers.keep("ask:1", "q", "another", [], NOW)  # no error: the first stands
    kept = answers.get("ask:1")
    assert kept is not None and kept.answer == "x" * MAX_KEPT_TEXT and kept.sources == ()
