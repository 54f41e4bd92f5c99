"""Use cases of votes: a shopper finds a question or an answer helpful, or not."""

from __future__ import annotations

from server.service.domain import VOTE_COUNTERS, VOTE_TARGETS, Caller, Vote
from server.service.errors import (
    AnswerNotFound,
    ConversationNotFound,
    DomainError,
    FieldViolation,
    InvalidRequest,
    Reason,
)
from server.service.ports import Storage
from server.service.validation import check_optional_text, check_trkref, is_blank

VOTER_ID_MAX = 100


def not_found(target: str, target_id: int) -> DomainError:
    """The one error of a target that does not exist or is out of reach."""
    if target == "conversation":
        return ConversationNotFound(target_id)
    return AnswerNotFound(target_id)


async def vote(
    store: Storage,
    caller: Caller,
    *,
    target: str,
    target_id: int,
    counter: str,
    trkref: str,
    voter_id: str = "",
) -> None:
    """Add one to the `counter` of a conversation or answer of `trkref`.

    With a voter_id, a voter counts once per target: a repeat succeeds and changes
    nothing. A target out of reach is reported exactly as one that does not exist.
    """
    assert target in VOTE_TARGETS and counter in VOTE_COUNTERS
    violations: list[FieldViolation] = []
    check_trkref(violations, "trkref", trkref)
    if target_id < 1:
        violations.append(FieldViolation("id", Reason.OUT_OF_RANGE, "must be at least 1"))
    check_optional_text(violations, "voter_id", voter_id, max_length=VOTER_ID_MAX)
    if voter_id and is_blank(voter_id):
        violations.append(FieldViolation("voter_id", Reason.REQUIRED, "must not be blank"))
    if violations:
        raise InvalidRequest(violations)
    if trkref not in caller.organisations:
        raise not_found(target, target_id)
    found = await store.record_vote(
        Vote(target, target_id, counter, trkref, caller.key_id, voter_id or None)
    )
    if not found:
        raise not_found(target, target_id)
