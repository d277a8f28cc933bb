"""Repositories round-trip the domain's objects and refuse bad input by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gates.errors import ConcurrentUpdate, ReviewAlreadyOpen, UnknownInitiative, UnknownReview
from gates.lifecycle import Decision, DecisionKind, Initiative, Requirement, Review, ReviewStatus, Status
from gates.ports import AnswerVersion, EvidenceLink, InitiativeFilter
from storage import Database

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def add_initiative(database: Database, name: str = "Invoice matching", **changes: object) -> Initiative:
    with database.uow() as uow:
        initiative = Initiative(uow.initiatives.next_ref(), name, "UOWNER", "poc", NOW, sponsor_id="USPONSOR")
        for key, value in changes.items():
            setattr(initiative, key, value)
        uow.initiatives.add(initiative)
        uow.commit()
    return initiative


def a_review(ref: str, **changes: object) -> Review:
    review = Review(
        initiative_ref=ref,
        gate_id="pilot",
        from_stage="poc",
        to_stage="pilot",
        submitted_by="USUBMIT",
        owner_id="UOWNER",
        submitted_at=NOW,
        pipeline_version="v1",
        evidence_hash="ab" * 32,
        requirements=(Requirement("risk", 2), Requirement("sponsor", 1)),
        tier="high",
    )
    return replace(review, **changes) if changes else review


# -- initiatives -------------------------------------------------------------------------------


def test_an_initiative_round_trips_with_aware_utc_times(database: Database) -> None:
    added = add_initiative(database)
    with database.uow(read_only=True) as uow:
        loaded = uow.initiatives.get(added.ref)
    assert loaded == added
    assert loaded.created_at.tzinfo is not None and loaded.created_at == NOW


def test_refs_count_up_and_a_rolled_back_ref_is_handed_out_again(database: Database) -> None:
    assert add_initiative(database).ref == "AI-0001"
    with database.uow() as uow:
        assert uow.initiatives.next_ref() == "AI-0002"  # never committed
    assert add_initiative(database).ref == "AI-0002"


def test_an_unknown_ref_is_refused_by_name(database: Database) -> None:
    with database.uow() as uow, pytest.raises(UnknownInitiative, match="AI-9999"):
        uow.initiatives.get("AI-9999")
    with database.uow() as uow, pytest.raises(UnknownInitiative):
        uow.answers.append(AnswerVersion("AI-9999", "intake", "problem", "x", "U1", NOW))
    with database.uow() as uow, pytest.raises(UnknownInitiative):
        uow.reviews.add(a_review("AI-9999"))
    with database.uow() as uow, pytest.raises(UnknownInitiative):
        uow.initiatives.save(Initiative("AI-9999", "x", "U1", "poc", NOW))


def test_saving_a_stale_initiative_is_a_concurrent_update(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as first_uow:
        first = first_uow.initiatives.get(ref)
    with database.uow() as uow:
        second = uow.initiatives.get(ref)
        second.hold("budget freeze", NOW)
        uow.initiatives.save(second)
        uow.commit()
    first.retire("gone", NOW)
    with database.uow() as uow, pytest.raises(ConcurrentUpdate):
        uow.initiatives.save(first)
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).status is Status.ON_HOLD


def test_leaving_without_commit_records_nothing(database: Database) -> None:
    with database.uow() as uow:
        uow.initiatives.add(Initiative(uow.initiatives.next_ref(), "x", "U1", "poc", NOW))
        uow.audit.append("U1", "initiative.registered", "AI-0001", {}, NOW)
        uow.outbox.put("initiative.registered", {"ref": "AI-0001"}, NOW)
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.list(InitiativeFilter()) == []
        assert uow.audit.timeline("AI-0001") == []


def test_list_filters_by_stage_status_owner_stalled_and_pages(database: Database) -> None:
    old = add_initiative(database, "Old", stage_entered_at=NOW - timedelta(days=90))
    fresh = add_initiative(database, "Fresh")
    mine = add_initiative(database, "Mine", owner_id="UME", stage="pilot")
    held = add_initiative(database, "Held", status=Status.ON_HOLD)
    # Past the time box too, but waiting for approvers: not stalled.
    waiting = add_initiative(
        database, "Waiting", status=Status.IN_REVIEW, stage_entered_at=NOW - timedelta(days=90)
    )

    def refs(**query: object) -> list[str]:
        with database.uow(read_only=True) as uow:
            return [i.ref for i in uow.initiatives.list(InitiativeFilter(**query))]  # type: ignore[arg-type]

    assert refs() == [old.ref, fresh.ref, mine.ref, held.ref, waiting.ref]
    assert refs(stage="pilot") == [mine.ref]
    assert refs(status=Status.ON_HOLD) == [held.ref]
    assert refs(owner_id="UME") == [mine.ref]
    assert refs(stalled_before={"poc": NOW - timedelta(days=30)}) == [old.ref]
    assert refs(stalled_before={}) == []
    assert refs(limit=2, offset=1) == [fresh.ref, mine.ref]


# -- answers and evidence ----------------------------------------------------------------------


def test_answers_are_versioned_and_the_latest_is_current(database: Database) -> None:
    ref, other = add_initiative(database).ref, add_initiative(database, "Other").ref
    with database.uow() as uow:
        # Another initiative's answers to the same questions, with a longer history, stay its own.
        for n in range(3):
            uow.answers.append(AnswerVersion(other, "intake", "problem", f"other {n}", "U9", NOW))
        uow.answers.append(AnswerVersion(other, "intake", "budget", 99, "U9", NOW))
        uow.answers.append(AnswerVersion(ref, "intake", "problem", "first", "U1", NOW))
        uow.answers.append(
            AnswerVersion(ref, "intake", "problem", "second", "U2", NOW + timedelta(minutes=1))
        )
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 12.5, "U1", NOW))
        uow.answers.append(AnswerVersion(ref, "intake", "channels", ["slack", "email"], "U1", NOW))
        uow.answers.append(AnswerVersion(ref, "intake", "channels", None, "U3", NOW + timedelta(minutes=2)))
        uow.commit()
    with database.uow(read_only=True) as uow:
        current = uow.answers.current(ref)
        history = uow.answers.history(ref)
    assert {qid: (a.value, a.version, a.author_id) for qid, a in current.items()} == {
        "problem": ("second", 2, "U2"),
        "budget": (12.5, 1, "U1"),
        "channels": (None, 2, "U3"),
    }
    with database.uow(read_only=True) as uow:
        assert {qid: a.value for qid, a in uow.answers.current(other).items()} == {
            "problem": "other 2",
            "budget": 99,
        }
    assert [(a.question_id, a.version) for a in history] == [
        ("budget", 1),
        ("channels", 1),
        ("channels", 2),
        ("problem", 1),
        ("problem", 2),
    ]
    assert history[1].value == ["slack", "email"]


def test_a_questions_history_ends_on_its_current_version_whatever_the_clocks_said(database: Database) -> None:
    """Two saves committed in the opposite order to their timestamps (two processes saving at
    the same moment, or clocks a little apart): the later commit is the current answer, and the
    history, which the evidence pack reads, ends on it too."""
    ref = add_initiative(database).ref
    for value, author, moment in [("KPI B", "U2", NOW + timedelta(seconds=1)), ("KPI A", "U1", NOW)]:
        with database.uow() as uow:
            uow.answers.append(AnswerVersion(ref, "intake", "primary_kpi", value, author, moment))
            uow.commit()
    with database.uow(read_only=True) as uow:
        current = uow.answers.current(ref)["primary_kpi"]
        history = uow.answers.history(ref)
    assert (current.value, current.version) == ("KPI A", 2)
    assert [(a.value, a.version) for a in history] == [("KPI B", 1), ("KPI A", 2)]
    assert history[-1] == current


def test_answers_as_of_a_moment_are_the_latest_given_by_then(database: Database) -> None:
    ref, other = add_initiative(database).ref, add_initiative(database, "Other").ref
    later = NOW + timedelta(hours=1)
    with database.uow() as uow:
        uow.answers.append(AnswerVersion(ref, "intake", "problem", "first", "U1", NOW - timedelta(minutes=5)))
        uow.answers.append(AnswerVersion(ref, "intake", "problem", "second", "U2", NOW))  # at that moment
        uow.answers.append(AnswerVersion(ref, "intake", "problem", "third", "U3", later))
        uow.answers.append(AnswerVersion(ref, "intake", "budget", 10, "U1", later))  # not yet answered
        uow.answers.append(AnswerVersion(other, "intake", "problem", "theirs", "U9", NOW))
        uow.commit()
    with database.uow(read_only=True) as uow:
        then, now = uow.answers.as_of(ref, NOW), uow.answers.as_of(ref, later)
        current = uow.answers.current(ref)
    assert {qid: (a.value, a.version, a.author_id) for qid, a in then.items()} == {
        "problem": ("second", 2, "U2")
    }
    assert now == current


def test_evidence_links_keep_author_and_time_and_filter_by_gate(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        uow.answers.add_link(EvidenceLink(ref, "intake", "https://x.example/a", "DPIA", "U1", NOW))
        uow.answers.add_link(EvidenceLink(ref, "pilot", "https://x.example/b", "Results", "U2", NOW))
        uow.commit()
    with database.uow(read_only=True) as uow:
        assert [link.title for link in uow.answers.links(ref)] == ["DPIA", "Results"]
        assert uow.answers.links(ref, "pilot") == [
            EvidenceLink(ref, "pilot", "https://x.example/b", "Results", "U2", NOW)
        ]


# -- reviews -------------------------------------------------------------------------------------


def test_a_review_round_trips_with_its_decisions(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        review = a_review(ref, exception_reason="pilot data arrives late")
        uow.reviews.add(review)
        uow.commit()
    assert review.id is not None
    with database.uow() as uow:
        loaded = uow.reviews.get(review.id)
        loaded.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW)
        uow.reviews.save(loaded)
        uow.commit()
    with database.uow(read_only=True) as uow:
        stored = uow.reviews.get(review.id)
        assert uow.reviews.open_for(ref) == stored
        assert uow.reviews.for_initiative(ref) == [stored]
        assert uow.reviews.pending_for(["risk"]) == [stored]
        assert uow.reviews.pending_for(["dpo"]) == []
    assert stored.decisions == [Decision("URISK1", DecisionKind.APPROVE, "risk", None, NOW, ("risk",))]
    assert stored.requirements == review.requirements
    assert (stored.tier, stored.exception_reason, stored.status) == (
        "high",
        "pilot data arrives late",
        ReviewStatus.OPEN,
    )


def test_reviews_and_initiatives_are_read_many_at_once_as_one_at_a_time(database: Database) -> None:
    """The worker reads a whole round of clicks' reviews at once: the same objects ``get``
    gives, each with its own decisions; unknown ids are simply absent, and a review loaded this
    way can be saved like one loaded by ``get``."""
    refs = [add_initiative(database, f"Initiative {i}").ref for i in range(3)]
    with database.uow() as uow:
        first, second = a_review(refs[0]), a_review(refs[1])
        uow.reviews.add(first)
        uow.reviews.add(second)
        uow.commit()
    assert first.id is not None and second.id is not None
    with database.uow() as uow:
        loaded = uow.reviews.get(first.id)
        loaded.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW)
        loaded.decide("URISK2", {"risk"}, DecisionKind.APPROVE, None, NOW + timedelta(minutes=1))
        uow.reviews.save(loaded)
        uow.commit()
    with database.uow() as uow:
        many = uow.reviews.get_many([second.id, first.id, first.id, 999_999])
        assert set(many) == {first.id, second.id}
        assert many[first.id] == uow.reviews.get(first.id)
        assert [d.approver_id for d in many[first.id].decisions] == ["URISK1", "URISK2"]
        assert many[second.id].decisions == []
        assert uow.reviews.get_many([]) == {}
        initiatives = uow.initiatives.get_many([refs[2], refs[0], "AI-9999"])
        assert initiatives == {refs[0]: uow.initiatives.get(refs[0]), refs[2]: uow.initiatives.get(refs[2])}
        many[second.id].decide("USPONSOR1", {"sponsor"}, DecisionKind.APPROVE, None, NOW)
        uow.reviews.save(many[second.id])
        uow.commit()
    with database.uow(read_only=True) as uow:
        assert [d.approver_id for d in uow.reviews.get(second.id).decisions] == ["USPONSOR1"]


def reject(database: Database, review_id: int) -> None:
    """A risk approver rejects the review, which closes it."""
    with database.uow() as uow:
        loaded = uow.reviews.get(review_id)
        loaded.decide("URISK1", {"risk"}, DecisionKind.REJECT, "no monitoring plan", NOW)
        uow.reviews.save(loaded)
        uow.commit()


def test_closing_a_review_is_stored_and_it_is_no_longer_open(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        review = a_review(ref)
        uow.reviews.add(review)
        uow.commit()
    assert review.id is not None
    reject(database, review.id)
    with database.uow(read_only=True) as uow:
        stored = uow.reviews.get(review.id)
        assert uow.reviews.open_for(ref) is None
    assert (stored.status, stored.closed_at) == (ReviewStatus.REJECTED, NOW)


def test_an_initiative_is_read_with_its_open_review_as_the_two_reads_give_them(database: Database) -> None:
    """What a status reply and a questionnaire page read in one statement: the initiative and
    its open review with every decision, or None when the only reviews are closed, and a review
    loaded this way can be saved like one loaded by ``get``."""
    bare, reviewed = add_initiative(database, "No review yet").ref, add_initiative(database).ref
    with database.uow() as uow:
        closed = a_review(reviewed, gate_id="poc-exit")
        uow.reviews.add(closed)
        uow.answers.append(AnswerVersion(reviewed, "pilot", "owner", "UOWNER", "UOWNER", NOW))
        uow.commit()
    assert closed.id is not None
    reject(database, closed.id)
    with database.uow(read_only=True) as uow:
        assert uow.reviews.initiative_with_open_review(reviewed) == (uow.initiatives.get(reviewed), None)
    with database.uow() as uow:
        review = a_review(reviewed)
        uow.reviews.add(review)
        uow.commit()
    assert review.id is not None
    with database.uow() as uow:
        initiative, open_review = uow.reviews.initiative_with_open_review(reviewed)
        assert open_review is not None
        open_review.decide("URISK2", {"risk"}, DecisionKind.APPROVE, None, NOW + timedelta(minutes=2))
        open_review.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW + timedelta(minutes=1))
        uow.reviews.save(open_review)
        uow.commit()
    with database.uow(read_only=True) as uow:
        initiative, open_review = uow.reviews.initiative_with_open_review(reviewed)
        assert (initiative, open_review) == (uow.initiatives.get(reviewed), uow.reviews.open_for(reviewed))
        assert open_review is not None and open_review.id == review.id
        assert [d.approver_id for d in open_review.decisions] == ["URISK1", "URISK2"]  # in decision order
        # The answers read next in the same unit of work find the initiative by the row id just read.
        assert [a.value for a in uow.answers.current(reviewed).values()] == ["UOWNER"]
        assert uow.reviews.initiative_with_open_review(bare) == (uow.initiatives.get(bare), None)
        with pytest.raises(UnknownInitiative, match="AI-9999"):
            uow.reviews.initiative_with_open_review("AI-9999")


def test_a_batch_of_pages_touches_and_reads_its_initiatives_reviews_and_answers_as_one_at_a_time(
    database: Database,
) -> None:
    """What a batch of questionnaire pages reads before writing (one round trip on PostgreSQL):
    for each ref that exists, the initiative with its row version moved on, its open review
    with its decisions, and its current answers, exactly as the single reads give them; an
    unknown ref is left out, not an error for the whole batch."""
    bare, reviewed, answered = (
        add_initiative(database, name).ref for name in ("Bare", "Reviewed", "Answered")
    )
    with database.uow() as uow:
        review = a_review(reviewed)
        uow.reviews.add(review)
        for n in range(3):
            uow.answers.append(AnswerVersion(answered, "intake", "problem", f"take {n}", "U1", NOW))
        uow.answers.append(AnswerVersion(answered, "intake", "budget", 12, "U1", NOW))
        uow.answers.append(AnswerVersion(reviewed, "intake", "problem", "reviewed", "U2", NOW))
        uow.commit()
    with database.uow() as uow:
        loaded = uow.reviews.get(review.id or 0)
        loaded.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW + timedelta(minutes=1))
        uow.reviews.save(loaded)
        uow.commit()
    with database.uow(read_only=True) as uow:
        versions = {ref: uow.initiatives.get(ref).version for ref in (answered, bare, reviewed)}
    with database.uow() as uow:
        together = uow.reviews.touch_and_read([answered, "AI-9999", bare, reviewed, bare])
        assert uow.reviews.touch_and_read([]) == {}
        # The answers written next in the same unit of work find each initiative by its row id.
        uow.answers.append(AnswerVersion(bare, "intake", "budget", 3, "U3", NOW))
        uow.commit()
    with database.uow(read_only=True) as uow:
        alone = {
            ref: (*uow.reviews.initiative_with_open_review(ref), uow.answers.current(ref))
            for ref in (answered, bare, reviewed)
        }
        assert uow.answers.current(bare)["budget"].value == 3
    assert set(together) == {answered, bare, reviewed}
    for ref, (initiative, open_review, answers) in together.items():
        stored, stored_review, stored_answers = alone[ref]
        # Each touched once, though named twice: the version read is the one stored.
        assert initiative.version == stored.version == versions[ref] + 1
        assert (initiative, open_review) == (stored, stored_review)
        assert answers == (stored_answers if ref != bare else {})
    assert [d.approver_id for d in together[reviewed][1].decisions] == ["URISK1"]  # type: ignore[union-attr]
    assert together[answered][2]["problem"].value == "take 2" and together[bare][1] is None


def test_answers_appended_together_are_numbered_in_the_order_given(database: Database) -> None:
    """A batch of pages records its answers together (one round trip on PostgreSQL); a question
    answered twice in it, by two pages of one initiative, ends with the later answer."""
    first, second = (add_initiative(database, name).ref for name in ("First", "Second"))
    with database.uow() as uow:
        uow.answers.append(AnswerVersion(first, "intake", "budget", 5, "U0", NOW))
        uow.commit()
    with database.uow() as uow:
        uow.answers.append_many(
            [
                AnswerVersion(first, "intake", "budget", 10, "U1", NOW + timedelta(minutes=1)),
                AnswerVersion(second, "intake", "budget", 7, "U1", NOW + timedelta(minutes=1)),
                AnswerVersion(first, "intake", "problem", "late triage", "U1", NOW + timedelta(minutes=1)),
                AnswerVersion(first, "intake", "budget", 20, "U2", NOW + timedelta(minutes=2)),
            ]
        )
        uow.answers.append_many([])
        uow.commit()
    with database.uow(read_only=True) as uow:
        current = uow.answers.current_many([first, second])
        budgets = [(v.value, v.author_id) for v in uow.answers.history(first) if v.question_id == "budget"]
    assert budgets == [(5, "U0"), (10, "U1"), (20, "U2")]
    assert {q: v.value for q, v in current[first].items()} == {"budget": 20, "problem": "late triage"}
    assert current[second]["budget"].value == 7


def test_a_second_open_review_for_an_initiative_is_refused(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        uow.reviews.add(a_review(ref))
        uow.commit()
    with database.uow() as uow, pytest.raises(ReviewAlreadyOpen, match="pilot"):
        uow.reviews.add(a_review(ref, gate_id="other"))


def test_an_unknown_review_is_refused_by_name(database: Database) -> None:
    with database.uow() as uow:
        with pytest.raises(UnknownReview, match="4242"):
            uow.reviews.get(4242)
        with pytest.raises(UnknownReview):
            uow.reviews.get("not-a-number")  # type: ignore[arg-type]


def test_saving_a_review_decided_by_someone_else_meanwhile_is_a_concurrent_update(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        review = a_review(ref)
        uow.reviews.add(review)
        uow.commit()
    assert review.id is not None
    stale_uow = database.uow()
    with stale_uow:
        stale = stale_uow.reviews.get(review.id)
        stale_uow.commit()
        with database.uow() as other:  # on SQLite this waits for nothing: stale committed
            fresh = other.reviews.get(review.id)
            fresh.decide("URISK1", {"risk"}, DecisionKind.APPROVE, None, NOW)
            other.reviews.save(fresh)
            other.commit()
        stale.decide("URISK2", {"risk"}, DecisionKind.APPROVE, None, NOW)
        with pytest.raises(ConcurrentUpdate):
            stale_uow.reviews.save(stale)
    with database.uow(read_only=True) as uow:
        assert [d.approver_id for d in uow.reviews.get(review.id).decisions] == ["URISK1"]


def test_saving_several_reviews_at_once_records_each_and_refuses_all_if_one_changed_meanwhile(
    database: Database,
) -> None:
    ids = []
    for name in ("Invoice matching", "Churn model", "Claims triage"):
        with database.uow() as uow:
            review = a_review(add_initiative(database, name).ref)
            uow.reviews.add(review)
            uow.commit()
        assert review.id is not None
        ids.append(review.id)
    with database.uow() as uow:
        loaded = uow.reviews.get_many(ids)
        for i, review_id in enumerate(ids):
            loaded[review_id].decide(f"URISK{i}", {"risk"}, DecisionKind.APPROVE, None, NOW)
        uow.reviews.save_many(list(loaded.values()))
        uow.commit()
    with database.uow(read_only=True) as uow:
        assert [[d.approver_id for d in uow.reviews.get(i).decisions] for i in ids] == [
            ["URISK0"],
            ["URISK1"],
            ["URISK2"],
        ]

    stale_uow = database.uow()
    with stale_uow:
        stale = stale_uow.reviews.get_many(ids)
        stale_uow.commit()
        with database.uow() as other:  # the middle review moves on after the round read it
            fresh = other.reviews.get(ids[1])
            fresh.decide("UOTHER", {"risk"}, DecisionKind.APPROVE, None, NOW)
            other.reviews.save(fresh)
            other.commit()
        for review in stale.values():
            review.decide("ULATE", {"risk"}, DecisionKind.APPROVE, None, NOW)
        with pytest.raises(ConcurrentUpdate):
            stale_uow.reviews.save_many(list(stale.values()))
    with database.uow(read_only=True) as uow:
        assert [[d.approver_id for d in uow.reviews.get(i).decisions] for i in ids] == [
            ["URISK0"],
            ["URISK1", "UOTHER"],
            ["URISK2"],
        ]


def test_saving_a_review_not_loaded_in_this_unit_of_work_is_a_programming_error(database: Database) -> None:
    ref = add_initiative(database).ref
    with database.uow() as uow:
        review = a_review(ref)
        uow.reviews.add(review)
        uow.commit()
    with database.uow() as uow, pytest.raises(ValueError, match="not loaded"):
        uow.reviews.save(review)


# -- roles and dedupe -----------------------------------------------------------------------------


def test_role_holders_are_replaced_per_role(database: Database) -> None:
    with database.uow() as uow:
        uow.roles.set_holders("risk", ["U1", "U2", "U1", " "])
        uow.roles.set_holders("dpo", ["U2"])
        uow.commit()
    with database.uow() as uow:
        assert uow.roles.holders() == {"dpo": ["U2"], "risk": ["U1", "U2"]}
        assert uow.roles.roles_of("U2") == {"risk", "dpo"}
        uow.roles.set_holders("risk", ["U3"])
        uow.roles.set_holders("dpo", [])
        uow.commit()
    with database.uow(read_only=True) as uow:
        assert uow.roles.holders() == {"risk": ["U3"]}
        assert uow.roles.roles_of("U2") == set()


def test_a_slack_event_is_claimed_once(database: Database) -> None:
    assert database.claim("Ev123", NOW) is True
    assert database.claim("Ev123", NOW) is False
    with database.uow() as uow:
        assert uow.dedupe.first_time("action:1", NOW) is True
        # rolled back: the claim goes with it
    assert database.claim("action:1", NOW) is True


def test_a_naive_time_is_taken_as_utc(database: Database) -> None:
    ref = add_initiative(database, created_at=datetime(2025, 1, 2, 3, 4, 5)).ref
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
