"""The portfolio's Block Kit: valid, within Slack's limits, and first on a full App Home."""

from __future__ import annotations

from dataclasses import replace

from bot.blocks import home_view
from bot.blocks.portfolio import home_governance_section, portfolio_message
from gates.loader import load_pipeline
from gates.portfolio import OverdueOperationsReview, StalledInitiative, compute_portfolio
from tests.bot.blockkit_checks import assert_valid_message, assert_valid_view, initiative, review, texts
from tests.gates.portfolio_seed import NOW, seed_initiatives, seed_reviews


def seeded():
    return compute_portfolio(load_pipeline(None), seed_initiatives(), seed_reviews(), NOW)


def test_the_portfolio_message_is_valid_and_names_the_figures() -> None:
    message = portfolio_message(seeded())
    assert_valid_message(message)
    shown = texts(message["blocks"])
    assert "*6* initiatives · *2* stalled · *1* reviews open" in shown
    assert "*Idea*" in shown or "*idea*" in shown.lower()
    assert "reached by 6, 50% went on" in shown
    assert "median 23.5 days" in shown
    assert "“Problem statement is vague.” ×2" in shown


def test_a_long_stalled_list_is_cut_with_a_pointer_to_the_cli() -> None:
    # `/shepherd portfolio` lists a hundred (an executive reads what is stuck in Slack), App
    # Home three; the rest are the command line's.
    many = tuple(StalledInitiative(f"AI-{n:04d}", "x" * 300, "idea", "U1", 40.0) for n in range(140))
    message = portfolio_message(replace(seeded(), stalled=many))
    assert_valid_message(message)
    shown = texts(message["blocks"])
    assert "AI-0099" in shown and "AI-0100" not in shown
    assert "… and 40 more (`shepherd portfolio` on the command line lists them all)" in shown
    home = texts(home_governance_section(replace(seeded(), stalled=many)))
    assert "… and 137 more (`/shepherd portfolio` lists 97 of them;" in home


def test_the_longest_stalled_and_overdue_lists_stay_within_slacks_limits() -> None:
    """Names that escaping lengthens (every & is &amp;), a hundred and more in both lists."""
    name = "&" * 200
    stalled = tuple(StalledInitiative(f"AI-{n:04d}", name, "idea", "U1", 40.0) for n in range(150))
    overdue = tuple(OverdueOperationsReview(f"AI-{n:04d}", name, "U1", NOW, 40.0) for n in range(150))
    message = portfolio_message(replace(seeded(), stalled=stalled, overdue_operations=overdue))
    assert_valid_message(message)
    assert len(message["blocks"]) <= 50


def test_names_are_escaped_in_the_stalled_list() -> None:
    stalled = (StalledInitiative("AI-0001", "<!channel> & co", "idea", "U1", 40.0),)
    shown = texts(portfolio_message(replace(seeded(), stalled=stalled))["blocks"])
    assert "&lt;!channel&gt; &amp; co" in shown and "<!channel>" not in shown


def test_a_full_home_keeps_the_governance_section_under_100_blocks() -> None:
    pending = [(review(review_id=n + 1), initiative(ref=f"AI-{n:04d}")) for n in range(60)]
    mine = [(initiative(ref=f"AI-{n:04d}"), None) for n in range(30)]
    view = home_view(
        "U0ME", mine, pending, [], page=0, page_size=20, governance=home_governance_section(seeded())
    )
    assert_valid_view(view)
    assert len(view["blocks"]) <= 100
    assert "*Portfolio* · 6 initiatives" in texts(view["blocks"][:6])
