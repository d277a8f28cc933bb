"""The `shepherd knowledge` sub-app: ingest, search, eval, status, one-line errors."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli_knowledge import app
from tests.conftest import MODEL_DIR, require
from tests.fakes.openai_stub import OpenAIStub

from .conftest import minimal_pdf

runner = CliRunner()


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "--embeddings", "none", *args])
    return result.exit_code, result.output


def test_ingest_prints_a_summary_with_failures(tmp_path: Path, policies: Path) -> None:
    (policies / "broken.pdf").write_bytes(b"%PDF-1.4 junk")
    code, output = _run(tmp_path / "d", "ingest", str(policies))
    assert code == 1  # a script sees that a file failed; the others are indexed
    assert "4 files: 3 indexed" in output
    assert "broken.pdf" in output and "PDF" in output
    code, output = _run(tmp_path / "d", "ingest", str(policies), "--prune")
    assert "3 unchanged" in output and "0 removed" in output


def _encrypted_pdf(text: str, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(minimal_pdf([text]))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pdf_restricted_only_by_an_owner_password_is_ingested(tmp_path: Path) -> None:
    """It was refused as "encrypted PDF", although every viewer opens it without a password."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "published-policy.pdf").write_bytes(_encrypted_pdf("Secrets live in the vault", ""))
    (folder / "locked.pdf").write_bytes(_encrypted_pdf("Board minutes", "reader-secret"))
    code, output = _run(tmp_path / "d", "ingest", str(folder))
    assert code == 1  # the locked one
    assert "2 files: 1 indexed" in output
    assert "locked.pdf: password-protected PDF" in output
    code, output = _run(tmp_path / "d", "search", "where do secrets live", "-k", "1")
    assert "published-policy.pdf" in output


def test_search_json_lists_sources_sections_scores_texts_ids(
    tmp_path: Path, policies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHEPHERD_POLICIES", str(policies))  # named from the policy folder
    _run(tmp_path / "d", "ingest", str(policies))
    code, output = _run(tmp_path / "d", "search", "vault secrets", "-k", "2", "--json")
    assert code == 0
    hits = json.loads(output)
    assert hits[0]["source"] == "security.md"
    assert {"source", "section", "score", "text", "chunk_id"} <= set(hits[0])


def test_eval_reports_each_mode(tmp_path: Path, policies: Path) -> None:
    _run(tmp_path / "d", "ingest", str(policies))
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"q": "where are secrets kept?", "expect": ["Secrets"]}\n'
        '{"q": "how long are logs retained", "expect": ["privacy.md"]}\n'
    )
    code, output = _run(tmp_path / "d", "eval", str(questions), "--json")
    assert code == 0
    results = {item["mode"]: item for item in json.loads(output)}
    assert results["bm25"]["hit_at_k"] == 1.0
    assert results["vector"]["error"].startswith("vector search unavailable")


def test_eval_takes_several_files_and_reports_each(tmp_path: Path, policies: Path) -> None:
    _run(tmp_path / "d", "ingest", str(policies))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text('{"q": "where are secrets kept?", "expect": ["Secrets"]}\n')
    second.write_text(
        '{"q": "how long are logs retained", "expect": ["Retention"]}\n'
        '{"q": "who reviews chatbots", "expect": ["no such section"]}\n'
    )
    code, output = _run(tmp_path / "d", "eval", str(first), str(second), "--json")
    assert code == 0
    results = {(Path(item["file"]).name, item["mode"]): item for item in json.loads(output)}
    assert set(results) == {
        (name, mode) for name in ("first.jsonl", "second.jsonl") for mode in ("hybrid", "bm25", "vector")
    }
    assert results["first.jsonl", "bm25"]["hit_at_k"] == 1.0
    assert results["second.jsonl", "bm25"]["hit_at_k"] == 0.5
    assert results["second.jsonl", "bm25"]["questions"] == 2
    code, output = _run(tmp_path / "d", "eval", str(first), str(second))
    assert code == 0 and "first.jsonl (1)" in output and "second.jsonl (2)" in output


def test_eval_checks_every_file_before_searching(tmp_path: Path, policies: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text('{"q": "where are secrets kept?", "expect": ["Secrets"]}\n')
    bad.write_text("not json\n")
    code, output = _run(tmp_path / "d", "eval", str(good), str(bad))
    assert code == 1 and "bad.jsonl:1" in output and "Traceback" not in output


def test_bad_input_gives_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    code, output = _run(tmp_path / "d", "ingest", str(tmp_path / "missing"))
    assert code == 1 and "no such file or folder" in output and "Traceback" not in output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "no expectations"}\n')
    code, output = _run(tmp_path / "d", "eval", str(bad))
    assert code == 1 and "bad.jsonl:1" in output and "Traceback" not in output
    code, output = _run(tmp_path / "d", "search", "x", "--mode", "magic")
    assert code == 1 and "unknown mode" in output


def test_ask_refuses_fewer_than_one_passage_as_search_and_eval_do(tmp_path: Path, policies: Path) -> None:
    _run(tmp_path / "d", "ingest", str(policies))
    for k in ("0", "-3"):
        for command in (["search", "vault secrets"], ["ask", "where are secrets kept?"]):
            result = runner.invoke(
                app, ["--data-dir", str(tmp_path / "d"), "--embeddings", "none", *command, "-k", k]
            )
            assert result.exit_code == 2, (command, k, result.output)
            assert "greater than or equal to 1" in result.output and "do not cover" not in result.output


def _status(*options: str) -> tuple[int, str]:
    result = runner.invoke(app, [*options, "status"])
    assert result.exit_code == 0, result.output
    return result.exit_code, " ".join(result.output.split())


def _search_ids(*options: str) -> list[str]:
    result = runner.invoke(app, [*options, "search", "secrets in the vault", "--json"])
    assert result.exit_code == 0, result.output
    return [hit["chunk_id"] for hit in json.loads(result.output)]


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    """A running OpenAI-compatible stub serving /v1/embeddings."""
    with OpenAIStub() as running:
        yield running


def test_data_dir_and_embeddings_flags_keep_every_other_setting(
    tmp_path: Path, policies: Path, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flags used to drop the endpoint, model folder and Chroma server: another collection."""
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHEPHERD_EMBEDDINGS", "openai:stub-embed")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = runner.invoke(app, ["ingest", str(policies)])
    assert result.exit_code == 0, result.output
    _, expected = _status()
    assert re.search(r"\b[1-9]\d* chunks from 3 documents", expected)
    assert "embeddings openai stub-embed" in expected
    ids = _search_ids()
    store = str(tmp_path / "data" / "knowledge")
    for options in (["--data-dir", store], ["--embeddings", "openai:stub-embed"]):
        assert _status(*options)[1] == expected, options
        assert _search_ids(*options) == ids, options
    # A file ingested with the flags lands where the bot (no flags) searches.
    (policies / "more.md").write_text("# Vendors\n\nVendors sign the AI addendum.\n")
    result = runner.invoke(app, ["--data-dir", store, "ingest", str(policies)])
    assert "4 files: 1 indexed" in result.output
    assert "from 4 documents" in _status()[1]


def test_embeddings_auto_finds_the_configured_model_folder(
    tmp_path: Path, policies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(MODEL_DIR.exists(), f"local embedding model not found at {MODEL_DIR}")
    monkeypatch.setenv("SHEPHERD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHEPHERD_EMBEDDING_MODEL_DIR", str(MODEL_DIR))
    result = runner.invoke(app, ["ingest", str(policies)])
    assert result.exit_code == 0, result.output
    _, expected = _status()
    assert "from 3 documents" in expected and "hybrid, embeddings onnx" in expected
    store = str(tmp_path / "data" / "knowledge")
    for options in (
        ["--embeddings", "auto"],
        ["--data-dir", store],
        ["--data-dir", store, "--embeddings", "auto"],
    ):
        assert _status(*options)[1] == expected, options
        assert _search_ids(*options) == _search_ids(), options


def test_files_of_a_type_no_loader_reads_are_named_not_skipped_silently(
    tmp_path: Path, policies: Path
) -> None:
    """A governance lead who drops slides or an old Word file into the policy folder was told
    "3 files: 3 indexed" and never learnt that those two were not read at all."""
    (policies / "vendor-review.pptx").write_bytes(b"PK\x03\x04 slides")
    (policies / "old-policy.doc").write_bytes(b"\xd0\xcf\x11\xe0 Word 97")
    (policies / ".notes.pptx").write_bytes(b"PK\x03\x04 hidden, as hidden files are")
    # A Markdown policy's own images and a page's stylesheet are no policies left unread.
    (policies / "images").mkdir()
    (policies / "images" / "risk-matrix.PNG").write_bytes(b"\x89PNG\r\n")
    (policies / "site.css").write_text("body { margin: 0 }", encoding="utf-8")
    code, output = _run(tmp_path / "d", "ingest", str(policies))
    assert code == 0  # nothing failed: the readable policies are indexed
    assert "3 files: 3 indexed" in output and "2 not read" in output
    assert "old-policy.doc: unsupported file type .doc" in output
    assert "vendor-review.pptx: unsupported file type .pptx" in output
    assert ".notes.pptx" not in output
    assert "risk-matrix" not in output and "site.css" not in output


def test_ingest_without_prune_says_which_deleted_policies_are_still_searchable(
    tmp_path: Path, policies: Path
) -> None:
    """A governance lead withdraws a policy, ingests the folder again and read "2 files: 0
    indexed, 2 unchanged": nothing said that the withdrawn policy was still found and cited."""
    _run(tmp_path / "d", "ingest", str(policies))
    (policies / "security.md").unlink()
    code, output = _run(tmp_path / "d", "ingest", str(policies))
    assert code == 0
    assert "2 files: 0 indexed" in output
    assert "1 still searchable though gone" in output and "--prune" in output
    assert re.search(r"security\.md", output)
    code, output = _run(tmp_path / "d", "search", "vault secrets", "-k", "1")
    assert "security.md" in output  # as said: still there until --prune
    code, output = _run(tmp_path / "d", "ingest", str(policies), "--prune")
    assert "1 removed" in output and "still searchable" not in output


def test_search_that_finds_nothing_says_why_when_the_filter_or_the_store_is_the_cause(
    tmp_path: Path, policies: Path
) -> None:
    """ "No passages found." for a misspelt gate or tag, or before anything was ingested, read
    as "the policies do not cover this"."""
    code, output = _run(tmp_path / "d", "search", "vault secrets")
    assert code == 0
    assert "holds no documents yet" in output and "shepherd knowledge ingest" in output
    _run(tmp_path / "d", "ingest", str(policies))
    code, output = _run(tmp_path / "d", "search", "vault secrets", "--gate", "prodution")
    assert "No document is tagged for gate 'prodution'" in output
    assert "gates in use: pilot, production" in output
    code, output = _run(tmp_path / "d", "search", "vault secrets", "--tag", "secrity")
    assert "No document is tagged 'secrity'" in output and "tags in use: privacy, risk, security" in output
    code, output = _run(tmp_path / "d", "search", "vault secrets", "--gate", "PRODUCTION")
    assert "security.md" in output  # a known gate, in any case, still filters as before
    code, output = _run(tmp_path / "d", "search", "zebra giraffe")
    assert output.strip() == "No passages found."
