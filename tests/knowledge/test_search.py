"""Search: hybrid fusion, modes, metadata filters, lexical fallback, concurrent use."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from knowledge import KnowledgeBase, KnowledgeError

KB = Callable[..., KnowledgeBase]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kb(make_kb: KB, policies: Path) -> KnowledgeBase:
    """A knowledge base with the three small policies ingested, fake embeddings."""
    base = make_kb()
    base.ingest([policies])
    return base


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_each_mode_finds_the_passage_that_answers(kb: KnowledgeBase, mode: str) -> None:
    hits = kb.search("where do secrets live, vault or source code?", k=3, mode=mode)  # type: ignore[arg-type]
    assert hits[0].source == "security.md"
    assert hits[0].section == "Security > Secrets"
    assert hits[0].citation == "security.md > Security > Secrets"
    assert hits == sorted(hits, key=lambda hit: -hit.score)


def test_hits_carry_tags_and_gates_from_front_matter(kb: KnowledgeBase) -> None:
    (hit,) = kb.search("personal data minimised encrypted", k=1)
    assert hit.tags == ("privacy", "risk")
    assert hit.gates == ("pilot", "production")
    assert hit.section == "Data protection > Personal data"


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_gate_filter_keeps_only_documents_for_that_gate(kb: KnowledgeBase, mode: str) -> None:
    hits = kb.search("secrets vault penetration data", k=10, gate="pilot", mode=mode)  # type: ignore[arg-type]
    assert hits
    assert {hit.source for hit in hits} == {"privacy.md"}


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_tag_filter_matches_any_of_the_tags(kb: KnowledgeBase, mode: str) -> None:
    hits = kb.search("policy data secrets ethics", k=10, tags=["SECURITY", "privacy"], mode=mode)  # type: ignore[arg-type]
    assert {hit.source for hit in hits} == {"privacy.md", "security.md"}


def test_unknown_mode_and_empty_query(kb: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeError, match="unknown search mode"):
        kb.search("x", mode="magic")  # type: ignore[arg-type]
    assert kb.search("   ") == []


def test_missing_model_falls_back_to_bm25_with_one_warning(
    tmp_path: Path, policies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shepherd.knowledge"):
        kb = KnowledgeBase(
            tmp_path / "data", embeddings=f"onnx:{tmp_path / 'no-model'}", documents_root=policies
        )
        kb.ingest([policies])
        hits = kb.search("penetration test before production", k=2)
        kb.search("ethics board", k=2)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no-model" in warnings[0].getMessage()
    assert "BM25" in warnings[0].getMessage()
    assert hits[0].source == "security.md"
    status = kb.status()
    assert status.lexical_only and "model folder not found" in (status.reason or "")
    with pytest.raises(KnowledgeError, match="vector search unavailable"):
        kb.search("x", mode="vector")


def test_embeddings_none_is_lexical_without_warning(
    tmp_path: Path, policies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shepherd.knowledge"):
        kb = KnowledgeBase(tmp_path / "data", embeddings="none")
        kb.ingest([policies])
    assert not caplog.records
    # With no documents root, a document is named by its absolute path.
    assert kb.search("vault", k=1)[0].source == (policies.resolve() / "security.md").as_posix()


def test_unknown_embeddings_setting_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="unknown embeddings setting"):
        KnowledgeBase(tmp_path, embeddings="word2vec")


def test_search_sees_chunks_ingested_by_another_instance(make_kb: KB, policies: Path) -> None:
    reader = make_kb()
    assert reader.search("vault", k=1) == []
    make_kb().ingest([policies])
    # The reader checks the stored revision at most twice a second.
    reader._revision_checked_at = 0.0
    assert reader.search("vault", k=1)[0].source == "security.md"


def test_vector_search_sees_documents_another_process_ingested(
    make_kb: KB, policies: Path, tmp_path: Path
) -> None:
    """`shepherd knowledge ingest` while the bot runs on the embedded store: the bot's vector
    search must find the new document too, not only its keyword search."""
    bot = make_kb()
    bot.ingest([policies])
    (policies / "vendors.md").write_text(
        "# Vendors\n\nThird party vendors fill in a security questionnaire.\n"
    )
    cli = (
        "import sys; from pathlib import Path; from knowledge import KnowledgeBase;"
        "from tests.knowledge.conftest import fake_embedder;"
        "KnowledgeBase(Path(sys.argv[1]), embedder=fake_embedder(), glossary='none',"
        " documents_root=Path(sys.argv[2])).ingest([sys.argv[2]])"
    )
    subprocess.run(
        [sys.executable, "-c", cli, str(tmp_path / "data"), str(policies)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=120,
    )
    bot._revision_checked_at = 0.0  # checked at most twice a second
    question = "third party vendors security questionnaire"
    assert bot.search(question, k=1, mode="vector")[0].source == "vendors.md"
    assert bot.search(question, k=1, mode="hybrid")[0].source == "vendors.md"


def test_concurrent_searches_during_ingestion_are_consistent(kb: KnowledgeBase, policies: Path) -> None:
    (policies / "extra.md").write_text("# Extra\n\nVault access reviews happen monthly.\n")

    def ask(_: int) -> str:
        return kb.search("secrets vault source code", k=1)[0].source

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(ask, n) for n in range(40)]
        kb.ingest([policies])
        results = [future.result() for future in futures]
    assert set(results) <= {"security.md", "extra.md"}
