"""The documentation stays true to the code: the options table of docs/operations.md is
`--help`'s, and every relative link leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.options import options_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]

TABLE_START = "<!-- options-table:start -->"
TABLE_END = "<!-- options-table:end -->"

_FENCED_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def documented_options_table() -> str:
    text = OPERATIONS.read_text()
    assert text.count(TABLE_START) == 1 and text.count(TABLE_END) == 1, "one pair of markers"
    between = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    return between.strip("\n")


def relative_links(document: Path) -> list[str]:
    """The targets of the Markdown links of a document that point into the repository."""
    text = _FENCED_BLOCK.sub("", document.read_text())
    # Link syntax inside inline code is not a link (a link's text may be inline code).
    text = _INLINE_CODE.sub(lambda code: "" if "](" in code.group(0) else code.group(0), text)
    targets = [match.group(1) for match in _LINK.finditer(text)]
    return [t for t in targets if not _SCHEME.match(t) and not t.startswith("#")]


def test_the_options_table_is_the_one_serve_help_describes() -> None:
    assert documented_options_table() == options_table()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(document: Path) -> None:
    missing = [
        target
        for target in relative_links(document)
        if not (document.parent / target.split("#", 1)[0]).exists()
    ]
    assert missing == []


def test_the_documents_have_relative_links_to_check() -> None:
    assert "docs/api.md" in relative_links(README)
