"""Ranking rules: recitals as their own sections, one passage per section, priors, title field."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from knowledge import KnowledgeBase, KnowledgeError
from knowledge.chunking import numbered_parts
from knowledge.lexical import LexicalIndex, stem, tokenize

KB = Callable[..., KnowledgeBase]


def _recitals(count: int) -> str:
    return "\n\n".join(f"({n})\n\nRecital text number {n} about topic {n}." for n in range(1, count + 1))


def test_a_long_run_of_numbered_points_becomes_one_section_per_recital() -> None:
    parts = numbered_parts("Preamble - Whereas Clauses", f"Whereas:\n\n{_recitals(12)}")
    assert parts[0] == ("Preamble - Whereas Clauses", "Whereas:\n\n")
    assert parts[3][0] == "Preamble - Whereas Clauses > Recital 3"
    assert "number 3 " in parts[3][1]
    assert len(parts) == 13


def test_a_few_numbered_points_in_an_article_stay_one_section() -> None:
    text = "The regulation is amended as follows:\n\n(1)\n\nfirst change\n\n(2)\n\nsecond change"
    assert numbered_parts("Article 108", text) == [("Article 108", text)]


def test_numbered_points_outside_a_preamble_are_named_by_their_number() -> None:
    parts = numbered_parts("Annex > List", _recitals(10))
    assert [trail for trail, _ in parts][:2] == ["Annex > List > (1)", "Annex > List > (2)"]


@pytest.fixture
def long_policy(tmp_path: Path) -> Path:
    """One policy whose first section is long enough for several chunks."""
    folder = tmp_path / "long"
    folder.mkdir()
    paragraphs = "\n\n".join(
        f"Vendor models are reviewed for risk, paragraph {n}, by the vendor risk board." for n in range(40)
    )
    (folder / "vendors.md").write_text(
        f"# Vendors\n\n## Vendor review\n\n{paragraphs}\n\n## Vendor exit\n\n"
        "When a vendor model is retired, the vendor risk owner archives its evidence.\n",
        encoding="utf-8",
    )
    return folder


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_search_returns_at_most_one_passage_per_section(make_kb: KB, long_policy: Path, mode: str) -> None:
    kb = make_kb(chunk_chars=300)
    kb.ingest([long_policy])
    assert kb.status().chunks > 5
    hits = kb.search("vendor risk review", k=5, mode=mode)  # type: ignore[arg-type]
    assert sorted(hit.section for hit in hits) == ["Vendors > Vendor exit", "Vendors > Vendor review"]


@pytest.fixture
def act(tmp_path: Path) -> Path:
    """A regulation with recitals that repeat the words of the article they explain."""
    folder = tmp_path / "act"
    folder.mkdir()
    recitals = "\n\n".join(
        f"({n})\n\nRecital {n}: deployers of chatbots should disclose the chatbot to people, "
        "because disclosure of a chatbot builds trust."
        for n in range(1, 13)
    )
    (folder / "01_preamble.md").write_text(f"# Preamble - Whereas Clauses\n\n{recitals}\n", encoding="utf-8")
    (folder / "02_articles.md").write_text(
        "# Chapter IV\n\n## Article 50\n\nTransparency obligations\n\n"
        "Deployers shall disclose a chatbot to the people who talk to it.\n",
        encoding="utf-8",
    )
    return folder


def test_recitals_rank_below_the_article_they_explain(make_kb: KB, act: Path) -> None:
    kb = make_kb()
    kb.ingest([act])
    hits = kb.search("do deployers have to disclose the chatbot?", k=5)
    assert hits[0].section.startswith("Chapter IV > Article 50")
    assert all(hit.section.startswith("Preamble - Whereas Clauses > Recital ") for hit in hits[1:])


def test_without_priors_the_wordier_recitals_win(make_kb: KB, act: Path) -> None:
    kb = make_kb(priors=())
    kb.ingest([act])
    hits = kb.search("do deployers have to disclose the chatbot?", k=5)
    assert "Article 50" not in hits[0].section


def test_a_table_of_contents_ranks_below_the_article_it_lists(make_kb: KB, act: Path) -> None:
    (act / "00_TABLE_OF_CONTENTS.md").write_text(
        "# AI Act - Table of Contents\n\n## Chapter IV: chatbot disclosure\n\n"
        "- Article 50: deployers disclose the chatbot, chatbot disclosure (02_articles.md)\n",
        encoding="utf-8",
    )
    kb = make_kb()
    kb.ingest([act])
    sections = [hit.section for hit in kb.search("do deployers have to disclose the chatbot?", k=5)]
    assert sections[0].startswith("Chapter IV > Article 50")
    assert any(section.startswith("AI Act - Table of Contents") for section in sections[1:])


def test_the_forms_of_one_word_share_a_stem() -> None:
    for forms in (
        ("score", "scores", "scored", "scoring"),
        ("provide", "provided", "provides", "providing"),
        ("plan", "plans", "planned", "planning"),
        ("policy", "policies"),
        ("apply", "applied", "applies"),
        ("assess", "assessed", "assesses", "assessing"),
        ("bias", "biases", "biased"),
        ("area", "areas"),
    ):
        assert len({stem(form) for form in forms}) == 1, forms
    assert stem("need") == "need" and stem("agree") == "agree" and stem("gpt4") == "gpt4"
    assert tokenize("GOVERN 1.6 requires an inventory") == ["govern", "1.6", "requir", "inventory"]


def test_an_invalid_prior_pattern_is_a_clear_error(make_kb: KB) -> None:
    with pytest.raises(KnowledgeError, match="invalid prior pattern"):
        make_kb(priors=[("(unclosed", 0.5)])


def test_a_word_in_the_heading_trail_counts_more_than_the_same_word_in_a_long_body() -> None:
    filler = "who to call and when " * 20
    texts = [
        f"Incident reporting\n\n{filler}",
        f"Vendor review\n\n{filler} an incident, an incident, an incident",
        f"Model inventory\n\n{filler}",
    ]
    titles = ["Incident reporting", "Vendor review", "Model inventory"]
    plain = LexicalIndex.build(texts).scores("incident")
    fielded = LexicalIndex.build(texts, titles=titles, title_weight=1.0).scores("incident")
    assert plain[1] > plain[0] > 0
    assert fielded[0] > fielded[1]
    assert fielded[2] == 0


def test_titles_must_match_the_texts_one_to_one() -> None:
    with pytest.raises(ValueError, match="one title per text"):
        LexicalIndex.build(["a text"], titles=[], title_weight=0.3)


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    """Four subcategory files sharing the template headings "About" and "Suggested Actions"."""
    folder = tmp_path / "playbook"
    folder.mkdir()
    for number, topic in enumerate(["inventory", "decommissioning", "training", "vendors"], start=1):
        (folder / f"GOVERN_1.{number}.md").write_text(
            f"# GOVERN 1.{number}\n\nThe {topic} of models is managed.\n\n"
            f"## About\n\nWhy {topic} of models matters for model risk.\n\n"
            f"## Suggested Actions\n\nKeep a {topic} record for every model.\n",
            encoding="utf-8",
        )
    return folder


def test_sections_under_template_headings_collapse_into_their_document(make_kb: KB, playbook: Path) -> None:
    kb = make_kb()
    kb.ingest([playbook])
    hits = kb.search("models record", k=5, mode="bm25")
    assert len(hits) == 4
    assert len({hit.source for hit in hits}) == 4


def test_sections_of_policies_written_from_one_template_are_not_collapsed_into_one_result(
    make_kb: KB, tmp_path: Path
) -> None:
    """Three policies sharing Scope / Requirements / Exceptions under a bare title gave one
    result per document: the retention rule or its exception was hidden from the answer."""
    folder = tmp_path / "policies"
    folder.mkdir()
    rules = {
        "retention": (
            "Log retention",
            "Logs are kept for ninety days.",
            "Exceptions to log retention need written approval from the CISO.",
        ),
        "vendors": ("Vendor AI", "Follow the standard.", "None."),
        "access": ("Access control", "Follow the standard.", "None."),
    }
    for name, (topic, requirement, exception) in rules.items():
        (folder / f"{name}.md").write_text(
            f"# {topic} policy\n\n## Scope\n\nThis covers {topic.lower()} for every team.\n\n"
            f"## Requirements\n\n{topic} requirement: {requirement}\n\n## Exceptions\n\n{exception}\n"
        )
    kb = make_kb()
    kb.ingest([folder])
    sections = [
        hit.section for hit in kb.search("log retention logs kept exceptions approval", k=5, mode="bm25")
    ]
    assert "Log retention policy > Requirements" in sections
    assert "Log retention policy > Exceptions" in sections


def test_keyword_search_reads_accented_words_ligatures_and_other_scripts_as_whole_words(
    make_kb: KB, tmp_path: Path
) -> None:
    """Only a-z and 0-9 made words: "évaluation" was cut to "valuation" (and found an English
    page about asset valuation), text pasted from a PDF with its "ﬁ" ligature ("classiﬁcation")
    was never found by "classification", and a Russian policy had no words at all."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "fr-risques.md").write_text(
        "# Risques\n\nL’évaluation des risques précède chaque pilote.\n", encoding="utf-8"
    )
    (folder / "finance.md").write_text(
        "# Finance\n\nAsset valuation of the model inventory is reviewed yearly.\n", encoding="utf-8"
    )
    (folder / "pasted-from-pdf.md").write_text(
        "# Tiers\n\nThe risk classiﬁcation of each system is recorded by its owner.\n", encoding="utf-8"
    )
    (folder / "ru-audit.md").write_text("# Аудит\n\nОценка рисков проводится ежегодно.\n", encoding="utf-8")
    kb = make_kb()
    kb.ingest([folder])
    assert [hit.source for hit in kb.search("évaluation", k=5, mode="bm25")] == ["fr-risques.md"]
    assert [hit.source for hit in kb.search("classification", k=5, mode="bm25")] == ["pasted-from-pdf.md"]
    assert [hit.source for hit in kb.search("оценка рисков", k=5, mode="bm25")] == ["ru-audit.md"]
    # One spelling of a word whatever the Unicode form: decomposed accents (as macOS saves
    # them), capitals, and "ß" written "ss".
    decomposed = unicodedata.normalize("NFD", "Datenschutz-Folgenabschätzung MASSNAHMEN")
    assert tokenize(decomposed) == tokenize("datenschutz-folgenabschätzung Maßnahmen")
