"""Markdown, HTML and plain text as blocks: headings and paragraphs, each with its line.

What `deskbot.knowledge.sources.documents` splits into passages. Front matter and the
`<!-- key: value -->` metadata comments of a block are read here too.

Example:
    >>> [(b.kind, b.text, b.line) for b in markdown_blocks("# Cards\\n\\nThey arrive.", 0)]
    [('heading', 'Cards', 1), ('para', 'They arrive.', 3)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

import yaml

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.files.safe_yaml import load_yaml

# An ATX heading's opening: the title and an optional closing "###" are taken apart by
# `_atx_title` without a regex (one did it in time quadratic in a run of tabs in the title).
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_META = re.compile(r"<!--(.*?)-->", re.S)
_HTML_BLOCK = frozenset(
    [
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "tr",
        "table",
        "section",
        "article",
        "main",
        "aside",
        "header",
        "footer",
        "nav",
        "blockquote",
        "pre",
        "br",
        "hr",
        "figure",
        "figcaption",
        "summary",
        "details",
        "form",
    ]
)
_HTML_SKIP = frozenset(("script", "style", "noscript", "template", "svg", "head"))


@dataclass
class Block:
    """A heading (`level` 1-6) or a paragraph of a document, with the line it starts on."""

    kind: Literal["heading", "para"]
    text: str
    line: int
    level: int = 0


def html_blocks(html: str) -> tuple[list[Block], str]:
    """The blocks of an HTML page, and its `<title>`."""
    parser = _HtmlBlocks()
    parser.feed(_closed_at_eof(html))
    parser.close()
    return parser.finish(), parser.title


def front_matter(text: str, name: str) -> tuple[str, dict[str, object], int]:
    """`text` without its front matter, the front matter, and how many lines it took."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return text, {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                raw = load_yaml("\n".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                raise SourceError(f"{name}:1: bad front matter: {exc}") from exc
            if not isinstance(raw, dict):
                raise SourceError(f"{name}:1: front matter must be a mapping of keys to values")
            for key in ("id", "title", "intent", "url"):
                if key in raw and not isinstance(raw[key], str | int | float | None):
                    raise SourceError(f"{name}:1: front matter '{key}' must be a single value")
            tags = raw.get("tags")
            if isinstance(tags, list) and not all(isinstance(t, str | int | float) for t in tags):
                raise SourceError(f"{name}:1: front matter 'tags' must be a list of words")
            # Keep the line numbers of the rest of the file.
            return "\n".join(lines[end + 1 :]), raw, end + 1
    return text, {}, 0


def markdown_blocks(text: str, offset: int) -> list[Block]:
    """The headings (ATX and setext) and paragraphs of Markdown; a fenced code block
    stays whole. `offset`: lines above `text` (front matter) for the line numbers."""
    blocks: list[Block] = []
    para: list[str] = []
    para_line = 0
    fence: str | None = None
    lines = text.split("\n")

    def flush() -> None:
        if para and any(p.strip() for p in para):
            blocks.append(Block("para", "\n".join(para).strip("\n"), para_line))
        para.clear()

    for i, raw in enumerate(lines):
        lineno = i + 1 + offset
        line = raw.rstrip()
        if fence is not None:
            para.append(line)
            if line.lstrip().startswith(fence):
                fence = None
            continue
        m = _FENCE.match(line)
        if m:
            if not para:
                para_line = lineno
            para.append(line)
            fence = m.group(1)[:3]
            continue
        m = _ATX.match(line)
        if m:
            flush()
            title = _atx_title(line[m.end(1) :])
            blocks.append(Block("heading", title, lineno, len(m.group(1))))
            continue
        # A setext underline turns the paragraph's single line above it into a heading.
        if _SETEXT.match(line) and len(para) == 1 and para[0].strip():
            title = para[0].strip()
            para.clear()
            blocks.append(Block("heading", title, para_line, 1 if "=" in line else 2))
            continue
        if not line.strip():
            flush()
            continue
        if not para:
            para_line = lineno
        para.append(line)
    flush()
    return blocks


def _atx_title(rest: str) -> str:
    """The title of an ATX heading from what follows its opening #s: without the
    optional closing sequence of #s (which must follow a space) and the spaces around."""
    title = rest.strip(" \t")
    bare = title.rstrip("#")
    if not bare:
        return ""
    if bare != title and bare[-1] in " \t":
        title = bare.rstrip(" \t")
    return title.strip()


def text_blocks(text: str) -> list[Block]:
    """The paragraphs of plain text (separated by blank lines)."""
    blocks: list[Block] = []
    para: list[str] = []
    start = 0
    for i, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not para:
                start = i
            para.append(line.rstrip())
        elif para:
            blocks.append(Block("para", "\n".join(para), start))
            para = []
    if para:
        blocks.append(Block("para", "\n".join(para), start))
    return blocks


class _HtmlBlocks(HTMLParser):
    """Headings and text blocks of an HTML page, with the line each starts on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._buf: list[str] = []
        self._line = 1
        self._heading = 0
        self._skip = 0
        self._in_title = False
        self._pre = 0

    def _flush(self) -> None:
        text = "".join(self._buf)
        text = text.strip("\n") if self._pre else re.sub(r"\s+", " ", text).strip()
        if text:
            if self._heading:
                self.blocks.append(Block("heading", text, self._line, self._heading))
            else:
                self.blocks.append(Block("para", text, self._line))
        self._buf = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _HTML_SKIP:
            self._skip += 1
            return
        if re.fullmatch(r"h[1-6]", tag) or tag in _HTML_BLOCK:
            self._flush()
            if tag[0] == "h" and tag[1:].isdigit():
                self._heading = int(tag[1])
            if tag == "pre":
                self._pre += 1
            self._line = self.getpos()[0]

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _HTML_SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if re.fullmatch(r"h[1-6]", tag) or tag in _HTML_BLOCK:
            self._flush()
            if tag[0] == "h" and tag[1:].isdigit():
                self._heading = 0
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._line = self.getpos()[0]

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
            return
        if self._skip:
            return
        if not "".join(self._buf).strip():
            lead = data[: len(data) - len(data.lstrip())]
            self._line = self.getpos()[0] + lead.count("\n")
        self._buf.append(data)

    def finish(self) -> list[Block]:
        self._flush()
        return self.blocks


_TAG_START = re.compile(r"<[A-Za-z/!?]")


def _closed_at_eof(html: str) -> str:
    """`html` without an unclosed comment or tag at its end (dropped, as HTML5 parsers do
    at end of file): Python's HTMLParser (before 3.13.4 and 3.12.11) rescans the rest of
    the text once per "<" after such a start, which takes minutes for 100 kB of "<a "."""
    start = html.find("<!--")
    while start >= 0:
        end = html.find("-->", start + 4)
        if end < 0:
            html = html[:start]
            break
        start = html.find("<!--", end + 3)
    last_close = html.rfind(">")
    m = _TAG_START.search(html, last_close + 1)
    return html[: m.start()] if m else html


def parse_meta(text: str) -> tuple[str, dict[str, str]]:
    """Pull `<!-- key: value; key: value -->` comments out of a block's text."""
    meta: dict[str, str] = {}

    def take(m: re.Match[str]) -> str:
        for part in re.split(r"[;\n]", m.group(1)):
            if ":" in part:
                key, _, value = part.partition(":")
                meta[key.strip().lower()] = value.strip()
        return ""

    # Only up to the last "-->": past it, every "<!--" would scan to the end for a close
    # that is not there (quadratic in the number of "<!--").
    end = text.rfind("-->")
    if end < 0:
        return text.strip(), meta
    return (_META.sub(take, text[: end + 3]) + text[end + 3 :]).strip(), meta
