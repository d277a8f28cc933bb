"""Knowledge benchmark: ingestion time, re-ingestion, search latency at 10,000 chunks, memory.

Usage: .venv/bin/python benchmarks/bench_knowledge.py [--corpus DIR] [--model DIR]
       [--questions FILE.jsonl ...] [--chunks 10000]

Goals (issue 4, 2-core machine): ingest the shared corpus with the local model <= 35 s,
re-ingest unchanged <= 2 s, hybrid search p95 <= 50 ms at 10,000 chunks, hybrid hit@5 >= 0.85.

Retrieval quality is printed for each questions file: by default the development sets
(eval_dev.jsonl, the one the ranking settings were tuned on, and eval_dev2.jsonl, written later
to find what the first no longer showed) and the held-out set
(eval_questions.jsonl, written by someone else and never tuned on). Timings depend on what
else runs: the load average and the CPU seconds of ingestion are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from knowledge import KnowledgeBase  # noqa: E402
from knowledge.evaluation import evaluate, load_questions  # noqa: E402

SHARED = REPO.parent / "shared"
QUERIES = [
    "do we have to tell customers they are talking to a chatbot?",
    "who must carry out a fundamental rights impact assessment?",
    "how long do we keep logs of a high-risk system?",
    "do we need an inventory of all our models?",
    "how do we decommission an AI system safely?",
    "what goes into the technical documentation?",
    "fines for breaking the AI act",
    "how to test a model for bias and fairness",
    "third-party vendor AI risk",
    "post-market monitoring plan",
]


def _pad(kb: KnowledgeBase, target: int, seed: int = 7) -> int:
    """Add synthetic chunks (random words of the corpus, random unit vectors) up to target."""
    snapshot = kb._current_snapshot()
    missing = target - len(snapshot.ids)
    if missing <= 0:
        return 0
    rng = random.Random(seed)
    vocabulary = sorted({word for text in snapshot.texts for word in text.split() if word.isalpha()})
    dimensions = int(kb._embedder.embed_query("x").shape[1]) if kb._embedder else 8
    vectors = np.random.default_rng(seed).normal(size=(missing, dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    collection = kb._collection
    for start in range(0, missing, 1000):
        count = min(1000, missing - start)
        collection.add(
            ids=[f"synthetic-{start + n}" for n in range(count)],
            embeddings=vectors[start : start + count],  # type: ignore[arg-type]
            documents=[" ".join(rng.choices(vocabulary, k=140)) for _ in range(count)],
            metadatas=[
                {
                    "source": f"synthetic/{(start + n) // 10}.md",
                    "section": f"Synthetic {(start + n) // 10} > Part {(start + n) % 10}",
                    "root": "/synthetic",
                    "file_hash": "synthetic",
                    "file_chunks": 10,
                    "position": (start + n) % 10,
                    "gates": ["pilot"] if n % 3 == 0 else ["production"],
                }
                for n in range(count)
            ],
        )
    collection.modify(metadata={"shepherd_revision": uuid.uuid4().hex})
    kb._revision_checked_at = 0.0
    return missing


def _latency(kb: KnowledgeBase, mode: str, runs: int, **filters: object) -> tuple[float, float]:
    samples = []
    for n in range(runs):
        started = time.perf_counter()
        kb.search(QUERIES[n % len(QUERIES)], k=5, mode=mode, **filters)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument(
        "--questions",
        type=Path,
        nargs="+",
        default=[
            REPO / "benchmarks/data/eval_dev.jsonl",
            REPO / "benchmarks/data/eval_dev2.jsonl",
            REPO / "benchmarks/data/eval_questions.jsonl",
        ],
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        started = time.perf_counter()
        kb = KnowledgeBase(Path(tmp), embeddings=f"onnx:{args.model}", documents_root=args.corpus)
        rows.append(("open + load model", f"{time.perf_counter() - started:.2f} s", ""))
        load_before = os.getloadavg()[0]
        cpu = time.process_time()
        report = kb.ingest([args.corpus])
        cpu = time.process_time() - cpu
        rows.append(
            (
                "ingest corpus",
                f"{report.seconds:.1f} s",
                f"{report.files} files, {report.chunks} chunks, goal <= 35 s; "
                f"{cpu:.0f} CPU s, load {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            )
        )
        rows.append(("peak memory after ingest", f"{_peak_mb():.0f} MB", "RSS, model loaded"))
        again = kb.ingest([args.corpus])
        rows.append(
            ("re-ingest unchanged", f"{again.seconds:.2f} s", f"{again.skipped} skipped, goal <= 2 s")
        )
        for questions in args.questions:
            if not questions.exists():
                rows.append((f"eval {questions.name}", "missing", str(questions)))
                continue
            for result in evaluate(kb, load_questions(questions), k=5):
                rows.append(
                    (
                        f"eval {questions.stem} {result.mode}",
                        f"hit@5 {result.hit_at_k:.3f}",
                        f"MRR {result.mrr:.3f}, {result.questions} questions",
                    )
                )
        added = _pad(kb, args.chunks)
        started = time.perf_counter()
        total = kb.status().chunks
        rows.append(("BM25 rebuild", f"{time.perf_counter() - started:.2f} s", f"{total} chunks (+{added})"))
        for label, mode, filters in [
            ("search hybrid", "hybrid", {}),
            ("search bm25", "bm25", {}),
            ("search vector", "vector", {}),
            ("search hybrid gate=pilot", "hybrid", {"gate": "pilot"}),
        ]:
            _latency(kb, mode, 10, **filters)
            p50, p95 = _latency(kb, mode, args.runs, **filters)
            rows.append((label, f"p50 {p50:.1f} ms", f"p95 {p95:.1f} ms"))
    rows.append(("peak memory (RSS)", f"{_peak_mb():.0f} MB", f"whole run, {args.chunks} chunks"))
    width = max(len(row[0]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")


if __name__ == "__main__":
    main()
