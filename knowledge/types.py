"""Values that cross the knowledge package's boundary: retrieved passages and answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved passage, with where it came from.

    Attributes:
        chunk_id: stable id of the chunk (same file + same heading trail + same text -> same id).
        source: the document's name: its path under the documents root (the policy folder),
            or its absolute path when it is elsewhere.
        section: the heading trail, for example ``Chapter III > Article 27``.
        text: the passage itself.
        score: fused retrieval score; higher is better, only comparable within one result list.
        tags: policy tags of the document (for example ``privacy``), possibly empty.
        gates: pipeline gate ids the document is tagged for (for example ``pilot``), possibly empty.
    """

    chunk_id: str
    source: str
    section: str
    text: str
    score: float
    tags: tuple[str, ...] = ()
    gates: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        """``source > section``, the way a reader finds the passage again."""
        return f"{self.source} > {self.section}" if self.section else self.source


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply to a policy question.

    Attributes:
        text: the reply; citations appear as ``[1]``, ``[2]`` and refer to ``hits`` in order.
        hits: the passages the reply may cite, numbered from 1.
        grounded: True when an LLM wrote the reply from the passages, False when the reply is
            the passages themselves (no LLM configured, or the LLM failed).
        covered: False when the policies do not cover the question.
    """

    text: str
    hits: tuple[Hit, ...] = field(default_factory=tuple)
    grounded: bool = False
    covered: bool = True
