"""The policy store opens on the first question. Questions asked while it opens (ingesting the
policies takes seconds) wait for it: they used to be told that no policy passage matched them,
while the same question a moment later was answered from the policies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import ask, bootstrap, ids
from bot.bootstrap import knowledge_base, open_knowledge
from bot.settings import Settings
from knowledge import IngestReport, KnowledgeBase
from tests.bot.scenario import Workspace, has_button, workspace_of
from tests.bot.test_lifecycle import OWNER, card, register
from tests.knowledge.conftest import damaged_pdf, fake_embedder

QUESTION = "what is a DPIA?"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    with workspace_of({"U0OWNER01": "olivia"}, tmp_path / "data") as ws:
        yield ws


def test_questions_asked_while_the_policy_store_opens_wait_for_it(workspace: Workspace) -> None:
    services = workspace.services
    opening = services.knowledge_factory
    opened: list[int] = []

    def slow_to_open():  # type: ignore[no-untyped-def]
        time.sleep(0.5)  # as ingesting the policy folder takes
        opened.append(1)
        return opening()

    services.knowledge_factory = slow_to_open
    start = threading.Barrier(4)
    found: dict[int, int] = {}

    def search(i: int) -> None:
        start.wait()
        found[i] = len(ask.retrieve(services, QUESTION))

    threads = [threading.Thread(target=search, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(opened) == 1  # opened once
    assert min(found.values()) > 0
    assert len(set(found.values())) == 1


def test_a_policy_deleted_or_renamed_in_the_folder_is_not_cited_after_a_restart(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "keep.md").write_text("## Registration\n\nEvery AI initiative must be registered.\n")
    (policies / "old.md").write_text("## Crypto mining\n\nTeams may mine crypto on the GPU cluster.\n")
    handbook = tmp_path / "handbook"  # ingested by `shepherd knowledge ingest`, not the bot's
    handbook.mkdir()
    (handbook / "travel.md").write_text("## Travel\n\nBook trains for trips under four hours.\n")
    settings = Settings(data_dir=tmp_path / "data", embeddings="none", policies_dir=policies)
    knowledge_base(settings).ingest([handbook])
    kb = open_knowledge(settings)
    assert kb is not None
    assert [hit.source for hit in kb.search("crypto mining GPU")] == ["old.md"]

    # The governance team withdraws one policy, renames another, and restarts the bot.
    (policies / "old.md").unlink()
    (policies / "keep.md").rename(policies / "registration.md")
    reports: list[IngestReport] = []
    kb = open_knowledge(settings, reports)
    assert kb is not None
    assert kb.search("crypto mining GPU") == []
    assert [hit.source for hit in kb.search("AI initiative registered")] == ["registration.md"]
    assert [hit.source for hit in kb.search("trains trips")] == [
        (handbook / "travel.md").resolve().as_posix()
    ]
    assert reports[0].removed == 2


def test_a_damaged_policy_file_is_skipped_and_the_bot_serves_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "annex.pdf").write_bytes(damaged_pdf("Annex on model hosting"))
    (policies / "registration.md").write_text("## Registration\n\nEvery AI initiative must be registered.\n")
    settings = Settings(data_dir=tmp_path / "data", embeddings="none", policies_dir=policies)
    with caplog.at_level(logging.WARNING, logger="shepherd"):
        kb = open_knowledge(settings)
    assert kb is not None
    assert [hit.source for hit in kb.search("AI initiative registered")] == ["registration.md"]
    skipped = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
    assert skipped == ["Policy file skipped: annex.pdf (corrupt or unreadable PDF (AssertionError))"]


def _unreachable() -> None:
    raise RuntimeError("Chroma server unreachable")


@pytest.mark.parametrize(
    "failing",
    [lambda: None, _unreachable],  # as open_knowledge answers for the errors it knows; any other
    ids=["store-closed", "store-raised"],
)
def test_a_policy_store_that_could_not_open_says_so_and_is_tried_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, failing: Callable[[], None]
) -> None:
    """A Chroma server down at the first question: the answer says the library cannot be
    searched (not that no policy covers the question), and guidance comes back without a restart."""
    services = workspace.services
    opening = services.knowledge_factory

    services.knowledge_factory = failing
    monkeypatch.setattr(bootstrap, "KNOWLEDGE_RETRY_SECONDS", 0.0)

    def answers() -> list[dict[str, Any]]:
        return [e for e in workspace.api.state.ephemerals if has_button(e, ids.ACTION_FEEDBACK_HELPFUL)]

    assert workspace.command("U0OWNER01", f"ask {QUESTION}").status == 200
    first = str(workspace.wait(answers)[-1]["blocks"])
    assert "cannot search the policy library" in first and "no passage matched" not in first

    services.knowledge_factory = opening  # the store is back
    assert workspace.command("U0OWNER01", f"ask {QUESTION}").status == 200
    second = workspace.wait(lambda: answers()[1:])[-1]
    assert "cannot search the policy library" not in str(second["blocks"])
    assert "*[1]*" in str(second["blocks"])  # cited from the policies


def test_pointing_the_bot_at_its_own_policy_folder_stops_citing_the_previous_one(tmp_path: Path) -> None:
    """SHEPHERD_POLICIES set after a start on the bundled pack: the pack's policies were still
    cited for good (its files still exist, so no prune removed them)."""
    data = tmp_path / "data"
    handbook = tmp_path / "handbook"  # ingested by `shepherd knowledge ingest`, not the bot's
    handbook.mkdir()
    (handbook / "travel.md").write_text("## Travel\n\nBook trains for trips under four hours.\n")
    first = open_knowledge(Settings(data_dir=data, embeddings="none"))
    assert first is not None
    first.ingest([handbook])
    own = tmp_path / "policies"
    own.mkdir()
    (own / "privacy.md").write_text(
        "## Privacy\n\nAsk the privacy office before an AI system uses customer data.\n"
    )

    kb = open_knowledge(Settings(data_dir=data, embeddings="none", policies_dir=own))
    assert kb is not None
    assert {hit.source for hit in kb.search("do we need a DPIA before using customer data?")} == {
        "privacy.md"
    }
    assert [hit.source for hit in kb.search("trains trips")] == [
        (handbook / "travel.md").resolve().as_posix()
    ]


def test_a_bot_started_while_embeddings_are_down_still_searches_what_was_ingested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It searched another, empty collection (the BM25-only one) until the next restart."""
    from typer.testing import CliRunner

    from bot.cli_knowledge import app
    from tests.fakes.openai_stub import OpenAIStub

    handbook = tmp_path / "handbook"
    handbook.mkdir()
    (handbook / "travel.md").write_text("## Travel\n\nBook trains for trips under four hours.\n")
    with OpenAIStub() as stub:
        monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "openai:stub-embed")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("SHEPHERD_GLOSSARY", "none")
        result = CliRunner().invoke(app, ["ingest", str(handbook)])
        assert result.exit_code == 0 and "1 indexed" in result.output, result.output
        stub.mode = "error"  # the embeddings endpoint has a bad minute while the bot starts
        kb = open_knowledge(Settings())
        assert kb is not None and kb.lexical_only
        hits = kb.search("book trains for trips", k=3)
    assert [hit.source for hit in hits][:1] == [(handbook / "travel.md").resolve().as_posix()]


def test_knowledge_status_says_the_store_must_be_embedded_again_for_a_model_of_another_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli_knowledge import app
    from tests.fakes.openai_stub import OpenAIStub

    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "openai:stub-embed")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("SHEPHERD_GLOSSARY", "none")
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        assert open_knowledge(Settings()) is not None
    with OpenAIStub(embedding_dimensions=32) as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        result = CliRunner().invoke(app, ["status"])
        kb = open_knowledge(Settings())
        assert kb is not None
        hits = kb.search("DPIA personal data")
    assert result.exit_code == 0, result.output
    assert "BM25 only" in result.output and "shepherd knowledge ingest" in result.output
    assert hits  # searched by keyword, then the start-up ingest embedded the store again
    assert not kb.lexical_only


def test_a_question_about_a_gate_cites_each_policy_section_once(workspace: Workspace, tmp_path: Path) -> None:
    """Passages of documents tagged for the gate come first, the rest fill up: the two searches
    can pick different passages of one section (ranks among the tagged documents differ from
    ranks among all), and the section was listed twice among the sources."""
    folder = tmp_path / "gate-policies"
    folder.mkdir()
    (folder / "pilot.md").write_text(
        "---\ngates: [pilot]\n---\n# Pilot\n\n## Rules\n\n"
        "Retention: retention of records, retention of logs.\n\n"
        "What we should do about it and when: see retention; HR, QA, PM, UX, BI, ML, AI, DE, FR, NL.\n"
    )
    (folder / "finance.md").write_text(
        "# Finance\n\n## Pilot records\n\nRetention of finance records follows the retention schedule.\n"
    )
    (folder / "travel.md").write_text("# Travel\n\n## Trains\n\nBook trains for trips under four hours.\n")

    def open_with_vectors() -> KnowledgeBase:
        # Vectors as well as keywords, as in production: with keywords alone both searches
        # rank a section's passages alike.
        kb = KnowledgeBase(
            tmp_path / "kb", embedder=fake_embedder(), documents_root=folder, glossary="none", chunk_chars=100
        )
        kb.ingest([folder])
        return kb

    workspace.services.knowledge_factory = open_with_vectors
    register(workspace)
    thread = str(card(workspace)["ts"])
    workspace.mention(
        OWNER, "what should we do about retention and when, for the pilot gate?", workspace.registry, thread
    )
    reply = workspace.wait(
        lambda: [
            m
            for m in workspace.api.state.thread(workspace.registry, thread)[1:]
            if has_button(m, ids.ACTION_FEEDBACK_HELPFUL)
        ]
    )[-1]
    sources = [
        element["text"].split("* ", 1)[1]
        for block in reply["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
        if element["text"].startswith("*[")
    ]
    assert sources[0] == "pilot.md &gt; Pilot &gt; Rules"  # escaped for Slack
    assert len(sources) == len(set(sources)), sources
