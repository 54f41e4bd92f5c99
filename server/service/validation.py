"""Checks of single text fields, shared by the use cases; each returns what is wrong or None."""

from __future__ import annotations

import functools
import re
import unicodedata
import urllib.parse
import uuid

from server.service.errors import FieldViolation, Reason

# A BCP 47 language tag in its common form: language, then subtags (`en-GB`,
# `zh-Hant-TW`, `es-419`).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_TRKREF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

LOCALE_MAX = 35
TRKREF_MAX = 32


# Unicode's control characters (category Cc) are exactly these; the multiline
# form allows tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Unicode's bidirectional embeddings, overrides and isolates (U+202A to U+202E, U+2066 to
# U+2069): in a name, they reorder what is shown around it (a right-to-left override
# makes "moc.elpmaxe" read as "example.com"). Long texts keep them: right-to-left prose
# may need them, and it is shown as a block of its own.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Characters a URL may not hold unencoded, which HTML or a shell would read as the URL's
# end: quotes, angle brackets, backquote and backslash (RFC 3986 leaves them out).
_NOT_IN_URL = re.compile("[\"'<>`\\\\]")


def check_text(
    violations: list[FieldViolation],
    field: str,
    value: str,
    *,
    max_length: int,
    multiline: bool = False,
) -> None:
    """A required, bounded text: not blank, no control characters (line breaks if multiline)."""
    if is_blank(value):
        violations.append(
            FieldViolation(field, Reason.REQUIRED, "is required and must not be blank")
        )
    else:
        _check_bounded(violations, field, value, max_length, multiline)


def _check_bounded(
    violations: list[FieldViolation], field: str, value: str, max_length: int, multiline: bool
) -> None:
    """At most `max_length` characters, no control characters (line breaks if multiline)."""
    if len(value) > max_length:
        violations.append(_too_long(field, value, max_length))
    elif (_CONTROL_BUT_LINE_BREAKS if multiline else _CONTROL).search(value):
        allowed = " other than line breaks and tabs" if multiline else ""
        violations.append(
            FieldViolation(
                field, Reason.CONTROL_CHARACTER, f"must not contain control characters{allowed}"
            )
        )
    elif not multiline and _BIDI_CONTROL.search(value):
        violations.append(
            FieldViolation(
                field,
                Reason.BIDI_CONTROL,
                "must not contain bidirectional embeddings, overrides or isolates "
                "(U+202A to U+202E, U+2066 to U+2069)",
            )
        )


def _too_long(field: str, value: str, max_length: int) -> FieldViolation:
    return FieldViolation(
        field, Reason.TOO_LONG, f"must be at most {max_length} characters, got {len(value)}"
    )


def is_blank(value: str) -> bool:
    """Nothing a reader would see: only whitespace and format characters (Unicode's Cf, such
    as the zero-width space U+200B, the zero-width joiner U+200D or the BOM U+FEFF)."""
    if value[:1].isalnum():  # most values: no generator needed
        return False
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in value)


def check_optional_text(
    violations: list[FieldViolation], field: str, value: str | None, *, max_length: int
) -> None:
    """An optional, bounded text: empty or absent, or without control characters."""
    if value:
        _check_bounded(violations, field, value, max_length, multiline=False)


URL_MAX = 2048


def check_url(violations: list[FieldViolation], field: str, value: str | None) -> None:
    """An optional URL: empty or absent, or an absolute http(s) URL of at most URL_MAX."""
    if not value:
        return
    if len(value) > URL_MAX:
        violations.append(_too_long(field, value, URL_MAX))
        return
    try:
        parts = urllib.parse.urlsplit(value)
        # .port raises ValueError for a port that is not a number from 0 to 65535.
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        # A user name or password in a URL shown to shoppers is a phishing device
        # (https://example.com@attacker.test/), never a review or an image.
        valid = valid and parts.username is None and parts.password is None
    except ValueError:  # a malformed port or IPv6 address
        valid = False
    if (
        not valid
        or _CONTROL.search(value)
        or _NOT_IN_URL.search(value)
        or any(c.isspace() for c in value)
    ):
        violations.append(
            FieldViolation(
                field,
                Reason.NOT_A_URL,
                "must be an absolute http or https URL such as https://example.com/, without "
                "user name or password, quotes, angle brackets, backquotes or backslashes",
            )
        )


def check_locale(violations: list[FieldViolation], field: str, value: str) -> None:
    if len(value) > LOCALE_MAX or not _LANGUAGE_TAG.fullmatch(value):
        violations.append(
            FieldViolation(
                field,
                Reason.NOT_A_LANGUAGE_TAG,
                "must be a language tag such as en-GB (at most 35 characters)",
            )
        )


@functools.lru_cache(maxsize=1024)
def canonical_locale(tag: str) -> str:
    """A language tag in the case BCP 47 recommends (en-GB, zh-Hant-TW): tags that differ
    only in case are the same tag, and are stored and compared in this form."""
    parts: list[str] = []
    extension = False
    for i, part in enumerate(tag.split("-")):
        extension = extension or (i > 0 and len(part) == 1)
        if i == 0 or extension:
            parts.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())
        elif len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def check_trkref(violations: list[FieldViolation], field: str, value: str) -> None:
    if not value:
        violations.append(FieldViolation(field, Reason.REQUIRED, "is required"))
    elif len(value) > TRKREF_MAX or not _TRKREF.fullmatch(value):
        violations.append(
            FieldViolation(
                field,
                Reason.NOT_A_TRKREF,
                "must be 1 to 32 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        )


def check_request_id(violations: list[FieldViolation], field: str, value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        violations.append(
            FieldViolation(
                field,
                Reason.NOT_A_UUID,
                "must be a UUID such as 3f1c2b9e-8a43-4c1e-9d2f-6b7a5e4c3d21",
            )
        )
