"""``MessageRefs``: which Slack messages (and App Home viewers) Shepherd has recorded."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from storage import Database
from storage.slack_messages import STALE_RESERVATION, MessageRefs, Reservation
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


def test_a_post_is_reserved_before_it_is_made_so_that_two_deliveries_make_it_once(database: Database) -> None:
    refs = MessageRefs(database)
    assert refs.reserve("initiative:AI-0001", "card", NOW) is Reservation.MINE
    # Another delivery about the same card meanwhile: it waits, and sees no card to thread under.
    assert refs.reserve("initiative:AI-0001", "card", NOW) is Reservation.BUSY
    assert refs.find("initiative:AI-0001", "card") is None
    assert refs.all_for("initiative:AI-0001") == []
    assert refs.fill("initiative:AI-0001", "card", "C1", "1.2", NOW)
    assert refs.reserve("initiative:AI-0001", "card", NOW) is Reservation.POSTED
    assert refs.find("initiative:AI-0001", "card") == ("C1", "1.2")
    assert refs.target_at("C1", "1.2") == "initiative:AI-0001"


def test_a_reservation_given_up_can_be_taken_again(database: Database) -> None:
    refs = MessageRefs(database)
    assert refs.reserve("review:7", "request:U1", NOW) is Reservation.MINE
    refs.release("review:7", "request:U1", NOW)  # Slack refused: nothing was posted
    assert refs.reserve("review:7", "request:U1", NOW) is Reservation.MINE


def test_a_reservation_left_by_a_worker_that_died_is_taken_over_once_stale(database: Database) -> None:
    refs = MessageRefs(database)
    assert refs.reserve("review:7", "request:U1", NOW) is Reservation.MINE
    assert refs.reserve("review:7", "request:U1", NOW + STALE_RESERVATION) is Reservation.BUSY
    later = NOW + STALE_RESERVATION + timedelta(seconds=1)
    assert refs.reserve("review:7", "request:U1", later) is Reservation.MINE
    # The first one, had it been alive after all, no longer holds it: the later post is kept.
    assert not refs.fill("review:7", "request:U1", "D1", "1.1", NOW)
    refs.release("review:7", "request:U1", NOW)
    assert refs.fill("review:7", "request:U1", "D1", "2.2", later)
    assert refs.find("review:7", "request:U1") == ("D1", "2.2")


def test_a_stale_reservation_not_to_be_taken_over_is_left_abandoned(database: Database) -> None:
    """A post that must never be made twice (a private message): a reservation whose worker
    stopped is reported, not taken over, since that worker may have posted it."""
    refs = MessageRefs(database)
    assert refs.reserve("outbox:7", "ephemeral", NOW, take_over=False) is Reservation.MINE
    assert refs.reserve("outbox:7", "ephemeral", NOW + STALE_RESERVATION, take_over=False) is Reservation.BUSY
    later = NOW + STALE_RESERVATION + timedelta(seconds=1)
    assert refs.reserve("outbox:7", "ephemeral", later, take_over=False) is Reservation.ABANDONED
    assert refs.reserve("outbox:7", "ephemeral", later, take_over=False) is Reservation.ABANDONED
    # Still the first worker's: had it been alive after all, what it sent is remembered.
    assert refs.fill("outbox:7", "ephemeral", "C1", "1.1", NOW)
    assert refs.reserve("outbox:7", "ephemeral", later, take_over=False) is Reservation.POSTED


def test_many_deliveries_reserving_the_same_post_at_once_give_it_to_one(database: Database) -> None:
    refs = MessageRefs(database)
    start = threading.Barrier(8)

    def reserve(_: int) -> Reservation:
        start.wait()
        return refs.reserve("initiative:AI-0002", "card", NOW)

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(reserve, range(8)))
    assert found.count(Reservation.MINE) == 1
    assert found.count(Reservation.BUSY) == 7


def test_a_kind_longer_than_its_column_is_kept_whole_enough_to_stay_apart(database: Database) -> None:
    """A kind can name a stage, whose id may take 64 characters on its own: PostgreSQL refused
    the row. It is kept within the column, and two long kinds sharing their start stay apart."""
    stage = "handover_to_operations_and_business_as_usual_after_the_pilot_ends"[:64]
    first, second = f"extended:{stage}:2026-12-01", f"extended:{stage}:2026-12-02"
    refs = MessageRefs(database)
    assert refs.remember("initiative:AI-0001", first, "D1", "1.1", NOW)
    assert refs.reserve("initiative:AI-0001", second, NOW) is Reservation.MINE
    assert refs.fill("initiative:AI-0001", second, "D1", "2.2", NOW)
    assert refs.find_kinds("initiative:AI-0001", [first, second]) == {
        first: ("D1", "1.1"),
        second: ("D1", "2.2"),
    }
    assert refs.posted_at("initiative:AI-0001", second) == NOW
    assert all(len(kind) <= 64 for kind, _, _ in refs.all_for("initiative:AI-0001"))
