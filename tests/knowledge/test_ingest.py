"""Ingestion: incremental by content hash, prune, bad files reported, reopen after restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from knowledge import KnowledgeBase, KnowledgeError
from knowledge.chunking import chunk_document, split_text
from knowledge.loaders import load_bytes

from .conftest import (
    HashedWordsEmbedding,
    damage_word_part,
    damaged_pdf,
    minimal_pdf,
    pdf_with_damaged_info,
    word_document,
)

KB = Callable[..., KnowledgeBase]


def test_sources_are_relative_to_the_documents_root(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    report = kb.ingest([policies])
    assert (report.files, report.indexed, report.skipped, report.failed) == (3, 3, 0, [])
    sources = {hit.source for hit in kb.search("ethics board chatbots", k=10, mode="bm25")}
    assert "sub/ethics.md" in sources


def test_unchanged_files_are_skipped_without_embedding(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    kb.ingest([policies])
    before = HashedWordsEmbedding.calls
    report = kb.ingest([policies])
    assert (report.skipped, report.indexed, report.chunks) == (3, 0, 0)
    assert HashedWordsEmbedding.calls == before


def test_changed_file_replaces_its_chunks(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    kb.ingest([policies])
    (policies / "security.md").write_text(
        "# Security\n\n## Secrets\n\nSecrets rotate every thirty days.\n", encoding="utf-8"
    )
    report = kb.ingest([policies])
    assert (report.indexed, report.skipped) == (1, 2)
    texts = [hit.text for hit in kb.search("secrets vault rotate", k=10, mode="bm25")]
    assert any("thirty days" in text for text in texts)
    assert kb.search("penetration test production launch", k=5, mode="bm25") == []


def test_changed_file_reembeds_only_new_chunks(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    kb.ingest([policies])
    path = policies / "privacy.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n## Access\n\nOnly the team.\n")
    before = HashedWordsEmbedding.calls
    kb.ingest([policies])
    assert HashedWordsEmbedding.calls - before == 1


def test_tags_and_gates_removed_from_front_matter_stop_filtering(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    kb.ingest([policies])
    assert kb.search("personal data minimised", gate="pilot", mode="bm25")
    # The text is unchanged, so its chunks keep their vectors and only their labels change.
    path = policies / "privacy.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("tags: [privacy, risk]\ngates: [pilot, production]\n", "")
    )
    assert kb.ingest([policies]).indexed == 1
    for mode in ("bm25", "vector"):
        assert kb.search("personal data minimised", gate="pilot", mode=mode) == []  # type: ignore[arg-type]
        assert kb.search("personal data minimised", tags=["privacy"], mode=mode) == []  # type: ignore[arg-type]
    hit = kb.search("personal data minimised", k=1, mode="bm25")[0]
    assert (hit.source, hit.tags, hit.gates) == ("privacy.md", (), ())


def test_prune_removes_chunks_of_deleted_files(make_kb: KB, policies: Path) -> None:
    kb = make_kb()
    kb.ingest([policies])
    (policies / "sub" / "ethics.md").unlink()
    kept = kb.ingest([policies])
    assert kept.removed == 0
    assert kb.search("ethics board", k=5, mode="bm25")
    pruned = kb.ingest([policies], prune=True)
    assert pruned.removed == 1
    assert kb.search("ethics board", k=5, mode="bm25") == []
    assert kb.status().documents == 2


def test_bad_files_are_reported_by_name_and_ingestion_goes_on(make_kb: KB, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\ngarbage")
    (folder / "empty.md").write_bytes(b"")
    (folder / "image.txt").write_bytes(b"\x89PNG\x00\x00\x01\x02" * 20)
    (folder / "good.md").write_text("# Good\n\nA readable policy about retention.\n")
    (folder / "export.json").write_text('{"ignored": true}')
    report = make_kb(documents_root=folder).ingest([folder])
    assert report.files == 4
    assert report.indexed == 1
    failed = dict(report.failed)
    assert set(failed) == {"broken.pdf", "empty.md", "image.txt"}
    assert "empty" in failed["empty.md"]
    assert "binary" in failed["image.txt"]


def test_a_damaged_pdf_or_word_file_is_one_failed_file_and_the_others_are_indexed(
    make_kb: KB, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a-annex.pdf").write_bytes(damaged_pdf("Annex on model hosting"))
    word_document(folder / "b-manual.docx")
    damage_word_part(folder / "b-manual.docx", "word/document.xml")
    (folder / "c-registration.md").write_text("# Registration\n\nEvery AI initiative is registered.\n")
    report = make_kb().ingest([folder])
    failed = dict(report.failed)
    assert set(failed) == {"a-annex.pdf", "b-manual.docx"}
    assert "corrupt or unreadable PDF" in failed["a-annex.pdf"]
    assert "not a readable Word" in failed["b-manual.docx"]
    assert report.indexed == 1
    assert make_kb().search("AI initiative registered", k=1, mode="bm25")[0].source == "c-registration.md"


def test_damaged_document_properties_cost_only_the_title(make_kb: KB, tmp_path: Path) -> None:
    """A title is a label nothing searches: a broken /Info or docProps/core.xml keeps the text."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "annex.pdf").write_bytes(pdf_with_damaged_info("Annex on model hosting"))
    word_document(folder / "manual.docx")
    damage_word_part(folder / "manual.docx", "docProps/core.xml")
    report = make_kb().ingest([folder])
    assert (report.indexed, report.failed) == (2, [])
    kb = make_kb()
    assert kb.search("model hosting annex", k=1, mode="bm25")[0].source == "annex.pdf"
    assert kb.search("model card owner", k=1, mode="bm25")[0].source == "manual.docx"


def test_a_policy_that_becomes_unreadable_keeps_its_last_readable_version(
    make_kb: KB, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "retention.md").write_text("# Retention\n\nKeep training data for two years.\n")
    kb = make_kb()
    kb.ingest([folder])
    (folder / "retention.md").write_bytes(b"\x89PNG\x00\x00\x01\x02" * 20)  # overwritten by mistake

    report = kb.ingest([folder])
    assert [source for source, _ in report.failed] == ["retention.md"]
    assert "stays searchable" in dict(report.failed)["retention.md"]
    assert kb.search("training data two years", k=5, mode="bm25")
    assert kb.status().documents == 1
    # Once readable again, it is indexed as it now reads.
    (folder / "retention.md").write_text("# Retention\n\nKeep training data for three years.\n")
    assert kb.ingest([folder]).indexed == 1
    assert "three years" in kb.search("training data", k=1, mode="bm25")[0].text


def test_a_missing_path_is_an_error_before_any_work(make_kb: KB, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="no such file or folder"):
        make_kb().ingest([tmp_path / "nope"])


def test_every_supported_format_is_ingested(make_kb: KB, tmp_path: Path) -> None:
    folder = tmp_path / "formats"
    folder.mkdir()
    (folder / "a.md").write_text("# Markdown policy\n\nalpha marker text\n")
    (folder / "b.txt").write_text("bravo marker text\n")
    (folder / "c.html").write_text("<h1>Html policy</h1><p>charlie marker text</p>")
    (folder / "d.pdf").write_bytes(minimal_pdf(["delta marker text"]))
    word_document(folder / "e.docx")
    kb = make_kb(documents_root=folder)
    report = kb.ingest([folder])
    assert (report.indexed, report.failed) == (5, [])
    for word, source in [
        ("alpha", "a.md"),
        ("bravo", "b.txt"),
        ("charlie", "c.html"),
        ("delta", "d.pdf"),
        ("owner", "e.docx"),
    ]:
        assert kb.search(word, k=1, mode="bm25")[0].source == source


def test_reopening_after_restart_keeps_chunks_and_skips_unchanged(make_kb: KB, policies: Path) -> None:
    make_kb().ingest([policies])
    reopened = make_kb()
    assert reopened.status().chunks > 0
    assert reopened.ingest([policies]).skipped == 3
    assert reopened.search("penetration test", k=1, mode="vector")[0].source == "security.md"


def test_chunk_ids_are_stable_and_long_sections_split_on_paragraphs() -> None:
    body = "\n\n".join(f"Paragraph {n} " + "word " * 60 for n in range(10))
    document = load_bytes(f"# Title\n\n{body}\n".encode(), ".md")
    first = chunk_document(document, "a.md", target=800)
    again = chunk_document(document, "a.md", target=800)
    assert [chunk.chunk_id for chunk in first] == [chunk.chunk_id for chunk in again]
    assert len(first) > 1
    assert all(len(chunk.text) <= 800 for chunk in first)
    assert all(chunk.text.startswith("Paragraph") for chunk in first)
    assert first[0].indexed_text.startswith("Title\n")
    assert chunk_document(document, "b.md", target=800)[0].chunk_id != first[0].chunk_id


def test_an_over_long_paragraph_is_split_on_sentences() -> None:
    pieces = split_text("One sentence here. " * 200, target=500)
    assert len(pieces) > 1
    assert all(len(piece) <= 500 for piece in pieces)


def test_after_an_ingest_fails_half_way_other_readers_stop_citing_the_replaced_text(
    make_kb: KB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's process kept citing a chunk the CLI had replaced: the revision other readers
    watch was only changed by an ingest that completed."""
    folder = tmp_path / "policies"
    folder.mkdir()
    filler = "".join(
        f"Paragraph {n} about filler topic number {n} for volume. " * 14 + "\n\n" for n in range(300)
    )
    retention = folder / "a-retention.md"
    retention.write_text("## Retention\n\nOld rule: logs are kept for seven years.\n\n" + filler)
    bot = make_kb()
    bot.ingest([folder])
    assert "seven years" in bot.search("retention logs kept", k=1, mode="bm25")[0].text
    # The policy changes and another is added; the model fails on the second batch of chunks,
    # after the first file's (300 and more) were written.
    retention.write_text("## Retention\n\nNew rule: logs are kept for ninety days.\n\n" + filler)
    (folder / "b-other.md").write_text("## Other\n\nSomething else entirely.\n")
    original = HashedWordsEmbedding.embed
    calls: list[int] = []

    def failing_after_one_batch(self: HashedWordsEmbedding, texts: Sequence[str]) -> Any:
        calls.append(len(texts))
        if len(calls) > 1:
            raise RuntimeError("model crashed")
        return original(self, texts)

    cli = make_kb()
    monkeypatch.setattr(HashedWordsEmbedding, "embed", failing_after_one_batch)
    with pytest.raises(KnowledgeError):
        cli.ingest([folder])
    monkeypatch.setattr(HashedWordsEmbedding, "embed", original)
    time.sleep(0.6)  # past the revision check interval
    texts = [hit.text for hit in bot.search("retention logs kept", k=3, mode="bm25")]
    assert any("ninety days" in text for text in texts), texts
    assert not any("seven years" in text for text in texts), texts


def test_an_image_pasted_into_a_markdown_policy_is_its_caption_not_a_passage_of_base64(
    make_kb: KB, tmp_path: Path
) -> None:
    """Editors that paste images into Markdown (Typora, Obsidian, Notion exports) write them
    inline as base64: the image became an 80 KB passage that search quoted as the answer, far
    over any embedding model's input (an OpenAI-compatible one refuses it, failing the ingest)."""
    import base64

    picture = base64.b64encode(bytes(range(256)) * 240).decode()
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "architecture.md").write_text(
        "# Architecture\n\nThe model runs in our EU tenant.\n\n"
        f"![Data flow diagram](data:image/png;base64,{picture})\n\n"
        f'<img alt="Network zones" src="data:image/png;base64,{picture}">\n\n'
        "Logs are kept ninety days.\n",
        encoding="utf-8",
    )
    kb = make_kb()
    kb.ingest([folder])
    hit = kb.search("data flow diagram", k=1, mode="bm25")[0]
    assert "Data flow diagram" in hit.text and "EU tenant" in hit.text
    assert "base64" not in hit.text and len(hit.text) < 1000
    assert kb.status().chunks == 1


def test_an_unbroken_run_of_characters_longer_than_a_chunk_is_cut_to_the_chunk_size() -> None:
    # A long URL, a minified line, or a paragraph in a language written without spaces.
    pieces = split_text("Before. " + "x" * 2500 + " after.", target=1000)
    assert max(len(piece) for piece in pieces) <= 1000
    assert "".join(pieces).replace(" ", "") == ("Before." + "x" * 2500 + "after.")
