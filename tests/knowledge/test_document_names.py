"""A document's name is the file's, however it is given: never two files under one name (one
was silently lost), never one file under two (search returned the same passage twice)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from typer.testing import CliRunner

from bot.cli_knowledge import app
from knowledge import KnowledgeBase
from knowledge.chunking import chunk_document
from knowledge.embeddings import Embedder, lexical_embedder
from knowledge.loaders import iter_supported_files, load_bytes

from .conftest import HashedWordsEmbedding, fake_embedder

runner = CliRunner()


@pytest.fixture
def shepherd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Run `shepherd knowledge ...` on the settings the bot uses (a store in tmp_path/data)."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "none")
    monkeypatch.delenv("SHEPHERD_POLICIES", raising=False)

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return " ".join(result.output.split())

    return run


def _sources(shepherd: Callable[..., str], query: str) -> list[str]:
    return [hit["source"] for hit in json.loads(shepherd("search", query, "-k", "10", "--json"))]


@pytest.fixture
def teams(tmp_path: Path) -> Path:
    """Two teams' folders, each with its own policy.md."""
    for team, keep in (("teamA", "thirty days"), ("teamB", "one year")):
        (tmp_path / "teams" / team).mkdir(parents=True)
        (tmp_path / "teams" / team / "policy.md").write_text(
            f"# Retention\n\n## Logs\n\n{team} keeps request logs for {keep}.\n", encoding="utf-8"
        )
    return tmp_path / "teams"


@pytest.mark.parametrize("under_policy_folder", [True, False])
def test_files_of_the_same_name_in_two_folders_are_two_documents(
    shepherd: Callable[..., str], teams: Path, monkeypatch: pytest.MonkeyPatch, under_policy_folder: bool
) -> None:
    a, b = teams / "teamA" / "policy.md", teams / "teamB" / "policy.md"
    if under_policy_folder:
        monkeypatch.setenv("SHEPHERD_POLICIES", str(teams))
        names = {"teamA/policy.md", "teamB/policy.md"}
    else:
        names = {a.resolve().as_posix(), b.resolve().as_posix()}

    assert "2 files: 2 indexed" in shepherd("ingest", str(a), str(b))
    assert "from 2 documents" in shepherd("status")
    assert set(_sources(shepherd, "how long are request logs kept")) == names
    # Given again one by one, or by their folders, they are the same two documents.
    assert "1 files: 0 indexed (0 chunks), 1 unchanged" in shepherd("ingest", str(b))
    assert "2 files: 0 indexed (0 chunks), 2 unchanged" in shepherd(
        "ingest", str(teams / "teamA"), str(b.parent)
    )
    b.write_text("# Retention\n\n## Logs\n\nteamB keeps request logs for two years.\n", encoding="utf-8")
    assert "1 files: 1 indexed" in shepherd("ingest", str(b))
    texts = [hit["text"] for hit in json.loads(shepherd("search", "request logs", "--json"))]
    assert sorted(texts) == [
        "teamA keeps request logs for thirty days.",
        "teamB keeps request logs for two years.",
    ]
    assert "from 2 documents" in shepherd("status")


def test_one_file_given_through_its_folder_a_subfolder_or_itself_is_one_document(
    shepherd: Callable[..., str], policies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "3 files: 3 indexed" in shepherd("ingest", str(policies))
    before = shepherd("status")
    assert "from 3 documents" in before
    monkeypatch.chdir(tmp_path)
    for given in (policies / "sub", policies / "sub" / "ethics.md", Path("policies/sub/../sub/ethics.md")):
        assert "1 files: 0 indexed (0 chunks), 1 unchanged" in shepherd("ingest", str(given)), given
    assert shepherd("status") == before
    assert _sources(shepherd, "ethics board chatbots").count((policies / "sub" / "ethics.md").as_posix()) == 1
    # Pruning a subfolder removes what is gone from it, and nothing else.
    (policies / "sub" / "ethics.md").unlink()
    assert "0 failed, 1 removed" in shepherd("ingest", "--prune", str(policies / "sub"))
    assert "from 2 documents" in shepherd("status")


def ingest_as_before(store: Path, folder: Path, embedder: Embedder, file: Path | None = None) -> None:
    """Store a folder (or one file of it) as ingestion did before documents were named by their
    path: the name relative to the folder given, the folder kept as "root", no "path"."""
    client = chromadb.PersistentClient(
        path=str(store / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection(
        embedder.collection,
        embedding_function=embedder.function,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"shepherd_revision": uuid.uuid4().hex},
    )
    folder = folder.resolve()
    for path in [file] if file is not None else list(iter_supported_files(folder)):
        source = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        document = load_bytes(data, path.suffix)
        chunks = chunk_document(document, source)
        metadatas: list[dict[str, Any]] = []
        for chunk in chunks:
            metadata: dict[str, Any] = {
                "source": source,
                "section": chunk.section,
                "root": str(folder),
                "file_hash": hashlib.sha256(data).hexdigest(),
                "file_chunks": len(chunks),
                "position": chunk.position,
            }
            if chunk.context:
                metadata["context"] = chunk.context
            if document.tags:
                metadata["tags"] = [tag.casefold() for tag in document.tags]
            if document.gates:
                metadata["gates"] = [gate.casefold() for gate in document.gates]
            metadatas.append(metadata)
        collection.upsert(
            ids=[chunk.chunk_id for chunk in chunks],
            embeddings=embedder.embed_documents([chunk.indexed_text for chunk in chunks]),  # type: ignore[arg-type]
            documents=[chunk.text for chunk in chunks],
            metadatas=metadatas,  # type: ignore[arg-type]
        )


def test_a_store_filled_before_keeps_one_copy_of_each_document(
    shepherd: Callable[..., str], policies: Path, tmp_path: Path
) -> None:
    ingest_as_before(tmp_path / "data" / "knowledge", policies, lexical_embedder())
    before = shepherd("status")
    assert "from 3 documents" in before

    output = shepherd("ingest", str(policies))
    assert "3 files: 3 indexed" in output and "3 renamed" in output
    assert "now go by their path under the policy folder, or their full path outside it" in output
    assert shepherd("status") == before  # the same chunks, under their new names
    assert _sources(shepherd, "ethics board chatbots") == [
        (policies / "sub" / "ethics.md").resolve().as_posix()
    ]
    output = shepherd("ingest", str(policies))
    assert "3 unchanged" in output and "renamed" not in output


def test_a_policy_folder_filled_before_is_unchanged(
    shepherd: Callable[..., str], policies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot ingests its policy folder at every start: names there are what they were."""
    monkeypatch.setenv("SHEPHERD_POLICIES", str(policies))
    ingest_as_before(tmp_path / "data" / "knowledge", policies, lexical_embedder())
    before = shepherd("status")
    output = shepherd("ingest", str(policies))
    assert "3 files: 0 indexed (0 chunks), 3 unchanged" in output and "renamed" not in output
    assert shepherd("status") == before
    assert _sources(shepherd, "ethics board chatbots") == ["sub/ethics.md"]


def test_a_file_stored_twice_before_is_stored_once(
    shepherd: Callable[..., str], policies: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingested through its folder and then its subfolder, a file was stored as `sub/ethics.md`
    and `ethics.md`, and every search that found it showed it twice."""
    monkeypatch.setenv("SHEPHERD_POLICIES", str(policies))
    store = tmp_path / "data" / "knowledge"
    ingest_as_before(store, policies, lexical_embedder())
    ingest_as_before(store, policies / "sub", lexical_embedder())
    assert "from 4 documents" in shepherd("status")
    assert sorted(_sources(shepherd, "ethics board chatbots")) == ["ethics.md", "sub/ethics.md"]

    output = shepherd("ingest", str(policies / "sub"))
    assert "1 files: 0 indexed (0 chunks), 1 unchanged" in output and "1 renamed" in output
    assert "from 3 documents" in shepherd("status")
    assert _sources(shepherd, "ethics board chatbots") == ["sub/ethics.md"]


def test_renamed_documents_keep_their_vectors(policies: Path, tmp_path: Path) -> None:
    """Renaming after an upgrade computes no embedding again: a paid model is not paid twice."""
    ingest_as_before(tmp_path / "data", policies, fake_embedder())
    before = HashedWordsEmbedding.calls
    kb = KnowledgeBase(tmp_path / "data", embedder=fake_embedder(), glossary="none")
    report = kb.ingest([policies])
    assert (report.indexed, report.renamed) == (3, 3)
    assert HashedWordsEmbedding.calls == before
    hits = kb.search("where do secrets live", k=1, mode="vector")
    assert hits[0].source == (policies / "security.md").resolve().as_posix()
    assert kb.status().documents == 3
