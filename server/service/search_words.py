"""A List's `search`: the words it looks for, taken from any text.

A word is a run of letters, digits and combining marks, in any script; everything else
(spaces, punctuation, quotes, operators of any search syntax) only separates words. The
storage searches for every word; none of the text reaches a database as syntax.
"""

from __future__ import annotations

import unicodedata

from server.service.errors import FieldViolation, Reason

SEARCH_MAX = 500


def search_words(violations: list[FieldViolation], field: str, text: str) -> str:
    """The words of `text` separated by single spaces; "" for no search. What is wrong
    with a text that is not a search goes into `violations`."""
    if not text:
        return ""
    if len(text) > SEARCH_MAX:
        violations.append(
            FieldViolation(
                field, Reason.TOO_LONG, f"must be at most {SEARCH_MAX} characters, got {len(text)}"
            )
        )
        return ""
    normalized = unicodedata.normalize("NFC", text)
    categories = [unicodedata.category(c) for c in normalized]
    if "Cc" in categories:
        violations.append(
            FieldViolation(field, Reason.CONTROL_CHARACTER, "must not contain control characters")
        )
        return ""
    words: list[str] = []
    word: list[str] = []
    for character, category in zip(normalized, categories, strict=True):
        if category[0] in "LNM":
            word.append(character)
            continue
        words.append("".join(word))
        word = []
    words.append("".join(word))
    # A word of marks alone is nothing a tokenizer keeps.
    found = [w for w in words if any(unicodedata.category(c)[0] in "LN" for c in w)]
    if not found:
        violations.append(
            FieldViolation(field, Reason.NOTHING_TO_SEARCH, "has no letter or digit to search for")
        )
    return " ".join(found)
