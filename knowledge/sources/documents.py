"""Markdown, HTML and plain-text documents, split into passages by heading and length.

A document becomes a list of `Section`s: the text under one heading, cut into pieces of
at most `max_chars` at paragraph, then sentence, then word boundaries. Each piece keeps
the file, the line it starts on, its position in the file and a stable id built from
the file's name and the heading path, so an edit elsewhere in the file does not change
it and a reply can cite it.

A Markdown section whose heading is a question (ends with "?") is an FAQ entry: the
heading is the question and the body the answer, not split. Entries can carry metadata
in an HTML comment anywhere in their body::

    ## My card hasn't arrived. What should I do?
    <!-- id: card-arrival; intent: card_arrival; tags: cards, delivery; url: https://... -->
    Cards arrive within 3 to 5 working days ...

Front matter (``---`` YAML ``---`` at the top) sets defaults for the whole file
(`id` as the id prefix, `title`, `intent`, `tags`, `url`).

Example:
    >>> sections, problems = read_document("help/cards.md")      # doctest: +SKIP
    >>> sections[0].id, sections[0].line                          # doctest: +SKIP
    ('cards:ordering-a-card', 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.files.safe_yaml import load_yaml
from deskbot.knowledge.sources.faq import MAX_ANSWER_CHARS, RowProblem, decode_text, slug

DOCUMENT_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".txt", ".text")
# About 250 word pieces: what the MiniLM encoder reads before it truncates.
DEFAULT_MAX_CHARS = 1000
MAX_FILE_BYTES = 50_000_000

# An ATX heading's opening: the title and an optional closing "###" are taken apart by
# `_atx` without a regex (one did it in time quadratic in a run of tabs in the title).
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_META = re.compile(r"<!--(.*?)-->", re.S)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
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


@dataclass(frozen=True, slots=True)
class Section:
    """One passage of a document (or one FAQ entry written in Markdown)."""

    id: str
    text: str
    source: str
    title: str = ""
    question: str = ""
    intent: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    line: int | None = None
    position: int = 0


@dataclass
class _Block:
    kind: str  # "heading" or "para"
    text: str
    line: int
    level: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def read_document(
    path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[list[Section], list[RowProblem]]:
    """Read a .md, .html or .txt file into passages; returns them and the problems found.

    Raises:
        SourceError: the file is missing, empty, binary, not UTF-8, too big, or of
            another format. A bad section is a problem instead, and the rest is kept.
    """
    if max_chars < 100:
        raise ValueError(f"max_chars must be at least 100, got {max_chars}")
    file = Path(path)
    name = str(file)
    if not file.is_file():
        raise SourceError(f"{name}: no such file")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise SourceError(
            f"{name}: {file.stat().st_size} bytes; documents are limited to {MAX_FILE_BYTES} "
            "bytes, split it into several files"
        )
    text = decode_text(
        file.read_bytes(), name, "a document (expected UTF-8 Markdown, HTML or text)"
    )
    suffix = file.suffix.lower()
    front: dict[str, Any] = {}
    if suffix in (".md", ".markdown"):
        text, front, offset = _front_matter(text, name)
        blocks = _markdown_blocks(text, offset)
    elif suffix in (".html", ".htm"):
        parser = _HtmlBlocks()
        parser.feed(_closed_at_eof(text))
        parser.close()
        blocks = parser.finish()
        if parser.title and "title" not in front:
            front["title"] = parser.title
    elif suffix in (".txt", ".text"):
        blocks = _text_blocks(text)
    else:
        raise SourceError(
            f"{name}: unknown document format {suffix!r}; use {', '.join(DOCUMENT_SUFFIXES)}"
        )
    return _sections(blocks, name, file.stem, front, max_chars)


def _front_matter(text: str, name: str) -> tuple[str, dict[str, Any], int]:
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


def _markdown_blocks(text: str, offset: int) -> list[_Block]:
    blocks: list[_Block] = []
    para: list[str] = []
    para_line = 0
    fence: str | None = None
    lines = text.split("\n")

    def flush() -> None:
        if para and any(p.strip() for p in para):
            blocks.append(_Block("para", "\n".join(para).strip("\n"), para_line))
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
            blocks.append(_Block("heading", title, lineno, len(m.group(1))))
            continue
        # A setext underline turns the paragraph's single line above it into a heading.
        if _SETEXT.match(line) and len(para) == 1 and para[0].strip():
            title = para[0].strip()
            para.clear()
            blocks.append(_Block("heading", title, para_line, 1 if "=" in line else 2))
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


def _text_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    para: list[str] = []
    start = 0
    for i, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not para:
                start = i
            para.append(line.rstrip())
        elif para:
            blocks.append(_Block("para", "\n".join(para), start))
            para = []
    if para:
        blocks.append(_Block("para", "\n".join(para), start))
    return blocks


class _HtmlBlocks(HTMLParser):
    """Headings and text blocks of an HTML page, with the line each starts on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
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
                self.blocks.append(_Block("heading", text, self._line, self._heading))
            else:
                self.blocks.append(_Block("para", text, self._line))
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

    def finish(self) -> list[_Block]:
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


def _parse_meta(text: str) -> tuple[str, dict[str, str]]:
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


def _one(value: Any) -> str | None:
    """A front matter value as text (YAML may have read `intent: 404` as a number)."""
    return str(value).strip() or None if value is not None else None


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, int | float):
        return (str(value),)
    if isinstance(value, list | tuple):
        return tuple(str(t).strip() for t in value if str(t).strip())
    return ()


def _sections(
    blocks: list[_Block], name: str, stem: str, front: dict[str, Any], max_chars: int
) -> tuple[list[Section], list[RowProblem]]:
    doc_id = slug(str(front.get("id") or stem), digest=False) or "doc"
    doc_title = str(front.get("title") or "").strip()
    defaults: dict[str, Any] = {
        "intent": _one(front.get("intent")),
        "tags": _tags(front.get("tags")),
        "url": _one(front.get("url")),
    }
    # Group paragraphs under their heading path.
    groups: list[tuple[list[str], int, list[_Block]]] = []
    path: list[tuple[int, str]] = []
    current: list[_Block] = []
    current_line = 1
    for block in blocks:
        if block.kind == "heading":
            groups.append(([t for _, t in path], current_line, current))
            path = [(lvl, t) for lvl, t in path if lvl < block.level] + [(block.level, block.text)]
            current, current_line = [], block.line
        else:
            current.append(block)
    groups.append(([t for _, t in path], current_line, current))

    sections: list[Section] = []
    problems: list[RowProblem] = []
    used: dict[str, int] = {}
    for titles, line, paras in groups:
        body_parts: list[tuple[str, int]] = []
        meta: dict[str, str] = {}
        for p in paras:
            text, found = _parse_meta(p.text)
            meta.update(found)
            if text:
                body_parts.append((text, p.line))
        if not body_parts:
            continue  # a heading directly followed by a sub-heading, or an empty file part
        heading = titles[-1] if titles else ""
        title = " > ".join(titles) if titles else doc_title
        base = meta.get("id") or (
            f"{doc_id}:{slug(' '.join(titles), digest=False)}" if titles else doc_id
        )
        if base in used:
            used[base] += 1
            base = f"{base}-{used[base]}"
        else:
            used[base] = 1
        intent = meta.get("intent") or defaults["intent"] or None
        tags = _tags(meta["tags"]) if "tags" in meta else defaults["tags"]
        url = meta.get("url") or defaults["url"] or None
        if heading.endswith("?"):
            answer = "\n\n".join(t for t, _ in body_parts)
            if len(answer) > MAX_ANSWER_CHARS:
                problems.append(
                    RowProblem(
                        name,
                        line,
                        f"answer has {len(answer)} characters; the limit is {MAX_ANSWER_CHARS}",
                    )
                )
                continue
            sections.append(
                Section(
                    id=base,
                    text=answer,
                    source=name,
                    title=title,
                    question=heading,
                    intent=intent,
                    tags=tags,
                    url=url,
                    line=line,
                    position=len(sections),
                )
            )
            continue
        for k, (chunk, chunk_line) in enumerate(_chunks(body_parts, max_chars)):
            sections.append(
                Section(
                    id=base if k == 0 else f"{base}:{k + 1}",
                    text=chunk,
                    source=name,
                    title=title,
                    intent=intent,
                    tags=tags,
                    url=url,
                    line=chunk_line,
                    position=len(sections),
                )
            )
    if not sections and not problems:
        problems.append(RowProblem(name, None, "no text to index (only headings or markup)"))
    return sections, problems


def _pieces(text: str, max_chars: int) -> list[str]:
    """`text` cut at sentence, then word, then character boundaries into <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    out: list[str] = []
    for sentence in _SENTENCE.split(text):
        if len(sentence) <= max_chars:
            out.append(sentence)
            continue
        words: list[str] = []
        size = 0
        for word in sentence.split():
            while len(word) > max_chars:  # a "word" longer than a passage: cut it
                if words:
                    out.append(" ".join(words))
                    words, size = [], 0
                out.append(word[:max_chars])
                word = word[max_chars:]
            if size + len(word) + (1 if words else 0) > max_chars:
                out.append(" ".join(words))
                words, size = [], 0
            size += len(word) + (1 if words else 0)
            words.append(word)
        if words:
            out.append(" ".join(words))
    return out


def _chunks(parts: list[tuple[str, int]], max_chars: int) -> list[tuple[str, int]]:
    """Pack paragraphs greedily into chunks of at most `max_chars`."""
    chunks: list[tuple[str, int]] = []
    buf: list[str] = []
    start = 0
    size = 0
    for text, line in parts:
        for piece in _pieces(text, max_chars):
            sep = 2 if buf else 0
            if buf and size + sep + len(piece) > max_chars:
                chunks.append(("\n\n".join(buf), start))
                buf, size, sep = [], 0, 0
            if not buf:
                start = line
            buf.append(piece)
            size += sep + len(piece)
    if buf:
        chunks.append(("\n\n".join(buf), start))
    return chunks
