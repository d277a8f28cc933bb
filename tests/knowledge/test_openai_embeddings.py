"""The ``openai:MODEL`` embeddings path, against the local OpenAI-compatible stub."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from knowledge import KnowledgeBase, KnowledgeError, base
from tests.fakes.openai_stub import OpenAIStub


@pytest.fixture
def stub() -> OpenAIStub:
    """A running stub serving /v1/embeddings (hashed-word vectors, 64 dimensions)."""
    with OpenAIStub() as running:
        yield running  # type: ignore[misc]


def test_ingest_and_vector_search_go_through_the_endpoint(
    tmp_path: Path, policies: Path, stub: OpenAIStub
) -> None:
    kb = KnowledgeBase(
        tmp_path / "data", "openai:stub-embed", openai_base_url=stub.base_url, openai_api_key="test-key"
    )
    assert not kb.lexical_only
    assert kb.status().embeddings == "openai stub-embed"
    kb.ingest([policies])
    hits = kb.search("secrets vault source code", k=2, mode="vector")
    assert hits[0].section == "Security > Secrets"
    bodies = stub.embedding_requests
    assert {body["model"] for body in bodies} == {"stub-embed"}
    sent = [text for body in bodies for text in body["input"]]
    assert any("Secrets live in the vault" in text for text in sent)
    assert sent[-1] == "secrets vault source code"
    keys = [
        {name.lower(): value for name, value in r.headers.items()}.get("authorization") for r in stub.requests
    ]
    assert set(keys) == {"Bearer test-key"}


def test_reopening_the_collection_reuses_the_stored_vectors(
    tmp_path: Path, policies: Path, stub: OpenAIStub
) -> None:
    def open_kb() -> KnowledgeBase:
        return KnowledgeBase(
            tmp_path / "data", "openai:stub-embed", openai_base_url=stub.base_url, openai_api_key="k"
        )

    open_kb().ingest([policies])
    embedded = len(stub.embedding_requests)
    report = open_kb().ingest([policies])
    assert report.skipped == report.files == 3
    assert len(stub.embedding_requests) == embedded + 1  # the start-up probe only


def test_a_failing_endpoint_falls_back_to_bm25_over_the_same_passages_until_it_answers(
    tmp_path: Path,
    policies: Path,
    stub: OpenAIStub,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model down at start used to send searches to another, empty collection (the one kept
    for BM25-only stores) until the next restart."""

    def open_kb() -> KnowledgeBase:
        return KnowledgeBase(
            tmp_path / "data", "openai:stub-embed", openai_base_url=stub.base_url, openai_api_key="k"
        )

    open_kb().ingest([policies])
    monkeypatch.setattr(base, "MODEL_RETRY_SECONDS", 0.0)  # every search tries the model again
    stub.mode = "error"
    with caplog.at_level(logging.WARNING, "shepherd.knowledge"):
        kb = open_kb()
    assert kb.lexical_only
    assert "embeddings endpoint failed" in (kb.status().reason or "")
    assert len([r for r in caplog.records if "BM25 only until the model answers" in r.getMessage()]) == 1
    assert kb.search("vault secrets", k=1)[0].section == "Security > Secrets"
    with pytest.raises(KnowledgeError, match="embedding failed during ingestion"):
        kb.ingest([_changed(policies)])

    stub.mode = "ok"  # the endpoint is back: the next search uses it
    assert kb.search("secrets vault source code", k=1)[0].section == "Security > Secrets"
    assert not kb.lexical_only
    assert kb.search("secrets vault source code", k=1, mode="vector")[0].section == "Security > Secrets"


def _changed(policies: Path) -> Path:
    path = policies / "security.md"
    path.write_text(path.read_text() + "\n## Backups\n\nBackups are encrypted.\n")
    return path


def test_a_missing_api_key_falls_back_to_bm25(tmp_path: Path, stub: OpenAIStub) -> None:
    kb = KnowledgeBase(tmp_path / "data", "openai:stub-embed", openai_base_url=stub.base_url)
    assert kb.lexical_only
    assert "no API key" in (kb.status().reason or "")
    assert stub.embedding_requests == []


def test_a_model_of_another_vector_size_searches_by_keyword_until_ingest_embeds_the_store_again(
    tmp_path: Path, policies: Path, stub: OpenAIStub
) -> None:
    """OPENAI_BASE_URL naming another server with a model of the same name (64 -> 32 dimensions)
    made every hybrid search fail with Chroma's dimension error."""
    KnowledgeBase(
        tmp_path / "data", "openai:stub-embed", openai_base_url=stub.base_url, openai_api_key="k"
    ).ingest([policies])
    with OpenAIStub(embedding_dimensions=32) as other:
        kb = KnowledgeBase(
            tmp_path / "data", "openai:stub-embed", openai_base_url=other.base_url, openai_api_key="k"
        )
        status = kb.status()
        assert status.lexical_only
        assert "vectors of 64 dimensions" in (status.reason or "")
        assert "`shepherd knowledge ingest`" in (status.reason or "")
        assert kb.search("penetration test before production")[0].section == "Security > Penetration tests"

        report = kb.ingest([policies])
        assert report.skipped == 3  # the passages were embedded again, the files not reread
        assert not kb.lexical_only
        assert kb.search("secrets vault source code", k=1, mode="vector")[0].section == "Security > Secrets"
