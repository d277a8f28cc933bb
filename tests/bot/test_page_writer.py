"""Under `shepherd serve` on PostgreSQL, questionnaire pages are written by a child process of
their own (bot.page_writer): a page saved through Slack is recorded by it, with who and when, and
its refusals reach the modal as they would from the HTTP process. When the child dies, nothing
waits for good: pages it had taken fail (the person saves again), pages sent meanwhile are
written in process, and a new child takes over."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ids, page_writer, worker
from bot.app import build_app
from bot.bootstrap import bootstrap
from bot.emulator import payloads
from bot.emulator.serving import BackgroundASGIServer
from bot.emulator.webapi import FakeSlackWebAPI
from bot.page_writer import PageWriterChild, PageWriterLost, Refusal
from bot.server import asgi_app
from gates import usecases
from gates.errors import GateDecided, InvalidAnswer, UnknownInitiative
from storage import Database
from storage.group_commit import GroupCommit
from tests.bot.scenario import Workspace, only_ref, register_low_risk, running_workspace
from tests.bot.test_worker_process import exits, worker_settings
from tests.conftest import require
from tests.storage.conftest import PG_URL, drop_postgres_schema, fresh_postgres_schema

OWNER = "U0OWNER01"
SPONSOR = "U0SPONSOR"
QUESTION = "poc_duration_weeks"
REPO = Path(__file__).resolve().parents[2]


def test_shepherds_refusals_cross_with_their_sentence_and_details() -> None:
    crossed = [
        pickle.loads(pickle.dumps(Refusal.of(error))).error()
        for error in (
            UnknownInitiative("AI-0042"),
            InvalidAnswer("budget", "must be a number", {"team": "pick one"}),
            GateDecided("AI-0042", "intake", "poc"),
            KeyError("seq"),
        )
    ]
    unknown, invalid, decided, other = crossed
    assert type(unknown) is UnknownInitiative
    assert (str(unknown), unknown.ref) == ("There is no initiative AI-0042.", "AI-0042")
    assert type(invalid) is InvalidAnswer
    assert (invalid.question_id, invalid.problems) == (
        "budget",
        {"budget": "must be a number", "team": "pick one"},
    )
    assert type(decided) is GateDecided and "AI-0042 is now in the poc stage" in str(decided)
    # Anything else arrives as an error naming it, as the log should show it.
    assert type(other) is RuntimeError and str(other) == "KeyError: 'seq'"


def test_an_outcome_that_cannot_cross_is_refused_alone_and_the_rest_of_its_batch_arrives() -> None:
    odd = UnknownInitiative("AI-0007")
    odd.detail = lambda: None  # type: ignore[attr-defined]  # a lambda does not pickle
    frame = page_writer.answers_frame([(1, UnknownInitiative("AI-0001")), (2, odd)])
    [(first, kept), (second, refused)] = pickle.loads(frame[4:])
    assert (first, str(kept.error())) == (1, "There is no initiative AI-0001.")
    assert second == 2 and type(refused.error()) is RuntimeError
    assert "could not be sent back" in str(refused.error())


@pytest.fixture
def postgres_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd serving HTTP on a PostgreSQL schema of its own; one registered initiative."""
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = migrated_postgres_schema()
    api = FakeSlackWebAPI()
    for user, name in {OWNER: "olivia", SPONSOR: "sam"}.items():
        api.state.add_user(user, name)
    try:
        with api, running_workspace(api, tmp_path, database_url=url) as ws:
            usecases.set_role_holders(
                ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], "U0ADMIN01", ws.clock()
            )
            register_low_risk(ws, OWNER, SPONSOR)
            ws.deliver()
            yield ws
    finally:
        drop_postgres_schema(schema)


def writing_in_a_child(ws: Workspace, **options: Any) -> tuple[PageWriterChild, GroupCommit[Any, Any]]:
    """The workspace's pages written by a page writer child, as `shepherd serve` sets it up; its
    in-process writer is returned too, to tell who wrote a page."""
    fallback = ws.services.pages
    assert isinstance(fallback, GroupCommit)
    writer = PageWriterChild(ws.services.settings, fallback=fallback, **options)
    ws.services.write_pages_with(writer)
    writer.start()
    wait_for(
        lambda: writer.pid is not None, 60, "the page writer never became ready"
    )  # it imports the stack first
    return writer, fallback


def wait_for(condition: Callable[[], bool], seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.05)


def the_page(ws: Workspace) -> dict[str, Any]:
    """The questionnaire page that asks QUESTION, reached by saving the pages before it."""
    [card] = ws.messages_in(ws.registry)
    view = ws.opened_view(lambda: ws.click(OWNER, card, ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    while ids.question_block_id(QUESTION) not in str(view["blocks"]):
        view = ws.submit_view(OWNER, view, {}).json()["view"]
    return view


def recorded(ws: Workspace) -> Any:
    with ws.services.read_uow() as uow:
        return uow.answers.current(only_ref(ws)).get(QUESTION)


def a_page(ws: Workspace, weeks: int, ref: str | None = None) -> usecases.PageOfAnswers:
    pipeline = ws.services.pipeline
    gate = next(g for g in pipeline.model.gates if any(q.id == QUESTION for q in g.questions))
    return usecases.check_page(pipeline, ref or only_ref(ws), gate.id, {QUESTION: weeks}, OWNER, ws.clock())


def test_a_page_saved_through_slack_is_recorded_by_the_child_and_a_refusal_reaches_the_modal(
    postgres_workspace: Workspace,
) -> None:
    ws = postgres_workspace
    view = the_page(ws)
    writer, in_process = writing_in_a_child(ws)
    written_here = in_process.written
    try:
        submitted_at = ws.clock()
        response = ws.client.send(
            payloads.view_submission(view, user_id=OWNER, values={ids.question_block_id(QUESTION): "10"})
        )
        assert response.status == 200 and response.text in ("", "{}"), response.text
        answer = recorded(ws)
        assert (answer.value, answer.author_id, answer.answered_at) == (10, OWNER, submitted_at)
        # An initiative the child does not find: refused with the HTTP process's own words.
        with pytest.raises(UnknownInitiative, match=r"There is no initiative AI-9999\."):
            writer.submit(a_page(ws, 11, ref="AI-9999")).result(30)
        assert in_process.written == written_here, "the page was written in the HTTP process"
    finally:
        writer.close()


def test_when_the_child_dies_pages_are_written_in_process_until_a_new_child_takes_over(
    postgres_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = postgres_workspace
    monkeypatch.setattr(worker, "_FIRST_PAUSE", 2.0)
    writer, in_process = writing_in_a_child(ws)
    try:
        first = writer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: writer.pid is None, 10, "the child's death was not noticed")
        meanwhile = writer.submit(a_page(ws, 12)).result(30)
        assert meanwhile.answers[QUESTION] == 12 and in_process.written == 1  # written here
        wait_for(lambda: writer.pid not in (None, first), 60, "no new page writer started")
        again = writer.submit(a_page(ws, 13)).result(30)
        assert again.answers[QUESTION] == 13 and in_process.written == 1  # by the new child
        assert recorded(ws).value == 13
    finally:
        writer.close()


def test_a_page_the_child_took_and_never_answered_fails_and_the_next_one_is_saved(
    postgres_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that takes a page and dies before answering (as under the OOM killer): the page's
    save fails, so Slack shows the person it did not go through, rather than waiting forever."""
    ws = postgres_workspace
    monkeypatch.setattr(worker, "_FIRST_PAUSE", 60.0)  # stays down for the rest of the test
    dies_with_a_page = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from bot.page_writer import READY, read_frame, write_frame
        read_frame(sys.stdin.buffer)
        write_frame(sys.stdout.buffer, READY)
        read_frame(sys.stdin.buffer)
        sys.exit(3)
        """
    )
    writer, in_process = writing_in_a_child(ws, command=[sys.executable, "-c", dies_with_a_page])
    try:
        lost = writer.submit(a_page(ws, 14))
        with pytest.raises(PageWriterLost):
            lost.result(30)
        assert recorded(ws).value != 14
        saved = writer.submit(a_page(ws, 15)).result(30)
        assert saved.answers[QUESTION] == 15 and in_process.written == 1
    finally:
        started = time.monotonic()
        writer.close()
    assert time.monotonic() - started < 5, "closing waited out the restart pause"


def migrated_postgres_schema() -> tuple[str, str]:
    """A fresh PostgreSQL schema with Shepherd's tables: (its name, its URL)."""
    schema, url = fresh_postgres_schema()
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()
    return schema, url


def test_serve_on_postgresql_writes_pages_in_a_child_it_stops_on_shutdown(tmp_path: Path) -> None:
    require(bool(PG_URL), "PostgreSQL tests need SHEPHERD_TEST_DATABASE_URL (e.g. postgresql+psycopg://...)")
    schema, url = migrated_postgres_schema()
    try:
        with FakeSlackWebAPI() as api:
            registry = api.state.add_channel("ai-initiatives")
            settings = worker_settings(api, registry.id, tmp_path).model_copy(update={"database_url": url})
            services = bootstrap(settings)
            with BackgroundASGIServer(
                asgi_app(build_app(settings, services), services, worker="process"), lifespan="on"
            ):
                pages = services.pages
                assert isinstance(pages, PageWriterChild)
                wait_for(lambda: pages.pid is not None, 60, "the page writer never became ready")
                pid = pages.pid
            assert pid is not None and exits(pid, timeout=15), (
                "the page writer still runs after the server stopped"
            )
            services.database.dispose()
    finally:
        drop_postgres_schema(schema)
