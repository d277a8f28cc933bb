"""Cut sections into retrieval-sized chunks on paragraph boundaries, with stable ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge.loaders import LoadedDocument

TRAIL_SEPARATOR = " > "
# Measured on the shared corpus (see benchmarks/bench_knowledge.py): about 1,000 characters
# keeps a chunk under MiniLM's 256-token window with its heading trail in front.
DEFAULT_CHUNK_CHARS = 1000
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
# A numbered point alone on its line, "(12)", as legal texts number their recitals.
_NUMBERED_POINT = re.compile(r"^[ \t]*\((\d{1,4})\)[ \t]*$", re.MULTILINE)
# A section is an enumeration worth splitting only when it has many such points: a handful
# of "(1)" lines in an amending article are list items, 180 in a preamble are recitals.
_MIN_NUMBERED_POINTS = 10
_RECITAL_SECTION = re.compile(r"whereas|preamble|recital", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage ready to index."""

    chunk_id: str
    source: str
    section: str
    text: str
    position: int
    context: str = ""

    @property
    def indexed_text(self) -> str:
        """What BM25 and the embedding model see: the heading trail, then the passage."""
        return indexed_text(self.section, self.text, self.context)


def indexed_text(section: str, text: str, context: str = "") -> str:
    """The heading trail (and lead context) in front of the passage, so that a chunk knows
    what it is about: this is what lifts retrieval over indexing bare passages."""
    head = "\n".join(part for part in (section, context) if part)
    return f"{head}\n\n{text}" if head else text


def chunk_id(source: str, section: str, text: str, occurrence: int) -> str:
    """Stable id: the same file, heading trail and text always give the same id."""
    digest = hashlib.sha256(f"{source}\x1f{section}\x1f{text}\x1f{occurrence}".encode())
    return digest.hexdigest()[:24]


def _hard_split(paragraph: str, limit: int) -> list[str]:
    """Split an over-long paragraph on sentences, then lines, then words."""
    pieces = _SENTENCE_END.split(paragraph)
    if len(pieces) == 1:
        pieces = paragraph.split("\n")
    out: list[str] = []
    current = ""
    for piece in pieces:
        if len(piece) > limit:
            # A word longer than a chunk (a long URL, a language written without spaces) is
            # cut: one piece must never exceed what an embedding model reads.
            words = [
                word[start : start + limit]
                for word in piece.split(" ")
                for start in range(0, len(word) or 1, limit)
            ]
            piece_parts: list[str] = []
            buf = ""
            for word in words:
                if buf and len(buf) + 1 + len(word) > limit:
                    piece_parts.append(buf)
                    buf = word
                else:
                    buf = f"{buf} {word}" if buf else word
            if buf:
                piece_parts.append(buf)
        else:
            piece_parts = [piece]
        for part in piece_parts:
            if current and len(current) + 1 + len(part) > limit:
                out.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        out.append(current)
    return out


def split_text(text: str, target: int = DEFAULT_CHUNK_CHARS) -> list[str]:
    """Pack paragraphs into pieces of about ``target`` characters, never cutting a paragraph
    that fits; a short last piece joins the one before it when the pair stays reasonable."""
    paragraphs: list[str] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        paragraphs.extend([paragraph] if len(paragraph) <= target else _hard_split(paragraph, target))
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in paragraphs:
        if current and size + 2 + len(paragraph) > target:
            pieces.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph)
        size += len(paragraph) + (2 if size else 0)
    if current:
        tail = "\n\n".join(current)
        if pieces and len(tail) < target // 4 and len(pieces[-1]) + len(tail) <= target * 1.25:
            pieces[-1] = f"{pieces[-1]}\n\n{tail}"
        else:
            pieces.append(tail)
    return pieces


def numbered_parts(trail: str, text: str) -> list[tuple[str, str]]:
    """Split a long enumeration of numbered points into one part per point, each with its own
    trail (``Preamble > Recital 12``), so that a citation names the point, and one point
    counts as one section when results are collapsed per section.

    Text that is not such an enumeration comes back whole, as ``[(trail, text)]``.
    """
    pieces = _NUMBERED_POINT.split(text)
    if (len(pieces) - 1) // 2 < _MIN_NUMBERED_POINTS:
        return [(trail, text)]
    label = "Recital {}" if _RECITAL_SECTION.search(trail) else "({})"
    parts = [(trail, pieces[0])] if pieces[0].strip() else []
    for number, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if body.strip():
            name = label.format(number)
            parts.append((f"{trail}{TRAIL_SEPARATOR}{name}" if trail else name, body))
    return parts


def chunk_document(document: LoadedDocument, source: str, target: int = DEFAULT_CHUNK_CHARS) -> list[Chunk]:
    """All chunks of one document, in reading order."""
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in document.sections:
        for trail, body in numbered_parts(TRAIL_SEPARATOR.join(section.trail), section.text):
            chunks.extend(_section_chunks(source, trail, body, section.context, target, seen, len(chunks)))
    return chunks


def _section_chunks(
    source: str, trail: str, text: str, context: str, target: int, seen: dict[str, int], start: int
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for piece in split_text(text, target):
        key = f"{trail}\x1f{piece}"
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        chunks.append(
            Chunk(
                chunk_id=chunk_id(source, trail, piece, occurrence),
                source=source,
                section=trail,
                text=piece,
                position=start + len(chunks),
                context=context,
            )
        )
    return chunks


def total_chars(chunks: Iterable[Chunk]) -> int:
    """Characters of passage text, for reports."""
    return sum(len(chunk.text) for chunk in chunks)
