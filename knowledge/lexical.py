"""BM25 over the stored chunks: tokenising, a light stemmer, and a rebuildable index."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import numpy.typing as npt

# Numbers keep their dots ("1.6", "2024/1689" stays in parts) so "GOVERN 1.6" matches exactly.
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)*")
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves shall may must also us we're i'm what's how's do don't need needs"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def stem(word: str) -> str:
    """A light English stemmer: folds plurals and common verb endings, nothing clever."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ingly", ""),
        ("edly", ""),
        ("ing", ""),
        ("ed", ""),
        ("es", "e"),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            if suffix == "es" and not word.endswith(("ches", "shes", "xes", "zes", "sses")):
                return word[:-1]
            return word[: len(word) - len(suffix)] + replacement
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words removed, lightly stemmed tokens."""
    return [stem(token) for token in _TOKEN.findall(text.lower()) if token not in STOPWORDS]


@dataclass(frozen=True)
class LexicalIndex:
    """BM25 over a fixed list of texts; rebuilt, never updated, when the chunks change."""

    model: bm25s.BM25 | None
    size: int

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """Index ``texts``; position i in scores is texts[i]."""
        if not texts:
            return cls(None, 0)
        model = bm25s.BM25()
        model.index([tokenize(text) or ["\x00"] for text in texts], show_progress=False)
        return cls(model, len(texts))

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 score of every text for ``query`` (zeros when no term matches)."""
        if self.model is None:
            return np.zeros(0, dtype=np.float32)
        tokens = [token for token in tokenize(query) if token in self.model.vocab_dict]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)
