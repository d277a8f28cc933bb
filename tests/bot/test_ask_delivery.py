"""How an answer reaches the person while Slack or the LLM is slow: the streaming updates, and
questions answered alongside everything else.

Through the real protocols: questions and clicks go to the running app as signed requests, its
WebClient talks to the fake Slack, and its LLM is the local OpenAI-compatible stub.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import ids
from bot.emulator import payloads
from bot.emulator.client import SlackClient
from bot.emulator.webapi import FakeSlackWebAPI
from tests.bot.blockkit_checks import assert_valid_message
from tests.bot.scenario import SIGNING_SECRET, Workspace, has_button, running_workspace
from tests.bot.test_lifecycle import card, register
from tests.bot.test_serve_processes import free_port, serve_env
from tests.fakes.openai_stub import OpenAIStub

OWNER = "U0OWNER01"
# Long enough for one streaming update (every 1.5 s) and the final one, a stream of ~4 s.
SLOW_REPLY = "Do a DPIA before the pilot starts, and ask the DPO to sign it off [1]. " * 2


@pytest.fixture
def slow_llm() -> Iterator[OpenAIStub]:
    """An LLM that writes its cited answer over about four seconds."""
    with OpenAIStub(reply=SLOW_REPLY, stream_chunk_size=5, chunk_seconds=0.15) as stub:
        yield stub


@pytest.fixture
def impatient(tmp_path: Path, slow_llm: OpenAIStub) -> Iterator[Workspace]:
    """Shepherd with the slow LLM, waiting at most 1 s for each Slack answer."""
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with (
        api,
        running_workspace(
            api,
            tmp_path / "data",
            slack_timeout=1,
            openai_base_url=slow_llm.base_url,
            openai_api_key="local",
            llm_model="stub",
        ) as ws,
    ):
        yield ws


def ask_by_dm(ws: Workspace, question: str, user: str = OWNER) -> str:
    """``user`` asks Shepherd ``question`` in their DM; returns the DM."""
    dm = ws.dm_with(user)
    event = payloads.message_event(question, user_id=user, channel_id=dm)
    assert ws.client.send_event(payloads.event_callback(event)).status == 200
    return dm


def answers_in(ws: Workspace, channel: str) -> list[dict[str, Any]]:
    return [m for m in ws.messages_in(channel) if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)]


def test_a_streaming_update_that_times_out_does_not_lose_the_answer(impatient: Workspace) -> None:
    ws = impatient
    assert ws.services.knowledge is not None
    # The first chat.update is the first streaming update: Slack takes 1.5 s over it, past the
    # client's 1 s read timeout (a TimeoutError, which slack_sdk does not retry). It still lands,
    # late, before the stream ends: the final update, after it, decides what the person sees.
    ws.api.faults.stall("chat.update", 1.5)
    dm = ask_by_dm(ws, "what is a DPIA?")
    ws.wait(lambda: [m for m in ws.messages_in(dm) if "sign it off" in m.get("text", "")], timeout=15)
    [reply] = ws.messages_in(dm)
    assert reply["text"].startswith("Do a DPIA") and not reply["text"].endswith("…")
    assert has_button(reply, ids.ACTION_FEEDBACK_HELPFUL)
    assert_valid_message(reply)
    assert "could not finish this answer" not in str(reply)
    ws.deliver()
    assert not any("something went wrong" in m.get("text", "") for m in ws.messages_in(dm))


@pytest.fixture
def quick_llm() -> Iterator[OpenAIStub]:
    """An LLM that answers at once, in one piece: no streaming update, only the final one."""
    with OpenAIStub(reply="Do a DPIA before the pilot starts [1].") as stub:
        yield stub


@pytest.fixture
def impatient_quick(tmp_path: Path, quick_llm: OpenAIStub) -> Iterator[Workspace]:
    """Shepherd with the quick LLM, waiting at most 1 s for each Slack answer."""
    api, running = workspace_with(tmp_path, quick_llm, slack_timeout=1)
    with api, running as ws:
        yield ws


def test_a_slow_final_update_is_sent_again_not_replaced_by_an_apology(impatient_quick: Workspace) -> None:
    ws = impatient_quick
    assert ws.services.knowledge is not None
    # Slack is slow for a moment: the final chat.update and the next one take 1.5 s, past the
    # client's 1 s read timeout. Slack applies both, in the order they arrived.
    ws.api.faults.stall("chat.update", 1.5, times=2)
    dm = ask_by_dm(ws, "what is a DPIA?")
    ws.wait(lambda: len(ws.api.calls("chat.update")) >= 2, timeout=15)
    time.sleep(3)  # the stalled updates land, and the one after them
    [reply] = ws.messages_in(dm)
    assert reply["text"] == "Do a DPIA before the pilot starts [1].", reply["text"]
    assert has_button(reply, ids.ACTION_FEEDBACK_HELPFUL)
    ws.deliver()
    assert not any("something went wrong" in m.get("text", "") for m in ws.messages_in(dm))


def test_a_late_streaming_update_does_not_leave_a_cut_off_answer(
    tmp_path: Path, slow_llm: OpenAIStub
) -> None:
    api, running = workspace_with(tmp_path, slow_llm, slack_timeout=3)
    with api, running as ws:
        assert ws.services.knowledge is not None
        # The first streaming update (~1.5 s in) is slow at Slack: the client gives up after 3 s,
        # and Slack applies it 4.5 s late, after the final update (~4.5 s in).
        ws.api.faults.stall("chat.update", 4.5)
        dm = ask_by_dm(ws, "what is a DPIA?")
        ws.wait(lambda: len(ws.api.calls("chat.update")) >= 2, timeout=15)
        time.sleep(5)  # the stalled update lands, then (fixed) the final one again
        [reply] = ws.messages_in(dm)
        assert reply["text"] == SLOW_REPLY.strip(), (
            f"the person is left with a cut-off answer: {reply['text']!r}"
        )


def test_a_rate_limited_streaming_update_does_not_hold_the_answer_back(impatient: Workspace) -> None:
    ws = impatient
    assert ws.services.knowledge is not None
    # Slack rate-limits the first streaming update (chat.update is Tier 3, and several answers
    # stream at once): 429 with Retry-After 8. A streaming update is best effort only.
    ws.api.faults.rate_limit("chat.update", retry_after=8)
    asked = time.monotonic()
    dm = ask_by_dm(ws, "what is a DPIA?")
    ws.wait(lambda: [m for m in ws.messages_in(dm) if m.get("text") == SLOW_REPLY.strip()], timeout=30)
    # The LLM is done after about 4.5 s: the person does not wait 8 s more for a progress update.
    assert time.monotonic() - asked < 8


def test_a_streaming_update_does_not_say_there_is_no_ai_summary(impatient: Workspace) -> None:
    ws = impatient
    assert ws.services.knowledge is not None
    dm = ask_by_dm(ws, "what is a DPIA?")
    ws.wait(lambda: [m for m in ws.messages_in(dm) if m.get("text") == SLOW_REPLY.strip()], timeout=20)
    interim = ws.api.calls("chat.update")[0].params
    assert interim["text"].endswith("…")
    assert "no AI summary available" not in str(interim["blocks"]), "the AI summary is being written"


@pytest.fixture
def hanging_llm() -> Iterator[OpenAIStub]:
    """An LLM that takes six seconds over every question until told otherwise."""
    with OpenAIStub(reply="Do a DPIA [1].", mode="hang", hang_seconds=6) as stub:
        yield stub


def workspace_with(tmp_path: Path, llm: OpenAIStub, **overrides: Any) -> Any:
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    settings = {"openai_base_url": llm.base_url, "openai_api_key": "local", "llm_model": "stub"}
    return api, running_workspace(api, tmp_path / "data", **settings, **overrides)


def test_a_form_opens_at_once_while_five_slow_answers_are_being_made(
    tmp_path: Path, hanging_llm: OpenAIStub
) -> None:
    api, running = workspace_with(tmp_path, hanging_llm)
    with api, running as ws:
        ref = register(ws)
        assert ws.services.knowledge is not None  # opened before the questions race to open it
        dm = ws.dm_with(OWNER)
        asked = time.monotonic()
        for n in range(5):  # five people, say, asking while the LLM is slow
            ask_by_dm(ws, f"what is a DPIA? ({n})")
        # Every question shows its placeholder at once, answered or waiting for a thread.
        ws.wait(lambda: len([m for m in ws.messages_in(dm) if "Looking into it" in m["text"]]) == 5)
        assert time.monotonic() - asked < 3
        ws.wait(lambda: len(hanging_llm.chat_requests) >= 4)
        # The owner clicks Answer questions on the card: the questionnaire opens, its trigger fresh.
        view = ws.opened_view(lambda: ws.click(OWNER, card(ws), ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
        assert view["callback_id"] == ids.VIEW_QUESTIONNAIRE and ref in str(view)
        assert len(answers_in(ws, dm)) == 0  # the answers are still being made
        hanging_llm.mode = "ok"
        replies = ws.wait(lambda: len(answers_in(ws, dm)) == 5 and answers_in(ws, dm), timeout=20)
        for reply in replies:
            assert_valid_message(reply)
        assert not any("Looking into it" in m["text"] for m in ws.messages_in(dm))


def test_a_question_past_what_can_wait_is_told_shepherd_is_busy(
    tmp_path: Path, hanging_llm: OpenAIStub
) -> None:
    # Long enough that the first is still being answered when the fourth arrives, on a busy machine.
    hanging_llm.hang_seconds = 8
    # One answering thread, and two questions may wait for it: the fourth is turned away.
    api, running = workspace_with(tmp_path, hanging_llm, ask_workers=1)
    with api, running as ws:
        assert ws.services.knowledge is not None  # opened before the questions race to open it
        dm = ws.dm_with(OWNER)
        for n in range(4):
            ask_by_dm(ws, f"what is a DPIA? ({n})")
        [busy] = ws.wait(lambda: [m for m in ws.messages_in(dm) if "too many questions" in m["text"]])
        assert_valid_message(busy)
        assert not has_button(busy, ids.ACTION_FEEDBACK_HELPFUL)
        hanging_llm.mode = "ok"
        replies = ws.wait(lambda: len(answers_in(ws, dm)) == 3 and answers_in(ws, dm), timeout=20)
        assert len(ws.messages_in(dm)) == 4
        for reply in replies:
            assert_valid_message(reply)

        # Turned away or answered, the assistant status line no longer says Shepherd is checking.
        # Cleared just after each answer is posted, so the last one may still be on its way.
        def cleared() -> int:
            return [c.params.get("status") for c in ws.api.calls("assistant.threads.setStatus")].count("")

        ws.wait(lambda: cleared() >= 4)
        assert cleared() == 4


def test_a_question_being_answered_when_shepherd_stops_is_told_to_ask_again(tmp_path: Path) -> None:
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    # The LLM is still thinking when `shepherd serve` is told to stop (a deploy, say).
    with api, OpenAIStub(reply="Do a DPIA [1].", mode="hang", hang_seconds=60) as llm:
        registry = api.state.add_channel("ai-initiatives", members=[OWNER])
        port = free_port()
        env = serve_env(
            tmp_path,
            api,
            registry.id,
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY="local",
            SHEPHERD_LLM_MODEL="stub",
        )
        log = tmp_path / "serve.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: server.poll() is not None or healthy(base), 120)
            assert healthy(base), log.read_text()
            dm = api.state.open_dm(OWNER)[0].id
            slack = SlackClient(base + "/slack/events", SIGNING_SECRET)
            event = payloads.message_event("what is a DPIA?", user_id=OWNER, channel_id=dm)
            assert slack.send_event(payloads.event_callback(event)).status == 200
            wait_until(lambda: bool(llm.chat_requests), 60)
            assert llm.chat_requests, log.read_text()
        finally:
            server.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            # Told within the answers' share of the stop, well before a supervisor's SIGKILL.
            wait_until(lambda: "restarted" in str(api.state.channel_messages(dm)), 20)
            told_after = time.monotonic() - stopping
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            stopped_after = time.monotonic() - stopping
        [reply] = [m.get("text", "") for m in api.state.channel_messages(dm)]
        assert reply == "Shepherd restarted before it could answer: please ask again.", log.read_text()
        assert told_after < 12
        # The answer still stuck on the LLM does not hold the process past a supervisor's 30 s.
        assert stopped_after < 25, log.read_text()


def healthy(base: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    return False


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)
