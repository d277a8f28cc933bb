"""``MessageRefs``: which Slack messages (and App Home viewers) Shepherd has recorded."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from storage import Database
from storage.slack_messages import MessageRefs
from tests.storage.test_repositories import NOW


def test_a_message_is_remembered_once_and_found_by_target_and_kind(database: Database) -> None:
    refs = MessageRefs(database)
    assert refs.remember("home:U1", "home", "U1", "", NOW)
    assert not refs.remember("home:U1", "home", "U1", "", NOW)  # a second record of the same is refused
    assert refs.remember("review:7", "request:U1", "D1", "1700000000.000100", NOW)
    assert refs.find("review:7", "request:U1") == ("D1", "1700000000.000100")
    assert refs.find("review:7", "request:U2") is None
    assert refs.find_kinds("review:7", ["request:U1", "request:U2", "card"]) == {
        "request:U1": ("D1", "1700000000.000100")
    }


def test_pages_says_which_targets_have_a_view_of_a_kind_and_its_page_in_one_query(database: Database) -> None:
    refs = MessageRefs(database)
    refs.remember("home:U1", "home", "U1", "", NOW)
    refs.remember("home:U2", "card", "C1", "1.2", NOW)  # another kind
    assert refs.pages(["home:U1", "home:U2", "home:U3", "home:U1"], "home") == {"home:U1": 0}
    assert refs.pages([], "home") == {}


def test_the_page_a_view_shows_is_remembered_with_the_view_and_moves_with_it(database: Database) -> None:
    refs = MessageRefs(database)
    refs.remember_page("home:U1", "home", "U1", 2, NOW)  # the first time remembers the view too
    assert refs.find("home:U1", "home") == ("U1", "")
    assert refs.pages(["home:U1"], "home") == {"home:U1": 2}
    refs.remember_page("home:U1", "home", "U1", 0, NOW)
    refs.remember_page("home:U2", "home", "U2", 4, NOW)
    assert refs.pages(["home:U1", "home:U2"], "home") == {"home:U1": 0, "home:U2": 4}


def test_views_remembered_at_the_same_moment_by_many_deliveries_are_one_row(database: Database) -> None:
    """Parallel senders may publish the same person's tab at once: each remembers its page, none
    fails, and one row is left for the view (``uq_slack_messages_target_kind``)."""
    refs = MessageRefs(database)
    start = threading.Barrier(8)

    def remember(page: int) -> None:
        start.wait()
        for _ in range(10):
            refs.remember_page("home:U9", "home", "U9", page, NOW)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remember, range(8)))  # re-raises any failure
    assert refs.pages(["home:U9"], "home") in ({"home:U9": page} for page in range(8))
    assert [kind for kind, _, _ in refs.all_for("home:U9")] == ["home"]
