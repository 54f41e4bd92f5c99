"""Folding a shopper's text into the form blocked terms are matched in.

Two texts fold to the same form when they differ only in case, accents, Unicode width or
compatibility forms (full-width "SPAM", "Spám", the ligature "fi", a circled "1") or
invisible characters inserted between letters. The folded form is its words, separated by
single spaces, with a space at each end, so a whole-word match is a substring match of
" term ".
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

# The marks that are accents on Latin, Greek and Cyrillic letters (the combining diacritical
# blocks) and variation selectors. Other scripts' marks (kana voicing, Indic vowel signs)
# are part of the letter and stay.
_ACCENT_BLOCKS = (
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
    (0xE0100, 0xE01EF),
)
# Letters that show nothing: a filler inside a word must not split or hide it.
_INVISIBLE_LETTERS = (0x115F, 0x1160, 0x3164, 0xFFA0)
# Dotless i folds to i, so Turkish text matches whichever casing produced it.
_EXTRA_FOLDS = (("\N{LATIN SMALL LETTER DOTLESS I}", "i"),)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class _CharacterClass:
    """A set of code points, replaced in one pass: `re` checks a class of the Basic
    Multilingual Plane with a bitmap, so the other planes' class is a second pass, run only
    on a text that holds such a character."""

    def __init__(self, codepoints: list[int]) -> None:
        self._bmp = re.compile(f"[{_class_body([c for c in codepoints if c <= 0xFFFF])}]+")
        self._astral = re.compile(f"[{_class_body([c for c in codepoints if c > 0xFFFF])}]+")

    def sub(self, replacement: str, text: str) -> str:
        """`text` with every run of the class's characters replaced."""
        text = self._bmp.sub(replacement, text)
        if _ASTRAL.search(text):
            text = self._astral.sub(replacement, text)
        return text


def _class_body(codepoints: list[int]) -> str:
    """A regular-expression character class body for a sorted list of code points."""
    parts: list[str] = []
    start = previous = codepoints[0]
    for codepoint in [*codepoints[1:], -2]:
        if codepoint == previous + 1:
            previous = codepoint
            continue
        parts.append(
            re.escape(chr(start))
            if start == previous
            else f"{re.escape(chr(start))}-{re.escape(chr(previous))}"
        )
        start = previous = codepoint
    return "".join(parts)


@functools.cache
def _classes() -> tuple[_CharacterClass, _CharacterClass]:
    """The characters dropped (accents, format characters, invisible letters) and the runs
    of characters that separate words (anything but letters, digits and marks)."""
    dropped: list[int] = []
    separators: list[int] = []
    accents = {c for low, high in _ACCENT_BLOCKS for c in range(low, high + 1)}
    accents.update(_INVISIBLE_LETTERS)
    category = unicodedata.category
    # Planes 4 to 13 are unassigned and planes 15 and 16 private: all separators.
    for codepoint in [*range(0x40000), *range(0xE0000, 0xE1000)]:
        kind = category(chr(codepoint))
        if kind == "Cf" or codepoint in accents:
            dropped.append(codepoint)
        elif kind[0] not in "LNM":
            separators.append(codepoint)
    separators.extend(range(0x40000, 0xE0000))
    separators.sort()
    separators.extend(range(0xE1000, sys.maxunicode + 1))
    return _CharacterClass(dropped), _CharacterClass(separators)


# ASCII text folds through one byte table: lower case, and a space for anything else.
_ASCII_FOLD = bytes(
    ord(chr(c).lower()) if chr(c).isascii() and chr(c).isalnum() else ord(" ") for c in range(256)
)


def prepare() -> None:
    """Builds the character classes now (they take a while), rather than on the first text."""
    _classes()


def fold_characters(text: str) -> str:
    """`text` case-folded, without accents or invisible characters, in NFKC: words and
    punctuation stay where they are."""
    if text.isascii():
        return text.lower()
    # NFKD splits accents from their letters and undoes width and compatibility forms; the
    # second pass catches accents that case folding itself produces.
    dropped = _classes()[0]
    decomposed = dropped.sub("", unicodedata.normalize("NFKD", text))
    folded = dropped.sub("", unicodedata.normalize("NFKD", decomposed.casefold()))
    for source, target in _EXTRA_FOLDS:
        folded = folded.replace(source, target)
    return unicodedata.normalize("NFKC", folded)


def fold_words(text: str) -> str:
    """The words of `text`, folded, each between single spaces: " buy now "."""
    if text.isascii():
        words = text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    else:
        words = _classes()[1].sub(" ", fold_characters(text))
    return f" {' '.join(words.split())} "


def drop_invisible(text: str) -> str:
    """`text` in NFKC without format characters and invisible letters: where contact
    details are looked for, case and accents kept."""
    if text.isascii():
        return text
    return _classes()[0].sub("", unicodedata.normalize("NFKC", text))
