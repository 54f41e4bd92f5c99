"""Screening on submit: why a shopper's text is held for a moderator, if it is.

A text is held when it holds one of the organisation's blocked terms as a whole word, or a
contact detail: an email address, a phone number or a link. Blocked terms are matched all
at once by an Aho-Corasick automaton (pyahocorasick) over the folded words of the text
(server/service/text_folding.py), phone numbers by libphonenumber's matcher (phonenumbers)
for the region of the text's locale. No library finds email addresses and links in free text
without fetching a list at run time, so they are two patterns here; a bare domain is a link
only when it ends in a public suffix of the list that publicsuffixlist ships.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import ahocorasick
import phonenumbers
from publicsuffixlist import PublicSuffixList

from server.service import text_folding
from server.service.text_folding import drop_invisible, fold_words


class HoldReason(StrEnum):
    """Why screening holds an item as pending."""

    BLOCKED_TERM = "blocked_term"
    EMAIL_ADDRESS = "email_address"
    PHONE_NUMBER = "phone_number"
    LINK = "link"


@dataclass(frozen=True, order=True)
class Hold:
    """One reason an item is held: which field, and what matched, for the moderator (the
    blocked term as the organisation wrote it, or the contact detail as the text has it).
    A shopper is told the reason, never the match."""

    reason: HoldReason
    field: str
    match: str


# Scripts written without spaces between words: a term in one matches inside a run of text.
_UNSPACED_SCRIPTS = (
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HALFWIDTH KATAKANA",
    "THAI",
    "LAO",
    "KHMER",
    "MYANMAR",
    "TIBETAN",
)


def _boundary(character: str) -> str:
    """What must stand beside a term that starts or ends with `character`: a space, unless
    its script puts none between words."""
    return "" if unicodedata.name(character, "").startswith(_UNSPACED_SCRIPTS) else " "


class BlockedTerms:
    """An organisation's blocked terms, compiled once, matched against any number of texts."""

    def __init__(self, automaton: ahocorasick.Automaton | None) -> None:
        self._automaton = automaton

    @classmethod
    def compile(cls, terms: Iterable[str]) -> BlockedTerms:
        """The matcher of `terms`; a term with no letter or digit matches nothing."""
        automaton = ahocorasick.Automaton()
        for term in terms:
            words = fold_words(term).strip()
            if not words:
                continue
            key = f"{_boundary(words[0])}{words}{_boundary(words[-1])}"
            if key not in automaton:
                automaton.add_word(key, term)
        if not len(automaton):
            return cls(None)
        automaton.make_automaton()
        return cls(automaton)

    def find(self, text: str) -> list[str]:
        """The terms `text` holds as whole words, as they were given, in order of position."""
        if self._automaton is None:
            return []
        found: dict[str, None] = {}
        for _end, term in self._automaton.iter(fold_words(text)):
            found[term] = None
        return list(found)


NO_BLOCKED_TERMS = BlockedTerms(None)

# A run that may be a phone number: digits with the separators numbers are written with.
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d")
# Shorter runs are sizes, years and prices far more often than numbers to call.
PHONE_MIN_DIGITS = 7
# Reading a digit run is libphonenumber's dearest step: a text gets a bounded number of them.
PHONE_CANDIDATES_MAX = 4
PHONE_TRIES = 8
# The longest run libphonenumber reads: a number with its country code, extension and spaces.
PHONE_SPAN_MAX = 40
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_URL = re.compile(r"(?<![\w.@-])(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
# A bare domain is found from its last dot (a literal, which `re` searches for fast), then
# its labels are read back from there; a domain name is at most 253 characters.
_SUFFIX = re.compile(r"\.([^\W\d_]{2,63})(?![\w@-]|\.[^\W_])")
_LABELS = re.compile(r"(?<![\w.@/-])(?:[^\W_](?:[\w-]*[^\W_])?\.)+\Z")
DOMAIN_MAX = 253


class ContactDetails:
    """Finds email addresses, phone numbers and links. Built once, at start-up: it loads the
    suffix list and the character classes of text folding."""

    def __init__(self) -> None:
        self._suffixes = PublicSuffixList()
        text_folding.prepare()

    def find(self, text: str, region: str) -> list[tuple[HoldReason, str]]:
        """The contact details in `text`, a phone number as written in `region`'s style."""
        clean = drop_invisible(text)
        found: list[tuple[HoldReason, str]] = []
        if "@" in clean:
            found += [(HoldReason.EMAIL_ADDRESS, m.group()) for m in _EMAIL.finditer(clean)]
            clean = _EMAIL.sub(" ", clean)
        if "://" in clean or "www." in clean.lower():
            found += [(HoldReason.LINK, m.group()) for m in _URL.finditer(clean)]
            clean = _URL.sub(" ", clean)
        found += [(HoldReason.LINK, d) for d in self._bare_domains(clean)]
        found += [(HoldReason.PHONE_NUMBER, n) for n in _phone_numbers(clean, region)]
        return found

    def _bare_domains(self, text: str) -> list[str]:
        domains = []
        for suffix in _SUFFIX.finditer(text):
            # "broken.It works": a sentence that starts without its space is no link.
            if suffix[1][0].isupper() and suffix[1][1:].islower():
                continue
            labels = _LABELS.search(text, max(0, suffix.start() - DOMAIN_MAX), suffix.start() + 1)
            if labels is None:
                continue
            domain = text[labels.start() : suffix.end()]
            if self._suffixes.publicsuffix(domain.lower(), accept_unknown=False):
                domains.append(domain)
        return domains


def _phone_numbers(text: str, region: str) -> list[str]:
    """The phone numbers in `text`; libphonenumber reads only the digit runs long enough to
    be one, at most PHONE_CANDIDATES_MAX of them, each with a bounded number of tries."""
    candidates = [
        span
        for match in _PHONE_CANDIDATE.finditer(text)
        if sum(map(str.isdigit, span := match.group())) >= PHONE_MIN_DIGITS
    ]
    numbers = []
    for span in candidates[:PHONE_CANDIDATES_MAX]:
        if len(span) > PHONE_SPAN_MAX:
            # Too long to be one number, and dear to read: the moderator reads it.
            numbers.append(span[:PHONE_SPAN_MAX])
            continue
        matcher = phonenumbers.PhoneNumberMatcher(
            span, region, phonenumbers.Leniency.VALID, max_tries=PHONE_TRIES
        )
        numbers += [found.raw_string for found in matcher]
    # A number may hide among more runs than are read: the first unread one goes to the
    # moderator.
    return numbers + candidates[PHONE_CANDIDATES_MAX : PHONE_CANDIDATES_MAX + 1]


def phone_region(locale: str) -> str:
    """The phone region of a locale ("en_GB" -> "GB", "zh-Hant-TW" -> "TW"); "ZZ" (only
    numbers written with their country code) when it names no region libphonenumber knows."""
    subtags = [subtag.upper() for subtag in re.split(r"[-_]", locale)[1:]]
    return next((s for s in subtags if s in phonenumbers.SUPPORTED_REGIONS), "ZZ")


def screen(
    texts: Mapping[str, str], terms: BlockedTerms, contacts: ContactDetails, locale: str
) -> list[Hold]:
    """Every reason to hold an item whose fields hold `texts` (field name -> text), sorted;
    empty when the item may be published."""
    region = phone_region(locale)
    holds: set[Hold] = set()
    for field, text in texts.items():
        holds.update(Hold(HoldReason.BLOCKED_TERM, field, term) for term in terms.find(text))
        holds.update(Hold(reason, field, found) for reason, found in contacts.find(text, region))
    return sorted(holds)
