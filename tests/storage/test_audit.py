"""The audit chain proves itself unbroken, and names the first entry that was modified,
deleted, reordered or inserted; then the decisions and reviews are checked against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from gates import usecases
from gates.evidence import submitted_evidence_hash
from gates.lifecycle import DecisionKind
from gates.loader import load_pipeline
from storage import AuditLogAheadOfCounter, Database, DatabaseUnavailable, verify_audit
from storage.audit import GENESIS, SqlAuditLog, canonical_json, entry_hash
from storage.tables import answer_versions, audit_log, decisions, evidence_links, initiatives, reviews
from tests.gates.conftest import OWNER, SPONSOR, SUBMITTER, TWO_GATES, build
from tests.storage.scenarios import INTAKE, pipeline

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def five_entries(database: Database) -> Database:
    """A database whose audit log holds five entries, committed one by one."""
    for n in range(1, 6):
        with database.uow() as uow:
            uow.audit.append(
                f"U{n}", "answers.recorded", "AI-0001", {"n": n, "at": NOW}, NOW + timedelta(minutes=n)
            )
            uow.commit()
    return database


def tamper(database: Database, *statements: str) -> None:
    with database.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def forge(database: Database, count: int = 1) -> list[int]:
    """Add ``count`` entries at the end of the chain, hashes computed, but not through Shepherd:
    its counter is left alone. Returns their seqs."""
    forged = []
    with database.engine.begin() as connection:
        seq, prev = connection.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).one()
        for _ in range(count):
            seq += 1
            payload = canonical_json({"review": 1, "decision": "approve"})
            hash_ = entry_hash(seq, "U0CEO", "decision.recorded", "AI-0001", payload, NOW, prev)
            connection.execute(
                insert(audit_log).values(
                    seq=seq,
                    actor_id="U0CEO",
                    action="decision.recorded",
                    target="AI-0001",
                    payload=payload,
                    at=NOW,
                    prev_hash=prev,
                    hash=hash_,
                )
            )
            forged.append(seq)
            prev = hash_
    return forged


def test_an_untouched_chain_verifies(five_entries: Database) -> None:
    report = verify_audit(five_entries)
    assert report.ok and report.checked == 5
    assert "intact" in str(report)


def test_an_empty_log_verifies(database: Database) -> None:
    assert verify_audit(database).ok


def test_a_modified_payload_is_named(five_entries: Database) -> None:
    tamper(five_entries, """UPDATE audit_log SET payload = '{"n":99}' WHERE seq = 3""")
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, 3)
    assert "modified" in str(report) and "entry 3" in str(report)


def test_a_modified_actor_is_named(five_entries: Database) -> None:
    tamper(five_entries, "UPDATE audit_log SET actor_id = 'UMALLORY' WHERE seq = 2")
    assert verify_audit(five_entries).bad_seq == 2


def test_a_modification_with_a_recomputed_hash_breaks_the_next_link(five_entries: Database) -> None:
    tamper(five_entries, "UPDATE audit_log SET hash = 'ff' || substr(hash, 3) WHERE seq = 2")
    report = verify_audit(five_entries)
    # entry 2's own hash no longer matches its content, which is reported first
    assert report.bad_seq == 2


def test_a_deleted_entry_is_named(five_entries: Database) -> None:
    tamper(five_entries, "DELETE FROM audit_log WHERE seq = 3")
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, 3)
    assert "missing" in str(report)


def test_a_deleted_last_entry_is_named(five_entries: Database) -> None:
    tamper(five_entries, "DELETE FROM audit_log WHERE seq = 5")
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, 5)
    assert "gone" in str(report)


def test_two_swapped_entries_are_named(five_entries: Database) -> None:
    # Swap everything but the sequence number between entries 2 and 4.
    tamper(
        five_entries,
        "UPDATE audit_log SET seq = 1002 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 1002",
    )
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, 2)
    assert "reordered" in str(report)


@contextmanager
def without_the_seq_constraint(database: Database) -> Iterator[Connection]:
    """A transaction that may write entries numbered below 1, as someone with the rights to
    set the schema's CHECK constraint aside could."""
    with database.engine.begin() as connection:
        if database.is_sqlite:
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
            try:
                yield connection
            finally:
                connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
        else:
            connection.exec_driver_sql("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_seq_positive")
            yield connection


def forged_entry(seq: int) -> dict[str, object]:
    """A decision entry on AI-0001 numbered ``seq``, hashed as if it started the chain."""
    payload = canonical_json({"review": 1, "decision": "approve", "role": "risk"})
    return {
        "seq": seq,
        "actor_id": "U0CEO",
        "action": "decision.recorded",
        "target": "AI-0001",
        "payload": payload,
        "at": NOW,
        "prev_hash": GENESIS,
        "hash": entry_hash(seq, "U0CEO", "decision.recorded", "AI-0001", payload, NOW, GENESIS),
    }


def test_the_schema_refuses_an_entry_numbered_below_1(five_entries: Database) -> None:
    with pytest.raises(IntegrityError), five_entries.engine.begin() as connection:
        connection.execute(insert(audit_log).values(**forged_entry(0)))


@pytest.mark.parametrize(
    ("seqs", "said"),
    [
        ([0], "entry 0 (decision.recorded on AI-0001) is numbered below 1"),
        ([-7, 0], "2 entries, from entry -7 (decision.recorded on AI-0001), are numbered below 1"),
    ],
)
def test_an_entry_inserted_before_the_first_is_named_although_its_target_shows_it(
    five_entries: Database, seqs: list[int], said: str
) -> None:
    with without_the_seq_constraint(five_entries) as connection:
        connection.execute(insert(audit_log), [forged_entry(seq) for seq in seqs])
    with five_entries.uow(read_only=True) as uow:
        actors = [entry.actor_id for entry in uow.audit.timeline("AI-0001")]
    assert actors.count("U0CEO") == len(seqs)  # in the initiative's timeline and evidence pack ...
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, seqs[0])  # ... so verify must not call the log intact
    assert said in str(report) and "forged" in str(report)


def test_an_entry_forged_at_the_end_is_named_as_beyond_the_counter(five_entries: Database) -> None:
    forge(five_entries)
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq, report.checked) == (False, 6, 5)
    assert "entry 6 is beyond the counter, which says 5 were written" in str(report)


def test_entries_forged_at_the_end_are_named_together(five_entries: Database) -> None:
    forge(five_entries, 3)
    report = verify_audit(five_entries)
    assert (report.ok, report.bad_seq) == (False, 6)
    assert "entries 6-8 are beyond the counter" in str(report)


def test_an_append_after_a_forged_entry_fails_naming_the_cause(five_entries: Database) -> None:
    forge(five_entries)
    with pytest.raises(AuditLogAheadOfCounter) as raised, five_entries.uow() as uow:
        uow.audit.append("U9", "roles.set", "role:risk", {}, NOW)
        uow.commit()
    message = str(raised.value)
    assert "beyond its counter" in message and "entry 6 already exists" in message
    assert "shepherd audit verify" in message and "\n" not in message
    # Nothing was recorded, and the forged entry is still reported.
    assert "entry 6 is beyond the counter" in str(verify_audit(five_entries))


def test_an_append_after_a_forged_entry_fails_the_same_from_another_process(five_entries: Database) -> None:
    """Another process has no guess at the chain's end: it reads the predecessor and inserts
    plainly, several entries of one transaction at once."""
    forge(five_entries)
    other = Database(five_entries.url.render_as_string(hide_password=False))
    try:
        with (
            pytest.raises(AuditLogAheadOfCounter, match="one of entries 6-7 already exists"),
            other.uow() as uow,
        ):
            uow.audit.append("U9", "roles.set", "role:risk", {}, NOW)
            uow.audit.append("U9", "roles.set", "role:privacy", {}, NOW)
            uow.commit()
    finally:
        other.dispose()


def test_appends_after_tampering_still_record_and_verify_still_reports(five_entries: Database) -> None:
    tamper(five_entries, "DELETE FROM audit_log WHERE seq = 5")
    with five_entries.uow() as uow:
        uow.audit.append("U9", "roles.set", "role:risk", {}, NOW)
        uow.commit()
    assert verify_audit(five_entries).bad_seq == 5


def test_the_timeline_lists_a_targets_entries_in_order_with_uncommitted_ones(five_entries: Database) -> None:
    with five_entries.uow() as uow:
        uow.audit.append("U9", "review.submitted", "AI-0001", {"review": 1}, NOW)
        timeline = uow.audit.timeline("AI-0001")
    assert [entry.actor_id for entry in timeline] == ["U1", "U2", "U3", "U4", "U5", "U9"]
    assert timeline[0].detail == {"n": 1, "at": "2025-03-01T09:00:00.000000+00:00"}
    assert verify_audit(five_entries).checked == 5  # the uncommitted one was rolled back


def test_last_at_finds_when_each_target_last_had_an_action(five_entries: Database) -> None:
    """When each system last came back from a hold (the periodic review's grace starts then)."""
    with five_entries.uow() as uow:
        for minutes, target in [(10, "AI-0001"), (20, "AI-0002"), (30, "AI-0001")]:
            uow.audit.append("U9", "initiative.resumed", target, {}, NOW + timedelta(minutes=minutes))
        uow.audit.append("U9", "initiative.held", "AI-0003", {}, NOW)
        uncommitted = uow.audit.last_at("initiative.resumed", ["AI-0001", "AI-0002", "AI-0003"])
        uow.commit()
    with five_entries.uow() as uow:
        found = uow.audit.last_at("initiative.resumed", ["AI-0001", "AI-0002", "AI-0003"])
        assert uow.audit.last_at("initiative.resumed", []) == {}
    expected = {"AI-0001": NOW + timedelta(minutes=30), "AI-0002": NOW + timedelta(minutes=20)}
    assert found == uncommitted == expected


def test_verify_reads_the_chain_in_pages_and_still_names_the_entry(five_entries: Database) -> None:
    from storage.audit import verify

    tamper(five_entries, "DELETE FROM audit_log WHERE seq = 4")
    with five_entries.session(read_only=True) as session:
        report = verify(session, batch=2)
    assert (report.bad_seq, report.checked) == (4, 3)


def rechain(connection: Connection) -> None:
    """Recompute every entry's links and hash, as a log written that way would have them."""
    prev = GENESIS
    for row in connection.execute(select(audit_log).order_by(audit_log.c.seq)).mappings().all():
        hash_ = entry_hash(
            row["seq"], row["actor_id"], row["action"], row["target"], row["payload"], row["at"], prev
        )
        connection.execute(
            update(audit_log).where(audit_log.c.seq == row["seq"]).values(prev_hash=prev, hash=hash_)
        )
        prev = hash_


def append_one(database: Database, actor: str) -> None:
    with database.uow() as uow:
        uow.audit.append(actor, "roles.set", "role:risk", {"actor": actor}, NOW)
        uow.commit()


def test_appends_from_two_processes_taking_turns_keep_one_chain(database: Database) -> None:
    # Each Database guesses the chain's end from its own last entry; the other's appends make
    # that guess wrong every time, and the database's check sends it to read the real end.
    other = Database(database.url)
    try:
        for n in range(4):
            append_one(database, f"UA{n}")
            append_one(other, f"UB{n}")
    finally:
        other.dispose()
    report = verify_audit(database)
    assert report.ok and report.checked == 8, report


def test_an_entry_that_rolled_back_is_not_linked_to(database: Database) -> None:
    append_one(database, "U1")
    with database.uow() as uow:
        uow.audit.append("U2", "roles.set", "role:risk", {}, NOW)
        uow.audit.timeline("role:risk")  # writes entry 2 inside the transaction, which then rolls back
    other = Database(database.url)
    try:
        append_one(other, "U3")  # entry 2 is now someone else's
    finally:
        other.dispose()
    append_one(database, "U4")  # must link to the entry 2 that exists, not to the one that was lost
    report = verify_audit(database)
    assert report.ok and report.checked == 3, report


def test_several_entries_of_one_transaction_are_chained_in_order(database: Database) -> None:
    append_one(database, "U1")
    with database.uow() as uow:
        for n in range(3):
            uow.audit.append(f"U{n + 2}", "stage.advanced", "AI-0001", {"n": n}, NOW)
        uow.commit()
    report = verify_audit(database)
    assert report.ok and report.checked == 4, report
    with database.uow(read_only=True) as uow:
        assert [e.actor_id for e in uow.audit.timeline("AI-0001")] == ["U2", "U3", "U4"]


# -- the decisions and the reviews' evidence, against what the chain records ---------------------


def rejected(database: Database) -> int:
    """AI-0001, with an evidence link, submitted and then rejected by its sponsor; returns the review."""
    registered = usecases.register(
        pipeline(), database.uow(), name="Invoice matching", owner_id=OWNER,
        answers={**INTAKE, "budget": 5000}, actor_id=OWNER, now=NOW,
    )  # fmt: skip
    usecases.add_link(
        pipeline(),
        database.uow(),
        registered.ref,
        "intake",
        "https://wiki.example.com/plan",
        "Plan",
        OWNER,
        NOW,
    )
    review = usecases.submit(pipeline(), database.uow(), registered.ref, SUBMITTER, NOW + timedelta(hours=1))
    assert review.id is not None
    usecases.decide(
        pipeline(), database.uow(), review.id, SPONSOR, DecisionKind.REJECT, "No baseline",
        NOW + timedelta(hours=2),
    )  # fmt: skip
    return review.id


def test_decisions_and_evidence_that_agree_with_the_chain_verify(database: Database) -> None:
    rejected(database)
    # Answering again after the review is allowed: only what it was decided on counts.
    usecases.answer(pipeline(), database.uow(), "AI-0001", "intake", {"problem": "Now by rule"}, OWNER,
                    NOW + timedelta(days=1))  # fmt: skip
    report = verify_audit(database, pipeline())
    assert (report.ok, report.decisions, report.reviews) == (True, 1, 1), str(report)
    assert "1 decision checked against it, evidence hashes recomputed for 1 review" in str(report)
    assert verify_audit(database).reviews is None  # no pipeline to type the answers with


def test_a_decision_changed_in_the_database_is_named(database: Database) -> None:
    review_id = rejected(database)
    with database.engine.begin() as connection:
        connection.execute(update(decisions).values(kind="approve", reason="Looks good"))
    report = verify_audit(database)  # the decisions are checked with or without a pipeline
    assert (report.ok, report.bad_seq) == (False, None)
    said = (
        f'The decision of {SPONSOR} on review {review_id} (AI-0001) says decision "approve", '
        'reason "Looks good", but its audit entry 4 records decision "reject", reason "No baseline": '
        "it was changed in the database."
    )
    assert report.disagreements == (said,)
    assert str(report).startswith("The tables disagree with the audit log in 1 place(s)")
    assert verify_audit(database, pipeline()).disagreements == (said,)


def test_a_decision_added_or_deleted_in_the_database_is_named(database: Database) -> None:
    review_id = rejected(database)
    with database.engine.begin() as connection:
        connection.execute(delete(decisions))
        connection.execute(
            insert(decisions).values(
                review_id=review_id, approver_id="U0CEO", kind="approve", role="sponsor",
                decided_at=NOW + timedelta(hours=3),
            )
        )  # fmt: skip
    report = verify_audit(database, pipeline())
    assert not report.ok
    assert report.disagreements == (
        f'The decision of U0CEO on review {review_id} (AI-0001), "approve", has no decision.recorded '
        "entry in the audit log: it was added in the database, not through Shepherd.",
        f'Audit entry 4 records a decision of {SPONSOR}, "reject", on review {review_id} (AI-0001), '
        "which the decisions table does not hold: it was deleted in the database.",
    )


@pytest.mark.parametrize(
    "edit",
    [
        update(answer_versions).where(answer_versions.c.question_id == "problem").values(value="Edited"),
        update(answer_versions).where(answer_versions.c.question_id == "budget").values(value=1),
        update(evidence_links).values(url="https://wiki.example.com/other-plan"),
        delete(evidence_links),
    ],
    ids=["answer", "number", "link", "link-deleted"],
)
def test_evidence_changed_after_submission_is_named_with_its_review(database: Database, edit: object) -> None:
    review_id = rejected(database)
    with database.engine.begin() as connection:
        connection.execute(edit)  # type: ignore[call-overload]
    report = verify_audit(database, pipeline())
    assert not report.ok
    assert report.disagreements[0].startswith(
        f"Review {review_id} (AI-0001, intake gate): its answers as submitted and its links no longer "
        "give the evidence hash"
    )
    assert "they were changed in the database after it was submitted." in report.disagreements[0]


def test_a_review_hash_rewritten_to_cover_edited_answers_is_named(database: Database) -> None:
    review_id = rejected(database)
    with database.engine.begin() as connection:
        connection.execute(
            update(answer_versions).where(answer_versions.c.question_id == "problem").values(value="Edited")
        )
    edited = usecases.evidence_as_submitted(database.uow(read_only=True), review_id)
    rehashed = submitted_evidence_hash(
        pipeline(),
        {qid: version.value for qid, version in edited.answers.items()},
        [(link.url, link.title) for link in edited.links],
    )
    with database.engine.begin() as connection:
        connection.execute(update(reviews).values(evidence_hash=rehashed))
    report = verify_audit(database, pipeline())
    assert report.disagreements[0].startswith(
        f"Review {review_id} (AI-0001, intake gate) has the evidence hash {rehashed[:12]}…, but its "
        "audit entry 3 recorded "
    )
    assert "its answers as submitted and its links no longer give" in report.disagreements[1]


def test_reviews_of_an_earlier_pipeline_verify_after_a_question_is_removed(database: Database) -> None:
    rejected(database)  # its evidence hash covers the budget answer
    without_budget = build(
        TWO_GATES.replace(
            "      - {id: budget, label: Budget in euros, type: number, validation: {min: 0}}\n", ""
        )
    )
    assert without_budget.version != pipeline().version
    assert verify_audit(database, without_budget).ok
    with database.engine.begin() as connection:
        connection.execute(
            update(answer_versions).where(answer_versions.c.question_id == "budget").values(value=1)
        )
    report = verify_audit(database, without_budget)
    assert not report.ok
    assert f"(It was submitted on pipeline version {pipeline().version}; this one is" in str(report)


def test_verify_on_a_live_database_reads_one_moment_of_it(database: Database) -> None:
    """Shepherd goes on writing while `shepherd audit verify` reads: what commits after the walk
    of the chain began (an initiative registered, submitted and decided) is either wholly in what
    verify reads or wholly out, never its counter, decision or review without its entries."""
    rejected(database)
    wrote: list[str] = []

    def meanwhile(_conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
        if wrote or "FROM audit_log" not in statement:
            return
        wrote.append(statement)
        later = NOW + timedelta(days=1)
        ref = usecases.register(
            pipeline(), database.uow(), name="Fraud triage", owner_id=OWNER,
            answers={**INTAKE, "budget": 100}, actor_id=OWNER, now=later,
        ).ref  # fmt: skip
        review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, later)
        assert review.id is not None
        usecases.decide(pipeline(), database.uow(), review.id, SPONSOR, DecisionKind.REJECT, "No", later)

    event.listen(database.engine, "after_cursor_execute", meanwhile)
    try:
        report = verify_audit(database, pipeline())
    finally:
        event.remove(database.engine, "after_cursor_execute", meanwhile)
    assert wrote, "nothing was written while verify read"
    assert report.ok, str(report)
    assert (report.checked, report.decisions, report.reviews) == (4, 1, 1)
    assert verify_audit(database, pipeline()).checked == 7  # the writes landed, for the next run


def test_a_review_submitted_on_a_page_saved_while_it_waited_verifies(database: Database) -> None:
    """A submission reads the time before its transaction begins; a questionnaire page saved
    meanwhile (while the submission waited for SQLite's write lock, or committed between its read
    and its save on PostgreSQL, after which it is tried again with the same time) carries a later
    time, and the submission hashes it all the same. Its answers as submitted must be those."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Invoice matching", owner_id=OWNER,
        answers={**INTAKE, "budget": 5000}, actor_id=OWNER, now=NOW,
    ).ref  # fmt: skip
    clicked = NOW + timedelta(hours=1)
    usecases.answer(  # saved just after the click, recorded just before the submission
        pipeline(), database.uow(), ref, "intake", {"budget": 7000}, OWNER,
        clicked + timedelta(milliseconds=3),
    )  # fmt: skip
    review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, clicked)
    assert review.id is not None
    submitted = usecases.evidence_as_submitted(database.uow(read_only=True), review.id)
    assert submitted.answers["budget"].value == 7000  # what the review's hash covers
    usecases.decide(
        pipeline(), database.uow(), review.id, SPONSOR, DecisionKind.APPROVE, None,
        clicked + timedelta(hours=1),
    )  # fmt: skip
    report = verify_audit(database, pipeline())
    assert report.ok, str(report)


def test_a_page_of_another_gate_checked_before_a_submission_and_saved_after_it_verifies(
    database: Database,
) -> None:
    """A questionnaire page is stamped when it is checked and written later (``answer_many``,
    after the page writer's previous round). A page of a gate the review does not read may be
    written while the review is open; stamped before the submission but written after it, it
    was not in the evidence the review hashed, and must not be read back as part of it: the pack
    and `audit verify` would call the review's evidence changed in the database."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Invoice matching", owner_id=OWNER, answers=INTAKE,
        actor_id=OWNER, now=NOW,
    ).ref  # fmt: skip
    clicked = NOW + timedelta(hours=1)
    page = usecases.check_page(pipeline(), ref, "pilot", {"success": "yes"}, OWNER, clicked)
    review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, clicked + timedelta(milliseconds=3))
    assert review.id is not None
    (saved,) = usecases.answer_many(database.uow(), [page])  # the page writer's next round
    assert isinstance(saved, usecases.AnswerResult), saved
    assert saved.changed == ("success",)
    # A link given the same way: the time read before the submission, written after it.
    usecases.add_link(
        pipeline(), database.uow(), ref, "pilot", "https://wiki.example.com/pilot", "Pilot plan", OWNER,
        clicked + timedelta(milliseconds=1),
    )  # fmt: skip
    submitted = usecases.evidence_as_submitted(database.uow(read_only=True), review.id)
    assert "success" not in submitted.answers  # what the review's hash covers
    assert not submitted.links
    report = verify_audit(database, pipeline())
    assert report.ok, str(report)


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"status": "approved"}, 'says status "approved", but the audit log records status "rejected"'),
        (
            {"status": "open", "closed_at": None},
            'says status "open", but the audit log records status "rejected"',
        ),
        (
            {"requirements": []},
            'says requirements "none", but the audit log records requirements "1 x sponsor"',
        ),
        (
            {"exception_reason": "Board deadline"},
            'says exception_reason "Board deadline", but the audit log records exception_reason none',
        ),
        (
            {"submitted_by": "U0CEO"},
            f'says submitted_by "U0CEO", but the audit log records submitted_by "{SUBMITTER}"',
        ),
        ({"tier": "low"}, 'says tier "low", but the audit log records tier none'),
    ],
    ids=["approved", "reopened", "requirements", "exception", "submitter", "tier"],
)
def test_a_reviews_outcome_or_terms_changed_in_the_database_are_named(
    database: Database, values: dict[str, object], said: str
) -> None:
    """The pack shows a review's outcome, what it required and any exception from its row: a
    rejection made to read as an approval, or an approval waiving criteria made to read as an
    ordinary one, must not verify."""
    review_id = rejected(database)
    with database.engine.begin() as connection:
        connection.execute(update(reviews).values(**values))
    report = verify_audit(database)  # checked with or without a pipeline
    assert not report.ok
    (text,) = report.disagreements
    assert text.startswith(f"Review {review_id} (AI-0001, intake gate) {said}"), text
    assert text.endswith(": it was changed in the database.")


def test_reviews_closed_every_way_and_one_still_open_verify(database: Database) -> None:
    later = NOW + timedelta(days=1)

    def submitted(name: str, **answers: object) -> tuple[str, int]:
        ref = usecases.register(
            pipeline(), database.uow(), name=name, owner_id=OWNER, answers={**INTAKE, **answers},
            actor_id=OWNER, now=NOW,
        ).ref  # fmt: skip
        review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, NOW + timedelta(hours=1))
        assert review.id is not None
        return ref, review.id

    _, approved = submitted("Approved")
    usecases.decide(pipeline(), database.uow(), approved, SPONSOR, DecisionKind.APPROVE, None, later)
    _, sent_back = submitted("Sent back")
    usecases.decide(
        pipeline(), database.uow(), sent_back, SPONSOR, DecisionKind.REQUEST_CHANGES, "KPI?", later
    )
    withdrawn, _ = submitted("Withdrawn")
    usecases.withdraw(database.uow(), withdrawn, SUBMITTER, later)
    retired, _ = submitted("Retired")
    usecases.retire(database.uow(), retired, OWNER, "budget cut", later)
    submitted("Still open", personal_data="yes", dpia="https://wiki.example.com/dpia")
    report = verify_audit(database, pipeline())
    assert report.ok, str(report)
    assert (report.decisions, report.reviews) == (2, 5)


def test_a_review_withdrawn_by_a_retirement_recorded_without_its_own_entry_verifies(
    database: Database,
) -> None:
    """Retiring an initiative under review wrote only initiative.retired until review.withdrawn
    was recorded with it: such a log still verifies."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Retired", owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
    ).ref
    usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, NOW + timedelta(hours=1))
    usecases.retire(database.uow(), ref, OWNER, "budget cut", NOW + timedelta(days=1))
    with database.engine.begin() as connection:
        connection.execute(
            update(audit_log).where(audit_log.c.action == "review.withdrawn").values(action="note.added")
        )
        rechain(connection)
    assert verify_audit(database, pipeline()).ok, str(verify_audit(database, pipeline()))


def test_an_initiative_moved_to_another_stage_in_the_database_is_named(database: Database) -> None:
    """Its stage is what the pack and Slack say it passed to: only an approval moves it on."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Approved", owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
    ).ref
    review = usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, NOW + timedelta(hours=1))
    assert review.id is not None
    usecases.decide(
        pipeline(), database.uow(), review.id, SPONSOR, DecisionKind.APPROVE, None, NOW + timedelta(days=1)
    )
    assert verify_audit(database).ok
    with database.engine.begin() as connection:
        connection.execute(update(initiatives).values(stage="pilot"))  # skips the pilot gate
    report = verify_audit(database, pipeline())
    assert report.disagreements == (
        'Initiative AI-0001 is in stage "pilot", but the audit log records it moved to "poc" '
        "(stage.advanced, entry 4): it was changed in the database.",
    )


def test_an_owner_or_sponsor_changed_in_the_database_is_named(database: Database) -> None:
    """Who owns and sponsors an initiative decides who may submit it and who may not approve it,
    and the pack names them: the log records both, the sponsor again each time an answer names
    a new one, so an edit in the database must not verify."""
    bundled = load_pipeline()
    ref = usecases.register(
        bundled, database.uow(), name="Sponsored", owner_id=OWNER, answers={}, actor_id=OWNER, now=NOW,
        sponsor_id=SPONSOR,
    ).ref  # fmt: skip
    usecases.answer(
        bundled, database.uow(), ref, "intake", {"business_sponsor": "U0NEWSPON"}, OWNER,
        NOW + timedelta(hours=1),
    )  # fmt: skip
    assert verify_audit(database).ok, str(verify_audit(database))  # the sponsor changed through Shepherd
    with database.engine.begin() as connection:
        connection.execute(update(initiatives).values(owner_id="U0EDITOR", sponsor_id=OWNER))
    assert verify_audit(database).disagreements == (
        f'Initiative {ref} has the owner "U0EDITOR", but the audit log records "{OWNER}" (entry 1): '
        "it was changed in the database.",
        f'Initiative {ref} has the sponsor "{OWNER}", but the audit log records "U0NEWSPON" (entry 3): '
        "it was changed in the database.",
    )


def test_an_initiative_that_never_moved_on_put_in_another_stage_in_the_database_is_named(
    database: Database,
) -> None:
    """No approval moved it, so it is in the stage it was registered in, which its entry records:
    put past the intake gate in the database, the pack and Slack would show it past a gate it
    never passed. A log written before the entry recorded the stage cannot say, and is left alone."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Never moved", owner_id=OWNER, answers=INTAKE, actor_id=OWNER,
        now=NOW,
    ).ref  # fmt: skip
    assert verify_audit(database).ok
    with database.engine.begin() as connection:
        connection.execute(update(initiatives).values(stage="poc"))
    assert verify_audit(database, pipeline()).disagreements == (
        f'Initiative {ref} is in stage "poc", but no approval moved it on since the audit log records it '
        'registered in "idea" (initiative.registered, entry 1): it was changed in the database.',
    )
    with database.engine.begin() as connection:  # as written before the stage was recorded
        payload = connection.execute(select(audit_log.c.payload).where(audit_log.c.seq == 1)).scalar_one()
        detail = json.loads(payload)
        del detail["stage"]
        connection.execute(
            update(audit_log).where(audit_log.c.seq == 1).values(payload=canonical_json(detail))
        )
        rechain(connection)
    assert verify_audit(database, pipeline()).ok


def test_the_roles_an_approver_held_changed_in_the_database_are_named(database: Database) -> None:
    """The roles a decision records its approver held decide what their approval may count for
    (a two-role approver's is moved over to fill the other role): the entry records them too."""
    review_id = rejected(database)
    assert verify_audit(database).ok
    with database.engine.begin() as connection:
        connection.execute(update(decisions).values(roles="risk sponsor"))
    (text,) = verify_audit(database).disagreements
    assert text == (
        f'The decision of {SPONSOR} on review {review_id} (AI-0001) says roles "risk sponsor", but its '
        'audit entry 4 records roles "sponsor": it was changed in the database.'
    )
    with database.engine.begin() as connection:  # as written before the roles were recorded
        row = connection.execute(
            select(audit_log.c.seq, audit_log.c.payload).where(audit_log.c.action == "decision.recorded")
        ).one()
        detail = json.loads(row.payload)
        del detail["roles"]
        connection.execute(
            update(audit_log).where(audit_log.c.seq == row.seq).values(payload=canonical_json(detail))
        )
        rechain(connection)
    assert verify_audit(database).ok


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("retired", "active", '"retired" (initiative.retired, entry 2)'),
        ("retired", "on_hold", '"retired" (initiative.retired, entry 2)'),
        ("held", "active", '"on_hold" (initiative.held, entry 2, not resumed since)'),
        ("resumed", "on_hold", '"active" (neither retired, on hold nor under review)'),
        ("registered", "retired", '"active" (neither retired, on hold nor under review)'),
        (
            "submitted",
            "active",
            '"in_review" (review 1 submitted, review.submitted entry 2, not closed since)',
        ),
    ],
    ids=["unretired", "retired-to-hold", "unheld", "reheld", "retired-by-hand", "review-dropped"],
)
def test_an_initiatives_status_changed_in_the_database_is_named(
    database: Database, path: str, status: str, said: str
) -> None:
    """Its status decides whether it takes answers, submissions and reminders, and the card,
    the App Home and the pack show it: every retirement, hold and resume is on the log (since the
    first release), so one set back to active (or put on hold, or taken off hold) in the
    database must not verify."""
    ref = usecases.register(
        pipeline(), database.uow(), name="Status", owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
    ).ref
    later = NOW + timedelta(days=1)
    if path == "retired":
        usecases.retire(database.uow(), ref, OWNER, "budget cut", later)
    if path in ("held", "resumed"):
        usecases.hold(database.uow(), ref, OWNER, "waiting on legal", later)
    if path == "resumed":
        usecases.resume(database.uow(), ref, OWNER, later + timedelta(hours=1))
    if path == "submitted":
        usecases.submit(pipeline(), database.uow(), ref, SUBMITTER, later)
    assert verify_audit(database, pipeline()).ok, str(verify_audit(database, pipeline()))
    with database.engine.begin() as connection:
        connection.execute(update(initiatives).values(status=status))
    assert verify_audit(database, pipeline()).disagreements == (
        f'Initiative {ref} has the status "{status}", but the audit log records it {said}: '
        "it was changed in the database.",
    )


def test_the_status_of_initiatives_held_resumed_retired_and_reviewed_every_way_verifies(
    database: Database,
) -> None:
    """Every way through holds, resumes, reviews and retirements agrees with the log."""
    later = NOW + timedelta(days=1)

    def registered(name: str) -> str:
        return usecases.register(
            pipeline(), database.uow(), name=name, owner_id=OWNER, answers=INTAKE, actor_id=OWNER, now=NOW
        ).ref

    held = registered("Held, resumed and held again")
    usecases.hold(database.uow(), held, OWNER, "legal", later)
    usecases.resume(database.uow(), held, OWNER, later)
    usecases.hold(database.uow(), held, OWNER, "legal again", later)
    retired_on_hold = registered("Retired on hold")
    usecases.hold(database.uow(), retired_on_hold, OWNER, "legal", later)
    usecases.retire(database.uow(), retired_on_hold, OWNER, "budget cut", later)
    resumed_and_reviewed = registered("Resumed, then approved, then under review again")
    usecases.hold(database.uow(), resumed_and_reviewed, OWNER, "legal", later)
    usecases.resume(database.uow(), resumed_and_reviewed, OWNER, later)
    first = usecases.submit(pipeline(), database.uow(), resumed_and_reviewed, SUBMITTER, later)
    assert first.id is not None
    usecases.decide(pipeline(), database.uow(), first.id, SPONSOR, DecisionKind.REJECT, "No", later)
    usecases.submit(pipeline(), database.uow(), resumed_and_reviewed, SUBMITTER, later)
    retired_under_review = registered("Retired under review")
    usecases.submit(pipeline(), database.uow(), retired_under_review, SUBMITTER, later)
    usecases.retire(database.uow(), retired_under_review, OWNER, "budget cut", later)
    withdrawn = registered("Withdrawn")
    usecases.submit(pipeline(), database.uow(), withdrawn, SUBMITTER, later)
    usecases.withdraw(database.uow(), withdrawn, SUBMITTER, later)
    report = verify_audit(database, pipeline())
    assert report.ok, str(report)


def test_reading_a_timeline_while_the_database_is_unreachable_says_it_is_unavailable() -> None:
    """An initiative's timeline (``/shepherd status``, the review messages' unmet criteria) read
    while the database is down raises ``DatabaseUnavailable``, as every other read does, so that
    the command says the database is down, not a raw driver error (Slack's "/shepherd failed")."""
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing?connect_timeout=2")
    try:
        with database.session(read_only=True) as session, pytest.raises(DatabaseUnavailable):
            SqlAuditLog(session).timeline("AI-0001")
    finally:
        database.dispose()
