"""Text people typed renders, once in Markdown, as exactly what they typed."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from gates.markdown import markdown_text

RENDER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

TYPED = [
    'Stock-out rate <img src=x onerror="alert(1)"> [DPIA signed by the DPO](https://evil.example/phish)',
    "<https://evil.example> <!-- hidden --> <script>alert(1)</script>",
    "![chart](https://evil.example/x.png) [ref]: https://evil.example",
    "**bold** __bold__ *it* _it_ `code` ~~struck~~",
    "&amp; &lt; &#60; \\* \\",
    "# heading",
    "###### heading",
    "- item",
    "+ item",
    "* item",
    "1. item",
    "2) item",
    "> quote",
    "===",
    "---",
    "***",
]
LEFT_AS_TYPED = ["18.5%", "-3", "snake case 6%", "#hashtag", "e.g. this"]


@pytest.mark.parametrize("typed", TYPED + LEFT_AS_TYPED)
def test_typed_text_renders_as_itself(typed: str) -> None:
    page = RENDER.render(markdown_text(typed))
    assert page.startswith("<p>") and page.endswith("</p>\n"), page
    assert html.unescape(page.removeprefix("<p>").removesuffix("</p>\n")) == typed


@pytest.mark.parametrize("typed", ["a | b", "a \\| b", "[x](https://evil.example) | <b>y</b>"])
def test_typed_text_stays_in_its_table_cell(typed: str) -> None:
    page = RENDER.render(f"| A | B |\n| --- | --- |\n| {markdown_text(typed)} | two |\n")
    cells = page.split("<td>")[1:]
    assert [html.unescape(cell.split("</td>")[0]) for cell in cells] == [typed, "two"]


@pytest.mark.parametrize("typed", LEFT_AS_TYPED)
def test_text_without_markdown_meaning_keeps_its_source(typed: str) -> None:
    assert markdown_text(typed) == typed


def test_each_line_of_several_is_escaped() -> None:
    page = RENDER.render(
        "- **Label:**\n  " + "\n  ".join(markdown_text(line) for line in ["# one", "- two", "==="])
    )
    assert "<h1>" not in page and "<ul>\n<li>" not in page.split("<li>", 1)[1] and "<h2>" not in page
    assert "# one\n- two\n===" in html.unescape(page)
