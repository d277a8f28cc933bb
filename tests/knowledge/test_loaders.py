"""Loaders: each format becomes sections that follow its headings."""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from knowledge import KnowledgeBase
from knowledge.loaders import LoadError, load_bytes, load_file, markdown_sections

from .conftest import minimal_pdf, pdf_with_outline, word_document

KB = Callable[..., KnowledgeBase]


def test_markdown_sections_keep_heading_trail_and_fold_article_titles() -> None:
    text = (
        "# Chapter III - High-Risk AI Systems\n\n---\n\n# CHAPTER III\n\n# HIGH-RISK AI SYSTEMS\n\n"
        "## SECTION 3\n\nObligations of deployers\n\n### Article 27\n\n"
        "Fundamental rights impact assessment for high-risk AI systems\n\n"
        "1. Prior to deploying a high-risk AI system, deployers shall assess.\n"
    )
    sections = markdown_sections(text)
    assert [section.trail for section in sections] == [
        (
            "Chapter III - High-Risk AI Systems",
            "SECTION 3",
            "Obligations of deployers",
            "Article 27",
            "Fundamental rights impact assessment for high-risk AI systems",
        )
    ]
    assert sections[0].text.startswith("1. Prior to deploying")


def test_markdown_lead_sentence_becomes_context_of_subsections() -> None:
    text = "# GOVERN 1.6\n\nInventories of AI systems exist.\n\n## About\n\nLong explanation here.\n"
    sections = markdown_sections(text)
    assert sections[1].trail == ("GOVERN 1.6", "About")
    assert sections[1].context == "Inventories of AI systems exist."


def test_markdown_ignores_headings_inside_code_fences() -> None:
    sections = markdown_sections("# Real\n\n```\n# not a heading\n```\n")
    assert [section.trail for section in sections] == [("Real",)]
    assert "# not a heading" in sections[0].text


def test_a_menu_of_bare_links_keeps_its_words_and_drops_its_urls() -> None:
    links = "\n".join(f"- [recital {n}](https://example.eu/act#rct_{n})" for n in range(1, 7))
    (section,) = markdown_sections(f"# Annex\n\nLinks:\n{links}\n")
    assert "https://" not in section.text
    assert section.text.startswith("Links:\n- recital 1\n- recital 2")


def test_a_short_list_of_links_in_prose_is_left_alone() -> None:
    text = "See [the standard](https://example.org/std) and [the form](https://example.org/form)."
    items = "\n".join(f"- [source {n}](https://example.org/{n})" for n in range(3))
    (section,) = markdown_sections(f"# Policy\n\n{text}\n\n{items}\n")
    assert "https://example.org/std" in section.text and "https://example.org/2" in section.text


def test_front_matter_gives_tags_and_gates_and_is_not_text() -> None:
    document = load_bytes(
        b"---\ntitle: Data\ntags: [privacy, risk]\ngates: [pilot, production]\n---\n# Data\n\nBody.\n",
        ".md",
    )
    assert document.tags == ("privacy", "risk")
    assert document.gates == ("pilot", "production")
    assert all("privacy" not in section.text for section in document.sections)


def test_invalid_front_matter_is_a_load_error() -> None:
    with pytest.raises(LoadError, match="front matter"):
        load_bytes(b"---\ntags: [unclosed\n---\n# A\n\nBody\n", ".md")


def test_text_file_is_one_untitled_section() -> None:
    document = load_bytes("Plain words.\n\nSecond paragraph, caf\u00e9.".encode(), ".txt")
    assert len(document.sections) == 1
    assert document.sections[0].trail == ()
    assert "caf\u00e9" in document.sections[0].text


def test_setext_headings_make_the_trail_and_a_rule_stays_a_rule() -> None:
    text = (
        b"Data retention\n==============\n\nKeep logs for 90 days.\n\n"
        b"Access control\n--------------\n\nOnly admins may read logs.\n\n---\n\nReviewed yearly.\n"
    )
    by_trail = {section.trail: section.text for section in load_bytes(text, ".md").sections}
    assert by_trail[("Data retention",)] == "Keep logs for 90 days."
    assert by_trail[("Data retention", "Access control")] == "Only admins may read logs.\n\nReviewed yearly."


def test_atx_headings_indented_by_up_to_three_spaces_are_headings() -> None:
    """CommonMark allows one to three spaces before ``#``; four make an indented code block."""
    text = (
        b"  # Data policy\n\nApplies to all teams.\n\n"
        b"   ## Retention\n\nKeep logs for 90 days.\n\n"
        b" ## Access\n\nOnly admins may read logs.\n\n"
        b"    ## not a heading\n"
    )
    by_trail = {section.trail: section.text for section in load_bytes(text, ".md").sections}
    assert by_trail[("Data policy", "Retention")] == "Keep logs for 90 days."
    assert by_trail[("Data policy", "Access")].startswith("Only admins may read logs.")
    assert "## not a heading" in by_trail[("Data policy", "Access")]


def test_a_heading_ending_in_a_hash_keeps_it_and_a_closing_sequence_goes() -> None:
    """CommonMark: only a run of #s after a space closes a heading ("## Rules for C#" is titled
    "Rules for C#")."""
    text = b"## Rules for C# ##\n\nUse the analyzers.\n\n## Issue #42\n\nFixed.\n\n## F#\n\nAllowed.\n"
    assert [section.trail for section in load_bytes(text, ".md").sections] == [
        ("Rules for C#",),
        ("Issue #42",),
        ("F#",),
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_read_in_its_encoding(encoding: str) -> None:
    """Windows editors save "Unicode" text as UTF-16 with a byte order mark."""
    data = "## Rétention\n\nKeep inference logs for 90 days.\n".encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    document = load_bytes(data, ".md")
    assert [(section.trail, section.text) for section in document.sections] == [
        (("Rétention",), "Keep inference logs for 90 days.")
    ]


def test_one_stray_byte_does_not_garble_a_utf8_file() -> None:
    data = "## Données\n\nLes équipes doivent s’enregistrer.\n\nPied de page".encode() + b" \xa0\n"
    document = load_bytes(data, ".md")
    assert document.sections[0].trail == ("Données",)
    assert document.sections[0].text.startswith("Les équipes doivent s’enregistrer.")


def test_a_cp1252_file_is_still_read_as_cp1252() -> None:
    document = load_bytes("## Données\n\nLes équipes – café.\n".encode("cp1252"), ".md")
    assert [(section.trail, section.text) for section in document.sections] == [
        (("Données",), "Les équipes – café.")
    ]


def test_html_headings_make_the_trail_and_scripts_are_dropped() -> None:
    html = (
        b"<html><head><title>T</title><script>var x = 'secret';</script></head><body>"
        b"<h1>Security</h1><p>Intro.</p><h2>Secrets</h2><p>Use the <b>vault</b>.</p>"
        b"<ul><li>Rotate keys</li></ul></body></html>"
    )
    document = load_bytes(html, ".html")
    by_trail = {section.trail: section.text for section in document.sections}
    assert (
        "Use the vault ." in by_trail[("Security", "Secrets")] or "vault" in by_trail[("Security", "Secrets")]
    )
    assert "Rotate keys" in by_trail[("Security", "Secrets")]
    assert not any("secret'" in text for text in by_trail.values())


def test_html_text_outside_paragraphs_is_kept_under_its_heading() -> None:
    html = (
        b"<html><body><h1>Acceptable use</h1><p>Scope: everyone who works with AI tools.</p>"
        b"<div>All staff must register every AI tool before use.</div>"
        b"<section><h2>Exceptions</h2><span>Exceptions are approved by the risk officer.</span>"
        b"<div>Each exception expires after <b>one</b> year.</div></section></body></html>"
    )
    document = load_bytes(html, ".html")
    by_trail = {section.trail: section.text for section in document.sections}
    assert "register every AI tool" in by_trail[("Acceptable use",)]
    assert "Scope: everyone" in by_trail[("Acceptable use",)]
    exceptions = by_trail[("Acceptable use", "Exceptions")]
    assert "approved by the risk officer." in exceptions
    assert "expires after one year." in exceptions


def test_word_headings_make_the_trail(tmp_path: Path) -> None:
    path = tmp_path / "doc.docx"
    word_document(path)
    document = load_file(path)
    (section,) = document.sections
    assert section.trail == ("Model documentation", "Model cards")
    assert "model card naming its owner" in section.text
    assert "Owner and intended use" in section.text
    assert "Evaluation dataset" in section.text


def test_word_headings_in_a_house_style_based_on_a_heading_style_make_the_trail(tmp_path: Path) -> None:
    """Company templates name their own heading styles ("Policy Heading", based on Heading 1):
    their headings were read as body text, and every passage was cited under the heading
    above them, or none."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    house = document.styles.add_style("Policy Heading", WD_STYLE_TYPE.PARAGRAPH)
    house.base_style = document.styles["Heading 1"]
    sub = document.styles.add_style("Policy Subheading", WD_STYLE_TYPE.PARAGRAPH)
    sub.base_style = document.styles["Heading 2"]
    document.add_paragraph("Data retention", style="Policy Heading")
    document.add_paragraph("Logs are kept ninety days.")
    document.add_paragraph("Backups", style="Policy Subheading")
    document.add_paragraph("Backups are kept a year.")
    document.add_paragraph("Access control", style="Policy Heading")
    document.add_paragraph("Access is reviewed quarterly.")
    # A style given an outline level (listed in Word's navigation pane), based on Normal.
    annex = document.styles.add_style("Annex Title", WD_STYLE_TYPE.PARAGRAPH)
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "0")
    annex.element.get_or_add_pPr().append(level)
    document.add_paragraph("Annex A", style="Annex Title")
    document.add_paragraph("Forms to fill in.")
    path = tmp_path / "house-style.docx"
    document.save(str(path))
    sections = load_file(path).sections
    assert [(section.trail, section.text) for section in sections] == [
        (("Data retention",), "Logs are kept ninety days."),
        (("Data retention", "Backups"), "Backups are kept a year."),
        (("Access control",), "Access is reviewed quarterly."),
        (("Annex A",), "Forms to fill in."),
    ]


def test_pdf_pages_become_sections() -> None:
    document = load_bytes(minimal_pdf(["Risk register page", "Second page"]), ".pdf")
    assert [section.trail for section in document.sections] == [("page 1",), ("page 2",)]
    assert "Risk register page" in document.sections[0].text


def test_pdf_bookmarks_name_the_sections() -> None:
    data = pdf_with_outline(["Intro text", "Risk text", "More risk"], [("Intro", 0), ("Risk", 1)])
    document = load_bytes(data, ".pdf")
    assert [section.trail for section in document.sections] == [
        ("Intro", "page 1"),
        ("Risk", "page 2-3"),
    ]


def test_a_pdf_page_where_several_bookmarks_start_is_named_by_each_of_them() -> None:
    """Article 2 starts on the page where Article 3 starts: the page was cited as Article 3
    alone, Article 2 named nowhere, and a question on it answered with "Article 3"."""
    data = pdf_with_outline(
        ["Scope of the policy", "Logs are kept. Humans oversee the model.", "Oversight continues"],
        [("Article 1", 0), ("Article 2", 1), ("Article 3", 1)],
    )
    document = load_bytes(data, ".pdf")
    assert [section.trail for section in document.sections] == [
        ("Article 1", "page 1"),
        ("Article 2; Article 3", "page 2"),
        ("Article 3", "page 3"),
    ]


def test_a_chapter_and_its_first_article_starting_on_one_page_name_it_as_one_trail() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(minimal_pdf(["Definitions", "Risk management applies"]))))
    writer.add_outline_item(title="Chapter I", page_number=0)
    chapter = writer.add_outline_item(title="Chapter II", page_number=1)
    writer.add_outline_item(title="Article 9", page_number=1, parent=chapter)
    out = io.BytesIO()
    writer.write(out)
    document = load_bytes(out.getvalue(), ".pdf")
    assert [section.trail for section in document.sections] == [
        ("Chapter I", "page 1"),
        ("Chapter II", "Article 9", "page 2"),
    ]


@pytest.mark.parametrize(
    ("data", "suffix", "reason"),
    [
        (b"%PDF-1.4\nthis is not really a pdf", ".pdf", "PDF"),
        (b"", ".md", "empty file"),
        (b"  \n\n ", ".txt", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ".md", "binary"),
        (b"PK\x03\x04 not a zip", ".docx", "Word"),
        (b"# Only a heading\n", ".md", "no text"),
    ],
)
def test_bad_files_raise_a_load_error_with_a_reason(data: bytes, suffix: str, reason: str) -> None:
    with pytest.raises(LoadError, match=reason):
        load_bytes(data, suffix)


@pytest.mark.parametrize("data", [b"%PDF-1.4 junk", bytes(range(256)) * 12])
def test_a_corrupt_pdf_is_one_named_error_with_nothing_logged_beside_it(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(LoadError, match="corrupt or unreadable PDF"):
        load_bytes(data, ".pdf")
    # pypdf's own complaints ("EOF marker not found") would print without the file's name.
    assert [record.getMessage() for record in caplog.records] == []


def test_html_page_banner_footer_and_sidebar_are_not_cited_as_policy(make_kb: KB, tmp_path: Path) -> None:
    """An intranet footer ("report a personal data breach to ...") was cited as the policy's
    last section."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "travel.html").write_text(
        "<html><head><title>Travel policy</title></head><body>"
        "<header><a href='/'>Acme Intranet</a><ul><li><a href='/privacy'>Privacy notice</a></li></ul></header>"
        "<div role='banner'>Acme staff portal</div>"
        "<article><header><h1>Travel policy</h1></header><h2>Booking</h2>"
        "<p>Book trains for trips under four hours.</p>"
        "<h2>Expenses</h2><p>Submit receipts within thirty days.</p></article>"
        "<aside><p>Most read: the personal data breach procedure</p></aside>"
        "<footer><p>Report a personal data breach to dpo@acme.example | Cookie settings</p></footer>"
        "</body></html>"
    )
    (folder / "remote.html").write_text(
        "<body><div class='top'>Acme Intranet: report a personal data breach here</div>"
        "<main><h1>Remote work</h1><p>Work from home up to three days a week.</p></main></body>"
    )
    kb = make_kb()
    kb.ingest([folder])
    hits = kb.search("report a personal data breach", k=5, mode="bm25")
    assert not [hit.citation for hit in hits if "breach" in hit.text]
    assert kb.search("trains for trips", k=1)[0].citation == "travel.html > Travel policy > Booking"
    assert kb.search("work from home", k=1)[0].citation == "remote.html > Remote work"


def test_word_table_rows_are_table_lines_not_headings(make_kb: KB, tmp_path: Path) -> None:
    """A cell starting with "#" made its row a heading, and the next row its subtitle: the
    section after the table was cited as "of affected users | Contact > 1-10 | Team lead > Retention"."""
    import docx

    folder = tmp_path / "policies"
    folder.mkdir()
    document = docx.Document()
    document.add_heading("Incident policy", 1)
    document.add_heading("Who to notify", 2)
    document.add_paragraph("Notify according to the number of affected users.")
    table = document.add_table(rows=3, cols=2)
    rows = [("# of affected users", "Contact"), ("1-10", "Team lead"), ("Over 1000", "CISO")]
    for row, cells in enumerate(rows):
        for column, text in enumerate(cells):
            table.rows[row].cells[column].text = text
    document.add_heading("Retention", 2)
    document.add_paragraph("Keep incident records for five years.")
    document.save(str(folder / "incidents.docx"))
    kb = make_kb()
    kb.ingest([folder])
    hits = {hit.section: hit.text for hit in kb.search("incident records years affected users", k=5)}
    assert set(hits) == {"Incident policy > Who to notify", "Incident policy > Retention"}
    assert (
        "| # of affected users | Contact |\n| 1-10 | Team lead |" in hits["Incident policy > Who to notify"]
    )


def test_html_table_rows_stay_together_and_out_of_the_heading_trail(make_kb: KB, tmp_path: Path) -> None:
    """A header cell was cited as a section ("Who to notify > Severity") and every cell was a
    paragraph of its own, "High" apart from "CISO within one hour"."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "incidents.html").write_text(
        "<h1>Incident policy</h1><h2>Who to notify</h2>"
        "<table><caption>Contacts</caption><tr><th>Severity</th><th>Contact</th></tr>"
        "<tr><td>Low</td><td>Team lead</td></tr><tr><td>High</td><td>CISO within one hour</td></tr></table>"
        "<h2>Retention</h2><p>Keep incident records for five years.</p>"
    )
    kb = make_kb()
    kb.ingest([folder])
    hit = kb.search("who is notified of a high severity incident CISO", k=1)[0]
    assert hit.section == "Incident policy > Who to notify"
    assert (
        hit.text == "Contacts\n| Severity | Contact |\n| Low | Team lead |\n| High | CISO within one hour |"
    )


def test_a_word_title_names_every_section_not_only_the_first(make_kb: KB, tmp_path: Path) -> None:
    """Word's Title style was glued to the first heading ("Incident Response Policy: Purpose")
    and missing from every other section, in citations and in what search indexes."""
    import docx

    folder = tmp_path / "policies"
    folder.mkdir()
    document = docx.Document()
    document.add_heading("Incident Response Policy", 0)  # Word's "Title" style
    document.add_heading("Purpose", 1)
    document.add_paragraph("This policy explains how incidents are handled.")
    document.add_heading("Reporting", 1)
    document.add_paragraph("Report incidents within 24 hours to the security desk.")
    document.save(str(folder / "incidents.docx"))
    kb = make_kb()
    kb.ingest([folder])
    sections = sorted(hit.section for hit in kb.search("incidents handled report security desk", k=5))
    assert sections == ["Incident Response Policy > Purpose", "Incident Response Policy > Reporting"]


def test_a_front_matter_title_is_cited_once_and_keeps_each_section_context(
    make_kb: KB, tmp_path: Path
) -> None:
    """A preamble before the first heading made the title be put in front of every trail, those
    already starting with it too ("Security Policy > Security Policy > Secrets"), and the lead
    text of the headings above each section was dropped."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "security.md").write_text(
        "---\ntitle: Security Policy\ntags: [security]\n---\n"
        "Owner: the CISO. Reviewed every year.\n\n# Security Policy\n\n## Secrets\n\n"
        "Secrets live in the vault, never in source code.\n"
    )
    (folder / "access.md").write_text(
        "---\ntitle: Access Policy\n---\n# Access\n\nAccess is granted by role.\n\n"
        "## Reviews\n\nAccess is reviewed every quarter.\n"
    )
    kb = make_kb()
    kb.ingest([folder])
    assert kb.search("where do secrets live", k=1)[0].citation == "security.md > Security Policy > Secrets"
    reviews = load_file(folder / "access.md").sections[-1]
    assert (reviews.trail, reviews.context) == (
        ("Access Policy", "Access", "Reviews"),
        "Access is granted by role.",
    )
