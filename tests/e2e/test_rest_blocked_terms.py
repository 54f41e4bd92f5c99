"""Blocked terms over REST through the real Envoy transcoder, and over gRPC: exact JSON,
screening with a change from the next create on, the moderator's role, other
organisations, hostile input."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from harness.support import basic_authorization, cli, create_key
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    ServiceProcess,
    assert_rpc_status,
    call,
    grpcurl,
)

TERMS = "/v4/organisations/{trkref}/moderation/blocked_terms"
DENIED = {"code": 7, "message": "this method needs a moderator key", "details": []}


class Keys:
    """A moderator's key of D10 (as HTTP Basic and as gRPC metadata), a moderator's of E20."""

    def __init__(self, service: ServiceProcess) -> None:
        database = f"sqlite:///{service.workdir}/var/conversations.db"
        added = cli(database, "organisations", "add", "E20", "--name", "Rival", "--locale", "en-GB")
        assert added.returncode == 0, added.stderr
        key_id, secret = create_key(database, "D10", role="moderator")
        self.moderator = basic_authorization(key_id, secret)
        credentials = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
        self.moderator_grpc = f"authorization: Basic {credentials}"
        self.rival = basic_authorization(*create_key(database, "E20", role="moderator"))


@pytest.fixture(scope="module")
def keys(rest: ServiceProcess) -> Iterator[Keys]:
    yield Keys(rest)


def term_path(term: str, trkref: str = "D10") -> str:
    return TERMS.format(trkref=trkref) + "/" + urllib.parse.quote(term, safe="")


def ask(service: ServiceProcess, question: str) -> dict[str, Any]:
    body = {"first_name": "A shopper", "question": question, "sku": "TERMS1"}
    created = call(service, "POST", "/v4/organisations/D10/conversations", body)
    assert created.status == 200, created.body
    return dict(created.json())


def test_a_term_added_holds_the_next_create_and_removed_no_longer(
    rest: ServiceProcess, keys: Keys
) -> None:
    assert ask(rest, "Is it pricy?")["status"] == "PUBLISHED"
    added = call(rest, "POST", TERMS.format(trkref="D10"), {"term": "PRICY"},
                 authorization=keys.moderator)  # fmt: skip
    assert (added.status, added.body) == (200, b'{"term":"pricy"}')
    held = ask(rest, "Is it pricy?")
    assert (held["status"], held["held_for"]) == ("PENDING", ["blocked_term"])
    removed = call(rest, "DELETE", term_path("Pricy"), authorization=keys.moderator)
    assert (removed.status, removed.body) == (200, b"{}")
    published = ask(rest, "Is it pricy?")
    assert (published["status"], published["held_for"]) == ("PUBLISHED", [])


def test_terms_are_listed_folded_a_page_at_a_time(rest: ServiceProcess, keys: Keys) -> None:
    for term in ("Buy-NOW!", "Spám", "zebra"):
        created = call(rest, "POST", TERMS.format(trkref="D10"), {"term": term},
                       authorization=keys.moderator)  # fmt: skip
        assert created.status == 200, created.body
    path = TERMS.format(trkref="D10")
    first = call(rest, "GET", path + "?page_size=2", authorization=keys.moderator)
    assert first.status == 200, first.body
    page = first.json()
    token = page["next_page_token"]
    assert first.body == (
        b'{"blocked_terms":[{"term":"buy now"},{"term":"spam"}],"next_page_token":"'
        + token.encode()
        + b'"}'
    )
    rest_of_it = call(rest, "GET", f"{path}?page_size=2&page_token={token}",
                      authorization=keys.moderator)  # fmt: skip
    assert rest_of_it.body == b'{"blocked_terms":[{"term":"zebra"}],"next_page_token":""}'
    again = call(rest, "POST", path, {"term": "SPAM"}, authorization=keys.moderator)
    assert json.loads(again.body) == {
        "code": 6, "message": "the blocked term 'spam' already exists", "details": [],
    }  # fmt: skip
    assert_rpc_status(again, 409)
    for term in ("buy now", "spam", "zebra"):
        assert call(rest, "DELETE", term_path(term), authorization=keys.moderator).status == 200
    missing = call(rest, "DELETE", term_path("spam"), authorization=keys.moderator)
    assert assert_rpc_status(missing, 404) == {
        "code": 5, "message": "the blocked term 'spam' does not exist", "details": [],
    }  # fmt: skip
    empty = call(rest, "GET", path, authorization=keys.moderator)
    assert empty.body == b'{"blocked_terms":[],"next_page_token":""}'


def test_a_shopper_key_is_refused_with_the_bytes_of_every_moderator_route(
    rest: ServiceProcess,
) -> None:
    queue = call(rest, "GET", "/v4/organisations/D10/moderation/queue")
    bodies = {queue.body}
    for trkref in ("D10", "E20", "Z99"):
        for method, path, body in [
            ("GET", TERMS.format(trkref=trkref), None),
            ("POST", TERMS.format(trkref=trkref), {"term": ""}),
            ("DELETE", term_path("spam", trkref), None),
        ]:
            refused = call(rest, method, path, body, authorization=DEMO_AUTHORIZATION)
            assert assert_rpc_status(refused, 403) == DENIED
            bodies.add(refused.body)
    assert len(bodies) == 1


def test_another_organisation_is_the_404_of_a_missing_one(rest: ServiceProcess, keys: Keys) -> None:
    added = call(rest, "POST", TERMS.format(trkref="D10"), {"term": "ours"},
                 authorization=keys.moderator)  # fmt: skip
    assert added.status == 200, added.body
    for method, template, body in [
        ("GET", TERMS, None),
        ("POST", TERMS, {"term": "ours"}),
        ("DELETE", TERMS + "/ours", None),
    ]:
        for trkref, authorization in [("E20", keys.moderator), ("D10", keys.rival)]:
            unknown = call(rest, method, template.format(trkref="Z99"), body,
                           authorization=authorization)  # fmt: skip
            other = call(rest, method, template.format(trkref=trkref), body,
                         authorization=authorization)  # fmt: skip
            assert_rpc_status(other, 404)
            assert other.body == unknown.body.replace(b"Z99", trkref.encode())
            assert json.loads(other.body) == {
                "code": 5,
                "message": f"organisation '{trkref}' does not exist or you are not authorised "
                "to access it",
                "details": [],
            }
    theirs = call(rest, "GET", TERMS.format(trkref="E20"), authorization=keys.rival)
    assert theirs.body == b'{"blocked_terms":[],"next_page_token":""}'
    assert call(rest, "DELETE", term_path("ours"), authorization=keys.moderator).status == 200


def violation(field: str, description: str, reason: str) -> dict[str, Any]:
    """The exact error body of one invalid field."""
    return {
        "code": 3,
        "message": f"invalid request: {field}: {description}",
        "details": [{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": field, "description": description, "reason": reason}],
        }],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("term", "description", "reason"),
    [
        ("", "is required and must not be blank", "REQUIRED"),
        ("\u200b\u2060", "is required and must not be blank", "REQUIRED"),
        ("x" * 10_000, "must be at most 200 characters, got 10000", "TOO_LONG"),
        ("a\u0007b", "must not contain control characters", "CONTROL_CHARACTER"),
        (
            "a\u202eb",
            "must not contain bidirectional embeddings, overrides or isolates "
            "(U+202A to U+202E, U+2066 to U+2069)",
            "BIDI_CONTROL",
        ),
        ("!?!", "must hold a letter or digit", "NOTHING_TO_MATCH"),
        ("\ufdfa" * 12, "must be at most 200 characters once folded, got 216", "TOO_LONG"),
    ],
)
def test_hostile_terms_are_a_clear_400(
    rest: ServiceProcess, keys: Keys, term: str, description: str, reason: str
) -> None:
    created = call(rest, "POST", TERMS.format(trkref="D10"), {"term": term},
                   authorization=keys.moderator)  # fmt: skip
    assert_rpc_status(created, 400)
    assert created.json() == violation("blocked_term.term", description, reason)
    if term:  # an empty path segment is another path
        deleted = call(rest, "DELETE", term_path(term), authorization=keys.moderator)
        assert_rpc_status(deleted, 400)
        assert deleted.json() == violation("term", description, reason)


@pytest.mark.parametrize(
    ("method", "path", "body", "fields"),
    [
        ("GET", "/v4/organisations/D10/moderation/blocked_terms?page_size=-1", None, ["page_size"]),
        (
            "GET",
            "/v4/organisations/D10/moderation/blocked_terms?page_token=forged",
            None,
            ["page_token"],
        ),
        ("GET", "/v4/organisations/D%2010/moderation/blocked_terms", None, ["trkref"]),
        ("POST", "/v4/organisations/D10/moderation/blocked_terms", {"term": ["a list"]}, None),
        ("POST", "/v4/organisations/D10/moderation/blocked_terms", "{not json", None),
        ("POST", "/v4/organisations/D10/moderation/blocked_terms?sneaky=1", {"term": "a"}, None),
        ("DELETE", "/v4/organisations/D10/moderation/blocked_terms/a?trkref=E20", None, None),
    ],
)
def test_malformed_requests_are_a_clear_400(
    rest: ServiceProcess, keys: Keys, method: str, path: str, body: Any, fields: list[str] | None
) -> None:
    refused = call(rest, method, path, body, authorization=keys.moderator)
    error = assert_rpc_status(refused, 400)
    if fields is not None:
        [details] = error["details"]
        assert [v["field"] for v in details["field_violations"]] == fields


def test_a_page_token_is_bound_to_its_list(rest: ServiceProcess, keys: Keys) -> None:
    for n in range(3):
        ask(rest, f"spam {n}? me@example.com")
    queue = call(rest, "GET", "/v4/organisations/D10/moderation/queue?page_size=1",
                 authorization=keys.moderator).json()  # fmt: skip
    token = queue["next_page_token"]
    assert token
    other = call(rest, "GET", TERMS.format(trkref="D10") + f"?page_token={token}",
                 authorization=keys.moderator)  # fmt: skip
    assert_rpc_status(other, 400)


def test_grpc_blocked_terms(rest: ServiceProcess, keys: Keys) -> None:
    method = "conversations.v4.ConversationService/"
    headers = [keys.moderator_grpc]
    created = grpcurl(rest.address, method + "CreateBlockedTerm", headers=headers,
                      data='{"trkref":"D10","blocked_term":{"term":"Über"}}')  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"term": "uber"}
    listed = grpcurl(rest.address, method + "ListBlockedTerms", headers=headers,
                     data='{"trkref":"D10"}')  # fmt: skip
    assert json.loads(listed.stdout) == {"blocked_terms": [{"term": "uber"}]}
    deleted = grpcurl(rest.address, method + "DeleteBlockedTerm", headers=headers,
                      data='{"trkref":"D10","term":"UBER"}')  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    missing = grpcurl(rest.address, method + "DeleteBlockedTerm", headers=headers,
                      data='{"trkref":"D10","term":"uber"}')  # fmt: skip
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    shopper = "authorization: " + DEMO_AUTHORIZATION
    refused = grpcurl(rest.address, method + "ListBlockedTerms", headers=[shopper],
                      data='{"trkref":"D10"}')  # fmt: skip
    assert refused.returncode != 0 and "PermissionDenied" in refused.stderr
