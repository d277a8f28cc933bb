"""Turn policy files (Markdown, text, PDF, Word, HTML) into sections that follow their headings.

Every loader produces the same shape, a :class:`LoadedDocument`: a list of sections, each with
its heading trail (``("Chapter III", "Article 27", "Fundamental rights impact assessment")``)
and its body text, plus the document's tags and gates from Markdown front matter.
A file that cannot be read raises :class:`LoadError` with a reason a person can act on.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}

# A short line right under a heading, without closing punctuation, is that heading's title
# ("### Article 27" then "Fundamental rights impact assessment for ..."): it belongs in the trail.
_SUBTITLE_MAX_CHARS = 160
# A heading's body that is one short paragraph followed by subsections introduces them.
_LEAD_MAX_CHARS = 400
# CommonMark allows up to three spaces before the #s (four make an indented code block), and
# only a run of #s after a space closes the heading ("## Rules for C#" keeps its "#").
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]*(?<=[ \t])#+)?[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# "Title" underlined with === (level 1) or --- (level 2): a setext heading, not a rule.
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LINK_ITEM = re.compile(r"^\s*[-*+]\s*\[([^\]]*)\]\([^)]*\)\s*$")
# A list of at least this many bare links is a navigation menu (web pages converted to
# Markdown keep them): its URLs would be most of the tokens the embedding model sees.
_MENU_MIN_LINKS = 5
_EMPHASIS = re.compile(r"(\*\*|__|`)")
# An image pasted into Markdown (Typora, Obsidian, Notion exports) is written inline as a data
# URI: tens of kilobytes of base64 in the text. Its caption (alt text) is what it says.
_DATA_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?data:[^)]*\)")
_DATA_IMG_TAG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']data:[^\"']*[\"'][^>]*>", re.IGNORECASE)
_ALT = re.compile(r"\balt\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
_LIST_OR_NUMBER = re.compile(r"^\s*([-*+]\s|\(?\d+[.)]|\([a-z]{1,4}\)\s)")


class LoadError(Exception):
    """A file could not be turned into text; ``str(error)`` says why, in a few words."""


@dataclass(frozen=True, slots=True)
class Section:
    """Body text under one heading, with the headings above it (outermost first).

    ``context`` holds the short lead paragraphs of the enclosing headings (a NIST
    subcategory's one-sentence statement above its "About" and "Suggested Actions"): not part
    of the passage, but indexed with it so that a chunk knows what it is about.
    """

    trail: tuple[str, ...]
    text: str
    context: str = ""


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """What a loader read from one file."""

    sections: list[Section]
    tags: tuple[str, ...] = ()
    gates: tuple[str, ...] = ()
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def is_supported(path: Path) -> bool:
    """True when ``path`` has an extension some loader reads."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


# What a file that fails to parse is called, in the reason given for it.
_UNREADABLE = {".pdf": "corrupt or unreadable PDF", ".docx": "not a readable Word (.docx) file"}


def load_bytes(data: bytes, suffix: str) -> LoadedDocument:
    """Parse the content of one file, chosen by its extension (``".md"``, ``".pdf"``...).

    Raises:
        LoadError: empty file, binary data under a text extension, corrupt PDF or Word file,
            a document without any text, or an unsupported extension.
    """
    suffix = suffix.lower()
    if not data.strip():
        raise LoadError("empty file")
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise LoadError(f"unsupported file type {suffix or '(none)'}")
    try:
        document = loader(data)
    except LoadError:
        raise
    except Exception as error:
        # pypdf and python-docx raise almost anything on a damaged file (AssertionError from
        # a page's content, AttributeError from a misspelt namespace, PdfStreamError...), at
        # any step of reading it. One damaged file must be one failed file, never the end of
        # an ingest or of the bot's start.
        what = _UNREADABLE.get(suffix, f"unreadable {suffix} file")
        raise LoadError(f"{what} ({type(error).__name__})") from error
    if not any(section.text.strip() for section in document.sections):
        raise LoadError("no text found in the document")
    return document


def load_file(path: Path) -> LoadedDocument:
    """Read and parse one file; see :func:`load_bytes`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LoadError(f"cannot read file: {error.strerror or error}") from error
    return load_bytes(data, path.suffix)


# --- text decoding -------------------------------------------------------------------------


# Byte order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one. Windows
# editors save "Unicode" text as UTF-16 with a mark; its NUL bytes are not binary data.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_text(data: bytes) -> str:
    """Decode bytes that claim to be text, refusing binary data.

    A byte order mark names the encoding. Without one, UTF-8 is read when most of the file's
    non-ASCII characters are valid UTF-8 (a stray byte becomes U+FFFD instead of garbling every
    accent in the file); otherwise cp1252, which Windows editors still save.

    Raises:
        LoadError: the bytes contain NUL characters or are mostly control characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) :].decode(encoding, errors="replace")
            break
    else:
        if b"\x00" in data[:8192]:
            raise LoadError("binary data, not text")
        text = _decode_unmarked(data)
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(text[:8192]) // 20):
        raise LoadError("binary data, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_unmarked(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    valid = len(text) - len(text.encode("ascii", errors="ignore")) - invalid  # non-ASCII, decoded
    if valid > invalid:
        return text
    # cp1252 leaves five bytes undefined; latin-1 accepts anything as a last resort.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- Markdown --------------------------------------------------------------------------------


def _clean_heading(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    return " ".join(text.split()).strip()


def _as_tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[object] = value.split(",")
    elif isinstance(value, list | tuple | set):
        items = value
    else:
        items = [value]
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Separate YAML front matter (``---`` ... ``---`` at the very top) from the body.

    Raises:
        LoadError: the front matter is not valid YAML or not a mapping.
    """
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            raw = "\n".join(lines[1:index])
            try:
                meta = yaml.safe_load(raw) if raw.strip() else {}
            except yaml.YAMLError as error:
                raise LoadError(f"invalid YAML front matter: {error}".split("\n")[0]) from error
            if meta is None:
                meta = {}
            if not isinstance(meta, dict):
                raise LoadError("front matter is not a mapping of keys to values")
            return meta, "\n".join(lines[index + 1 :])
    return {}, text


@dataclass
class _OpenSection:
    level: int
    parts: list[str]
    body: list[str] = field(default_factory=list)
    lead: str = ""


def _blocks(lines: list[str]) -> list[str]:
    """Group body lines into paragraphs separated by blank lines (rules count as blank)."""
    blocks: list[str] = []
    current: list[str] = []
    for line in lines:
        if not line.strip() or _RULE.match(line):
            if current:
                blocks.append("\n".join(current).strip("\n"))
                current = []
            continue
        current.append(line.rstrip())
    if current:
        blocks.append("\n".join(current).strip("\n"))
    return [_without_menu_urls(block) for block in blocks if block.strip()]


def _without_menu_urls(block: str) -> str:
    """A block that is mostly bare link items keeps the links' words and drops their URLs."""
    lines = block.split("\n")
    items = [_LINK_ITEM.match(line) for line in lines]
    links = sum(1 for item in items if item is not None)
    if links < _MENU_MIN_LINKS or links < 0.8 * len(lines):
        return block
    return "\n".join(
        line if item is None else f"- {item.group(1)}" for line, item in zip(lines, items, strict=True)
    )


def _is_subtitle(block: str) -> bool:
    line = block.strip()
    return (
        "\n" not in line
        and len(line) <= _SUBTITLE_MAX_CHARS
        and not line.endswith((".", ":", ";", ","))
        and not _LIST_OR_NUMBER.match(line)
        and not line.startswith(("|", ">", "#", "!", "["))
    )


def _is_paragraph_line(line: str) -> bool:
    """A line of plain paragraph text, which a setext underline turns into a heading (a list
    item, quote, table row, rule or code fence followed by --- stays what it is)."""
    stripped = line.strip()
    return bool(stripped) and not (
        _LIST_OR_NUMBER.match(line)
        or _RULE.match(line)
        or _FENCE.match(line)
        or stripped.startswith(("|", ">", "#"))
    )


def markdown_sections(text: str) -> list[Section]:
    """Split Markdown on headings (``## Title``, or Title underlined), keeping each section's
    heading trail.

    Two habits of real documents are folded into the trail: headings of the same level that
    follow each other with nothing between them name one thing (``# Chapter III - High-Risk``,
    ``# CHAPTER III``), and a short title line right under a heading is part of that heading.
    """
    sections: list[Section] = []
    stack: list[_OpenSection] = []
    preamble: list[str] = []
    in_fence = False

    def close(open_section: _OpenSection, next_level: int) -> None:
        blocks = _blocks(open_section.body)
        has_children = next_level > open_section.level
        if blocks and _is_subtitle(blocks[0]) and (len(blocks) > 1 or has_children):
            open_section.parts.append(_clean_heading(blocks.pop(0)))
        open_section.body = []
        if blocks:
            trail = tuple(part for entry in stack for part in entry.parts)
            context = " ".join(entry.lead for entry in stack[:-1] if entry.lead)
            sections.append(Section(trail, "\n\n".join(blocks), context))
            if has_children and len(blocks) == 1 and len(blocks[0]) <= _LEAD_MAX_CHARS:
                open_section.lead = " ".join(blocks[0].split())

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        body = stack[-1].body if stack else preamble
        match = None if in_fence else _ATX_HEADING.match(line)
        underline = None if in_fence or match else _SETEXT_UNDERLINE.match(line)
        if match is not None:
            level, title = len(match.group(1)), _clean_heading(match.group(2))
        elif underline is not None and body and _is_paragraph_line(body[-1]):
            # The paragraph right above the underline is the heading's text.
            paragraph: list[str] = []
            while body and _is_paragraph_line(body[-1]):
                paragraph.insert(0, body.pop())
            level, title = (1 if underline.group(1)[0] == "=" else 2), _clean_heading(" ".join(paragraph))
        else:
            body.append(line)
            continue
        if not title:
            continue
        top = stack[-1] if stack else None
        if top is not None and top.level == level and not _blocks(top.body):
            known = " ".join(top.parts).casefold()
            if title.casefold() not in known:
                top.parts[-1] = f"{top.parts[-1]}: {title}"
            continue
        if stack:
            close(stack[-1], level)
        while stack and stack[-1].level >= level:
            stack.pop()
        stack.append(_OpenSection(level, [title]))
    preamble_blocks = _blocks(preamble)
    if preamble_blocks:
        sections.insert(0, Section((), "\n\n".join(preamble_blocks)))
    if stack:
        close(stack[-1], 0)
    return sections


def _under_title(sections: list[Section], title: str) -> list[Section]:
    """Every section named under the document's title, once: a title given apart from the
    headings (front matter, Word's Title style) still names each section of the document."""
    key = title.casefold()
    if not key:
        return sections
    return [
        section
        if section.trail[:1] and section.trail[0].casefold() == key
        else replace(section, trail=(title, *section.trail))
        for section in sections
    ]


def _without_inline_images(text: str) -> str:
    """Images embedded as data URIs replaced by their captions."""
    text = _DATA_IMAGE.sub(r"\1", text)
    return _DATA_IMG_TAG.sub(lambda tag: alt.group(1) if (alt := _ALT.search(tag.group(0))) else "", text)


def _load_markdown(data: bytes) -> LoadedDocument:
    meta, body = split_front_matter(decode_text(data))
    sections = markdown_sections(_without_inline_images(body))
    title = str(meta.get("title") or "").strip()
    return LoadedDocument(
        sections=_under_title(sections, title),
        tags=_as_tuple(meta.get("tags")),
        gates=_as_tuple(meta.get("gates")),
        title=title,
        extra={key: value for key, value in meta.items() if key not in ("tags", "gates")},
    )


def _load_text(data: bytes) -> LoadedDocument:
    text = decode_text(data)
    return LoadedDocument(sections=[Section((), "\n\n".join(_blocks(text.split("\n"))))])


# --- HTML ----------------------------------------------------------------------------------

_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HTML_BLOCKS = frozenset({"p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption"})
# Tags that continue the line they are in; any other tag (div, section, br...) ends a paragraph
# of loose text.
_HTML_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark"}
    | {"q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr"}
)
# Not prose: the page title is read apart, form controls are labels of buttons and menus.
_HTML_SKIPPED = frozenset({"head", "title", "button", "select", "textarea"})


def _table_row(cells: Iterable[str]) -> str:
    """One table row as a Markdown line (``| a | b |``): a cell is never read as a heading
    (``# of users``) or a section's subtitle, and a row stays one line."""
    return "| " + " | ".join(" ".join(cell.split()) for cell in cells) + " |"


def _html_table(table: Any) -> list[str]:
    """A table's caption and rows, one line each, as one block (no blank line inside)."""
    lines: list[str] = []
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        lines.append(" ".join(caption.get_text(" ", strip=True).split()))
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue  # a row of a table nested in a cell: read as that cell's text
        cells = [cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"], recursive=False)]
        if any(cells):
            lines.append(_table_row(cells))
    return [line for line in lines if line]


def _html_lines(root: Any) -> list[str]:
    """Headings and blocks as Markdown lines, in document order, and the text between them.

    Pages built of ``<div>``, ``<section>`` and ``<span>`` carry their text outside any ``<p>``:
    each run of it between two block boundaries is a paragraph, under the heading above it.
    The walk keeps its own stack: deeply nested pages must not reach Python's recursion limit.
    """
    from bs4.element import NavigableString, Tag

    wanted = set(_HTML_HEADINGS) | _HTML_BLOCKS
    lines: list[str] = []
    loose: list[str] = []

    def flush() -> None:
        text = " ".join("".join(loose).split())
        loose.clear()
        if text:
            lines.extend([text, ""])

    end_of_block = object()
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if node is end_of_block:
            flush()
        elif isinstance(node, Tag):
            if node is not root and node.name == "table":
                flush()
                rows = _html_table(node)
                if rows:
                    lines += [*rows, ""]
            elif node is not root and node.name in wanted:
                flush()
                text = " ".join(node.get_text(" ", strip=True).split())
                level = _HTML_HEADINGS.get(node.name)
                if text and level:
                    lines += [f"{'#' * level} {text}", ""]
                elif text:
                    lines += [f"- {text}" if node.name == "li" else text, ""]
            elif node.name not in _HTML_SKIPPED:
                if node.name not in _HTML_INLINE:
                    flush()
                    stack.append(end_of_block)
                stack.extend(reversed(node.contents))
        # Comments, doctypes and CDATA are subclasses of NavigableString; only text counts.
        elif type(node) is NavigableString:
            loose.append(str(node))
    flush()
    return lines


# Page furniture, not policy: the site's banner, footer and sidebars, as their ARIA roles say.
_HTML_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# A header, footer or aside inside these belongs to that content (an article's own title), not
# to the page around it.
_HTML_CONTENT = ("article", "main", "section")


def _drop_page_chrome(soup: Any) -> None:
    for tag in soup(["script", "style", "noscript", "template", "nav", "svg"]):
        tag.decompose()
    for tag in soup(["header", "footer", "aside"]):
        if not tag.decomposed and tag.find_parent(_HTML_CONTENT) is None:
            tag.decompose()
    for tag in soup(role=True):
        if not tag.decomposed and str(tag.get("role", "")).strip().lower() in _HTML_CHROME_ROLES:
            tag.decompose()


def _load_html(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")  # decode_text refuses binary data
    _drop_page_chrome(soup)
    # A page that marks its main content is read from there alone.
    main = soup.find("main") or soup.find(role="main")
    lines = _html_lines(main if main is not None else soup.body if soup.body is not None else soup)
    sections = markdown_sections("\n".join(lines))
    title_tag = soup.find("title")
    title = title_tag.get_text(strip=True) if title_tag is not None else ""
    if title and sections and not any(section.trail for section in sections):
        sections = [Section((title,), section.text) for section in sections]
    return LoadedDocument(sections=sections, title=title)


def _optional_title(read: Callable[[], object]) -> str:
    """The document's title from its properties, or "" when they are damaged.

    The title is a label and nothing searches it; a PDF whose /Info dictionary or a Word file
    whose docProps/core.xml is broken still has readable text, and is indexed without it.
    """
    try:
        return str(read() or "").strip()
    except Exception:
        return ""


# --- Word ----------------------------------------------------------------------------------

_WORD_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _word_heading_level(style: Any) -> int | None:
    """The heading level a paragraph style gives, or None for body text.

    Company templates name their own heading styles ("Policy Heading"), based on Word's
    Heading 1 or given an outline level (what Word's navigation pane lists): the style and
    the styles it is based on are asked, nearest first.
    """
    for _ in range(10):  # a chain of based-on styles is short; a broken one may loop
        if style is None:
            return None
        heading = _WORD_HEADING.match(style.name or "")
        if heading:
            return int(heading.group(1))
        outline = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        if outline and str(outline[0]).isdigit() and int(outline[0]) < 9:  # 9 is body text
            return int(outline[0]) + 1
        style = style.base_style
    return None


def _load_docx(data: bytes) -> LoadedDocument:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))  # any error: see load_bytes
    lines: list[str] = []
    title = ""  # the first paragraph in Word's Title style: it names every section
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            # A merged cell is repeated in each row it spans: once is enough.
            rows = [
                _table_row(dict.fromkeys(" ".join(cell.text.split()) for cell in row.cells))
                for row in item.rows
            ]
            lines += [row for row in rows if row.strip("| ")] + [""]
            continue
        text = " ".join(item.text.split())
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _word_heading_level(item.style)
        if level is not None:
            lines += [f"{'#' * min(level, 6)} {text}", ""]
        elif style.lower() == "title" and not title:
            title = text
        elif style.lower() == "title":
            lines += [f"# {text}", ""]
        elif "list" in style.lower():
            lines.append(f"- {text}")
        else:
            lines += [text, ""]
    sections = _under_title(markdown_sections("\n".join(lines)), title)
    return LoadedDocument(
        sections=sections, title=title or _optional_title(lambda: document.core_properties.title)
    )


# --- PDF -----------------------------------------------------------------------------------


def _outline_starts(reader: Any) -> list[tuple[int, tuple[str, ...]]]:
    """(page index, heading trail) for each bookmark, in page order."""
    starts: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], trail: tuple[str, ...]) -> None:
        last: tuple[str, ...] = trail
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a bookmark pointing nowhere is not worth failing the file
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            if page is None or page < 0 or not title:
                continue
            last = (*trail, title)
            starts.append((page, last))

    try:
        walk(list(reader.outline), ())
    except Exception:  # malformed outlines are common; fall back to pages
        return []
    return sorted(starts, key=lambda start: start[0])


# pypdf logs what it repairs ("EOF marker not found", "invalid pdf header") without naming the
# file: a file it cannot read is reported by name (LoadError), one it repaired is indexed.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _load_pdf(data: bytes) -> LoadedDocument:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))  # any error: see load_bytes
    if reader.is_encrypted:
        # Most encrypted PDFs only restrict editing or printing (an owner password) and open
        # with the empty user password, as in every viewer.
        try:
            opened = reader.decrypt("")
        except Exception as error:  # pypdf: an unsupported algorithm, or AES without cryptography
            raise LoadError(f"encrypted PDF that cannot be opened ({type(error).__name__})") from error
        if not opened:
            raise LoadError("password-protected PDF")
    pages = [page.extract_text() or "" for page in reader.pages]
    if not any(page.strip() for page in pages):
        raise LoadError("PDF has no extractable text (scanned images?)")
    starts = _outline_starts(reader)
    sections: list[Section] = []
    for index, page_text in enumerate(pages):
        text = "\n\n".join(_blocks(page_text.split("\n")))
        if not text:
            continue
        sections.append(Section((*_page_trail(starts, index), f"page {index + 1}"), text))
    title = _optional_title(lambda: reader.metadata.title if reader.metadata is not None else "")
    return LoadedDocument(sections=_merge_pages(sections), title=title)


def _page_trail(starts: list[tuple[int, tuple[str, ...]]], index: int) -> tuple[str, ...]:
    """The bookmark trail a page is cited under: the last one started on or before it.

    When several sections start on the page (a short article, then the next), it is named by
    each of them ("Article 2; Article 3"): named by the last alone, the first would be cited as
    the next and named nowhere. A chapter starting with its first article is one trail.
    """
    here = [heading for page, heading in starts if page == index]
    if not here:
        earlier = [heading for page, heading in starts if page < index]
        return earlier[-1] if earlier else ()
    # A bookmark whose child starts on the same page is named by the child's trail.
    leaves = list(
        dict.fromkeys(
            heading for number, heading in enumerate(here) if not _is_parent(heading, here[number + 1 :])
        )
    )
    if len(leaves) == 1:
        return leaves[0]
    shared = 0
    while all(len(leaf) > shared + 1 and leaf[shared] == leaves[0][shared] for leaf in leaves):
        shared += 1
    return (*leaves[0][:shared], "; ".join(" - ".join(leaf[shared:]) for leaf in leaves))


def _is_parent(heading: tuple[str, ...], later: list[tuple[str, ...]]) -> bool:
    return any(len(other) > len(heading) and other[: len(heading)] == heading for other in later)


def _merge_pages(sections: list[Section]) -> list[Section]:
    """Join consecutive pages under the same bookmark into one section named by its pages."""
    merged: list[Section] = []
    for section in sections:
        heading, page = section.trail[:-1], section.trail[-1]
        if merged and heading and merged[-1].trail[:-1] == heading:
            first_page = merged[-1].trail[-1].split("-")[0]
            last_page = page.removeprefix("page ")
            merged[-1] = Section(
                (*heading, f"{first_page}-{last_page}"),
                f"{merged[-1].text}\n\n{section.text}",
            )
        else:
            merged.append(section)
    return merged


_LOADERS: dict[str, Callable[[bytes], LoadedDocument]] = {
    **dict.fromkeys(MARKDOWN_SUFFIXES, _load_markdown),
    **dict.fromkeys(TEXT_SUFFIXES, _load_text),
    **dict.fromkeys(HTML_SUFFIXES, _load_html),
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}


def _visible_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            yield path


def iter_supported_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` that a loader reads, sorted, skipping hidden files and folders."""
    return (path for path in _visible_files(folder) if is_supported(path))


# What a Markdown or HTML policy shows or links to (its images, styles, fonts): kept beside it,
# never meant to be read as policy, so not named as "not read" on every ingest.
_PAGE_ASSETS = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".ico", ".tif", ".tiff"}
    | {".css", ".js", ".map", ".woff", ".woff2", ".ttf", ".otf"}
)


def iter_unsupported_files(folder: Path) -> Iterator[Path]:
    """The other files under ``folder`` (slides, legacy ``.doc``...), sorted, hidden ones and
    the pages' own images and styles left out: a person who put them there must be told they
    were not read."""
    return (
        path
        for path in _visible_files(folder)
        if not is_supported(path) and path.suffix.lower() not in _PAGE_ASSETS
    )


def unsupported_reason(path: Path) -> str:
    """Why a file of another type is not read, and what to do about it."""
    return (
        f"unsupported file type {path.suffix.lower() or '(none)'}; "
        "save it as Markdown, text, HTML, PDF or Word (.docx) to have it read"
    )
