"""The bundled policy pack: well-formed front matter, the pipeline's vocabulary, our own words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge.policy_pack import GATE_IDS, POLICY_DIR, POLICY_TAGS, policy_documents
from tests.conftest import CORPUS_DIR, REPO_ROOT, require

FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def front_matter(path: Path) -> dict[str, Any]:
    """The YAML block at the top of a policy document."""
    match = FRONT_MATTER.match(path.read_text(encoding="utf-8"))
    assert match, f"{path.name} has no front matter"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def body(path: Path) -> str:
    """A policy document without its front matter."""
    return FRONT_MATTER.sub("", path.read_text(encoding="utf-8"), count=1)


def test_pack_has_ten_markdown_policies_and_nothing_else() -> None:
    assert [p.name[:3] for p in policy_documents()] == [f"{n:02d}-" for n in range(1, 11)]
    assert {p.suffix for p in POLICY_DIR.iterdir()} == {".md"}
    assert not (POLICY_DIR / "README.md").exists()


@pytest.mark.parametrize("path", policy_documents(), ids=lambda p: p.name)
def test_each_policy_is_tagged_with_the_pipeline_vocabulary(path: Path) -> None:
    meta = front_matter(path)

    assert isinstance(meta["title"], str) and meta["title"].strip()
    assert isinstance(meta["tags"], list) and meta["tags"]
    assert set(meta["tags"]) <= POLICY_TAGS
    assert isinstance(meta["gates"], list) and meta["gates"]
    assert set(meta["gates"]) <= set(GATE_IDS)


@pytest.mark.parametrize("path", policy_documents(), ids=lambda p: p.name)
def test_each_policy_has_headed_sections_of_a_readable_length(path: Path) -> None:
    text = body(path)
    words = len(re.findall(r"\S+", text))

    assert 600 <= words <= 1500, f"{path.name}: {words} words"
    assert len(re.findall(r"(?m)^## ", text)) >= 4
    assert "|" not in text, "tables do not render in Slack"


def test_every_policy_tag_and_gate_is_covered_by_some_document() -> None:
    tags = {t for p in policy_documents() for t in front_matter(p)["tags"]}
    gates = {g for p in policy_documents() for g in front_matter(p)["gates"]}

    assert tags == POLICY_TAGS
    assert gates == set(GATE_IDS)


def test_pack_tags_match_the_default_pipeline() -> None:
    pipeline = REPO_ROOT / "gates" / "defaults" / "pipeline.yaml"
    require(pipeline.exists(), "gates/defaults/pipeline.yaml is not in this checkout")
    text = pipeline.read_text(encoding="utf-8")
    used = {
        tag.strip()
        for group in re.findall(r"policy_(?:refs|tags): \[([^\]]*)\]", text)
        for tag in group.split(",")
        if tag.strip()
    }

    assert used <= POLICY_TAGS


def test_pack_shares_no_sentence_with_the_third_party_corpus() -> None:
    require(CORPUS_DIR.is_dir(), f"shared corpus not found at {CORPUS_DIR}")

    def shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    corpus: set[tuple[str, ...]] = set()
    for path in CORPUS_DIR.rglob("*"):
        if path.suffix in {".md", ".json"}:
            corpus |= shingles(path.read_text(encoding="utf-8", errors="ignore"))

    for path in policy_documents():
        shared = shingles(body(path)) & corpus
        assert not shared, f"{path.name} repeats corpus text: {' '.join(next(iter(shared)))}"
