"""BM25 over the stored chunks: tokenising, a light stemmer, and a rebuildable index."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import bm25s
import numpy as np
import numpy.typing as npt

# Numbers keep their dots ("1.6", "2024/1689" stays in parts) so "GOVERN 1.6" matches exactly.
# A word is letters and digits of any script: policies are written in French or German too,
# and "évaluation" cut to "valuation" would match an English page on asset valuation.
_TOKEN = re.compile(r"[^\W_]+(?:\.[0-9]+)*")
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves shall may must also us we're i'm what's how's do don't need needs"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_VOWELS = frozenset("aeiouy")
# Singular words ending in "s" that the plural rule would cut ("bias" -> "bia", apart from
# "biases" and "biased" -> "bias").
_SINGULAR_S = frozenset({"bias", "alias", "atlas", "canvas", "lens", "news", "series", "species"})


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light English stemmer: folds plurals and common verb endings, nothing clever.

    A final "e" is dropped and a doubled final consonant undone after a suffix, so that the
    forms of one verb meet: "score", "scores", "scored", "scoring" all give "scor", "plan" and
    "planned" give "plan".
    """
    if len(word) <= 3 or not word.isalpha() or word in _SINGULAR_S:
        return word
    for suffix, replacement in (
        ("ies", "y"),
        ("ied", "y"),
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
                return _trim(word)
            if suffix == "es" and not word.endswith(("ches", "shes", "xes", "zes", "sses")):
                return _trim(word[:-1])
            base = word[: len(word) - len(suffix)] + replacement
            if suffix in ("ing", "ed", "ingly", "edly") and not _VOWELS & set(base):
                return word
            if (
                suffix in ("ing", "ed")
                and len(base) >= 4
                and base[-1] == base[-2]
                and base[-1] not in "lsz"
                and base[-1] not in _VOWELS
            ):
                base = base[:-1]
            return _trim(base)
    return _trim(word)


def _trim(word: str) -> str:
    """Without a final silent "e" ("require" -> "requir"), as its suffixed forms lose it."""
    return word[:-1] if len(word) >= 4 and word.endswith("e") and not word.endswith("ee") else word


def tokenize(text: str) -> list[str]:
    """Case-folded, stop words removed, lightly stemmed tokens.

    NFKC first: text copied out of a PDF keeps its ligatures ("ﬁ" in "classiﬁcation") and a
    file saved on a Mac may spell "ä" as "a" plus a combining mark; both must read as the
    words a person types. Case folding makes "ß" and "ss" one spelling.
    """
    words = _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())
    return [stem(token) for token in words if token not in STOPWORDS]


@dataclass(frozen=True)
class LexicalIndex:
    """BM25 over a fixed list of texts, with an optional second field for their titles.

    The title field (the heading trail) is scored on its own and added with a weight: in the
    body a trail's words compete with a passage's hundreds of words, on their own they say what
    the passage is about. Rebuilt, never updated, when the chunks change.
    """

    model: bm25s.BM25 | None
    size: int
    titles: bm25s.BM25 | None = None
    title_weight: float = 0.0

    @classmethod
    def build(
        cls, texts: Sequence[str], titles: Sequence[str] | None = None, title_weight: float = 0.0
    ) -> LexicalIndex:
        """Index ``texts`` (and ``titles``, one per text); position i in scores is texts[i]."""
        if not texts:
            return cls(None, 0)
        title_model = None
        if titles is not None and title_weight > 0:
            if len(titles) != len(texts):
                raise ValueError("one title per text")
            title_model = _bm25([tokenize(title) or ["\x00"] for title in titles])
        return cls(
            _bm25([tokenize(text) or ["\x00"] for text in texts]), len(texts), title_model, title_weight
        )

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 score of every text for ``query`` (zeros when no term matches)."""
        if self.model is None:
            return np.zeros(0, dtype=np.float32)
        terms = tokenize(query)
        total = _scores(self.model, terms, self.size)
        if self.titles is not None:
            total += np.float32(self.title_weight) * _scores(self.titles, terms, self.size)
        return total


def _bm25(corpus: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25()
    model.index(corpus, show_progress=False)
    return model


def _scores(model: bm25s.BM25, terms: Sequence[str], size: int) -> npt.NDArray[np.float32]:
    known = [term for term in terms if term in model.vocab_dict]
    if not known:
        return np.zeros(size, dtype=np.float32)
    return np.asarray(model.get_scores(known), dtype=np.float32)
