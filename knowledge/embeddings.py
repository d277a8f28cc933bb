"""Embedding models chosen by a spec string, and the Chroma embedding functions behind them.

Specs: ``onnx:PATH`` (a local sentence model folder laid out like Chroma's all-MiniLM-L6-v2:
``onnx/model.onnx`` and ``onnx/tokenizer.json``), ``default`` (Chroma's own all-MiniLM-L6-v2,
downloaded once), ``openai:MODEL`` (any OpenAI-compatible ``/v1/embeddings``), ``none``
(lexical retrieval only) and ``auto`` (a local ONNX model when one is given or found, else none).

Each Chroma embedding function here is registered with Chroma (``name``, ``get_config``,
``build_from_config``) so that a collection created with it reopens after a restart.
Loading a model never happens at import time; :func:`resolve_embedder` loads and probes it and
reports why it could not, so the caller can fall back to BM25.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

FloatMatrix = npt.NDArray[np.float32]

DEFAULT_MAX_TOKENS = 256
# Small batches of similar length measured fastest here (less padding, better cache use).
DEFAULT_BATCH_SIZE = 16
# Padded tokens per batch at most. Measured here embedding the whole shared corpus, two
# batches at a time: peak RSS 1,050 MB with 16 texts a batch whatever their length, 630 MB at
# 2,048 tokens, 400 MB at 512, and no slower (15.6 s, 30.7 CPU s against 18-20 s, 33 CPU s).
_BATCH_TOKENS = 512
LEXICAL_COLLECTION = "shepherd-lexical"
# Where Chroma's default embedding function unpacks its model: the same layout we read.
CHROMA_MODEL_CACHE = Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2"


class EmbeddingUnavailableError(Exception):
    """The embedding model cannot be loaded or reached; ``str(error)`` says why."""


def _normalise(matrix: FloatMatrix) -> FloatMatrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return cast(FloatMatrix, (matrix / np.maximum(norms, 1e-12)).astype(np.float32))


@register_embedding_function
class OnnxSentenceEmbedding(EmbeddingFunction[Documents]):
    """A sentence-transformers model exported to ONNX, run with onnxruntime and tokenizers.

    Inputs are truncated to ``max_tokens`` and padded per batch, never to a fixed length
    (fixed padding is about ten times slower on short passages); batches are formed from
    inputs of similar length, under a token budget, and run side by side, one per core.
    Token embeddings are mean-pooled over the attention mask and L2-normalised, as
    sentence-transformers does.
    """

    def __init__(
        self,
        model_dir: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cpu_mem_arena: bool = True,
    ) -> None:
        self.model_dir = str(model_dir)
        self.max_tokens = int(max_tokens)
        self.batch_size = int(batch_size)
        self.cpu_mem_arena = bool(cpu_mem_arena)
        self._cores = max(1, os.cpu_count() or 1)
        self._workers = self._cores
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: tuple[str, ...] = ()

    @staticmethod
    def name() -> str:
        return "shepherd-onnx"

    def get_config(self) -> dict[str, Any]:
        return {
            "model_dir": self.model_dir,
            "max_tokens": self.max_tokens,
            "batch_size": self.batch_size,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OnnxSentenceEmbedding:
        return OnnxSentenceEmbedding(
            model_dir=str(config["model_dir"]),
            max_tokens=int(config.get("max_tokens", DEFAULT_MAX_TOKENS)),
            batch_size=int(config.get("batch_size", DEFAULT_BATCH_SIZE)),
        )

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    @property
    def model_name(self) -> str:
        """The model folder's name, for example ``all-MiniLM-L6-v2``."""
        return Path(self.model_dir).name or "onnx-model"

    def load(self) -> None:
        """Load the tokenizer and the ONNX session once.

        Raises:
            EmbeddingUnavailableError: the folder, model file or tokenizer is missing or unreadable.
        """
        with self._lock:
            if self._session is not None:
                return
            folder = Path(self.model_dir)
            model_path = folder / "onnx" / "model.onnx"
            tokenizer_path = folder / "onnx" / "tokenizer.json"
            for needed in (model_path, tokenizer_path):
                if not needed.is_file():
                    raise EmbeddingUnavailableError(f"model file not found: {needed}")
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(tokenizer_path))
                # The shipped tokenizer pads and truncates to 128: padding goes (we pad per
                # batch), truncation follows the model's window.
                tokenizer.no_padding()
                tokenizer.enable_truncation(max_length=min(self.max_tokens, self._model_max()))
                options = ort.SessionOptions()
                # One thread per batch and batches side by side: onnxruntime's own threads
                # split each small batch and spin while they wait, which measured here about
                # 20% more CPU for the same work (17-18 against 22-24 CPU s over half the
                # corpus) and no faster on two cores.
                options.intra_op_num_threads = 1 if self._workers > 1 else self._cores
                options.log_severity_level = 3
                # Per-batch padding gives every batch a different shape, and onnxruntime
                # keeps a memory pattern per shape: measured here over the corpus, peak RSS
                # 930 MB with patterns, 664 MB without, same CPU time. Turning the arena off
                # instead saved nothing (about 900 MB) and cost 50% more CPU, so it stays on.
                options.enable_mem_pattern = False
                options.enable_cpu_mem_arena = self.cpu_mem_arena
                session = ort.InferenceSession(
                    str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # onnxruntime and tokenizers raise their own types
                raise EmbeddingUnavailableError(f"cannot load model from {folder}: {error}") from error
            self._input_names = tuple(item.name for item in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    def _model_max(self) -> int:
        config_path = Path(self.model_dir) / "onnx" / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            return int(config.get("max_position_embeddings", 512))
        except (OSError, ValueError):
            return 512

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embeddings of ``texts`` as an (n, dim) float32 matrix of unit rows."""
        self.load()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        batches: list[list[int]] = []
        for index in order:
            length = len(encodings[index].ids)
            last = batches[-1] if batches else None
            # Longest last (sorted): a batch is full at batch_size texts or at the token
            # budget, so long passages go fewer at a time and peak memory stays flat.
            if last is None or len(last) >= self.batch_size or (len(last) + 1) * length > _BATCH_TOKENS:
                batches.append([index])
            else:
                last.append(index)
        rows: list[FloatMatrix] = [np.empty(0, dtype=np.float32)] * len(encodings)

        def run(batch: list[int]) -> None:
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                encoding = encodings[index]
                length = len(encoding.ids)
                ids[row, :length] = encoding.ids
                mask[row, :length] = 1
                types[row, :length] = encoding.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            output = self._session.run(
                None, {name: feeds[name] for name in self._input_names if name in feeds}
            )[0]
            if output.ndim == 3:
                weights = mask[:, :, None].astype(np.float32)
                pooled = (output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            else:
                pooled = output
            pooled = _normalise(pooled.astype(np.float32))
            for row, index in enumerate(batch):
                rows[index] = pooled[row]

        if len(batches) == 1 or self._workers == 1:
            for batch in batches:
                run(batch)
        else:
            # InferenceSession.run is thread-safe and releases the GIL.
            with ThreadPoolExecutor(self._workers, thread_name_prefix="shepherd-embed") as pool:
                list(pool.map(run, batches))
        return cast(FloatMatrix, np.vstack(rows))

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))


@register_embedding_function
class LexicalPlaceholder(EmbeddingFunction[Documents]):
    """Stands in where no embedding model is used: Chroma wants a vector for every record.

    The vectors are derived from the text's hash (distinct, so the HNSW index stays healthy)
    and carry no meaning; lexical-only collections are never queried by vector.
    """

    DIMENSIONS = 8

    def __init__(self) -> None:
        pass

    @staticmethod
    def name() -> str:
        return "shepherd-lexical"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LexicalPlaceholder:
        return LexicalPlaceholder()

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Meaningless but distinct unit vectors."""
        if not texts:
            return np.zeros((0, self.DIMENSIONS), dtype=np.float32)
        raw = [
            np.frombuffer(hashlib.sha256(text.encode()).digest()[: self.DIMENSIONS], np.uint8)
            for text in texts
        ]
        return _normalise(np.vstack(raw).astype(np.float32) + 1.0)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))


@register_embedding_function
class OpenAICompatibleEmbedding(EmbeddingFunction[Documents]):
    """Any OpenAI-compatible embeddings endpoint, through LangChain's OpenAIEmbeddings.

    The API key is never written into Chroma's stored configuration; a collection reopened
    from its stored configuration alone has no key, and :meth:`embed` then fails clearly.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self._client: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def name() -> str:
        return "shepherd-openai"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAICompatibleEmbedding:
        return OpenAICompatibleEmbedding(model=str(config["model"]), base_url=config.get("base_url"))

    def default_space(self) -> Space:
        return "cosine"

    @property
    def model_name(self) -> str:
        """The endpoint's model name."""
        return self.model

    def _embeddings(self) -> Any:
        with self._lock:
            if self._client is None:
                from langchain_openai import OpenAIEmbeddings

                if not self._api_key:
                    raise EmbeddingUnavailableError("no API key given for the embeddings endpoint")
                # tiktoken would download its vocabulary to count tokens: not offline.
                self._client = OpenAIEmbeddings(
                    model=self.model,
                    base_url=self.base_url,
                    api_key=self._api_key,  # type: ignore[arg-type]
                    check_embedding_ctx_length=False,
                    max_retries=1,
                    timeout=30,
                )
            return self._client

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embeddings from the endpoint as unit rows.

        Raises:
            EmbeddingUnavailableError: the endpoint could not be reached or answered an error.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        try:
            vectors = self._embeddings().embed_documents(list(texts))
        except EmbeddingUnavailableError:
            raise
        except Exception as error:  # openai raises connection, auth and status errors
            raise EmbeddingUnavailableError(
                f"embeddings endpoint failed ({type(error).__name__}: {error})".split("\n")[0]
            ) from error
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))


@dataclass(frozen=True)
class Embedder:
    """An embedding model ready to use, with the Chroma function and collection it goes with."""

    spec: str
    label: str
    collection: str
    function: EmbeddingFunction[Documents]

    def embed_documents(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed passages; raises :class:`EmbeddingUnavailableError` when the model fails."""
        function = self.function
        if isinstance(function, OnnxSentenceEmbedding | OpenAICompatibleEmbedding):
            return function.embed(texts)
        try:
            vectors = function(list(texts))
        except Exception as error:  # Chroma's default function downloads: network errors
            raise EmbeddingUnavailableError(f"{self.label}: {error}".split("\n")[0]) from error
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def embed_query(self, text: str) -> FloatMatrix:
        """Embed one question as a (1, dim) matrix."""
        return self.embed_documents([text])


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:60] or "model"


def lexical_embedder() -> Embedder:
    """The placeholder used by lexical-only collections."""
    return Embedder("none", "none (BM25 only)", LEXICAL_COLLECTION, LexicalPlaceholder())


def resolve_embedder(
    spec: str,
    *,
    onnx_model_dir: Path | None = None,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
) -> Embedder | None:
    """Build and probe the embedding model a spec names; ``None`` for ``none``.

    Raises:
        EmbeddingUnavailableError: the model cannot be loaded or reached (the caller falls back
            to lexical retrieval), or ``auto`` found no local model.
        ValueError: the spec itself is not understood.
    """
    embedder = configured_embedder(
        spec, onnx_model_dir=onnx_model_dir, openai_base_url=openai_base_url, openai_api_key=openai_api_key
    )
    if embedder is not None:
        probe(embedder)
    return embedder


def configured_embedder(
    spec: str,
    *,
    onnx_model_dir: Path | None = None,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
) -> Embedder | None:
    """The embedder a spec names, its model not loaded yet (see :func:`probe`); ``None`` for
    ``none``. Its collection is known even while the model cannot run.

    Raises:
        EmbeddingUnavailableError: ``auto`` found no local model.
        ValueError: the spec itself is not understood.
    """
    spec = spec.strip()
    kind, _, argument = spec.partition(":")
    kind = kind.lower()
    if kind == "none":
        return None
    if kind == "auto":
        candidates = [Path(argument)] if argument else []
        candidates += [onnx_model_dir] if onnx_model_dir is not None else []
        candidates.append(CHROMA_MODEL_CACHE)
        for candidate in candidates:
            if (candidate / "onnx" / "model.onnx").is_file():
                return configured_embedder(f"onnx:{candidate}")
        raise EmbeddingUnavailableError(
            "no local embedding model found (set embeddings to onnx:PATH, default or openai:MODEL)"
        )
    if kind == "onnx":
        folder = Path(argument).expanduser() if argument else onnx_model_dir
        if folder is None:
            raise ValueError("onnx embeddings need a model folder: onnx:PATH")
        function = OnnxSentenceEmbedding(str(folder.expanduser().resolve()))
        return Embedder(
            f"onnx:{folder}",
            f"onnx {function.model_name}",
            f"shepherd-onnx-{_slug(function.model_name)}",
            function,
        )
    if kind == "default":
        from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

        return Embedder(
            "default",
            "Chroma default (all-MiniLM-L6-v2)",
            "shepherd-default-all-minilm-l6-v2",
            cast(EmbeddingFunction[Documents], DefaultEmbeddingFunction()),
        )
    if kind == "openai":
        if not argument:
            raise ValueError("openai embeddings need a model name: openai:MODEL")
        function_ = OpenAICompatibleEmbedding(argument, openai_base_url, openai_api_key)
        return Embedder(spec, f"openai {argument}", f"shepherd-openai-{_slug(argument)}", function_)
    raise ValueError(
        f"unknown embeddings setting {spec!r}: use auto, none, default, onnx:PATH or openai:MODEL"
    )


def probe(embedder: Embedder) -> int:
    """Load the model and embed one word: a model that cannot run should be found at start,
    not at the first question. Returns the model's vector size.

    Raises:
        EmbeddingUnavailableError: the model cannot be loaded or reached, or gave no vector.
    """
    function = embedder.function
    if isinstance(function, OnnxSentenceEmbedding):
        if not Path(function.model_dir).is_dir():
            raise EmbeddingUnavailableError(f"model folder not found: {function.model_dir}")
        function.load()
    vector = embedder.embed_query("probe")
    if vector.ndim != 2 or vector.shape[0] != 1 or vector.shape[1] == 0:
        raise EmbeddingUnavailableError(f"{embedder.label} returned no usable vector")
    return int(vector.shape[1])
