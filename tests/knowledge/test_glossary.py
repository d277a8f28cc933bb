"""The glossary: everyday words in a question bring the policy vocabulary into keyword search."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import KnowledgeBase, KnowledgeError
from knowledge.glossary import DEFAULT_GLOSSARY, Glossary, GlossaryError, load_glossary

COMPLAINTS = """# Complaints

## Right to lodge a complaint

Any natural or legal person may lodge a complaint with the market surveillance authority
concerned when they consider that the regulation has been infringed.
"""
ROLLOUT = """# Rollout

## Announcements

Tell people on the intranet before you switch a new tool on for a department.
"""


def glossary(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "glossary.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_phrase_adds_its_policy_terms_whole_words_any_case() -> None:
    words = Glossary([(["regulator", "watchdog"], "market surveillance authority")])
    assert words.expand("Can we complain to the Regulator?") == (
        "Can we complain to the Regulator? market surveillance authority"
    )
    assert words.expand("regulatory sandbox") == "regulatory sandbox"  # not a whole word
    assert words.expand("nothing to see") == "nothing to see"


def test_hyphenated_words_are_not_split_and_phrases_are_literal() -> None:
    words = Glossary([(["risk"], "risk management"), (["c++ (beta)"], "programming language")])
    assert words.expand("is it high-risk?") == "is it high-risk?"
    assert words.expand("a risk") == "a risk risk management"
    assert words.expand("we use c++ (beta) here") == "we use c++ (beta) here programming language"
    assert words.expand("we use cc (beta) here") == "we use cc (beta) here"  # no regex meaning


def test_the_bundled_glossary_loads_and_can_be_turned_off(tmp_path: Path) -> None:
    bundled = load_glossary(None)
    assert bundled is not None and len(bundled) >= 40
    assert "lodge a complaint" in bundled.expand("how do I complain?")
    assert DEFAULT_GLOSSARY.is_file()
    assert load_glossary("none") is None
    own = load_glossary(str(glossary(tmp_path, "- say: [pii]\n  means: personal data\n")))
    assert own is not None and own.expand("pii?") == "pii? personal data"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- say: [a\n  means: b\n", "not valid YAML at line"),
        ("say: [a]\n", "must be a list of entries"),
        ("- say: [a]\n", "entry 1: expected exactly `say` and `means`"),
        ("- say: [a]\n  means: b\n- say: []\n  means: c\n", "entry 2: `say` must be a list of phrases"),
        ("- say: [a]\n  means: [b]\n", "entry 1: `means` must be the policy terms"),
    ],
)
def test_a_malformed_glossary_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = glossary(tmp_path, text)
    with pytest.raises(GlossaryError, match=message) as raised:
        Glossary.load(path)
    assert str(path) in str(raised.value)


def test_a_glossary_that_is_not_text_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "glossary.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    with pytest.raises(GlossaryError, match="it is not UTF-8 text") as raised:
        Glossary.load(path)
    assert str(path) in str(raised.value)


def test_a_glossary_nested_too_deeply_is_a_clear_error(tmp_path: Path) -> None:
    path = glossary(tmp_path, "- say: " + "[" * 3000 + "]" * 3000 + "\n  means: x\n")
    with pytest.raises(GlossaryError, match="nests its values too deeply"):
        Glossary.load(path)


def test_a_missing_glossary_file_is_a_knowledge_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="cannot read the glossary"):
        KnowledgeBase(tmp_path / "data", embeddings="none", glossary=str(tmp_path / "absent.yaml"))


def test_keyword_search_finds_the_policy_that_uses_other_words(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "complaints.md").write_text(COMPLAINTS, encoding="utf-8")
    (folder / "rollout.md").write_text(ROLLOUT, encoding="utf-8")
    question = "can people tell the regulator they are unhappy?"

    plain = KnowledgeBase(tmp_path / "plain", embeddings="none", glossary="none", documents_root=folder)
    plain.ingest([folder])
    assert [hit.source for hit in plain.search(question, k=1)] == ["rollout.md"]  # "tell people"

    words = glossary(
        tmp_path, "- say: [regulator]\n  means: market surveillance authority lodge a complaint\n"
    )
    bridged = KnowledgeBase(
        tmp_path / "bridged", embeddings="none", glossary=str(words), documents_root=folder
    )
    bridged.ingest([folder])
    [best] = bridged.search(question, k=1)
    assert (best.source, best.section) == ("complaints.md", "Complaints > Right to lodge a complaint")
