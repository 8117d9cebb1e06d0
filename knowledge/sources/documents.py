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

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.passage import IndexedPassage
from deskbot.knowledge.sources.faq import MAX_ANSWER_CHARS, RowProblem, decode_text, slug
from deskbot.knowledge.sources.markup import (
    Block,
    front_matter,
    html_blocks,
    markdown_blocks,
    parse_meta,
    text_blocks,
)

DOCUMENT_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".txt", ".text")
# About 250 word pieces: what the MiniLM encoder reads before it truncates.
DEFAULT_MAX_CHARS = 1000
MAX_FILE_BYTES = 50_000_000

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_PIECE_SUFFIX = re.compile(r":\d+$")

#: One passage of a document (or one FAQ entry written in Markdown): what the index
#: stores, without alternatives or a content hash.
Section = IndexedPassage


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
    front: dict[str, object] = {}
    if suffix in (".md", ".markdown"):
        text, front, offset = front_matter(text, name)
        blocks = markdown_blocks(text, offset)
    elif suffix in (".html", ".htm"):
        blocks, title = html_blocks(text)
        if title:
            front["title"] = title
    elif suffix in (".txt", ".text"):
        blocks = text_blocks(text)
    else:
        raise SourceError(
            f"{name}: unknown document format {suffix!r}; use {', '.join(DOCUMENT_SUFFIXES)}"
        )
    return _sections(blocks, name, _Defaults.read(front, file.stem), max_chars)


def _one(value: object) -> str | None:
    """A front matter value as text (YAML may have read `intent: 404` as a number)."""
    return str(value).strip() or None if value is not None else None


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, int | float):
        return (str(value),)
    if isinstance(value, list | tuple):
        return tuple(str(t).strip() for t in value if str(t).strip())
    return ()


@dataclass(frozen=True)
class _Defaults:
    """What the front matter (or the file's name) gives every section of a file."""

    doc_id: str
    title: str
    intent: str | None
    tags: tuple[str, ...]
    url: str | None

    @classmethod
    def read(cls, front: dict[str, object], stem: str) -> _Defaults:
        return cls(
            doc_id=slug(str(front.get("id") or stem), digest=False) or "doc",
            title=str(front.get("title") or "").strip(),
            intent=_one(front.get("intent")),
            tags=_tags(front.get("tags")),
            url=_one(front.get("url")),
        )


@dataclass
class _Group:
    """The paragraphs under one heading path (`titles`, outermost first)."""

    titles: list[str]
    line: int
    paras: list[Block]


def _groups(blocks: list[Block]) -> Iterator[_Group]:
    """The paragraphs grouped under their heading path, in order."""
    path: list[tuple[int, str]] = []
    current: list[Block] = []
    current_line = 1
    for block in blocks:
        if block.kind == "heading":
            yield _Group([t for _, t in path], current_line, current)
            path = [(lvl, t) for lvl, t in path if lvl < block.level] + [(block.level, block.text)]
            current, current_line = [], block.line
        else:
            current.append(block)
    yield _Group([t for _, t in path], current_line, current)


def _sections(
    blocks: list[Block], name: str, defaults: _Defaults, max_chars: int
) -> tuple[list[Section], list[RowProblem]]:
    sections: list[Section] = []
    problems: list[RowProblem] = []
    used: dict[str, int] = {}
    for group in _groups(blocks):
        body: list[tuple[str, int]] = []
        meta: dict[str, str] = {}
        for p in group.paras:
            text, found = parse_meta(p.text)
            meta.update(found)
            if text:
                body.append((text, p.line))
        if not body:
            continue  # a heading directly followed by a sub-heading, or an empty file part
        section = _section(group, meta, name, defaults, used)
        if not section.question:
            sections.extend(_split(section, body, max_chars, first=len(sections)))
            continue
        answer = "\n\n".join(t for t, _ in body)
        if len(answer) > MAX_ANSWER_CHARS:
            message = f"answer has {len(answer)} characters; the limit is {MAX_ANSWER_CHARS}"
            problems.append(RowProblem(name, group.line, message))
            continue
        sections.append(dataclasses.replace(section, text=answer, position=len(sections)))
    if not sections and not problems:
        problems.append(RowProblem(name, None, "no text to index (only headings or markup)"))
    return sections, problems


def _section(
    group: _Group, meta: dict[str, str], name: str, defaults: _Defaults, used: dict[str, int]
) -> Section:
    """The section of `group`, without its text: its id (unique in `used`), title, and
    what its metadata comment or else the front matter says."""
    titles = group.titles
    base = meta.get("id") or (
        f"{defaults.doc_id}:{slug(' '.join(titles), digest=False)}" if titles else defaults.doc_id
    )
    if base in used:
        used[base] += 1
        base = f"{base}-{used[base]}"
    else:
        used[base] = 1
    heading = titles[-1] if titles else ""
    return Section(
        id=base,
        text="",
        source=name,
        title=" > ".join(titles) if titles else defaults.title,
        question=heading if heading.endswith("?") else "",
        intent=meta.get("intent") or defaults.intent or None,
        tags=_tags(meta["tags"]) if "tags" in meta else defaults.tags,
        url=meta.get("url") or defaults.url or None,
        line=group.line,
    )


def section_key(passage: IndexedPassage) -> tuple[str, str, str]:
    """What the pieces of one document section share, and no other passage: its file,
    heading path and id without the ":2", ":3" ... that `_split` gives the pieces after
    the first. An FAQ entry (it has a question) is never cut: its key is its own."""
    if passage.question:
        return (passage.source, passage.title, passage.id)
    return (passage.source, passage.title, _PIECE_SUFFIX.sub("", passage.id))


def _split(
    section: Section, body: list[tuple[str, int]], max_chars: int, *, first: int
) -> Iterator[Section]:
    """`section` with `body` as its text, in pieces of at most `max_chars`; the pieces
    after the first get ids ending ":2", ":3", ..."""
    for k, (chunk, line) in enumerate(_chunks(body, max_chars)):
        yield dataclasses.replace(
            section,
            id=section.id if k == 0 else f"{section.id}:{k + 1}",
            text=chunk,
            line=line,
            position=first + k,
        )


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
