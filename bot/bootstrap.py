"""Assemble Shepherd's services from settings: the one place where packages meet.

``bootstrap(settings)`` loads the pipeline, opens the database (migrating the embedded SQLite
by itself), opens the knowledge base and the LLM, and returns them as ``Services``. Listeners
and CLI commands receive ``Services``; nothing else constructs these objects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bot.answering import AnswerPool
from bot.blocks.operations import load_checked_pipeline
from bot.settings import Settings
from bot.usergroups import GroupRoles
from gates import usecases
from gates.loader import CompiledPipeline
from knowledge import IngestReport, KnowledgeBase
from knowledge.answers import Answerer, build_llm
from knowledge.policy_pack import POLICY_DIR
from storage.database import Database, require_sqlite_file
from storage.errors import DatabaseUnavailable
from storage.group_commit import GroupCommit
from storage.inbox import InboxWriter
from storage.uow import SqlUnitOfWork

logger = logging.getLogger("shepherd")
_WRITERS_LOCK = threading.Lock()  # creates the inbox and page writers and the answer pool once, on first use
_KNOWLEDGE_LOCK = threading.Lock()  # opens the policy store once, on first use
# How long a policy store that could not open stays closed before the next question tries again.
KNOWLEDGE_RETRY_SECONDS = 60.0


class PageWriter(Protocol):
    """Writes questionnaire pages: ``storage.group_commit.GroupCommit`` in this process, or
    ``bot.page_writer.PageWriterChild``."""

    def submit(self, item: usecases.PageOfAnswers) -> Future[usecases.AnswerResult]: ...

    def close(self, timeout: float = ...) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a listener or command needs, built once per process."""

    settings: Settings
    pipeline: CompiledPipeline
    database: Database
    answerer: Answerer
    knowledge_factory: Callable[[], KnowledgeBase | None] = field(repr=False)
    clock: Callable[[], datetime] = utc_now
    # Who is in each role's Slack user group, remembered for a few minutes (``bot.usergroups``).
    group_roles: GroupRoles = field(default_factory=GroupRoles, repr=False)
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    # When the next question may (try to) open the policy store (time.monotonic()): at once, then
    # never once it is open, or a while after it could not open.
    _knowledge_retry_at: float = field(default=float("-inf"), repr=False)
    _inbox: InboxWriter | None = field(default=None, repr=False)
    _pages: PageWriter | None = field(default=None, repr=False)
    _answers: AnswerPool | None = field(default=None, repr=False)
    policy_ingests: list[IngestReport] = field(default_factory=list, repr=False)
    """What ingesting the policy folder did when the knowledge base opened (for `shepherd run`)."""

    @property
    def inbox(self) -> InboxWriter:
        """Where listeners store requests to be applied after the ack (``storage.inbox``)."""
        if self._inbox is None:
            with _WRITERS_LOCK:
                if self._inbox is None:
                    self._inbox = InboxWriter(self.database, clock=self)
        return self._inbox

    @property
    def pages(self) -> PageWriter:
        """Where questionnaire pages are recorded: pages saved at the same moment share one
        transaction (``usecases.answer_many``), and each caller waits for its own. In this
        process unless ``write_pages_with`` gave another writer."""
        if self._pages is None:
            with _WRITERS_LOCK:
                if self._pages is None:
                    self._pages = GroupCommit(self.record_pages, name="shepherd-page-writer")
        return self._pages

    def write_pages_with(self, writer: PageWriter) -> None:
        """From now on, pages go to ``writer`` (``bot.page_writer``); set before serving."""
        with _WRITERS_LOCK:
            self._pages = writer

    @property
    def answers(self) -> AnswerPool:
        """The threads that answer questions (``bot.answering``), stopped with the process."""
        if self._answers is None:
            with _WRITERS_LOCK:
                if self._answers is None:
                    self._answers = AnswerPool(self.settings.ask_workers)
        return self._answers

    def record_pages(
        self, pages: Sequence[usecases.PageOfAnswers]
    ) -> Sequence[usecases.AnswerResult | BaseException]:
        """Write a batch of pages in one transaction: one outcome per page, in order."""
        try:
            return usecases.answer_many(self.uow(), pages)
        except DatabaseUnavailable:
            raise  # down or locked for everyone: trying each page again would only pile up waits
        except Exception:
            if len(pages) == 1:
                raise
        # One page's failure (a lost race on an answer's version number, say) must not fail
        # the pages saved beside it: each is tried again alone.
        outcomes: list[usecases.AnswerResult | BaseException] = []
        for page in pages:
            try:
                outcomes.extend(usecases.answer_many(self.uow(), [page]))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    def uow(self) -> SqlUnitOfWork:
        """A fresh unit of work: listeners run on a thread pool, so never share one."""
        return self.database.uow()

    def read_uow(self) -> SqlUnitOfWork:
        return self.database.uow(read_only=True)

    def now(self) -> datetime:
        return self.clock()

    @property
    def knowledge(self) -> KnowledgeBase | None:
        """Opened on first use: the checklist must work even when the policy store cannot open.

        Questions asked while the first one opens it (and ingests the policies, seconds) wait for
        it: marked open before it was, they were told no policy passage matched them. A store
        that could not open (a Chroma server down) is tried again at most every
        ``KNOWLEDGE_RETRY_SECONDS``, so guidance comes back without a restart.
        """
        if self._knowledge is None and time.monotonic() >= self._knowledge_retry_at:
            with _KNOWLEDGE_LOCK:
                if self._knowledge is None and time.monotonic() >= self._knowledge_retry_at:
                    try:
                        self._knowledge = self.knowledge_factory()
                    finally:
                        self._knowledge_retry_at = time.monotonic() + KNOWLEDGE_RETRY_SECONDS
        return self._knowledge


def open_database(settings: Settings, *, migrate_sqlite: bool = True, existing: bool = False) -> Database:
    """Open the database; the embedded SQLite is migrated here, PostgreSQL by ``shepherd db upgrade``.

    Args:
        existing: refuse a SQLite file named by ``SHEPHERD_DATABASE_URL`` that does not exist,
            rather than create it (the commands that only read or change initiatives).

    Raises:
        StorageError: one readable line when it cannot be reached or its schema is newer.
    """
    if existing and settings.database_url:
        # The embedded default in the data directory is created on first use.
        require_sqlite_file(settings.database_url, "SHEPHERD_DATABASE_URL")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if database.is_sqlite and migrate_sqlite:
        database.upgrade()
    database.check()
    return database


def knowledge_base(
    settings: Settings, *, data_dir: Path | None = None, embeddings: str | None = None
) -> KnowledgeBase:
    """The policy store the bot searches, as ``settings`` describe it; the one place it is built.

    Documents are named by their path under the policy folder (``SHEPHERD_POLICIES``, else the
    bundled pack), any other file by its absolute path.

    Args:
        data_dir: where the embedded store lives, instead of ``knowledge`` in the data folder.
        embeddings: instead of ``settings.embeddings``; the model folder, Chroma server and
            OpenAI-compatible endpoint still come from ``settings``.

    Raises:
        KnowledgeError: the store or the glossary cannot be opened.
    """
    return KnowledgeBase(
        data_dir if data_dir is not None else settings.data_dir / "knowledge",
        embeddings=embeddings if embeddings is not None else settings.embeddings,
        chroma_url=settings.chroma_url,
        openai_base_url=settings.openai_base_url,
        openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        onnx_model_dir=settings.embedding_model_dir,
        glossary=settings.glossary,
        documents_root=policy_folder(settings),
    )


def open_knowledge(settings: Settings, reports: list[IngestReport] | None = None) -> KnowledgeBase | None:
    """The policy knowledge base, or None (logged once) when its store cannot be opened.

    Args:
        reports: receives the report of ingesting the policy folder, when that succeeds.
    """
    from knowledge.base import KnowledgeError

    try:
        knowledge = knowledge_base(settings)
    except KnowledgeError as error:
        logger.warning("Policy guidance is unavailable: %s", error)
        return None
    # Every process brings the store up to date with the policy folder; unchanged files are
    # skipped by content hash, so after the first start this costs a directory scan. The bot
    # owns that folder: a policy deleted or renamed there must stop being cited, so it is
    # pruned, and when SHEPHERD_POLICIES names another folder than the last start, the old
    # folder's policies are removed. Documents the CLI ingested from other folders stay. A
    # store that has not recorded its folder yet was filled from the bundled pack, if from any.
    folder = policy_folder(settings)
    try:
        report = knowledge.ingest_policy_folder(folder, previous=POLICY_DIR)
    except KnowledgeError as error:
        logger.warning("Could not ingest the policy folder: %s", error)
    except Exception:
        # A file that cannot be read is one failed file (knowledge.loaders); anything else
        # going wrong here must still not take away the policies indexed before.
        logger.exception("Could not ingest the policy folder %s; serving what was indexed before", folder)
    else:
        for path, reason in report.failed:
            logger.warning("Policy file skipped: %s (%s)", path, reason)
        for path, reason in report.unsupported:
            logger.warning("Policy file not read: %s (%s)", path, reason)
        if report.removed:
            logger.info("Removed %d policy documents no longer in %s", report.removed, folder)
        if reports is not None:
            reports.append(report)
    return knowledge


def policy_folder(settings: Settings) -> Path:
    return settings.policies_dir or POLICY_DIR


def build_answerer(settings: Settings) -> Answerer:
    llm = build_llm(
        settings.openai_base_url,
        settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        settings.llm_model,
    )
    return Answerer(llm)


def bootstrap(
    settings: Settings | None = None, *, database: Database | None = None, existing_database: bool = False
) -> Services:
    """Build the services for one process.

    Args:
        existing_database: see ``open_database(existing=...)``.

    Raises:
        PipelineError: the pipeline file has problems (each listed).
        StorageError: the database cannot be used.
    """
    settings = settings or Settings()
    pipeline = load_checked_pipeline(settings.pipeline)
    reports: list[IngestReport] = []
    return Services(
        settings=settings,
        pipeline=pipeline,
        database=database or open_database(settings, existing=existing_database),
        answerer=build_answerer(settings),
        knowledge_factory=lambda: open_knowledge(settings, reports),
        policy_ingests=reports,
    )
