"""Exactly once under concurrency, enforced by the database: real threads and real processes,
through the real use cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gates import usecases
from gates.errors import ConcurrentUpdate, InvalidTransition
from gates.lifecycle import DecisionKind, Review, ReviewStatus, Status, evidence_hash
from gates.ports import AnswerVersion
from storage import Database, verify_audit
from storage.repositories import SqlAnswerRepository
from storage.tables import audit_log, decisions, outbox, reviews
from storage.uow import SqlUnitOfWork
from tests.gates.conftest import DPO, RISK_1, RISK_2, SPONSOR
from tests.storage import scenarios
from tests.storage.scenarios import (
    INTAKE_WITH_PERSONAL_DATA,
    LATER,
    OWNER,
    append_audit_in_own_database,
    decide_in_own_database,
    in_pilot_review,
    pipeline,
    register,
    register_in_own_database,
    run_processes,
    run_threads,
    submit,
    submit_in_own_database,
)


def count(database: Database, statement: object) -> int:
    with database.session(read_only=True) as session:
        return int(session.execute(statement).scalar_one())  # type: ignore[call-overload]


def advanced_messages(database: Database) -> int:
    return count(database, select(func.count()).select_from(outbox).where(outbox.c.kind == "stage.advanced"))


def assert_advanced_once(database: Database, ref: str, review_id: int, stage: str) -> None:
    with database.uow(read_only=True) as uow:
        initiative = uow.initiatives.get(ref)
        review = uow.reviews.get(review_id)
        timeline = [entry.action for entry in uow.audit.timeline(ref)]
    assert (initiative.stage, initiative.status) == (stage, Status.ACTIVE)
    assert review.status is ReviewStatus.APPROVED and not review.remaining()
    assert timeline.count("stage.advanced") == (2 if stage == "pilot" else 1)
    assert verify_audit(database).ok


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_the_same_click_delivered_three_times_records_one_decision(
    database: Database, runner: object
) -> None:
    ref, review_id = in_pilot_review(database)
    url = database.url.render_as_string(hide_password=False)
    results = runner(decide_in_own_database, [(url, review_id, RISK_1)] * 3)  # type: ignore[operator]
    assert sorted(results) == ["duplicate", "duplicate", "recorded"], results
    assert (
        count(database, select(func.count()).select_from(decisions).where(decisions.c.review_id == review_id))
        == 1
    )
    with database.uow(read_only=True) as uow:
        assert [e.action for e in uow.audit.timeline(ref)].count(
            "decision.recorded"
        ) == 2  # intake + this one


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_the_last_approvals_given_at_the_same_moment_advance_the_stage_once(
    database: Database, runner: object
) -> None:
    ref, review_id = in_pilot_review(database)
    url = database.url.render_as_string(hide_password=False)
    # 2 x risk + sponsor needed: all three approve at once, each retrying if it loses a race.
    results = runner(  # type: ignore[operator]
        decide_in_own_database,
        [(url, review_id, RISK_1), (url, review_id, RISK_2), (url, review_id, SPONSOR)],
    )
    assert sorted(results) == ["advanced", "recorded", "recorded"], results
    assert_advanced_once(database, ref, review_id, "pilot")
    assert advanced_messages(database) == 2  # intake, then pilot


def test_two_approvers_completing_the_intake_together_advance_it_once(database: Database) -> None:
    ref = register(database, INTAKE_WITH_PERSONAL_DATA)
    review_id = submit(database, ref)
    url = database.url.render_as_string(hide_password=False)
    for _ in range(3):
        results = run_threads(decide_in_own_database, [(url, review_id, SPONSOR), (url, review_id, DPO)])
        assert sorted(results) == ["advanced", "recorded"], results
        assert_advanced_once(database, ref, review_id, "poc")
        ref = register(database, INTAKE_WITH_PERSONAL_DATA)
        review_id = submit(database, ref)


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_two_simultaneous_submissions_open_one_review(database: Database, runner: object) -> None:
    ref = register(database)
    url = database.url.render_as_string(hide_password=False)
    results = runner(submit_in_own_database, [(url, ref)] * 3)  # type: ignore[operator]
    opened = [r for r in results if isinstance(r, str) and r.startswith("review")]
    assert len(opened) == 1, results
    refused = [r for r in results if r not in opened]
    assert all("already" in str(r) or "under review" in str(r) or "in review" in str(r) for r in refused), (
        results
    )
    assert count(database, select(func.count()).select_from(reviews)) == 1
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).status is Status.IN_REVIEW


@pytest.mark.postgres
def test_a_deterministic_lost_race_on_the_last_approval_is_a_concurrent_update(
    postgres_database: Database,
) -> None:
    # PostgreSQL only: SQLite takes its write lock at the first read, so two writers never interleave.
    database = postgres_database
    _ref, review_id = in_pilot_review(database)
    with database.uow() as uow:
        loaded = uow.reviews.get(review_id)
        loaded.decide(RISK_1, {"risk"}, DecisionKind.APPROVE, None, LATER)
        uow.reviews.save(loaded)
        uow.commit()
    first, second = database.uow(), database.uow()
    with first, second:
        a = first.reviews.get(review_id)
        b = second.reviews.get(review_id)
        a.decide(RISK_2, {"risk"}, DecisionKind.APPROVE, None, LATER)
        b.decide(SPONSOR, {"sponsor"}, DecisionKind.APPROVE, None, LATER)
        assert a.is_open and b.is_open  # each, alone, leaves one approval outstanding
        first.reviews.save(a)
        first.commit()
        with pytest.raises(ConcurrentUpdate):
            second.reviews.save(b)
    with database.uow(read_only=True) as uow:
        assert {d.approver_id for d in uow.reviews.get(review_id).decisions} == {RISK_1, RISK_2}


class PauseBeforeCommit:
    """A commit hook that holds the transaction, all its writes done, until told to go on."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()

    def before_commit(self, session: object) -> None:
        self.reached.set()
        assert self.go.wait(30)

    def after_commit(self) -> None:
        pass


def wait_until_waiting_for_a_lock(database: Database, thread: threading.Thread) -> None:
    """Return once some transaction in this database waits for a lock, or ``thread`` has ended."""
    deadline = time.monotonic() + 30
    waiting = (
        select(func.count())
        .select_from(text("pg_stat_activity"))
        .where(text("datname = current_database() AND wait_event_type = 'Lock'"))
    )
    while time.monotonic() < deadline and thread.is_alive() and not count(database, waiting):
        time.sleep(0.01)


@pytest.mark.postgres
def test_two_role_replacements_at_once_leave_the_later_ones_holders(postgres_database: Database) -> None:
    """Two admins set the risk role at the same moment. The second replacement waits for the
    first to commit and replaces its holders: the role is held by exactly the people the audit
    log's last "roles.set" names, never by both sets."""
    # PostgreSQL only: SQLite lets one writer in at a time, so two replacements never interleave.
    database = postgres_database
    pause = PauseBeforeCommit()

    def set_risk(users: list[str], admin: str, uow: SqlUnitOfWork) -> None:
        usecases.set_role_holders(pipeline(), uow, "risk", users, admin, LATER)

    first = threading.Thread(target=set_risk, args=(["UALICE"], "UADMIN1", database.uow(hook=pause)))
    first.start()
    assert pause.reached.wait(30)  # Alice's replacement is written, not yet committed
    second = threading.Thread(target=set_risk, args=(["UBOB"], "UADMIN2", database.uow()))
    second.start()
    try:
        wait_until_waiting_for_a_lock(database, second)  # Bob's waits for Alice's to commit
    finally:
        pause.go.set()
        first.join(30)
        second.join(30)
    assert not first.is_alive() and not second.is_alive()
    with database.uow(read_only=True) as uow:
        holders = uow.roles.holders().get("risk", [])
        last_set = [entry.detail["users"] for entry in uow.audit.timeline("role:risk")][-1]
    assert (holders, last_set) == (["UBOB"], ["UBOB"])


@pytest.mark.postgres
def test_a_role_replacement_waiting_on_another_names_the_holders_it_removed(
    postgres_database: Database,
) -> None:
    """Two admins set the risk role at the same moment while a review waits on it: Alice's
    replacement commits first, then Bob's replaces Alice. The notice Bob's sends
    (``roles.changed``) names Alice among those removed, so her App Home, published with the
    review's buttons when she was asked, is published again without them."""
    # PostgreSQL only: SQLite lets one writer in at a time, so two replacements never interleave.
    database = postgres_database
    in_pilot_review(database)
    pause = PauseBeforeCommit()

    def set_risk(users: list[str], admin: str, uow: SqlUnitOfWork) -> None:
        usecases.set_role_holders(pipeline(), uow, "risk", users, admin, LATER)

    first = threading.Thread(target=set_risk, args=(["UALICE"], "UADMIN1", database.uow(hook=pause)))
    first.start()
    assert pause.reached.wait(30)  # Alice's replacement is written, not yet committed
    second = threading.Thread(target=set_risk, args=(["UBOB"], "UADMIN2", database.uow()))
    second.start()
    try:
        wait_until_waiting_for_a_lock(database, second)  # Bob's waits for Alice's to commit
    finally:
        pause.go.set()
        first.join(30)
        second.join(30)
    assert not first.is_alive() and not second.is_alive()
    with database.session(read_only=True) as session:
        notices = session.execute(
            select(outbox.c.payload).where(outbox.c.kind == "roles.changed").order_by(outbox.c.id)
        ).scalars()
        removed = [notice["removed"] for notice in notices]
    assert removed == [[], ["UALICE"]]


@pytest.mark.parametrize("runner", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_audit_appends_keep_one_unbroken_chain(database: Database, runner: object) -> None:
    url = database.url.render_as_string(hide_password=False)
    results = runner(append_audit_in_own_database, [(url, worker, 15) for worker in range(4)])  # type: ignore[operator]
    assert results == [15] * 4
    report = verify_audit(database)
    assert report.ok and report.checked == 60, report
    with database.session(read_only=True) as session:
        seqs = list(session.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars())
    assert seqs == list(range(1, 61))


def test_concurrent_registrations_get_distinct_consecutive_refs(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    results = run_threads(register_in_own_database, [(url, 5)] * 4)
    refs = [ref for batch in results for ref in batch]
    assert sorted(refs) == [f"AI-{n:04d}" for n in range(1, 21)]
    assert Counter(refs).most_common(1)[0][1] == 1


def test_concurrent_answers_to_one_question_get_consecutive_versions(database: Database) -> None:
    from gates import usecases

    ref = register(database)

    def answer(n: int) -> None:
        usecases.answer(
            scenarios.pipeline(), database.uow(), ref, "intake", {"problem": f"statement {n}"}, f"U{n}", LATER
        )

    assert run_threads(answer, [(n,) for n in range(6)]) == [None] * 6
    with database.uow(read_only=True) as uow:
        versions = [a.version for a in uow.answers.history(ref) if a.question_id == "problem"]
    assert sorted(versions) == list(range(1, 8))  # the intake answer, then six more


def test_two_page_writers_meeting_the_same_initiatives_in_opposite_orders_both_commit(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two HTTP processes each save a batch of pages of the same two initiatives, listed in
    opposite orders. Each writer pauses after its first answer version until the other has written
    one too (or half a second has passed): if each then held one initiative's new version and
    wanted the other's, PostgreSQL would abort one batch as a deadlock after a second."""
    first, second = register(database, name="Invoice matching"), register(database, name="Churn")
    met = threading.Barrier(2)
    append_many = SqlAnswerRepository.append_many

    def first_then_meet(self: SqlAnswerRepository, answers: Sequence[AnswerVersion]) -> None:
        append_many(self, answers[:1])
        with contextlib.suppress(threading.BrokenBarrierError):
            met.wait(timeout=0.5)
        append_many(self, answers[1:])

    monkeypatch.setattr(SqlAnswerRepository, "append_many", first_then_meet)

    def save(refs: list[str], budget: str) -> list[object]:
        pages = [
            usecases.check_page(pipeline(), ref, "intake", {"budget": budget}, OWNER, LATER, None)
            for ref in refs
        ]
        return usecases.answer_many(database.uow(), pages)

    results = run_threads(save, [([first, second], "100"), ([second, first], "200")])

    assert all(isinstance(outcome, list) for outcome in results), results
    assert all(
        not isinstance(page, Exception) and page.changed == ("budget",)
        for outcome in results
        for page in outcome
    ), results
    with database.uow(read_only=True) as uow:
        for ref in (first, second):
            assert [v.value for v in uow.answers.history(ref) if v.question_id == "budget"] in (
                [100, 200],
                [200, 100],
            )


# -- a questionnaire page against a submission or a retirement, one held at its commit ------------
#
# PostgreSQL only: SQLite takes its write lock at BEGIN, so two writers never interleave. Each
# test holds one transaction at its commit, everything read and written, and lets the other run
# until it returns or waits for a row the held one has locked: the interleaving that READ
# COMMITTED allows, made certain instead of left to chance.


class HeldAtCommit:
    """A commit hook that holds the transaction at commit until ``release`` is set; ``pid`` is
    its PostgreSQL backend, for ``blocked_by``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.pid = 0

    def before_commit(self, session: Session) -> None:
        self.pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        self.reached.set()
        assert self.release.wait(30), "never released"

    def after_commit(self) -> None:
        pass


def blocked_by(database: Database, pid: int) -> bool:
    """Whether some transaction waits for a lock the backend ``pid`` holds."""
    with database.session(read_only=True) as session:
        waiting = session.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        ).scalar_one()
    return bool(waiting)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def while_held_at_commit(
    database: Database, held: Callable[[SqlUnitOfWork], object], other: Callable[[], object]
) -> tuple[object, object]:
    """``held`` runs until its commit; then ``other`` runs until it returns or waits for a lock
    ``held`` took; then ``held`` commits. Returns what each returned or raised."""
    hook = HeldAtCommit()
    first, first_outcome = in_thread(lambda: held(database.uow(hook=hook)))
    try:
        assert hook.reached.wait(30), first_outcome
        second, second_outcome = in_thread(other)
        deadline = time.monotonic() + 30
        while second.is_alive() and not blocked_by(database, hook.pid):
            assert time.monotonic() < deadline, "the other transaction neither finished nor waited"
            time.sleep(0.01)
    finally:
        hook.release.set()
        first.join(30)
    second.join(30)
    return first_outcome[0], second_outcome[0]


PERSONAL_DATA = {"personal_data": "yes", "dpia": "https://wiki.example.com/dpia"}


def save_page(writer: str, uow: SqlUnitOfWork, ref: str) -> object:
    """A teammate's intake page, saved as ``answer`` or as the page writer does (``answer_many``)."""
    if writer == "answer":
        return usecases.answer(pipeline(), uow, ref, "intake", PERSONAL_DATA, "UTEAMMATE", LATER)
    page = usecases.check_page(pipeline(), ref, "intake", PERSONAL_DATA, "UTEAMMATE", LATER)
    [outcome] = usecases.answer_many(uow, [page])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@pytest.mark.postgres
@pytest.mark.parametrize("held", ["page", "submission"])
@pytest.mark.parametrize("writer", ["answer", "answer_many"])
def test_a_page_saved_as_its_gate_is_submitted_is_in_the_review_or_refused(
    postgres_database: Database, writer: str, held: str
) -> None:
    """A teammate saves "personal data: yes" as the owner submits the intake. Committed in
    either order, the review covers exactly the evidence it was submitted on: the page is in it
    (and the DPO must approve), or the page is refused because the gate is under review. Before,
    the review opened on "no personal data", sponsor only, and the "yes" landed in it after."""
    database = postgres_database
    ref = register(database)  # no personal data: the intake needs the sponsor only
    submitting = lambda uow: usecases.submit(pipeline(), uow, ref, OWNER, LATER + timedelta(seconds=1))  # noqa: E731
    if held == "page":
        page, review = while_held_at_commit(
            database, lambda uow: save_page(writer, uow, ref), lambda: submitting(database.uow())
        )
    else:
        review, page = while_held_at_commit(
            database, submitting, lambda: save_page(writer, database.uow(), ref)
        )
    assert isinstance(review, Review), review

    evidence = usecases.evidence_as_submitted(database.uow(read_only=True), review.id)
    values = {qid: version.value for qid, version in evidence.answers.items()}
    links = [(link.url, link.title) for link in evidence.links]
    assert evidence_hash(values, links) == review.evidence_hash, "the review's evidence changed under it"
    with database.uow(read_only=True) as uow:
        now = {qid: version.value for qid, version in uow.answers.current(ref).items()}
    assert now == values
    if held == "page":  # committed first: the submission, tried again, saw it
        assert not isinstance(page, Exception), page
        assert sorted(need.role for need in review.requirements) == ["dpo", "sponsor"]
    else:  # committed second: it waited for the submission, then found the gate frozen
        assert isinstance(page, InvalidTransition) and "frozen" in str(page), page
        assert now["personal_data"] == "no"


@pytest.mark.postgres
@pytest.mark.parametrize("held", ["page", "retirement"])
def test_no_answer_changes_after_the_initiative_is_retired(postgres_database: Database, held: str) -> None:
    """A page saved as the owner retires the initiative: recorded before the retirement, or
    refused. Before, a page that had read the initiative as active committed after the
    retirement, changing a retired initiative's answers."""
    database = postgres_database
    ref = register(database)
    saving = lambda uow: usecases.answer(  # noqa: E731
        pipeline(), uow, ref, "intake", {"problem": "Invoices are matched by two people"}, "UTEAMMATE", LATER
    )
    retiring = lambda uow: usecases.retire(uow, ref, OWNER, "No longer needed", LATER)  # noqa: E731
    if held == "page":
        page, retired = while_held_at_commit(database, saving, lambda: retiring(database.uow()))
    else:
        retired, page = while_held_at_commit(database, retiring, lambda: saving(database.uow()))

    assert not isinstance(retired, Exception), retired
    with database.uow(read_only=True) as uow:
        assert uow.initiatives.get(ref).status is Status.RETIRED
        actions = [entry.action for entry in uow.audit.timeline(ref)]
    after = actions[actions.index("initiative.retired") :]
    assert "answers.recorded" not in after, actions
    if held == "page":
        assert not isinstance(page, Exception) and "answers.recorded" in actions, page
    else:
        assert isinstance(page, InvalidTransition) and "retired" in str(page), page
