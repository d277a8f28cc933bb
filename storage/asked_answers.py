"""Answers Shepherd gave, kept under their feedback key, so a vote is recorded with its answer.

A vote on an answer (Helpful / Not helpful) carries only the key its buttons hold. Slack sends the
message it was clicked on with the click, except for an ephemeral message (``/shepherd ask``
answers privately): then nothing of the answer comes along. So each answer is kept here when it
is posted: the question, the answer's text and the sources it cited. Answers posted before this
table existed are not here; the vote says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from storage.dialect import insert_ignoring_conflicts
from storage.models import Base, UTCDateTime
from storage.sqlerrors import guarded
from storage.tables import table_of

if TYPE_CHECKING:
    from storage.database import Database

# Enough for what a review of the feedback reads; the answer as shown may be longer.
MAX_KEPT_TEXT = 4000
MAX_KEY = 100
"""A feedback key as the vote reads it from a button's value (``bot.listeners.actions``)."""


class AskedAnswerRow(Base):
    __tablename__ = "asked_answers"

    key: Mapped[str] = mapped_column(String(MAX_KEY), primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    sources: Mapped[Any] = mapped_column(JSON)
    """The citations of the passages the answer could cite, numbered from 1 as shown."""
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


asked_answers = table_of(AskedAnswerRow)


@dataclass(frozen=True)
class AskedAnswer:
    """One answer as it was given."""

    question: str
    answer: str
    sources: tuple[str, ...]
    posted_at: datetime


class AskedAnswers:
    def __init__(self, database: Database) -> None:
        self._database = database

    @guarded
    def keep(self, key: str, question: str, answer: str, sources: Sequence[str], at: datetime) -> None:
        """Keep an answer under its feedback key (a key given twice keeps the first)."""
        table = asked_answers
        row = {
            "key": key[:MAX_KEY],
            "question": question[:MAX_KEPT_TEXT],
            "answer": answer[:MAX_KEPT_TEXT],
            "sources": [source[:500] for source in sources],
            "posted_at": at,
        }
        with self._database.session() as session:
            session.execute(insert_ignoring_conflicts(session, table, row))
            session.commit()

    @guarded
    def get(self, key: str) -> AskedAnswer | None:
        """The answer kept under ``key``, or None (posted before answers were kept, or unknown)."""
        table = asked_answers
        with self._database.session(read_only=True) as session:
            found = session.execute(
                select(table.c.question, table.c.answer, table.c.sources, table.c.posted_at).where(
                    table.c.key == key[:MAX_KEY]
                )
            ).first()
        if found is None:
            return None
        return AskedAnswer(found.question, found.answer, tuple(found.sources or ()), found.posted_at)
