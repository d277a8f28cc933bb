"""Questions answered by an LLM through LangChain, against a local OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ask, ids
from bot.emulator.webapi import FakeSlackWebAPI
from tests.bot.scenario import Workspace, has_button, running_workspace
from tests.bot.test_lifecycle import OWNER, card, register
from tests.fakes.openai_stub import OpenAIStub


@pytest.fixture
def llm() -> Iterator[OpenAIStub]:
    """An OpenAI-compatible stub that answers with a cited sentence."""
    with OpenAIStub(reply="Name a sponsor and define success metrics before the PoC starts [1].") as stub:
        yield stub


@pytest.fixture
def workspace(tmp_path: Path, llm: OpenAIStub) -> Iterator[Workspace]:
    """Shepherd with an LLM configured."""
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia")
    with (
        api,
        running_workspace(
            api,
            tmp_path / "data",
            openai_base_url=llm.base_url,
            openai_api_key="local",
            llm_model="stub-model",
        ) as ws,
    ):
        yield ws


def ask_in_the_thread(ws: Workspace, question: str) -> str:
    """Register an initiative and mention Shepherd with ``question`` in its card's thread."""
    register(ws)
    thread = card(ws)["ts"]
    ws.mention(OWNER, question, ws.registry, thread)
    return str(thread)


def test_thread_question_gets_checklist_and_a_grounded_cited_answer(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    thread = ask_in_the_thread(workspace, "what do we need for the intake gate?")
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL) and "sponsor" in str(m["blocks"]).lower()
        ]
    )[-1]
    text = str(reply["blocks"])
    assert "[1]" in text and "success metrics" in text
    sent = llm.chat_requests[-1]
    assert sent.get("stream") is True
    assert "tools" not in sent, "the LLM must never be offered a tool"


def test_llm_outage_still_answers_with_the_checklist_and_passages(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    llm.mode = "error"
    thread = ask_in_the_thread(workspace, "what do we need for the intake gate?")
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
        ]
    )[-1]
    assert "approv" in str(reply["blocks"]).lower()


def test_a_question_reaches_the_llm_as_typed_not_as_slack_escaped_it(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    # Slack escapes message text: "R&D" arrives as "R&amp;D", "<" as "&lt;".
    ask_in_the_thread(workspace, "may R&amp;D use data from &lt;10 customers?")
    workspace.wait(lambda: llm.chat_requests)
    prompt = str(llm.chat_requests[-1]["messages"])
    assert "may R&D use data from <10 customers?" in prompt
    assert "&amp;" not in prompt and "&lt;" not in prompt


def answer_as_read(message: dict[str, Any]) -> str:
    """The answer's sections as a person reads them: Slack shows "&lt;" as "<"."""
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    return "\n".join(sections).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_an_answer_streamed_in_small_pieces_is_shown_whole(workspace: Workspace, llm: OpenAIStub) -> None:
    llm.reply = (
        "Use <2 ms [see 1 and >5 ms for pilots [1]. Keep latency <200 ms and accuracy >90% [1]. "
        "Tell <!channel>. Production needs sign-off by the sponsor [1]."
    )
    llm.stream_chunk_size = 3
    thread = ask_in_the_thread(workspace, "what latency do we need?")

    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL) and not m["text"].endswith("…")
        ]
    )[-1]

    shown = answer_as_read(reply)
    assert llm.reply.replace("<!channel>", "‹!channel›") in shown, shown
    assert "<!channel>" not in str(reply), "a reply must never ping the channel"


def test_an_answer_still_streaming_offers_no_vote(
    workspace: Workspace, llm: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vote on a half-written answer would be recorded with that half (and without the question,
    # not kept yet): the buttons come with the finished answer.
    monkeypatch.setattr(ask, "STREAM_UPDATE_SECONDS", 0.0)  # every piece shown as it arrives
    llm.reply = "Name a sponsor and define success metrics before the PoC starts [1]."
    llm.stream_chunk_size = 8
    thread = ask_in_the_thread(workspace, "what do we need for the PoC?")
    workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL) and not m["text"].endswith("…")
        ]
    )
    updates = [c.params for c in workspace.api.calls("chat.update", ok=True)]
    partial = [u for u in updates if str(u.get("text", "")).endswith("…") and "Looking" not in u["text"]]
    assert partial, "no part of the answer was shown while it streamed"
    assert not [u for u in partial if "feedback" in str(u.get("blocks"))]


def test_a_long_answer_split_over_sections_keeps_each_link_whole(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    """An answer that escaping makes longer than a section ("&" is five characters in Slack) is
    shown in several; a link straddling the end of the first (shown as its label and address,
    ``to_mrkdwn``) is never cut inside its address, and no section is left with raw markup."""
    url = "https://intranet.example.com/policies/finance/" + "x" * 14
    label = "the expense and travel policy handbook, section four"
    llm.reply = "R&D " * 363 + f"[{label}]({url}) [1]. " + "R&D " * 200
    llm.stream_chunk_size = len(llm.reply)  # the whole answer at once: no reply in progress
    thread = ask_in_the_thread(workspace, "what may we expense?")
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL) and url in str(m["blocks"])
        ]
    )[-1]
    answer = [b["text"]["text"] for b in reply["blocks"] if b["type"] == "section" and "R&amp;D" in str(b)]
    assert len(answer) == 2, answer
    for shown in answer:
        assert shown.count("<") == shown.count(">"), shown[-200:]
    assert any(url in shown for shown in answer), answer


def test_the_model_cannot_disguise_a_link_behind_a_label(workspace: Workspace, llm: OpenAIStub) -> None:
    # A passage (or the question) carrying an injection makes the model write a Markdown link:
    # Slack must not show "the governance portal" as a clickable label for an arbitrary URL.
    llm.reply = "Sign off in [the governance portal](https://evil.example/login) before the pilot [1]."
    thread = ask_in_the_thread(workspace, "where do we sign off?")
    [reply] = workspace.wait(
        lambda: [m for m in workspace.api.state.thread(workspace.registry, thread) if "Sign off" in m["text"]]
    )
    shown = answer_as_read(reply)
    assert "the governance portal (https://evil.example/login)" in shown, shown
    assert "|" not in shown, shown


def test_the_llm_is_told_which_gate_the_next_gate_is(workspace: Workspace, llm: OpenAIStub) -> None:
    # The question every team asks in its initiative's thread: the checklist knows the gate, and
    # so must the model, or it answers about no gate in particular.
    ask_in_the_thread(workspace, "what do we need for the next gate?")
    workspace.wait(lambda: llm.chat_requests, timeout=15)
    question = str(llm.chat_requests[-1]["messages"][-1]["content"]).split("<question>")[1]
    assert "AI-0001" in question and "next gate is the Intake gate" in question, question


def test_the_llm_is_told_a_ref_in_the_question_is_no_initiative(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    # Without it, the model answers "what does AI-0042 need?" as if AI-0042 existed.
    workspace.mention(OWNER, "what does ai-0042 need, and what does ISO-42001 say?", workspace.registry)
    workspace.wait(lambda: llm.chat_requests, timeout=15)
    question = str(llm.chat_requests[-1]["messages"][-1]["content"]).split("<question>")[1]
    assert "No initiative AI-0042 exists" in question and "ISO-42001 exists" not in question, question


def test_asking_about_an_initiative_by_its_ref_alone_is_about_its_next_gate(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    # "/shepherd ask AI-0001": the policies are searched, and the LLM asked, about what its next
    # gate needs, not about the words "AI-0001".
    ref = register(workspace)
    assert workspace.command(OWNER, f"ask {ref}?").status == 200
    workspace.wait(lambda: llm.chat_requests, timeout=15)
    question = str(llm.chat_requests[-1]["messages"][-1]["content"]).split("<question>")[1]
    assert "What is needed for the Intake gate?" in question, question
    # Another standard's number is a question, not a ref.
    workspace.mention(OWNER, "ISO-42001?", workspace.registry, card(workspace)["ts"])
    workspace.wait(lambda: len(llm.chat_requests) > 1, timeout=15)
    question = str(llm.chat_requests[-1]["messages"][-1]["content"]).split("<question>")[1]
    assert "ISO-42001?" in question and "What is needed" not in question, question


def test_a_question_naming_someone_keeps_them_and_the_answer_pings_no_one(
    workspace: Workspace, llm: OpenAIStub
) -> None:
    # "can @Sam approve the pilot?" is a question about Sam: only Shepherd's own mention is
    # noise. The model echoing a mention back must not ping anyone either.
    llm.reply = "<@U0SAM> can approve the pilot, <@U0KIM> cannot [1]."
    ask_in_the_thread(workspace, "can <@U0SAM> approve the pilot, as <@U0KIM|kim> said?")
    workspace.wait(lambda: llm.chat_requests, timeout=15)
    question = str(llm.chat_requests[-1]["messages"][-1]["content"]).split("<question>")[1]
    assert "can @U0SAM approve the pilot, as @kim said?" in question, question
    assert workspace.api.state.bot_user_id not in question, question
    thread = card(workspace)["ts"]
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
        ]
    )[-1]
    assert "can approve the pilot" in answer_as_read(reply)
    assert "<@" not in str(reply), "an answer must never ping anyone"
