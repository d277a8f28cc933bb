"""The portfolio read through SQL storage gives the same figures as from the objects themselves."""

from __future__ import annotations

from gates.loader import load_pipeline
from gates.portfolio import compute_portfolio, load_portfolio
from storage import Database
from tests.gates.portfolio_seed import NOW, seed_initiatives, seed_reviews


def seed(database: Database) -> None:
    with database.uow() as uow:
        for initiative in seed_initiatives():
            uow.initiatives.add(initiative)
        for review in seed_reviews():
            uow.reviews.add(review)
        uow.commit()


def test_all_reviews_returns_every_review_with_its_decisions_oldest_first(database: Database) -> None:
    seed(database)
    with database.uow(read_only=True) as uow:
        stored = list(uow.reviews.all_reviews())
    expected = sorted(seed_reviews(), key=lambda r: r.submitted_at)
    assert [(r.initiative_ref, r.submitted_at, r.status) for r in stored] == [
        (r.initiative_ref, r.submitted_at, r.status) for r in expected
    ]
    assert [r.decisions for r in stored] == [r.decisions for r in expected]


def test_all_reviews_of_an_empty_database_is_empty(database: Database) -> None:
    with database.uow(read_only=True) as uow:
        assert list(uow.reviews.all_reviews()) == []


def test_load_portfolio_from_storage_matches_the_hand_checked_figures(database: Database) -> None:
    seed(database)
    pipeline = load_pipeline(None)
    loaded = load_portfolio(pipeline, database.uow(read_only=True), NOW)
    assert loaded == compute_portfolio(pipeline, seed_initiatives(), seed_reviews(), NOW)
    # Spot checks from the hand computation in tests/gates/test_portfolio.py.
    assert loaded.stage("idea").median_days == 23.5
    assert [s.ref for s in loaded.stalled] == ["AI-0002", "AI-0003"]
