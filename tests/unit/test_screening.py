"""Screening on submit: what holds an item, and what does not, in several languages."""

# The texts are in several scripts on purpose: letters that look like Latin ones are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.service.screening import (
    NO_BLOCKED_TERMS,
    PHONE_CANDIDATES_MAX,
    BlockedTerms,
    ContactDetails,
    Hold,
    HoldReason,
    phone_region,
    screen,
)
from server.service.text_folding import fold_words

TERMS = BlockedTerms.compile(
    ["spam", "buy now", "Scheiße", "connard", "kırmızı", "σκατά", "死ね", "ばか", "バカ", "çöp"]
)
CONTACTS = ContactDetails()


def reasons(text: str, locale: str = "en_GB", terms: BlockedTerms = TERMS) -> set[HoldReason]:
    return {hold.reason for hold in screen({"question": text}, terms, CONTACTS, locale)}


def terms_found(text: str) -> list[str]:
    return TERMS.find(text)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("This is spam", "spam"),
        ("SPAM!", "spam"),
        ("\uff33\uff30\uff21\uff2d here", "spam"),  # full-width
        ("Spám, really", "spam"),
        ("sp\u200bam", "spam"),  # zero-width space
        ("s\u00adpam", "spam"),  # soft hyphen
        ("sp\ufe0fam", "spam"),  # variation selector
        ("Buy   now", "buy now"),
        ("BUY\t\nNOW!", "buy now"),
        ("buy-now", "buy now"),
        ("So eine SCHEISSE", "Scheiße"),
        ("so eine scheisse.", "Scheiße"),
        ("Quel CONNARD", "connard"),
        ("KIRMIZI araba", "kırmızı"),
        ("kirmizi araba", "kırmızı"),
        ("Kırmızı", "kırmızı"),
        ("ΣΚΑΤΑ", "σκατά"),
        ("Τι σκατα;", "σκατά"),
        ("お前死ねよ", "死ね"),
        ("ﾊﾞｶ", "バカ"),
        ("ばか!", "ばか"),
        ("ÇÖP", "çöp"),
        ("cop", "çöp"),
    ],
)
def test_a_blocked_term_is_found_whatever_its_case_accents_and_width(text: str, term: str) -> None:
    assert terms_found(text) == [term]


@pytest.mark.parametrize(
    "text",
    [
        "spammer",
        "antispam",
        "spam2",
        "buy nowhere",
        "buyer now",
        "Scheißen",
        "connards",
        "kırmızılar",
        "σκατάς",
        "Hello world",
        "",
        "   ",
    ],
)
def test_a_word_that_only_holds_a_term_is_not_found(text: str) -> None:
    assert terms_found(text) == []


def test_a_term_without_letters_or_digits_matches_nothing() -> None:
    assert BlockedTerms.compile(["!!!", "   ", ""]).find("!!! wow") == []


def test_no_terms_match_nothing() -> None:
    assert NO_BLOCKED_TERMS.find("spam") == []
    assert BlockedTerms.compile([]).find("spam") == []


def test_terms_that_fold_alike_are_reported_once_as_first_given() -> None:
    assert BlockedTerms.compile(["Spam", "SPÁM"]).find("spam and spam") == ["Spam"]


def test_every_term_found_is_reported_in_order() -> None:
    assert terms_found("buy now, spam, Scheiße") == ["buy now", "spam", "Scheiße"]


@pytest.mark.parametrize(
    ("text", "locale", "found"),
    [
        ("Call me on +44 20 7946 0958", "en_GB", "+44 20 7946 0958"),
        ("Call me on 020 7946 0958", "en_GB", "020 7946 0958"),
        ("Call me on 020 7946 0958", "en-GB", "020 7946 0958"),
        ("Ring (212) 456-7890 today", "en_US", "(212) 456-7890"),
        ("Ruf an: 030 901820", "de_DE", "030 901820"),
        ("Appelez le 01 42 68 53 00", "fr_FR", "01 42 68 53 00"),
        ("Call +1 212 456 7890", "", "+1 212 456 7890"),
        ("電話 03-1234-5678 まで", "ja_JP", "03-1234-5678"),
        ("Call +44\u200b20 7946 0958", "en_GB", "+4420 7946 0958"),
    ],
)
def test_a_phone_number_is_held(text: str, locale: str, found: str) -> None:
    holds = screen({"question": text}, TERMS, CONTACTS, locale)
    assert holds == [Hold(HoldReason.PHONE_NUMBER, "question", found)]


@pytest.mark.parametrize(
    ("text", "reason", "found"),
    [
        (
            "Write to john.doe@example.co.uk please",
            HoldReason.EMAIL_ADDRESS,
            "john.doe@example.co.uk",
        ),
        ("mail: Anna+shop@Beispiel.de", HoldReason.EMAIL_ADDRESS, "Anna+shop@Beispiel.de"),
        ("\uff4a\uff4f\uff48\uff4e\uff20\uff45\uff58.com", HoldReason.EMAIL_ADDRESS, "john@ex.com"),
        ("See https://example.com/deal?x=1", HoldReason.LINK, "https://example.com/deal?x=1"),
        ("See HTTP://EXAMPLE.COM", HoldReason.LINK, "HTTP://EXAMPLE.COM"),
        (
            "https://shop.example/item/02079460958",
            HoldReason.LINK,
            "https://shop.example/item/02079460958",
        ),
        ("mail 02079460958@example.com", HoldReason.EMAIL_ADDRESS, "02079460958@example.com"),
        ("see www.cheap-deals.de now", HoldReason.LINK, "www.cheap-deals.de"),
        ("go to cheapdeals.co.uk.", HoldReason.LINK, "cheapdeals.co.uk"),
        ("VISIT SPAMSITE.COM", HoldReason.LINK, "SPAMSITE.COM"),
        ("visit cheap-site.shop", HoldReason.LINK, "cheap-site.shop"),
        ("It is great.how do I clean it?", HoldReason.LINK, "great.how"),
        ("spamsite\u200b.com", HoldReason.LINK, "spamsite.com"),
    ],
)
def test_an_email_address_or_a_link_is_held(text: str, reason: HoldReason, found: str) -> None:
    assert screen({"answer": text}, TERMS, CONTACTS, "en_GB") == [Hold(reason, "answer", found)]


@pytest.mark.parametrize(
    "text",
    [
        "Is the 2024 model 15 cm wide?",
        "Does it fit a 55 inch TV?",
        "Is AIPTPDV5700 the same as AIPTPDV5600?",
        "I paid £1,299.99 on 12/03/2024.",
        "It arrived on 2024-01-05 at 10:30.",
        "Measures 120 x 60 x 45 cm, weighs approx.5kg",
        "Works with v2.0 and 3.14 firmware, e.g. the newer one",
        "It was broken.It works now.",
        "Version 1.2.3 of the app, i.e. the latest",
        "Ist das Gerät 2,5 kg schwer? Ca. 30 cm breit?",
        "L'appareil fait 1 200 W, c.-à-d. assez",
        "Passt das z.B. an die Wand? usw. bzw.Gerät",
        "サイズは 120 × 60 cm です",
        "My email is on file and I'll call you",
        "@shopname answered me",
        "Order 1234567 arrived",
        "Serial 4006381333931",
    ],
)
def test_ordinary_questions_with_numbers_and_dots_are_not_held(text: str) -> None:
    assert reasons(text) == set()


def test_more_long_digit_runs_than_are_read_hold_the_first_unread_one() -> None:
    text = " and ".join(f"order 123456{i}" for i in range(PHONE_CANDIDATES_MAX + 3))
    holds = screen({"question": text}, TERMS, CONTACTS, "en_GB")
    first_unread = f"123456{PHONE_CANDIDATES_MAX}"
    assert holds == [Hold(HoldReason.PHONE_NUMBER, "question", first_unread)]


def test_a_digit_run_too_long_to_be_one_number_is_held() -> None:
    holds = screen({"question": "codes " + "12 " * 30}, TERMS, CONTACTS, "en_GB")
    assert holds == [Hold(HoldReason.PHONE_NUMBER, "question", ("12 " * 30)[:40])]


def test_as_many_long_digit_runs_as_are_read_are_not_held() -> None:
    text = " and ".join(f"order 123456{i}" for i in range(PHONE_CANDIDATES_MAX))
    assert reasons(text) == set()


def test_every_field_and_reason_is_reported_sorted() -> None:
    holds = screen(
        {"question": "spam at www.spam.com", "nickname": "buy now"}, TERMS, CONTACTS, "en_GB"
    )
    assert holds == [
        Hold(HoldReason.BLOCKED_TERM, "nickname", "buy now"),
        Hold(HoldReason.BLOCKED_TERM, "question", "spam"),
        Hold(HoldReason.LINK, "question", "www.spam.com"),
    ]


def test_reasons_are_the_contracts_values() -> None:
    assert [str(reason) for reason in HoldReason] == [
        "blocked_term",
        "email_address",
        "phone_number",
        "link",
    ]


@pytest.mark.parametrize(
    ("locale", "region"),
    [
        ("en_GB", "GB"),
        ("en-gb", "GB"),
        ("de_DE", "DE"),
        ("zh-Hant-TW", "TW"),
        ("en-GB-oxendict", "GB"),
        ("en", "ZZ"),
        ("GB", "ZZ"),
        ("", "ZZ"),
        ("xx_QQ", "ZZ"),
    ],
)
def test_the_phone_region_comes_from_the_locale(locale: str, region: str) -> None:
    assert phone_region(locale) == region


WORD = st.text(alphabet=st.characters(categories=["Ll", "Lu", "Lo"]), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(before=st.lists(WORD, max_size=8), after=st.lists(WORD, max_size=8))
def test_a_term_between_spaces_is_always_held(before: list[str], after: list[str]) -> None:
    text = " ".join([*before, "spam", *after])
    assert HoldReason.BLOCKED_TERM in reasons(text)


LATIN_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüéèçßñ", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(LATIN_WORD, max_size=30))
def test_words_without_a_term_digits_or_at_are_not_held(words: list[str]) -> None:
    folded = {fold_words(word).strip() for word in words}
    terms = BlockedTerms.compile(["spam", "buy now", "scheisse"])
    text = " ".join(words)
    if not folded & {"spam", "buy", "scheisse"}:
        assert reasons(text, terms=terms) == set()


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=200))
def test_folding_is_idempotent(text: str) -> None:
    folded = fold_words(text)
    assert fold_words(folded) == folded


@settings(max_examples=50, deadline=None)
@given(text=st.text(min_size=9000, max_size=10000))
def test_screening_never_raises_on_any_text(text: str) -> None:
    holds = screen({"question": text}, TERMS, CONTACTS, "en_GB")
    assert all(hold.field == "question" for hold in holds)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300), locale=st.text(max_size=8)
)
def test_screening_never_raises_on_short_texts_and_odd_locales(text: str, locale: str) -> None:
    holds = screen({"question": text}, TERMS, CONTACTS, locale)
    assert holds == sorted(set(holds))


@settings(max_examples=200, deadline=None)
@given(terms=st.lists(st.text(max_size=20), max_size=20), text=st.text(max_size=200))
def test_any_terms_compile_and_a_term_is_found_between_spaces(terms: list[str], text: str) -> None:
    matcher = BlockedTerms.compile(terms)
    found = matcher.find(f"{text} {' '.join(terms)} {text}")
    assert set(found) <= set(terms)
    assert all(term in found for term in terms[:1] if fold_words(term).strip())
