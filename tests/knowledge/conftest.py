"""Fixtures for the knowledge tests: a deterministic embedding, document builders, a fresh base."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from knowledge import KnowledgeBase
from knowledge.embeddings import Embedder


@register_embedding_function
class HashedWordsEmbedding(EmbeddingFunction[Documents]):
    """Bag of words hashed into 64 dimensions: texts sharing words are close, deterministically."""

    calls = 0

    def __init__(self, dimensions: int = 64) -> None:
        self.dimensions = dimensions

    @staticmethod
    def name() -> str:
        return "shepherd-test-hashed-words"

    def get_config(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashedWordsEmbedding:
        return HashedWordsEmbedding(int(config["dimensions"]))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        type(self).calls += len(texts)
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]{3,}", text.lower()):
                matrix[row, hashlib.md5(word.encode()).digest()[0] % self.dimensions] += 1.0
        norms = np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
        return matrix / norms

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))


def fake_embedder() -> Embedder:
    """An embedder over HashedWordsEmbedding, in its own collection."""
    return Embedder("test", "hashed words", "shepherd-test-hashed", HashedWordsEmbedding())


@pytest.fixture
def make_kb(tmp_path: Path) -> Callable[..., KnowledgeBase]:
    """Build knowledge bases over one data folder (call again to simulate a restart).

    Documents are named from the ``policies`` fixture's folder, as the bot names its policy
    folder's files (``sub/ethics.md``); pass ``documents_root`` for another folder.
    """

    def build(**kwargs: Any) -> KnowledgeBase:
        kwargs.setdefault("embedder", fake_embedder())
        kwargs.setdefault("documents_root", tmp_path / "policies")
        # The ranking tests are about one mechanism at a time; the glossary has its own tests.
        kwargs.setdefault("glossary", "none")
        return KnowledgeBase(tmp_path / "data", **kwargs)

    return build


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A folder of three small Markdown policies with front matter."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "privacy.md").write_text(
        "---\ntitle: Data protection\ntags: [privacy, risk]\ngates: [pilot, production]\n---\n"
        "# Data protection\n\n## Personal data\n\nPersonal data must be minimised and encrypted "
        "at rest. A data protection impact assessment is required before the pilot.\n\n"
        "## Retention\n\nLogs are kept for ninety days and then deleted.\n",
        encoding="utf-8",
    )
    (folder / "security.md").write_text(
        "---\ntags: [security]\ngates: [production]\n---\n# Security\n\n## Secrets\n\n"
        "Secrets live in the vault, never in source code or notebooks.\n\n## Penetration tests\n\n"
        "A penetration test is run before production launch.\n",
        encoding="utf-8",
    )
    (folder / "sub").mkdir()
    (folder / "sub" / "ethics.md").write_text(
        "# Ethics review\n\n## Board\n\nThe ethics board reviews chatbots that talk to "
        "customers and decides on disclosure wording.\n",
        encoding="utf-8",
    )
    return folder


def minimal_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page, built by hand."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids: list[str] = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        content_number = len(objects) + 2
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_number} 0 R ".encode()
            + b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 "
            b"/BaseFont /Helvetica >> >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def damaged_pdf(text: str) -> bytes:
    """A PDF that opens but whose page cannot be read: it draws at ``7 0 R``, an object
    reference where a number belongs (pypdf raises AssertionError, as on a real damaged file)."""
    return minimal_pdf([text]).replace(b"72 720 Td", b"7 0 R  Td")  # same length: /Length holds


def pdf_with_damaged_info(text: str) -> bytes:
    """A PDF with a readable page whose document information (/Info) is not a dictionary."""
    return minimal_pdf([text]).replace(b"/Root 1 0 R >>", b"/Root 1 0 R /Info 3 >>")


def damage_word_part(path: Path, part: str) -> None:
    """Break one XML part of a .docx (``word/document.xml``, ``docProps/core.xml``) as damaged
    files are broken: its main namespace misspelt, so python-docx reads the wrong elements."""
    import zipfile

    with zipfile.ZipFile(path) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    parts[part] = re.sub(
        rb"schemas.openxmlformats.org/(wordprocessingml|package)", rb"example.org/\1", parts[part]
    )
    with zipfile.ZipFile(path, "w") as damaged:
        for name, data in parts.items():
            damaged.writestr(name, data)


def pdf_with_outline(pages: Sequence[str], bookmarks: Sequence[tuple[str, int]]) -> bytes:
    """A PDF whose bookmarks (title, page index) name its sections."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(minimal_pdf(pages))))
    for title, page in bookmarks:
        writer.add_outline_item(title=title, page_number=page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word_document(path: Path) -> None:
    """A .docx with a title, two heading levels, a paragraph, a list item and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Model documentation", level=1)
    document.add_heading("Model cards", level=2)
    document.add_paragraph("Every model ships with a model card naming its owner.")
    document.add_paragraph("Owner and intended use", style="List Bullet")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Field"
    table.rows[0].cells[1].text = "Evaluation dataset"
    document.save(str(path))
