"""Checks of single text fields: exactly Unicode's control characters are refused."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.service import validation
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


def violations_of(check: Callable[[list[FieldViolation], str], None], value: str) -> list[Reason]:
    found: list[FieldViolation] = []
    check(found, value)
    return [v.reason for v in found]


def trkref(v: list[FieldViolation], x: str) -> None:
    check_trkref(v, "trkref", x)


def locale(v: list[FieldViolation], x: str) -> None:
    check_locale(v, "locale", x)


def test_a_trkref_of_exactly_32_characters_is_accepted_and_33_refused() -> None:
    assert violations_of(trkref, "T" * 32) == []
    assert violations_of(trkref, "T" * 33) == [Reason.NOT_A_TRKREF]


# Language tags of valid form, 35 and 36 characters long.
LOCALE_35 = "en-" + "-".join(["abcdefgh"] * 3) + "-abcde"
LOCALE_36 = LOCALE_35 + "f"


def test_a_locale_of_exactly_35_characters_is_accepted_and_36_refused() -> None:
    assert (len(LOCALE_35), len(LOCALE_36)) == (35, 36)
    assert violations_of(locale, LOCALE_35) == []
    assert violations_of(locale, LOCALE_36) == [Reason.NOT_A_LANGUAGE_TAG]


@pytest.mark.parametrize("multiline", [False, True])
def test_a_text_of_exactly_its_limit_is_accepted_and_one_more_refused(multiline: bool) -> None:
    def text(v: list[FieldViolation], x: str) -> None:
        check_text(v, "f", x, max_length=5000, multiline=multiline)

    assert violations_of(text, "q" * 5000) == []
    assert violations_of(text, "q" * 5001) == [Reason.TOO_LONG]


def test_an_optional_text_and_a_url_at_their_limits() -> None:
    def optional(v: list[FieldViolation], x: str) -> None:
        validation.check_optional_text(v, "f", x, max_length=100)

    def url(v: list[FieldViolation], x: str) -> None:
        validation.check_url(v, "f", x)

    assert violations_of(optional, "") == violations_of(optional, "o" * 100) == []
    assert violations_of(optional, "o" * 101) == [Reason.TOO_LONG]
    assert violations_of(optional, "a\x00") == [Reason.CONTROL_CHARACTER]
    at_limit = "https://example.com/" + "p" * (validation.URL_MAX - 20)
    assert violations_of(url, "") == violations_of(url, at_limit) == []
    assert violations_of(url, at_limit + "p") == [Reason.TOO_LONG]


@pytest.mark.parametrize(
    "value",
    ["ftp://example.com/", "https://", "example.com", "https://exa mple.com/", "http://[::1",
     "https://example.com/\x01", "https://example.com:99999/", "https://example.com:x/",
     "https://example.com:0/"],
)  # fmt: skip
def test_what_is_not_an_absolute_http_url_is_refused(value: str) -> None:
    assert violations_of(lambda v, x: validation.check_url(v, "f", x), value) == [Reason.NOT_A_URL]


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [("EN-gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW"), ("ES-419", "es-419"),
     ("en-GB-x-Private", "en-GB-x-private"), ("de-CH-1996", "de-CH-1996")],
)  # fmt: skip
def test_a_locale_is_kept_in_the_case_bcp_47_recommends(tag: str, canonical: str) -> None:
    assert validation.canonical_locale(tag) == canonical


# What a valid single-line text is: printable, not blank, within its limit.
VISIBLE = st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp", "Cf"])


@given(
    first=VISIBLE,
    rest=st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=99),
    multiline=st.booleans(),
)
def test_any_printable_text_within_its_limit_is_accepted(
    first: str, rest: str, multiline: bool
) -> None:
    found: list[FieldViolation] = []
    check_text(found, "f", first + rest, max_length=100, multiline=multiline)
    assert found == []


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True))
def test_any_trkref_of_the_documented_form_is_accepted(value: str) -> None:
    assert violations_of(trkref, value) == []


@given(
    st.from_regex(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}", fullmatch=True),
)
def test_any_language_tag_of_the_documented_form_is_accepted(value: str) -> None:
    assert violations_of(locale, value) == []
    assert validation.canonical_locale(value).lower() == value.lower()


@given(st.uuids())
def test_any_uuid_is_accepted_as_a_request_id(value: uuid.UUID) -> None:
    for text in (str(value), str(value).upper()):
        assert violations_of(lambda v, x: check_request_id(v, "request_id", x), text) == []
