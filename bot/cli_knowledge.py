"""``shepherd knowledge``: ingest policy documents, search them, measure retrieval quality.

Commands take their :class:`~knowledge.KnowledgeBase` from :func:`get_kb`, built from the
settings the bot uses (``bot.bootstrap.knowledge_base``); ``--data-dir`` and ``--embeddings``
override only the store folder and the embeddings setting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import cli_console
from knowledge import SEARCH_MODES, KnowledgeBase, KnowledgeError
from knowledge.evaluation import evaluate, load_questions

app = typer.Typer(
    help="Policy knowledge: ingest documents, search them, measure retrieval quality.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = cli_console.console()
errors = cli_console.console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Options:
    data_dir: Path | None = None
    embeddings: str | None = None


_options = _Options()
_kb: KnowledgeBase | None = None


@app.callback()
def configure(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the knowledge store lives (default: settings).")
    ] = None,
    embeddings: Annotated[
        str | None,
        typer.Option(
            "--embeddings", help="auto, none, default, onnx:PATH or openai:MODEL (default: settings)."
        ),
    ] = None,
) -> None:
    """Policy knowledge: ingest documents, search them, measure retrieval quality."""
    global _kb
    _options.data_dir = data_dir
    _options.embeddings = embeddings
    _kb = None
    root = logging.getLogger()
    if not root.handlers:
        # The fallback to BM25 is announced through logging; show it, once, as one line.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logging.getLogger("shepherd").addHandler(handler)


def get_kb() -> KnowledgeBase:
    """The knowledge base the commands use (built once per process)."""
    global _kb
    if _kb is None:
        from bot.bootstrap import knowledge_base
        from bot.settings import Settings

        # The same store and model `shepherd serve` uses, so the CLI and the bot search the same
        # thing; --data-dir and --embeddings change only what they name.
        _kb = knowledge_base(Settings(), data_dir=_options.data_dir, embeddings=_options.embeddings)
    return _kb


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def _friendly(command: F) -> F:
    """Turn every failure into one line on stderr: no tracebacks for people."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, ValidationError):
            raise  # a bad setting is named, with the values to use, by ``bot.cli.main``
        except KnowledgeError as error:
            raise _fail(str(error)) from None
        except Exception as error:  # the last line of defence for a CLI user
            logging.getLogger("shepherd.knowledge").debug("command failed", exc_info=True)
            raise _fail(f"{type(error).__name__}: {error}".split("\n")[0]) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@_friendly
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove documents gone from the given folders.")
    ] = False,
) -> None:
    """Index policy documents (Markdown, text, PDF, Word, HTML); unchanged files are skipped.

    Exits 1 when a file could not be read (the others are indexed all the same), so that a
    script sees it.
    """
    for path in paths:
        if not path.exists():
            raise _fail(f"no such file or folder: {path}")
    kb = get_kb()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as bar:
        task = bar.add_task("ingesting", total=None)

        def on_progress(done: int, total: int, source: str) -> None:
            bar.update(task, completed=done, total=total, description=escape(source[-40:]) or "done")

        report = kb.ingest(paths, prune=prune, progress=on_progress)
    console.print(
        f"{report.files} files: {report.indexed} indexed ({report.chunks} chunks), "
        f"{report.skipped} unchanged, {len(report.failed)} failed"
        + (f", {report.removed} removed" if prune else "")
        + (f", {report.renamed} renamed" if report.renamed else "")
        + (f", {len(report.unsupported)} not read" if report.unsupported else "")
        + (f", {len(report.gone)} still searchable though gone" if report.gone else "")
        + f" in {report.seconds:.1f} s"
    )
    if report.renamed:
        console.print(
            f"  {report.renamed} documents stored before under a name relative to the folder given "
            "now go by their path under the policy folder, or their full path outside it "
            "(once, after an upgrade; their earlier copies were removed)",
            soft_wrap=True,
        )
    for source, reason in report.failed:
        # One line each however long the path, for a script reading the output.
        console.print(f"  [yellow]failed[/yellow] {escape(source)}: {escape(reason)}", soft_wrap=True)
    for source in report.gone:
        console.print(
            f"  [yellow]gone[/yellow] {escape(source)}: no longer in the folder but still searchable "
            "and cited; ingest with --prune to remove it",
            soft_wrap=True,
        )
    for source, reason in report.unsupported:
        console.print(f"  [yellow]not read[/yellow] {escape(source)}: {escape(reason)}", soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@app.command()
@_friendly
def search(
    query: Annotated[str, typer.Argument(help="The question, in plain words.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many passages.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, bm25 or vector.")] = "hybrid",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only documents with this tag.")] = None,
    gate: Annotated[str | None, typer.Option("--gate", help="Only documents for this gate.")] = None,
) -> None:
    """Find the passages that best answer a question."""
    if mode not in SEARCH_MODES:
        raise _fail(f"unknown mode {mode!r}: use hybrid, bm25 or vector")
    kb = get_kb()
    hits = kb.search(query, k=k, tags=tag or None, gate=gate, mode=mode)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "chunk_id": hit.chunk_id,
                        "source": hit.source,
                        "section": hit.section,
                        "score": round(hit.score, 6),
                        "text": hit.text,
                        "tags": list(hit.tags),
                        "gates": list(hit.gates),
                    }
                    for hit in hits
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not hits:
        console.print(escape(_why_nothing(kb, tag or [], gate)), soft_wrap=True)
        return
    for number, hit in enumerate(hits, start=1):
        console.print(f"[bold][{number}][/bold] {escape(hit.citation)}  [dim]{hit.score:.4f}[/dim]")
        excerpt = " ".join(hit.text.split())
        console.print(f"    {escape(excerpt[:400])}{'...' if len(excerpt) > 400 else ''}")


def _why_nothing(kb: KnowledgeBase, tags: list[str], gate: str | None) -> str:
    """Why a search found nothing, when the cause is not the question: "No passages found."
    after a misspelt gate or tag, or before any ingest, reads as "the policies say nothing"."""
    info = kb.status()
    if not info.chunks:
        return "The knowledge base holds no documents yet: add them with `shepherd knowledge ingest PATH`."
    if gate and gate.casefold() not in info.gates:
        return f"No document is tagged for gate {gate!r} (gates in use: {', '.join(info.gates) or 'none'})."
    if tags and not any(tag.casefold() in info.tags for tag in tags):
        return (
            f"No document is tagged {' or '.join(repr(tag) for tag in tags)} "
            f"(tags in use: {', '.join(info.tags) or 'none'})."
        )
    return "No passages found."


@app.command("eval")
@_friendly
def eval_command(
    questions: Annotated[
        list[Path], typer.Argument(help='JSONL files, one {"q": ..., "expect": [...]} per line.')
    ],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="Cut-off for hit@k.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Retrieval quality per file: hit@k and MRR for hybrid, BM25 only and vectors only."""
    # Read every file before searching, so a bad last file fails fast, not after minutes.
    sets = [(path, load_questions(path)) for path in questions]
    kb = get_kb()
    results = [(path, items, evaluate(kb, items, k=k)) for path, items in sets]
    if as_json:
        typer.echo(
            json.dumps(
                [{"file": str(path), **asdict(result)} for path, _, found in results for result in found],
                indent=2,
            )
        )
        return
    table = Table(title=f"retrieval quality, k={k}")
    for column in ("questions", "mode", f"hit@{k}", "MRR", "note"):
        table.add_column(column)
    for path, items, found in results:
        for number, result in enumerate(found):
            label = f"{path.name} ({len(items)})" if number == 0 else ""
            if result.error:
                table.add_row(escape(label), result.mode, "-", "-", escape(result.error))
            else:
                table.add_row(
                    escape(label),
                    result.mode,
                    f"{result.hit_at_k:.3f}",
                    f"{result.mrr:.3f}",
                    f"{len(result.misses)} missed",
                )
        table.add_section()
    console.print(table)


@app.command()
@_friendly
def status() -> None:
    """What the knowledge base holds and how it searches."""
    info = get_kb().status()
    console.print(f"{info.chunks} chunks from {info.documents} documents ({escape(info.store)})")
    if info.lexical_only:
        console.print(f"search: BM25 only ({escape(info.reason or 'no embeddings')})")
    else:
        console.print(f"search: hybrid, embeddings {escape(info.embeddings)}")


@app.command()
@_friendly
def ask(
    question: Annotated[str, typer.Argument(help="The question, in plain words.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many passages to retrieve.")] = 5,
) -> None:
    """Answer from the policies: grounded and cited with an LLM configured, else the best passages."""
    from bot.bootstrap import build_answerer
    from bot.settings import Settings
    from knowledge.answers import format_sources

    hits = get_kb().search(question, k=k)
    stream = build_answerer(Settings()).stream(question, hits)
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.answer
    if answer is not None and answer.hits:
        console.print("\n[bold]Sources[/bold]")
        console.print(escape(format_sources(answer)))
