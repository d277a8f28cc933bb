"""Retrieval quality: hit@k and MRR over a set of questions with expected citations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from knowledge.base import KnowledgeBase, KnowledgeError, SearchMode
from knowledge.types import Hit


@dataclass(frozen=True, slots=True)
class Question:
    """A question and the citations (substrings of a hit's source or section) that answer it."""

    q: str
    expect: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Scores of one search mode; ``error`` is set when the mode could not run."""

    mode: str
    k: int
    questions: int
    hit_at_k: float
    mrr: float
    misses: tuple[str, ...] = ()
    error: str | None = None


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL file of ``{"q": ..., "expect": [...]}`` lines (blank lines allowed).

    Raises:
        KnowledgeError: the file is missing or a line is not such an object.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise KnowledgeError(f"cannot read questions file {path}: {error}") from error
    questions: list[Question] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise KnowledgeError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        expect = item.get("expect") if isinstance(item, dict) else None
        if isinstance(expect, str):
            expect = [expect]
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("q"), str)
            or not item["q"].strip()
            or not isinstance(expect, list)
            or not expect
            or not all(isinstance(e, str) and e for e in expect)
        ):
            raise KnowledgeError(
                f'{path}:{number}: expected {{"q": "question", "expect": ["citation", ...]}}'
            )
        questions.append(Question(item["q"], tuple(expect)))
    if not questions:
        raise KnowledgeError(f"{path}: no questions")
    return questions


def matches(hit: Hit, expectations: Sequence[str]) -> bool:
    """True when any expectation is a case-insensitive substring of the hit's source or section."""
    haystack = f"{hit.source}\n{hit.section}".casefold()
    return any(expected.casefold() in haystack for expected in expectations)


def evaluate(
    kb: KnowledgeBase,
    questions: Sequence[Question],
    k: int = 5,
    modes: Sequence[SearchMode] = ("hybrid", "bm25", "vector"),
) -> list[EvalResult]:
    """hit@k (share of questions with a matching hit in the top k) and MRR, per mode."""
    results: list[EvalResult] = []
    for mode in modes:
        hits_found = 0
        reciprocal = 0.0
        misses: list[str] = []
        try:
            for question in questions:
                hits = kb.search(question.q, k=k, mode=mode)
                rank = next((i for i, hit in enumerate(hits, 1) if matches(hit, question.expect)), 0)
                if rank:
                    hits_found += 1
                    reciprocal += 1.0 / rank
                else:
                    misses.append(question.q)
        except KnowledgeError as error:
            results.append(EvalResult(mode, k, len(questions), 0.0, 0.0, error=str(error)))
            continue
        total = len(questions)
        results.append(EvalResult(mode, k, total, hits_found / total, reciprocal / total, tuple(misses)))
    return results
