"""The local ONNX sentence model (../shared/models/all-MiniLM-L6-v2): skipped where absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge import KnowledgeBase
from knowledge.embeddings import EmbeddingUnavailableError, OnnxSentenceEmbedding, resolve_embedder
from tests.conftest import MODEL_DIR, require


@pytest.fixture(scope="module")
def model() -> OnnxSentenceEmbedding:
    """The shared MiniLM model, loaded once."""
    require(MODEL_DIR.exists(), f"local embedding model not found at {MODEL_DIR}")
    function = OnnxSentenceEmbedding(str(MODEL_DIR))
    function.load()
    return function


def test_embeddings_are_unit_vectors_of_the_model_size(model: OnnxSentenceEmbedding) -> None:
    matrix = model.embed(["A short sentence.", "Another one, a little longer than the first."])
    assert matrix.shape == (2, 384)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)


def test_per_batch_padding_does_not_change_an_embedding(model: OnnxSentenceEmbedding) -> None:
    alone = model.embed(["Keep secrets in the vault."])[0]
    mixed = model.embed(["Keep secrets in the vault.", "word " * 300, "A medium sentence here."])
    assert float(alone @ mixed[0]) > 0.9999


def test_long_inputs_are_truncated_not_rejected(model: OnnxSentenceEmbedding) -> None:
    assert model.embed(["policy " * 5000]).shape == (1, 384)


def test_similar_meanings_are_closer(model: OnnxSentenceEmbedding) -> None:
    query, near, far = model.embed(
        [
            "Do we have to tell customers they are chatting with a bot?",
            "Users must be informed that they are interacting with an AI system.",
            "The penalty for late tax filing is a fine.",
        ]
    )
    assert float(query @ near) > float(query @ far)


def test_knowledge_base_with_onnx_reopens_after_restart(
    model: OnnxSentenceEmbedding, tmp_path: Path, policies: Path
) -> None:
    spec = f"onnx:{MODEL_DIR}"
    KnowledgeBase(tmp_path / "data", embeddings=spec, documents_root=policies).ingest([policies])
    reopened = KnowledgeBase(tmp_path / "data", embeddings=spec, documents_root=policies)
    assert not reopened.status().lexical_only
    hits = reopened.search("must we run a pentest before launch?", k=1, mode="vector")
    assert hits[0].source == "security.md"

    import chromadb
    from chromadb.config import Settings

    # A bare Chroma client rebuilds our embedding function from the stored configuration.
    client = chromadb.PersistentClient(
        path=str(tmp_path / "data" / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_collection(reopened.status().collection)
    result = collection.query(query_texts=["pentest before launch"], n_results=1)
    assert result["metadatas"] is not None
    assert result["metadatas"][0][0]["source"] == "security.md"


def test_auto_uses_a_given_model_folder(model: OnnxSentenceEmbedding) -> None:
    embedder = resolve_embedder("auto", onnx_model_dir=MODEL_DIR)
    assert embedder is not None and embedder.collection == "shepherd-onnx-all-minilm-l6-v2"


def test_a_folder_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailableError, match="model file not found"):
        OnnxSentenceEmbedding(str(tmp_path)).load()


def test_turning_the_memory_arena_off_does_not_change_embeddings(model: OnnxSentenceEmbedding) -> None:
    plain = OnnxSentenceEmbedding(str(MODEL_DIR), cpu_mem_arena=False)
    texts = ["Keep secrets in the vault.", "Logs are kept for ninety days."]
    assert np.allclose(plain.embed(texts), model.embed(texts), atol=1e-5)


def test_batches_run_side_by_side_give_the_same_rows_as_one_at_a_time(model: OnnxSentenceEmbedding) -> None:
    texts = [f"Policy {n}: " + "keep records " * (n % 7 + 1) for n in range(3 * model.batch_size + 1)]
    together = model.embed(texts)
    for row in (0, model.batch_size, len(texts) - 1):
        assert float(together[row] @ model.embed([texts[row]])[0]) > 0.9999
