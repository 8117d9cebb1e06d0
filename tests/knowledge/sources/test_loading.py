from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.sources.documents import read_document
from deskbot.knowledge.sources.faq import read_faq
from deskbot.knowledge.sources.loading import read_source


@pytest.mark.parametrize(
    ("read", "name", "content", "message"),
    [
        (read_faq, "faq.csv", b"", "the file is empty"),
        (read_faq, "faq.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a binary file"),
        (read_faq, "faq.csv", b"question,answer\ncaf\xe9,x\n", "not UTF-8"),
        (read_faq, "faq.csv", b"q,a\nx,y\n", "must have columns 'question' and 'answer'"),
        (read_document, "empty.md", b"  \n", "the file is empty"),
        (read_document, "image.md", b"\x89PNG\r\n\x1a\n\x00\x00", "a binary file"),
        (read_document, "latin.txt", b"caf\xe9", "not UTF-8"),
        (read_document, "slides.pdf", b"%PDF-1.4", "unknown document format"),
        (read_source, "slides.pdf", b"%PDF-1.4", "unknown format '.pdf'; use one of .yaml"),
        (read_source, "faq.yaml", b"\x00", "a binary file"),
        (read_source, "help.html", b"\xff", "not UTF-8"),
    ],
)
def test_unusable_files_are_refused(
    tmp_path: Path, read: Callable[[Path], object], name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as refused:
        read(path)
    assert str(refused.value).startswith(f"{path}: ")


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    for name in ("faq.yaml", "help.md", "notes.doc"):
        with pytest.raises(SourceError, match="no such file"):
            read_source(tmp_path / name)
