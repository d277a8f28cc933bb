"""Imports point one way: bot -> gates, storage, knowledge; storage -> gates; gates and
knowledge import nothing of ours (ARCHITECTURE.md §3)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"bot", "gates", "storage", "knowledge"}
ALLOWED = {
    "gates": {"gates"},
    "knowledge": {"knowledge"},
    "storage": {"storage", "gates"},
    "bot": OURS,
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_layering_allows(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) - ALLOWED[package]
    }
    assert not offenders, f"{package} imports across the layering: {offenders}"


def test_the_domain_does_no_io() -> None:
    """gates/ is pure: no Slack, no SQL, no network, no clock reads."""
    forbidden = {"slack_sdk", "slack_bolt", "sqlalchemy", "httpx", "requests", "socket", "chromadb"}
    for path in (ROOT / "gates").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            (node.module or "").split(".")[0]
            if isinstance(node, ast.ImportFrom)
            else alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [node])  # type: ignore[attr-defined]
        }
        assert not names & forbidden, f"{path.name} imports {names & forbidden}"
        source = path.read_text(encoding="utf-8")
        assert "datetime.now(" not in source and "time.time(" not in source, f"{path.name} reads the clock"
