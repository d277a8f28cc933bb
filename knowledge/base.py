"""The knowledge base: incremental ingestion into Chroma and hybrid (BM25 + vector) search.

Where state lives, and why:

- Chroma holds everything: one collection per embedding model (switching models never mixes
  vectors), each chunk with its text and metadata (source, heading trail, tags, gates, the hash
  of the file it came from and how many chunks that file produced).
- The ingestion manifest is *derived from those chunk metadata*, not kept beside them: a file
  is unchanged when all its stored chunks carry its current hash and their count is complete.
  A separate JSON or SQLite manifest could disagree with the chunks after a crash mid-ingest,
  and would not be shared when several processes use one Chroma server.
- The BM25 index is rebuilt in memory from the stored chunks whenever the collection's
  revision stamp (collection metadata, changed by every ingest that writes) differs from the
  one it was built from; nothing else needs to be kept. An embedded store is then opened
  again too, as embedded Chroma never reads another process's vectors into its own index.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt
from chromadb.errors import InvalidArgumentError, NotFoundError

from knowledge.chunking import (
    DEFAULT_CHUNK_CHARS,
    TRAIL_SEPARATOR,
    Chunk,
    chunk_document,
    indexed_text,
)
from knowledge.embeddings import (
    Embedder,
    EmbeddingUnavailableError,
    configured_embedder,
    lexical_embedder,
    probe,
)
from knowledge.glossary import GlossaryError, load_glossary
from knowledge.lexical import LexicalIndex
from knowledge.loaders import (
    LoadError,
    iter_supported_files,
    iter_unsupported_files,
    load_bytes,
    unsupported_reason,
)
from knowledge.types import Hit

logger = logging.getLogger("shepherd.knowledge")

SearchMode = Literal["hybrid", "bm25", "vector"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "bm25", "vector")
Progress = Callable[[int, int, str], None]

_REVISION_KEY = "shepherd_revision"
# The folder the bot ingests as its policies (``ingest_policy_folder``), kept so that pointing it
# at another folder removes what the previous one brought.
_POLICY_FOLDER_KEY = "shepherd_policy_folder"
# The model the stored vectors came from, and their size: vectors of another size cannot be
# searched (or added) in the same collection.
_MODEL_KEY = "shepherd_model"
_DIMENSIONS_KEY = "shepherd_dimensions"
# Fusion settings chosen on the development questions only (benchmarks/data/eval_dev.jsonl,
# 84 questions over the shared corpus, MiniLM), never on the held-out set: with results
# collapsed per section, k=10 over the top 40 of each ranking, BM25 at 0.7 of the vectors'
# weight, gave hit@5 0.917 / MRR 0.785, against 0.893 / 0.765 with k=60 over the top 20.
# A small k lets the first few ranks of each list count for more than a long tail.
_RRF_K = 10
_FUSION_DEPTH = 40
_BM25_WEIGHT = 0.7
_VECTOR_WEIGHT = 1.0
# The heading trail as a BM25 field of its own, added at this weight to the body score
# (dev MRR 0.767 -> 0.785).
_TITLE_WEIGHT = 0.3
# Document-type priors: (pattern over "file name\nsection", factor on the fused score). Recitals
# explain a regulation, its articles oblige; a team asking "do we have to" wants the article.
# Recitals are about a fifth of the shared corpus and share every word of the articles they
# explain: halving their fused score lifted dev MRR from 0.677 to 0.761 at the same hit@5.
# A table of contents names every topic and says nothing about any: its entries were in the top
# five of 5 of the 12 questions missed in a second development set
# (benchmarks/data/eval_dev2.jsonl, 45 questions). Halving it: eval_dev2 hybrid hit@5 0.733 ->
# 0.756, MRR 0.589 -> 0.615; eval_dev 0.964 -> 0.976, MRR 0.798 -> 0.809 (a quarter: no better).
DEFAULT_PRIORS: tuple[tuple[str, float], ...] = (
    (r"preamble|recital|whereas", 0.5),
    (r"table[ _-]of[ _-]contents", 0.5),
)
# A heading found in this many documents ("About", "Suggested Actions") is part of a template,
# not a topic: results are collapsed at the heading above it, one hit per NIST subcategory
# rather than one per "About" (dev hit@5 unchanged at 0.917, BM25 0.702 -> 0.714, vectors
# 0.869 -> 0.881).
_TEMPLATE_HEADING_SOURCES = 3
_WRITE_BATCH = 256
# Chunk metadata keys written only when the document has them.
_OPTIONAL_METADATA = ("context", "tags", "gates")
_REVISION_CHECK_SECONDS = 0.5
# How long an embedding model that could not run is left alone before a search tries it again.
MODEL_RETRY_SECONDS = 60.0


class KnowledgeError(Exception):
    """A request the knowledge base cannot carry out; ``str(error)`` is for a person."""


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingestion run did.

    Attributes:
        files: supported files found in the given paths.
        chunks: chunks written for new or changed files.
        skipped: files unchanged since the last run (not read beyond their hash).
        failed: (source, reason) for every file that could not be read; it was skipped.
        seconds: wall time of the run.
        indexed: files (re)indexed in this run.
        removed: files whose chunks were removed because they are gone (``prune``) or came from
            a folder another replaced (``replaces``).
        renamed: files that were stored under another name too (a name relative to the folder
            given, as ingestion named documents before): those copies were removed, and their
            vectors reused for the file's own name.
        unsupported: (source, reason) for every file in a given folder of a type no loader
            reads (slides, a legacy ``.doc``): not counted in ``files`` nor a failure, but named,
            as whoever put it there expects it to be read.
        gone: documents stored from a given folder whose file is no longer there, kept (and
            still cited) because ``prune`` was not asked.
    """

    files: int
    chunks: int
    skipped: int
    failed: list[tuple[str, str]]
    seconds: float
    indexed: int = 0
    removed: int = 0
    renamed: int = 0
    unsupported: list[tuple[str, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KnowledgeStatus:
    """What the knowledge base holds and how it searches."""

    chunks: int
    documents: int
    embeddings: str
    lexical_only: bool
    reason: str | None
    collection: str
    store: str
    tags: tuple[str, ...] = ()  # the tags and gates documents carry, case-folded, sorted
    gates: tuple[str, ...] = ()


@dataclass
class _FileState:
    path: str  # the file the chunks came from, absolute
    hashes: set[str] = field(default_factory=set)
    expected: int = -1
    ids: list[str] = field(default_factory=list)

    def is_current(self, digest: str) -> bool:
        return self.hashes == {digest} and self.expected == len(self.ids)


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of the collection for lexical search and for building hits."""

    revision: str
    ids: list[str]
    metadatas: list[Mapping[str, Any]]
    texts: list[str]
    index: LexicalIndex
    by_tag: dict[str, npt.NDArray[np.bool_]]
    by_gate: dict[str, npt.NDArray[np.bool_]]
    position: dict[str, int]
    groups: npt.NDArray[np.int64]
    priors: npt.NDArray[np.float64]

    @classmethod
    def build(
        cls,
        revision: str,
        ids: list[str],
        metadatas: list[Mapping[str, Any]],
        texts: list[str],
        priors: Sequence[tuple[re.Pattern[str], float]] = (),
    ) -> _Snapshot:
        by_tag: dict[str, npt.NDArray[np.bool_]] = {}
        by_gate: dict[str, npt.NDArray[np.bool_]] = {}
        for row, metadata in enumerate(metadatas):
            for key, table in (("tags", by_tag), ("gates", by_gate)):
                for value in _as_strings(metadata.get(key)):
                    table.setdefault(value.casefold(), np.zeros(len(ids), dtype=np.bool_))[row] = True
        index = LexicalIndex.build(
            [
                indexed_text(str(m.get("section", "")), text, str(m.get("context", "")))
                for m, text in zip(metadatas, texts, strict=True)
            ],
            titles=[str(m.get("section", "")) for m in metadatas],
            title_weight=_TITLE_WEIGHT,
        )
        group_of: dict[tuple[str, str], int] = {}
        groups = np.zeros(len(ids), dtype=np.int64)
        factors = np.ones(len(ids), dtype=np.float64)
        template = _template_headings(metadatas)
        # (source, trail) of every heading with text of its own.
        with_text = {(str(m.get("source", "")), str(m.get("section", ""))) for m in metadatas}
        for row, metadata in enumerate(metadatas):
            source, section = str(metadata.get("source", "")), str(metadata.get("section", ""))
            unit = (source, _collapsed_trail(source, section, template, with_text))
            groups[row] = group_of.setdefault(unit, len(group_of))
            # The file's own name, not the folders above it: a document outside the documents
            # root is named by its absolute path, and a folder called "recitals" (or a test
            # named after them) must not halve everything in it.
            name = source.rsplit("/", 1)[-1]
            for pattern, factor in priors:
                if pattern.search(f"{name}\n{section}"):
                    factors[row] *= factor
        return cls(
            revision,
            ids,
            metadatas,
            texts,
            index,
            by_tag,
            by_gate,
            {chunk: row for row, chunk in enumerate(ids)},
            groups,
            factors,
        )

    def mask(self, tags: Sequence[str] | None, gate: str | None) -> npt.NDArray[np.bool_] | None:
        if not tags and not gate:
            return None
        mask = np.ones(len(self.ids), dtype=np.bool_)
        empty = np.zeros(len(self.ids), dtype=np.bool_)
        if tags:
            any_tag = np.zeros(len(self.ids), dtype=np.bool_)
            for tag in tags:
                any_tag |= self.by_tag.get(tag.casefold(), empty)
            mask &= any_tag
        if gate:
            mask &= self.by_gate.get(gate.casefold(), empty)
        return mask

    def hit(self, row: int, score: float) -> Hit:
        metadata = self.metadatas[row]
        return Hit(
            chunk_id=self.ids[row],
            source=str(metadata.get("source", "")),
            section=str(metadata.get("section", "")),
            text=self.texts[row],
            score=float(score),
            tags=tuple(_as_strings(metadata.get("tags"))),
            gates=tuple(_as_strings(metadata.get("gates"))),
        )


def _template_headings(metadatas: Sequence[Mapping[str, Any]]) -> set[str]:
    """Headings (case-folded) that appear in the trails of many different documents."""
    sources: dict[str, set[str]] = {}
    for metadata in metadatas:
        source = str(metadata.get("source", ""))
        for part in str(metadata.get("section", "")).split(TRAIL_SEPARATOR):
            sources.setdefault(part.casefold(), set()).add(source)
    return {part for part, found in sources.items() if len(found) >= _TEMPLATE_HEADING_SOURCES}


def _collapsed_trail(source: str, section: str, template: set[str], with_text: set[tuple[str, str]]) -> str:
    """The section a passage counts as for one-per-section results: its trailing template
    headings ("About", "Suggested Actions") folded into the nearest heading above them that
    has lead text of its own (a NIST subcategory's statement). A bare title above them (a
    policy written from a Scope / Requirements / Exceptions template) keeps them apart: they
    are that document's distinct sections, not views of one topic."""
    parts = section.split(TRAIL_SEPARATOR)
    keep = len(parts)
    depth = len(parts)
    while depth > 1 and parts[depth - 1].casefold() in template:
        depth -= 1
        if (source, TRAIL_SEPARATOR.join(parts[:depth])) in with_text:
            keep = depth
    return TRAIL_SEPARATOR.join(parts[:keep])


def _as_strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def _file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Target:
    path: Path
    source: str


@dataclass
class _Pending:
    target: _Target
    digest: str
    chunks: list[Chunk]
    tags: tuple[str, ...]
    gates: tuple[str, ...]
    aliases: list[_FileState] = field(default_factory=list)


class KnowledgeBase:
    """Policy documents in Chroma, searchable by BM25, vectors, or both fused by rank.

    Safe to share between threads: searches read an immutable snapshot, ingestion runs one
    at a time.
    """

    def __init__(
        self,
        data_dir: Path,
        embeddings: str = "auto",
        chroma_url: str | None = None,
        openai_base_url: str | None = None,
        openai_api_key: str | None = None,
        *,
        onnx_model_dir: Path | None = None,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        embedder: Embedder | None = None,
        priors: Sequence[tuple[str, float]] = DEFAULT_PRIORS,
        glossary: str | None = None,
        documents_root: Path | None = None,
    ) -> None:
        """Open (or create) the knowledge base.

        Args:
            data_dir: where the embedded Chroma database lives (unused with ``chroma_url``).
            embeddings: ``auto``, ``none``, ``default``, ``onnx:PATH`` or ``openai:MODEL``.
            chroma_url: a Chroma server, for example ``http://chroma:8000``.
            openai_base_url: base URL of an OpenAI-compatible endpoint for ``openai:MODEL``.
            openai_api_key: its API key (any string for local servers).
            onnx_model_dir: the local model ``auto`` uses when present.
            chunk_chars: target chunk size in characters.
            embedder: a ready embedder, overriding ``embeddings`` (tests, custom models).
            priors: (regular expression, factor) pairs: a hybrid result whose
                ``file name + "\\n" + section`` matches a pattern has its score multiplied by the
                factor (case-insensitive). By default recitals and tables of contents count
                half.
            glossary: the words keyword search adds to a question (``knowledge.glossary``):
                None for the bundled glossary, ``none`` for no glossary, or a YAML file.
            documents_root: the folder documents are named from: a file under it is named by
                its path relative to it (``teamA/policy.md``), any other file by its absolute
                path. None names every file by its absolute path.

        Raises:
            KnowledgeError: the embeddings setting is not understood, the glossary cannot be
                used, or the store cannot be opened.
        """
        self._data_dir = Path(data_dir)
        self._documents_root = Path(documents_root).expanduser().resolve() if documents_root else None
        try:
            self._glossary = load_glossary(glossary)
        except GlossaryError as error:
            raise KnowledgeError(str(error)) from error
        self._chunk_chars = chunk_chars
        try:
            self._priors = [(re.compile(pattern, re.IGNORECASE), float(factor)) for pattern, factor in priors]
        except re.error as error:
            raise KnowledgeError(f"invalid prior pattern: {error}") from error
        self._reason: str | None = None
        configured = embedder
        dimensions: int | None = None  # not probed for a ready embedder (tests, custom models)
        if embedder is None:
            try:
                configured = configured_embedder(
                    embeddings,
                    onnx_model_dir=onnx_model_dir,
                    openai_base_url=openai_base_url,
                    openai_api_key=openai_api_key,
                )
                if configured is None:
                    self._reason = "embeddings are set to none"
                else:
                    dimensions = probe(configured)
                    embedder = configured
            except ValueError as error:
                raise KnowledgeError(str(error)) from error
            except EmbeddingUnavailableError as error:
                self._reason = str(error)
                logger.warning(
                    "Embeddings %r unavailable: %s. Searching with BM25 only until the model answers.",
                    embeddings,
                    error,
                )
        self._embedder = embedder
        self._embedded = not chroma_url
        self._client, self._store = self._open_client(chroma_url)
        # A model that cannot run now may have filled its collection before: that collection is
        # opened, searched by BM25 until the model answers again (_model). One that never filled
        # it (a first start, a model folder misspelt) leaves the BM25-only collection, which
        # ingestion can fill without a model.
        if embedder is None and configured is not None and not self._holds_passages(configured):
            configured = None
        self._configured = configured
        self._model_retry_at = time.monotonic() + MODEL_RETRY_SECONDS
        self._store_embedder = configured if configured is not None else lexical_embedder()
        try:
            self._collection = self._client.get_or_create_collection(
                self._store_embedder.collection,
                embedding_function=self._store_embedder.function,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={_REVISION_KEY: uuid.uuid4().hex},
            )
        except Exception as error:  # chromadb raises many types (connection, validation)
            raise KnowledgeError(f"cannot open the knowledge store: {error}") from error
        self._write_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._model_lock = threading.Lock()  # one search at a time tries a model that was down
        self._snapshot: _Snapshot | None = None
        self._revision_checked_at = 0.0
        # The revision the embedded store's vector index was read at (see _reopen_embedded).
        self._vectors_revision = str((self._collection.metadata or {}).get(_REVISION_KEY, ""))
        self._query_failure_logged = False
        self._wrote = False  # whether the ingest running changed the store (see ingest)
        self._dimensions = dimensions
        # Why the stored vectors cannot be searched with this model, until ingest embeds them again.
        self._mismatch: str | None = None
        if dimensions is not None:
            self._check_dimensions(dimensions)

    # --- store ---------------------------------------------------------------------------

    def _open_client(self, chroma_url: str | None) -> tuple[Any, str]:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        try:
            if chroma_url:
                url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
                if not url.hostname:
                    raise KnowledgeError(f"not a Chroma server URL: {chroma_url!r}")
                ssl = url.scheme == "https"
                client = chromadb.HttpClient(
                    host=url.hostname,
                    port=url.port or (443 if ssl else 8000),
                    ssl=ssl,
                    settings=settings,
                )
                return client, f"Chroma server {chroma_url}"
            path = self._data_dir / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=settings), f"Chroma at {path}"
        except KnowledgeError:
            raise
        except Exception as error:  # connection refused, permissions, bad settings
            raise KnowledgeError(f"cannot open the knowledge store: {error}") from error

    def _holds_passages(self, model: Embedder) -> bool:
        try:
            return bool(
                self._client.get_collection(model.collection, embedding_function=model.function).count()
            )
        except NotFoundError:
            return False
        except Exception as error:  # chromadb raises many types (connection, validation)
            raise KnowledgeError(f"cannot open the knowledge store: {error}") from error

    def _stored_metadata(self) -> dict[str, Any]:
        """The collection's metadata as stored now (another process may have changed it)."""
        collection = self._client.get_collection(
            self._store_embedder.collection, embedding_function=self._store_embedder.function
        )
        return dict(collection.metadata or {})

    def _update_metadata(self, **values: Any) -> None:
        # Chroma's modify replaces the whole metadata: keep the keys not being changed.
        self._collection.modify(metadata={**self._stored_metadata(), **values})

    def _revision(self) -> str:
        return str(self._stored_metadata().get(_REVISION_KEY, ""))

    def _stored_dimensions(self) -> tuple[int | None, str]:
        """The size of the stored vectors and the model they came from, as far as known."""
        metadata = self._stored_metadata()
        model = str(metadata.get(_MODEL_KEY) or "an earlier model")
        if metadata.get(_DIMENSIONS_KEY):
            return int(metadata[_DIMENSIONS_KEY]), model
        # A store written before the size was recorded: one stored vector tells.
        stored = self._collection.get(limit=1, include=cast(Any, ["embeddings"])).get("embeddings")
        if stored is None or len(stored) == 0:
            return None, model
        return len(stored[0]), model

    def _check_dimensions(self, dimensions: int) -> None:
        """Search by keyword only, saying why, when the stored vectors are of another size than
        the model's: every vector search would fail."""
        stored, model = self._stored_dimensions()
        if stored is None or stored == dimensions or self._configured is None:
            return
        self._mismatch = (
            f"the knowledge store holds vectors of {stored} dimensions from {model}, and "
            f"{self._configured.label} gives {dimensions}: search uses keywords only until "
            "`shepherd knowledge ingest` embeds the stored passages again with this model"
        )
        self._embedder, self._reason = None, self._mismatch
        self._model_retry_at = float("inf")
        logger.warning("Embeddings do not match the store: %s.", self._mismatch)

    def _reembed(self) -> None:
        """Embed every stored passage again with the configured model, into a new collection
        of its vector size (Chroma keeps one size per collection). Called with the write lock."""
        model = self._configured
        if model is None:
            return
        try:
            dimensions = probe(model)
            records = self._fetch(["metadatas", "documents"])
            texts = [
                indexed_text(str(m.get("section", "")), str(text or ""), str(m.get("context", "")))
                for m, text in zip(records["metadatas"], records["documents"], strict=True)
            ]
            vectors = model.embed_documents(texts) if texts else None
        except EmbeddingUnavailableError as error:
            raise KnowledgeError(f"cannot embed the store again with {model.label}: {error}") from error
        metadata = {**self._stored_metadata(), _DIMENSIONS_KEY: dimensions, _MODEL_KEY: model.label}
        # Everything is embedded before the old collection goes: a model failing half-way
        # leaves the store as it was.
        self._client.delete_collection(model.collection)
        self._collection = self._client.create_collection(
            model.collection,
            embedding_function=model.function,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=metadata,
        )
        self._wrote = True
        step = 1000
        for start in range(0, len(texts), step):
            self._collection.upsert(
                ids=records["ids"][start : start + step],
                embeddings=cast(Any, vectors[start : start + step] if vectors is not None else []),
                documents=[str(text or "") for text in records["documents"][start : start + step]],
                metadatas=records["metadatas"][start : start + step],
            )
        logger.info("Embedded %d stored passages again with %s.", len(texts), model.label)
        self._mismatch, self._reason, self._dimensions = None, None, dimensions
        self._embedder = model

    def _bump_revision(self) -> None:
        revision = uuid.uuid4().hex
        # This process's index holds what it wrote: unless another process wrote since the
        # index was read (the stored revision moved), it need not be read again for this one.
        current = self._revision() == self._vectors_revision
        values: dict[str, Any] = {_REVISION_KEY: revision}
        if self._embedder is not None and self._dimensions is not None:
            values |= {_MODEL_KEY: self._embedder.label, _DIMENSIONS_KEY: self._dimensions}
        self._update_metadata(**values)
        if current:
            self._vectors_revision = revision
        self._revision_checked_at = 0.0

    def _reopen_embedded(self, revision: str) -> None:
        """Read the embedded store again, for the vectors another process (the CLI) wrote.

        Each embedded Chroma system keeps its vector index in memory and never reads another
        process's additions to it: a new client over the same folder would share the cached
        system, so a new system is started (Chroma caches it for the clients opened after).
        Searches still running keep the old one until they finish; it is freed with them.
        Called with the snapshot lock held; skipped while this process ingests, as swapping
        the collection mid-ingest would split its writes between two systems.
        """
        from chromadb.api import ServerAPI
        from chromadb.api.client import Client
        from chromadb.config import System

        if not self._write_lock.acquire(blocking=False):
            return
        try:
            system = System(self._client.get_settings())
            system.instance(ServerAPI)  # type: ignore[type-abstract]  # as chromadb's own clients do
            system.start()
            client: Any = Client.from_system(system, self._client.tenant, self._client.database)
            self._collection = client.get_collection(
                self._store_embedder.collection, embedding_function=self._store_embedder.function
            )
            self._client = client
            self._vectors_revision = revision
        except Exception as error:  # the old system still answers; try again next time
            logger.warning("Could not reread the knowledge store: %s", error)
        finally:
            self._write_lock.release()

    def _fetch(self, include: list[str]) -> dict[str, Any]:
        """All records of the collection, page by page (a single huge get is slow)."""
        total = self._collection.count()
        out: dict[str, list[Any]] = {"ids": [], "metadatas": [], "documents": []}
        page = 5000
        for offset in range(0, total, page):
            result = self._collection.get(include=cast(Any, include), limit=page, offset=offset)
            out["ids"] += result["ids"]
            out["metadatas"] += list(result.get("metadatas") or [])
            out["documents"] += list(result.get("documents") or [])
        return out

    def _manifest(self) -> dict[str, _FileState]:
        records = self._fetch(["metadatas"])
        manifest: dict[str, _FileState] = {}
        for chunk, metadata in zip(records["ids"], records["metadatas"], strict=True):
            source = str(metadata.get("source", ""))
            state = manifest.get(source)
            if state is None:
                path = metadata.get("path")
                if path is None and metadata.get("root"):
                    # Stored before documents had a path: named relative to the folder given,
                    # which was kept as "root".
                    path = str(Path(str(metadata["root"])) / source)
                state = manifest[source] = _FileState(str(path or ""))
            state.hashes.add(str(metadata.get("file_hash", "")))
            state.expected = int(metadata.get("file_chunks", -1))
            state.ids.append(chunk)
        return manifest

    # --- ingestion -------------------------------------------------------------------------

    def _source(self, path: Path) -> str:
        """A document's name: its path under the documents root, else its absolute path.

        The same file has one name however it is reached (as a file, through its folder or a
        parent folder), and two files never share one.
        """
        root = self._documents_root
        if root is not None and path.is_relative_to(root) and path != root:
            return path.relative_to(root).as_posix()
        return path.as_posix()

    def _targets(
        self, paths: Iterable[Path | str]
    ) -> tuple[list[_Target], list[Path], list[tuple[str, str]]]:
        targets: dict[Path, _Target] = {}
        unsupported: dict[Path, tuple[str, str]] = {}
        named: dict[str, Path] = {}
        folders: list[Path] = []
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.exists():
                raise KnowledgeError(f"no such file or folder: {raw}")
            if path.is_dir():
                path = path.resolve()
                folders.append(path)
                files = list(iter_supported_files(path))
                for extra in iter_unsupported_files(path):
                    unsupported.setdefault(extra, (self._source(extra), unsupported_reason(extra)))
            else:
                # Only the folder is resolved, as for files found in a folder: a file that is a
                # link (a Kubernetes ConfigMap mount) keeps the name it has there.
                files = [path.parent.resolve() / path.name]
            for file in files:
                if file in targets:
                    continue  # the same file named twice: one document
                source = self._source(file)
                other = named.get(source)
                if other is not None:
                    raise KnowledgeError(
                        f"{other} and {file} would both be stored as {source!r}; nothing was ingested"
                    )
                named[source] = file
                targets[file] = _Target(file, source)
        return list(targets.values()), folders, list(unsupported.values())

    def ingest_policy_folder(self, folder: Path, *, previous: Path | None = None) -> IngestReport:
        """Bring the store up to date with the policy folder, pruning files gone from it.

        The folder is recorded in the store: when a later call names another folder, every
        document stored from under the recorded one (and not under the new one) is removed, so
        the policies of a folder the bot no longer reads stop being cited. Documents ingested
        from anywhere else (``shepherd knowledge ingest``) stay.

        Args:
            previous: the folder to treat as the recorded one when none is (a store written
                before the folder was recorded).

        Raises:
            KnowledgeError: as ``ingest``.
        """
        folder = Path(folder).expanduser().resolve()
        recorded = self._stored_metadata().get(_POLICY_FOLDER_KEY)
        before = Path(str(recorded)) if recorded else previous
        replaced = before.expanduser().resolve() if before is not None else None
        report = self.ingest([folder], prune=True, replaces=None if replaced == folder else replaced)
        if recorded != str(folder):
            self._update_metadata(**{_POLICY_FOLDER_KEY: str(folder)})
        return report

    def ingest(
        self,
        paths: Iterable[Path | str],
        prune: bool = False,
        progress: Progress | None = None,
        *,
        replaces: Path | None = None,
    ) -> IngestReport:
        """Index files and folders; unchanged files are skipped by content hash.

        A file's source (its name in citations) is its path relative to the documents root when
        it is under it, else its absolute path: the same whether the file is given directly or
        found in a folder or a parent folder. Chunks stored for the same file under another
        name (as ingestion named documents before: relative to the folder given) are replaced
        by the file's own, their vectors reused. A changed file replaces its chunks; a file
        that cannot be read is reported in ``failed``, and a version of it indexed earlier stays
        searchable (a corrupt copy must not take the policy away; the next ingest tries the file
        again). With ``prune``, chunks of files that are gone from a given folder (or any folder
        under it) are removed. ``replaces`` names a folder whose documents are all removed
        (those under a given folder excepted): one the given folder takes the place of.

        Raises:
            KnowledgeError: a path does not exist, or the embedding model failed mid-run
                (files finished before the failure stay indexed).
        """
        started = time.perf_counter()
        targets, folders, unsupported = self._targets(paths)
        failed: list[tuple[str, str]] = []
        still_cited: list[str] = []
        skipped = indexed = written = removed = renamed = 0
        with self._write_lock:
            # Set by every write: a run that fails half-way has still replaced chunks, and
            # other readers must stop citing the text it removed.
            self._wrote = False
            try:
                if self._mismatch is not None:
                    self._reembed()
                manifest = self._manifest()
                present = {target.source for target in targets}
                # Names the same files were stored under before; a name one of these targets goes
                # by is that target's, whatever file it was stored for.
                aliases: dict[str, list[str]] = {}
                for source, stored in manifest.items():
                    if source not in present and stored.path:
                        aliases.setdefault(stored.path, []).append(source)
                gone: set[str] = set()
                pending: list[_Pending] = []
                for number, target in enumerate(targets):
                    if progress is not None:
                        progress(number, len(targets), target.source)
                    state = manifest.get(target.source)
                    earlier = [manifest[source] for source in aliases.get(str(target.path), [])]
                    try:
                        data = target.path.read_bytes()
                    except OSError as error:
                        failed.append((target.source, f"cannot read file: {error.strerror or error}"))
                        continue
                    digest = _file_hash(data)
                    if state is not None and state.is_current(digest) and state.path == str(target.path):
                        skipped += 1
                        if earlier:
                            self._delete([chunk for alias in earlier for chunk in alias.ids])
                            gone.update(aliases[str(target.path)])
                            renamed += 1
                        continue
                    try:
                        document = load_bytes(data, target.path.suffix)
                        chunks = chunk_document(document, target.source, self._chunk_chars)
                    except LoadError as error:
                        kept = state is not None or earlier
                        failed.append(
                            (
                                target.source,
                                f"{error}; the version indexed earlier stays searchable"
                                if kept
                                else str(error),
                            )
                        )
                        continue
                    pending.append(_Pending(target, digest, chunks, document.tags, document.gates, earlier))
                    if earlier:
                        gone.update(aliases[str(target.path)])
                        renamed += 1
                    indexed += 1
                    written += len(chunks)
                    if sum(len(item.chunks) for item in pending) >= _WRITE_BATCH:
                        self._write(pending, manifest)
                        pending = []
                if pending:
                    self._write(pending, manifest)
                files = {str(target.path) for target in targets}
                for source, state in manifest.items():
                    if source in present or source in gone or not state.path or state.path in files:
                        continue
                    path = Path(state.path)
                    under_given = any(path.is_relative_to(folder) for folder in folders)
                    replaced = replaces is not None and path.is_relative_to(replaces)
                    if (prune and under_given) or (replaced and not under_given):
                        self._delete(state.ids)
                        removed += 1
                    elif under_given:
                        # Deleted from the folder but still cited: whoever deleted it must hear so.
                        still_cited.append(source)
            finally:
                if self._wrote:
                    self._bump_revision()
        if progress is not None:
            progress(len(targets), len(targets), "")
        return IngestReport(
            files=len(targets),
            chunks=written,
            skipped=skipped,
            failed=failed,
            seconds=time.perf_counter() - started,
            indexed=indexed,
            removed=removed,
            renamed=renamed,
            unsupported=unsupported,
            gone=sorted(still_cited),
        )

    def _delete(self, ids: Sequence[str]) -> None:
        batch = 5000
        for start in range(0, len(ids), batch):
            self._wrote = True
            self._collection.delete(ids=list(ids[start : start + batch]))

    def _write(self, pending: list[_Pending], manifest: dict[str, _FileState]) -> None:
        """Store the chunks of several files; embed only chunks not already stored."""
        to_embed: list[tuple[Chunk, dict[str, Any]]] = []
        to_relabel: list[tuple[Chunk, dict[str, Any]]] = []
        stale: list[str] = []
        renamed_ids: list[str] = []
        for item in pending:
            state = manifest.get(item.target.source)
            existing = set(state.ids) if state is not None else set()
            new_ids = {chunk.chunk_id for chunk in item.chunks}
            stale += [chunk for chunk in existing if chunk not in new_ids]
            renamed_ids += [chunk for alias in item.aliases for chunk in alias.ids]
            for chunk in item.chunks:
                metadata: dict[str, Any] = {
                    "source": chunk.source,
                    "section": chunk.section,
                    "path": str(item.target.path),
                    "file_hash": item.digest,
                    "file_chunks": len(item.chunks),
                    "position": chunk.position,
                }
                if chunk.context:
                    metadata["context"] = chunk.context
                # Chroma's $contains is case-sensitive: store and query lower case.
                if item.tags:
                    metadata["tags"] = [tag.casefold() for tag in item.tags]
                if item.gates:
                    metadata["gates"] = [gate.casefold() for gate in item.gates]
                # Same id means same source, trail and text: the stored vector is still right.
                (to_relabel if chunk.chunk_id in existing else to_embed).append((chunk, metadata))
        if to_embed:
            vectors = self._vectors([chunk.indexed_text for chunk, _ in to_embed], renamed_ids)
            step = 1000
            for start in range(0, len(to_embed), step):
                part = to_embed[start : start + step]
                self._wrote = True
                self._collection.upsert(
                    ids=[chunk.chunk_id for chunk, _ in part],
                    embeddings=cast(Any, vectors[start : start + step]),
                    documents=[chunk.text for chunk, _ in part],
                    metadatas=[metadata for _, metadata in part],
                )
        if to_relabel:
            # Chroma merges an update into the stored metadata, and deletes a key only when it
            # is given as None: tags or gates removed from the front matter must go too.
            self._wrote = True
            self._collection.update(
                ids=[chunk.chunk_id for chunk, _ in to_relabel],
                metadatas=[{**dict.fromkeys(_OPTIONAL_METADATA), **metadata} for _, metadata in to_relabel],
            )
        self._delete(stale + renamed_ids)

    def _vectors(self, texts: list[str], reusable: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts``, taken from the chunks ``reusable`` where one embedded the
        same text (a document stored under an earlier name), computed for the others."""
        known: dict[str, npt.NDArray[np.float32]] = {}
        if reusable:
            stored = self._collection.get(
                ids=list(reusable), include=cast(Any, ["embeddings", "documents", "metadatas"])
            )
            embeddings = stored.get("embeddings")
            for text, metadata, vector in zip(
                stored.get("documents") or [],
                stored.get("metadatas") or [],
                [] if embeddings is None else embeddings,
                strict=True,
            ):
                key = indexed_text(
                    str(metadata.get("section", "")), str(text), str(metadata.get("context", ""))
                )
                known[key] = np.asarray(vector, dtype=np.float32)
        missing = [text for text in texts if text not in known]
        if missing:
            try:
                computed = self._store_embedder.embed_documents(missing)
            except EmbeddingUnavailableError as error:
                raise KnowledgeError(f"embedding failed during ingestion: {error}") from error
            known.update(zip(missing, np.asarray(computed, dtype=np.float32), strict=True))
        return np.stack([known[text] for text in texts])

    # --- search --------------------------------------------------------------------------

    def _model(self) -> Embedder | None:
        """The embedding model, tried again every ``MODEL_RETRY_SECONDS`` while it cannot run."""
        configured = self._configured
        if self._embedder is not None or configured is None or time.monotonic() < self._model_retry_at:
            return self._embedder
        with self._model_lock:
            if self._embedder is None and time.monotonic() >= self._model_retry_at:
                try:
                    dimensions = probe(configured)
                except EmbeddingUnavailableError as error:
                    self._reason = str(error)
                    self._model_retry_at = time.monotonic() + MODEL_RETRY_SECONDS
                else:
                    logger.info("Embeddings %s answer again: searching with vectors too.", configured.label)
                    self._embedder, self._reason, self._dimensions = configured, None, dimensions
                    self._check_dimensions(dimensions)
        return self._embedder

    def _current_snapshot(self) -> _Snapshot:
        """The lexical snapshot, rebuilt when the collection's revision changed.

        Another process (the CLI while the bot runs) may ingest too, so the stored revision
        is checked, at most every half second (one read of the collection's metadata, about
        half a millisecond); an embedded store is then read again for its vectors.
        """
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and now - self._revision_checked_at < _REVISION_CHECK_SECONDS:
            return snapshot
        with self._snapshot_lock:
            revision = self._revision()
            self._revision_checked_at = time.monotonic()
            if self._embedded and revision != self._vectors_revision:
                self._reopen_embedded(revision)
            snapshot = self._snapshot
            if snapshot is None or snapshot.revision != revision:
                if not self._embedded and snapshot is not None:
                    # Another process may have replaced the collection (embedded it again with
                    # a model of another size): the name stays, the handle must follow it.
                    self._collection = self._client.get_collection(
                        self._store_embedder.collection, embedding_function=self._store_embedder.function
                    )
                records = self._fetch(["metadatas", "documents"])
                snapshot = _Snapshot.build(
                    revision,
                    list(records["ids"]),
                    list(records["metadatas"]),
                    [str(text or "") for text in records["documents"]],
                    self._priors,
                )
                self._snapshot = snapshot
            return snapshot

    def _bm25_ranking(
        self, snapshot: _Snapshot, query: str, depth: int, mask: npt.NDArray[np.bool_] | None
    ) -> list[tuple[int, float]]:
        scores = snapshot.index.scores(query)
        if scores.size == 0:
            return []
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        depth = min(depth, scores.size)
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(row), float(scores[row])) for row in top if scores[row] > 0]

    def _vector_ranking(
        self,
        snapshot: _Snapshot,
        query: str,
        depth: int,
        tags: Sequence[str] | None,
        gate: str | None,
    ) -> list[tuple[int, float]]:
        embedder = self._model()
        if embedder is None or not snapshot.ids:
            return []
        vector = embedder.embed_query(query)
        where = _where(tags, gate)
        try:
            result = self._collection.query(
                query_embeddings=cast(Any, vector),
                n_results=min(depth, len(snapshot.ids)),
                where=cast(Any, where),
                include=cast(Any, ["distances"]),
            )
        except InvalidArgumentError as error:
            # Another process embedded the store again with a model of another size.
            raise EmbeddingUnavailableError(f"the stored vectors do not fit the model ({error})") from error
        ranking: list[tuple[int, float]] = []
        distances = (result.get("distances") or [[]])[0]
        for chunk, distance in zip(result["ids"][0], distances, strict=True):
            row = snapshot.position.get(chunk)
            if row is not None:
                ranking.append((row, 1.0 - float(distance)))
        return ranking

    def search(
        self,
        query: str,
        k: int = 5,
        tags: Sequence[str] | None = None,
        gate: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first.

        Args:
            query: the question, in plain words.
            k: how many passages to return.
            tags: keep passages of documents carrying any of these tags.
            gate: keep passages of documents tagged for this gate.
            mode: ``hybrid`` (BM25 and vectors fused by reciprocal rank), ``bm25`` or
                ``vector``. Hybrid works on BM25 alone when no embedding model is available.

        Raises:
            KnowledgeError: ``mode`` is unknown, or ``vector`` was asked without a model.
        """
        if mode not in SEARCH_MODES:
            raise KnowledgeError(f"unknown search mode {mode!r}: use hybrid, bm25 or vector")
        if mode == "vector" and self._model() is None:
            raise KnowledgeError(f"vector search unavailable: {self._reason}")
        if k <= 0 or not query.strip():
            return []
        snapshot = self._current_snapshot()
        if not snapshot.ids:
            return []
        # Collapsing per section drops rows, so each ranking goes deeper than k.
        depth = max(_FUSION_DEPTH, 8 * k)
        mask = snapshot.mask(tags, gate)
        lexical: list[tuple[int, float]] = []
        if mode != "vector":
            keywords = self._glossary.expand(query) if self._glossary is not None else query
            lexical = self._bm25_ranking(snapshot, keywords, depth, mask)
        vector: list[tuple[int, float]] = []
        if mode != "bm25":
            try:
                vector = self._vector_ranking(snapshot, query, depth, tags, gate)
            except EmbeddingUnavailableError as error:
                if mode == "vector":
                    raise KnowledgeError(f"vector search failed: {error}") from error
                if not self._query_failure_logged:
                    self._query_failure_logged = True
                    logger.warning("Vector search failed (%s); answering with BM25 only.", error)
        if mode == "bm25":
            ranked = lexical
        elif mode == "vector":
            ranked = vector
        else:
            fused = _fuse([(_BM25_WEIGHT, lexical), (_VECTOR_WEIGHT, vector)])
            ranked = sorted(
                ((row, score * float(snapshot.priors[row])) for row, score in fused),
                key=lambda item: -item[1],
            )
        return [snapshot.hit(row, score) for row, score in _one_per_section(snapshot, ranked, k)]

    # --- status --------------------------------------------------------------------------

    @property
    def store_mismatch(self) -> str | None:
        """Why the stored vectors cannot be searched with the model (another vector size), or
        None; the next ``ingest`` embeds them again."""
        return self._mismatch

    @property
    def lexical_only(self) -> bool:
        """True when searches use BM25 only."""
        return self._embedder is None

    def status(self) -> KnowledgeStatus:
        """Chunk and document counts, and which embeddings are in use (or why none)."""
        snapshot = self._current_snapshot()
        sources = {str(metadata.get("source", "")) for metadata in snapshot.metadatas}
        return KnowledgeStatus(
            chunks=len(snapshot.ids),
            documents=len(sources),
            embeddings=self._embedder.label if self._embedder else "none (BM25 only)",
            lexical_only=self._embedder is None,
            reason=self._reason,
            collection=self._store_embedder.collection,
            store=self._store,
            tags=tuple(sorted(snapshot.by_tag)),
            gates=tuple(sorted(snapshot.by_gate)),
        )


def _where(tags: Sequence[str] | None, gate: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if tags:
        tag_clauses = [{"tags": {"$contains": tag.casefold()}} for tag in tags]
        clauses.append(tag_clauses[0] if len(tag_clauses) == 1 else {"$or": tag_clauses})
    if gate:
        clauses.append({"gates": {"$contains": gate.casefold()}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _one_per_section(
    snapshot: _Snapshot, ranked: Sequence[tuple[int, float]], k: int
) -> list[tuple[int, float]]:
    """The best passage of each section, in order, up to ``k``: five passages of one long
    article would fill the whole answer and hide the next four places worth reading.

    A section is a document's heading trail without its trailing template headings, so the
    "About" and "Suggested Actions" of one subcategory count as one section.
    """
    seen: set[int] = set()
    out: list[tuple[int, float]] = []
    for row, score in ranked:
        group = int(snapshot.groups[row])
        if group not in seen:
            seen.add(group)
            out.append((row, score))
            if len(out) == k:
                break
    return out


def _fuse(
    rankings: Sequence[tuple[float, Sequence[tuple[int, float]]]],
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: each ranking adds weight / (k + rank) to its items."""
    fused: dict[int, float] = {}
    for weight, ranking in rankings:
        for rank, (row, _) in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + weight / (_RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])
