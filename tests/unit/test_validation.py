"""Checks of single text fields: exactly Unicode's control characters are refused."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.service.errors import FieldViolation, Reason
from server.service.validation import check_locale, check_request_id, check_text, check_trkref

# Unicode's control characters (category Cc), every one of them: C0, DEL and C1.
CONTROLS = [chr(code) for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))]
LINE_BREAKS = {"\t", "\n", "\r"}
# One character of every other general category.
REPRESENTATIVES = {
    "Lu": "A",
    "Ll": "a",
    "Lt": "\u01c5",  # Dž
    "Lm": "\u02b0",  # modifier letter small h
    "Lo": "\u3042",  # hiragana a
    "Mn": "\u0301",  # combining acute accent
    "Mc": "\u0903",  # devanagari sign visarga
    "Me": "\u20dd",  # combining enclosing circle
    "Nd": "7",
    "Nl": "\u216b",  # roman numeral twelve
    "No": "\u00bd",  # one half
    "Pc": "_",
    "Pd": "-",
    "Ps": "(",
    "Pe": ")",
    "Pi": "\u00ab",  # left guillemet
    "Pf": "\u00bb",  # right guillemet
    "Po": "!",
    "Sm": "+",
    "Sc": "\u20ac",  # euro sign
    "Sk": "^",
    "So": "\u00a9",  # copyright sign
    "Zs": " ",
    "Zl": "\u2028",  # line separator
    "Zp": "\u2029",  # paragraph separator
    "Cf": "\u200b",  # zero width space
    "Cs": "\ud800",  # a lone surrogate
    "Co": "\ue000",  # private use
    "Cn": "\u0378",  # unassigned
}


def refused(char: str, *, multiline: bool) -> bool:
    """Whether check_text refuses a text with this character inside it."""
    violations: list[FieldViolation] = []
    check_text(violations, "f", f"a{char}b", max_length=10, multiline=multiline)
    return bool(violations)


def should_refuse(char: str, *, multiline: bool) -> bool:
    allowed = LINE_BREAKS if multiline else set()
    return unicodedata.category(char) == "Cc" and char not in allowed


def test_the_characters_checked_cover_every_general_category() -> None:
    assert all(unicodedata.category(char) == "Cc" for char in CONTROLS)
    assert all(unicodedata.category(char) == cat for cat, char in REPRESENTATIVES.items())
    assert len({"Cc", *REPRESENTATIVES}) == 30  # Unicode's general categories, all of them


@pytest.mark.parametrize("multiline", [False, True])
def test_text_is_refused_for_exactly_the_unicode_control_characters(multiline: bool) -> None:
    """Every C0 and C1 control, and one character of every other general category."""
    for char in [*CONTROLS, *REPRESENTATIVES.values()]:
        assert refused(char, multiline=multiline) == should_refuse(char, multiline=multiline), (
            f"U+{ord(char):04X}"
        )


@settings(max_examples=2000, deadline=None)
@given(char=st.characters(), multiline=st.booleans())
def test_any_character_is_refused_exactly_when_it_is_a_control_character(
    char: str, multiline: bool
) -> None:
    assert refused(char, multiline=multiline) == should_refuse(char, multiline=multiline)


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200b\u200c\u200d", "\ufeff", " \u2060 ", "\u200e\u200f", "\u00ad"],
)
def test_a_text_of_only_zero_width_or_format_characters_is_blank(invisible: str) -> None:
    violations: list[FieldViolation] = []
    check_text(violations, "first_name", invisible, max_length=100)
    assert violations == [
        FieldViolation("first_name", Reason.REQUIRED, "is required and must not be blank")
    ]


def test_a_format_character_inside_a_visible_text_is_kept() -> None:
    violations: list[FieldViolation] = []
    check_text(violations, "first_name", "Ann\u200dMarie", max_length=100)
    assert violations == []


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        (lambda v, x: check_text(v, "f", x, max_length=3), "", Reason.REQUIRED),
        (lambda v, x: check_text(v, "f", x, max_length=3), "four", Reason.TOO_LONG),
        (lambda v, x: check_text(v, "f", x, max_length=3), "a\x07", Reason.CONTROL_CHARACTER),
        (lambda v, x: check_locale(v, "f", x), "english", Reason.NOT_A_LANGUAGE_TAG),
        (lambda v, x: check_trkref(v, "f", x), "", Reason.REQUIRED),
        (lambda v, x: check_trkref(v, "f", x), "D 10", Reason.NOT_A_TRKREF),
        (lambda v, x: check_request_id(v, "f", x), "nope", Reason.NOT_A_UUID),
    ],
)
def test_every_violation_names_its_reason(
    check: Callable[[list[FieldViolation], str], None], value: str, reason: Reason
) -> None:
    violations: list[FieldViolation] = []
    check(violations, value)
    assert [(v.field, v.reason) for v in violations] == [("f", reason)]
    assert reason.value.isupper() and " " not in reason.value
