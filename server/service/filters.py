"""A List's `filter`: the subset of AIP-160 it accepts, parsed strictly.

The subset is comparisons joined by `AND`: `answered = true|false`,
`has_retailer_answer = true|false`, `created_at >= "RFC 3339"` and `created_at < "..."`,
and, for moderator keys, `status = PENDING|PUBLISHED|REJECTED` (quoted or not). A
ListAnswers' filter takes the status comparison only (ANSWER_FIELDS).
Anything else (another field, operator or value, `OR`, `NOT`, `-`, parentheses, a
comparison given twice) is refused with what is wrong, never ignored: a filter that
were silently widened would list conversations the caller did not ask for.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

FILTER_MAX = 1000

# A token of AIP-160's lexical grammar; anything that is none of these is refused.
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"[^"\\]*")
    | (?P<unterminated>["'])
    | (?P<operator>>=|<=|!=|=|<|>|:)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*|-?[0-9][A-Za-z0-9_.:+-]*)
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_BOOLEANS = ("answered", "has_retailer_answer")
_FIELDS = (*_BOOLEANS, "created_at", "status")
# The fields a ListAnswers' filter takes: a moderator's answers of one status.
ANSWER_FIELDS = ("status",)
# The statuses a filter names, as the contract's Status spells them.
STATUSES = ("PENDING", "PUBLISHED", "REJECTED")
_TIME_EXAMPLE = '"2026-01-01T00:00:00Z"'


class BadFilter(ValueError):
    """The filter is outside the subset; the message says what is wrong."""


@dataclass(frozen=True)
class Filter:
    """What a filter keeps: None where it says nothing. Bounds are whole UTC seconds:
    `created_at` is stored in whole seconds, so a fractional bound rounds up."""

    answered: bool | None = None
    has_retailer_answer: bool | None = None
    created_from: datetime.datetime | None = None  # created_at >= this
    created_before: datetime.datetime | None = None  # created_at < this
    # "pending", "published" or "rejected": a moderator's List of one status.
    status: str | None = None

    def key(self) -> tuple[object, ...]:
        """The filter as plain values, for page tokens and cache keys; a status only when
        given, so that tokens issued before it stay valid."""
        return (
            self.answered,
            self.has_retailer_answer,
            None if self.created_from is None else self.created_from.isoformat(),
            None if self.created_before is None else self.created_before.isoformat(),
            *(() if self.status is None else (self.status,)),
        )


NO_FILTER = Filter()


def parse_filter(text: str, fields: tuple[str, ...] = _FIELDS) -> Filter:
    """The Filter `text` says, of these fields (a List's unless told); BadFilter naming the
    first thing outside the subset."""
    if len(text) > FILTER_MAX:
        raise BadFilter(f"must be at most {FILTER_MAX} characters")
    tokens = _tokens(text)
    found: dict[str, object] = {}
    position = 0
    while position < len(tokens):
        if position:
            if tokens[position] != "AND":
                raise BadFilter(f"expected AND before {tokens[position]!r}")
            position += 1
        field, value = _comparison(tokens[position : position + 3], fields)
        if field in found:
            raise BadFilter(f"{field.removesuffix(' =')} is given twice")
        found[field] = value
        position += 3
    return Filter(
        answered=_boolean(found.get("answered =")),
        has_retailer_answer=_boolean(found.get("has_retailer_answer =")),
        created_from=_time(found.get("created_at >=")),
        created_before=_time(found.get("created_at <")),
        status=None if found.get("status =") is None else str(found["status ="]),
    )


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group(kind or 0)
        if kind == "unterminated":
            raise BadFilter("has a string without its closing double quote")
        if kind == "other":
            raise BadFilter(f"{token!r} is not allowed: a filter is comparisons joined by AND")
        if token in ("OR", "NOT"):
            raise BadFilter(f"{token} is not supported: join comparisons with AND")
        tokens.append(token)
    if tokens and tokens[-1] == "AND":
        raise BadFilter("ends with AND: a comparison must follow it")
    return tokens


def _comparison(tokens: list[str], fields: tuple[str, ...]) -> tuple[str, object]:
    """One `field operator value`, as ("field operator", value)."""
    if not tokens:
        raise BadFilter("a comparison must follow AND")
    field = tokens[0]
    if field not in fields:
        raise BadFilter(f"unknown field {field!r}: one of {', '.join(fields)}")
    operator = tokens[1] if len(tokens) > 1 else ""
    value = tokens[2] if len(tokens) > 2 else ""
    if field == "status":
        if operator != "=" or value.strip('"') not in STATUSES:
            raise BadFilter(f"status takes = and one of {', '.join(STATUSES)}")
        return "status =", value.strip('"').lower()
    if field in _BOOLEANS:
        if operator != "=" or value not in ("true", "false"):
            raise BadFilter(f"{field} takes = true or = false")
        return f"{field} =", value == "true"
    if operator not in (">=", "<") or not value.startswith('"'):
        raise BadFilter(f"created_at takes >= or < and a timestamp such as {_TIME_EXAMPLE}")
    return f"created_at {operator}", _timestamp(value[1:-1])


def _timestamp(text: str) -> datetime.datetime:
    """An RFC 3339 timestamp with its offset, in UTC, rounded up to whole seconds."""
    if not _RFC3339.fullmatch(text):
        raise BadFilter(f"{text!r} is not an RFC 3339 timestamp such as {_TIME_EXAMPLE}")
    try:
        moment = datetime.datetime.fromisoformat(text.upper())
    except ValueError:
        raise BadFilter(f"{text!r} is not a valid date and time") from None
    try:
        moment = moment.astimezone(datetime.UTC)
        if moment.microsecond:
            moment = moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
    except OverflowError:
        raise BadFilter(f"{text!r} is out of range") from None
    return moment


def _boolean(value: object) -> bool | None:
    return None if value is None else bool(value)


def _time(value: object) -> datetime.datetime | None:
    return value if isinstance(value, datetime.datetime) else None
