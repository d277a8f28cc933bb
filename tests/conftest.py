"""Shared test helpers: where the shared corpus and model live, and skips that CI turns into failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
CORPUS_DIR = SHARED / "corpus"
MODEL_DIR = SHARED / "models" / "all-MiniLM-L6-v2"


def require(available: bool, reason: str) -> None:
    """Skip the calling test when something it needs is missing; in CI, fail instead.

    CI sets ``SHEPHERD_TEST_REQUIRE_ALL=1`` so that a missing database, model or browser can
    never turn into a silently green run.
    """
    if available:
        return
    if os.environ.get("SHEPHERD_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI but not available: {reason}")
    pytest.skip(reason)
