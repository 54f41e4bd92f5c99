"""Domain errors: what the service logic raises, independent of any transport."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a caller may see; the transport maps each subclass to a status."""


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request and why it is invalid."""

    field: str
    description: str


class InvalidArgument(DomainError):
    """The request is malformed; `violations` lists every bad field at once."""

    def __init__(self, subject: str, violations: list[FieldViolation]) -> None:
        self.violations = violations
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid {subject}: {summary}")


class InvalidConversation(InvalidArgument):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("conversation", violations)


class InvalidOrganisation(InvalidArgument):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("organisation", violations)


class OrganisationNotFound(DomainError):
    # The wording matches the v4 API: it never says whether the organisation
    # exists but is out of reach or does not exist at all.
    def __init__(self, trkref: str) -> None:
        self.trkref = trkref
        super().__init__(
            f"organisation {trkref!r} does not exist or you are not authorised to access it"
        )


class OrganisationExists(DomainError):
    def __init__(self, trkref: str) -> None:
        self.trkref = trkref
        super().__init__(f"organisation {trkref!r} already exists")


class Unauthenticated(DomainError):
    """Credentials are missing, malformed, wrong, or of a revoked key."""

    def __init__(self) -> None:
        # One message for every case: it must not tell which part was wrong.
        super().__init__("missing or invalid credentials: use HTTP Basic with an API key")


class RateLimited(DomainError):
    """The key has used up its allowance of calls; retry later."""

    def __init__(self) -> None:
        super().__init__("rate limit exceeded for this API key; retry later")


class ApiKeyNotFound(DomainError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no active API key {key_id!r}")


class StorageUnavailable(DomainError):
    """The database cannot be reached or is busy; the call may be retried."""
