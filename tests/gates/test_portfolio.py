"""Portfolio figures on the seeded dataset (tests/gates/portfolio_seed.py), checked by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gates.lifecycle import Status
from gates.loader import CompiledPipeline, load_pipeline
from gates.portfolio import compute_portfolio, load_portfolio, normalise_reason, stays
from gates.ports import OperationsReview
from tests.gates.fakes import FakeUnitOfWork
from tests.gates.portfolio_seed import NOW, day, seed_initiatives, seed_reviews


@pytest.fixture(scope="module")
def default_pipeline() -> CompiledPipeline:
    """The default pipeline shipped with Shepherd (stages idea .. operations)."""
    return load_pipeline(None)


def test_stage_counts_split_active_in_review_on_hold_and_retired(default_pipeline: CompiledPipeline) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    # idea: C active, F in review, E on hold. poc: B active, D retired. pilot: A active.
    idea, poc, pilot = portfolio.stage("idea"), portfolio.stage("poc"), portfolio.stage("pilot")
    assert (idea.active, idea.in_review, idea.on_hold, idea.retired) == (1, 1, 1, 0)
    assert (poc.active, poc.in_review, poc.on_hold, poc.retired) == (1, 0, 0, 1)
    assert (pilot.active, pilot.current) == (1, 1)
    assert portfolio.stage("production").current == 0
    assert portfolio.total == 6
    assert portfolio.open_reviews == 1


def test_conversion_counts_who_reached_each_stage_and_went_on(default_pipeline: CompiledPipeline) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    # Reached idea: all 6. Reached poc: A, B, D = 3 -> idea converts 3/6 = 0.5.
    # Reached pilot: A = 1 -> poc converts 1/3. Reached production: nobody -> pilot converts 0/1.
    assert [(s.stage, s.reached, s.advanced) for s in portfolio.stages] == [
        ("idea", 6, 3),
        ("poc", 3, 1),
        ("pilot", 1, 0),
        ("production", 0, 0),
        ("operations", 0, 0),
    ]
    assert portfolio.stage("idea").conversion == 0.5
    assert portfolio.stage("poc").conversion == pytest.approx(1 / 3, abs=1e-4)
    assert portfolio.stage("pilot").conversion == 0.0
    assert portfolio.stage("production").conversion is None  # nobody reached it
    assert portfolio.stage("operations").conversion is None  # the last stage


def test_median_days_use_completed_and_current_stays(default_pipeline: CompiledPipeline) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    idea, poc, pilot = portfolio.stage("idea"), portfolio.stage("poc"), portfolio.stage("pilot")
    # idea completed: A 10, B 20, D 30 days -> median 20.
    # idea current (now = day 151): C 151-100 = 51, E 151-130 = 21, F 151-125 = 26 -> median 26.
    # idea overall: 10, 20, 21, 26, 30, 51 -> (21 + 26) / 2 = 23.5.
    assert (idea.median_days_completed, idea.median_days_current, idea.median_days) == (20.0, 26.0, 23.5)
    # poc completed: A 40-10 = 30. Current: B 151-20 = 131. D retired in poc: left out.
    # overall (30 + 131) / 2 = 80.5.
    assert (poc.median_days_completed, poc.median_days_current, poc.median_days) == (30.0, 131.0, 80.5)
    # pilot: only A, current 151-40 = 111.
    assert (pilot.median_days_completed, pilot.median_days_current, pilot.median_days) == (None, 111.0, 111.0)
    assert portfolio.stage("production").median_days is None


def test_stalled_lists_initiatives_past_their_time_box_longest_first(
    default_pipeline: CompiledPipeline,
) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    # B: 131 days in poc > 90. C: 51 days in idea > 30. A: 111 days in pilot < 120.
    # E is on hold and D retired: never stalled. F: 26 days in idea < 30.
    assert [(s.ref, s.stage, s.days_in_stage) for s in portfolio.stalled] == [
        ("AI-0002", "poc", 131.0),
        ("AI-0003", "idea", 51.0),
    ]


def test_decisions_of_the_last_30_days_are_counted_by_kind(default_pipeline: CompiledPipeline) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    # Window starts day 121: C's rejection (125) and request for changes (140), F's approval (146).
    assert portfolio.decisions_last_30_days == {"approve": 1, "reject": 1, "request_changes": 1}


def test_reasons_are_grouped_after_normalising_case_spacing_and_punctuation(
    default_pipeline: CompiledPipeline,
) -> None:
    portfolio = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)
    assert [(r.reason, r.count, r.kinds) for r in portfolio.top_reasons] == [
        ("Problem statement is vague.", 2, ("reject", "request_changes")),
        ("Add a sponsor", 1, ("request_changes",)),
    ]
    assert normalise_reason("  Problem statement\tis VAGUE!! ") == "problem statement is vague"


def test_stays_follow_approved_reviews_and_end_in_the_current_stage() -> None:
    initiative = seed_initiatives()[0]
    history = stays(
        ["idea", "poc", "pilot"], initiative, [r for r in seed_reviews() if r.initiative_ref == "AI-0001"]
    )
    assert [(s.stage, s.entered, s.left) for s in history] == [
        ("idea", day(0), day(10)),
        ("poc", day(10), day(40)),
        ("pilot", day(40), None),
    ]


def test_an_initiative_in_a_stage_the_pipeline_dropped_is_noted_not_counted(
    default_pipeline: CompiledPipeline,
) -> None:
    initiatives = seed_initiatives()
    initiatives[0].stage = "sandbox"
    portfolio = compute_portfolio(default_pipeline, initiatives, seed_reviews(), NOW)
    assert portfolio.total == 5
    assert any("AI-0001" in note and "sandbox" in note for note in portfolio.notes)


def test_the_json_form_is_serialisable_and_keeps_the_figures(default_pipeline: CompiledPipeline) -> None:
    data = compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW).to_json()
    again = json.loads(json.dumps(data))
    assert again["generated_at"] == "2026-06-01T00:00:00+00:00"
    assert again["stages"][0]["current"] == 3
    assert again["top_reasons"][0]["count"] == 2


def test_load_portfolio_reads_through_the_ports(default_pipeline: CompiledPipeline) -> None:
    uow = FakeUnitOfWork()
    with uow:
        for initiative in seed_initiatives():
            uow.initiatives.add(initiative)
        for review in seed_reviews():
            uow.reviews.add(review)
        uow.commit()
    loaded = load_portfolio(default_pipeline, uow, NOW)
    assert loaded == compute_portfolio(default_pipeline, seed_initiatives(), seed_reviews(), NOW)


def test_systems_whose_periodic_review_is_overdue_are_listed_longest_overdue_first(
    default_pipeline: CompiledPipeline,
) -> None:
    """Due 90 days after entering operations (or when the last review said), overdue 14 days
    later: on day 151 one entered on day 10 (due day 100) and one reviewed on day 20 that set
    day 110; one entered on day 50 (due day 140) is within its grace, and one on hold is not
    expected to be reviewed."""
    systems = [
        replace(
            seed_initiatives()[0], ref=ref, stage="operations", stage_entered_at=day(entered), status=status
        )
        for ref, entered, status in [
            ("AI-0010", 10, Status.ACTIVE),
            ("AI-0011", 0, Status.ACTIVE),
            ("AI-0012", 50, Status.ACTIVE),
            ("AI-0013", 0, Status.ON_HOLD),
        ]
    ]
    latest = {"AI-0011": OperationsReview("AI-0011", "UOPS", day(20), {}, day(110))}
    portfolio = compute_portfolio(default_pipeline, systems, [], NOW, latest)
    assert [(o.ref, o.due, o.days_overdue) for o in portfolio.overdue_operations] == [
        ("AI-0010", day(100), 51.0),
        ("AI-0011", day(110), 41.0),
    ]
    again = json.loads(json.dumps(portfolio.to_json()))
    assert again["overdue_operations"][0]["due"] == "2026-04-11T00:00:00+00:00"
    unreviewed = compute_portfolio(default_pipeline, systems, [], NOW).overdue_operations
    assert [o.ref for o in unreviewed] == ["AI-0011", "AI-0010"]  # due on day 90 without its review
