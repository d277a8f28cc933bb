"""Policy knowledge: ingest governance documents and retrieve passages with citations.

The public facade is :class:`KnowledgeBase`; passages come back as :class:`Hit`.
"""

from knowledge.base import (
    SEARCH_MODES,
    IngestReport,
    KnowledgeBase,
    KnowledgeError,
    KnowledgeStatus,
    SearchMode,
)
from knowledge.types import Answer, Hit

__all__ = [
    "SEARCH_MODES",
    "Answer",
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeStatus",
    "SearchMode",
]
