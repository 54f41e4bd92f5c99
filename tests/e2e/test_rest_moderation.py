"""Moderation over REST through the real Envoy transcoder, and over gRPC: exact JSON, the
moderator's role, other organisations' ids, hostile input."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from harness.support import basic_authorization, cli, create_key
from tests.e2e.service import (
    ASKED_SKU,
    DEMO_AUTHORIZATION,
    RivalKeys,
    ServiceProcess,
    ask,
    assert_rpc_status,
    call,
    grpcurl,
)

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
DECISION_ROUTES = [
    "/v4/conversations/{conversation}/approve",
    "/v4/conversations/{conversation}/reject",
    "/v4/conversation_answers/{answer}/approve",
    "/v4/conversation_answers/{answer}/reject",
]
LIST_ROUTES = ["/v4/organisations/{trkref}/moderation/queue",
               "/v4/organisations/{trkref}/moderation/decisions"]  # fmt: skip
DENIED = {"code": 7, "message": "this method needs a moderator key", "details": []}


class Keys(RivalKeys):
    """The demo key (a shopper's of D10), a moderator's of D10, one of E20 alone."""

    def __init__(self, service: ServiceProcess) -> None:
        super().__init__(service, "E20")
        assert cli(self.database, "terms", "add", "D10", "spam").returncode == 0
        credentials = f"{self.moderator_id}:{self.moderator_secret}".encode()
        self.moderator_grpc = "authorization: Basic " + base64.b64encode(credentials).decode()
        self.rival = basic_authorization(*create_key(self.database, "E20", role="moderator"))
        self.rival_shopper = basic_authorization(*create_key(self.database, "E20"))


@pytest.fixture(scope="module")
def keys(rest: ServiceProcess) -> Iterator[Keys]:
    yield Keys(rest)


def test_a_held_create_returns_its_status_and_reasons_and_leaves_shoppers_reads(
    rest: ServiceProcess, keys: Keys
) -> None:
    held = ask(rest, "Is this spam? Mail me@example.com")
    assert held == {
        "id": held["id"], "first_name": "A shopper",
        "question": "Is this spam? Mail me@example.com", "created_at": held["created_at"],
        "helpful": 0, "unhelpful": 0, "embeddable": False, "retailer_locale": "en-GB",
        "answers": [], "answers_count": 0, "answers_next_page_token": "",
        "status": "PENDING", "held_for": ["blocked_term", "email_address"],
    }  # fmt: skip
    published = ask(rest, "Is this quiet?")
    assert (published["status"], published["held_for"]) == ("PUBLISHED", [])
    missing = call(rest, "GET", "/v4/conversations/999999?trkref=D10")
    hidden = call(rest, "GET", f"/v4/conversations/{held['id']}?trkref=D10")
    assert_rpc_status(hidden, 404)
    assert hidden.body == missing.body
    listed = call(rest, "GET", f"/v4/organisations/D10/conversations?sku={ASKED_SKU}").json()
    assert [c["id"] for c in listed["conversations"]] == [published["id"]]
    assert listed["summary"] == {"question_count": 1, "answers_count": 0}
    pre = ask(rest, "Fits?", keys.rival_shopper, "E20")
    assert (pre["status"], pre["held_for"]) == ("PENDING", ["pre_moderation"])


def test_the_queue_approve_reject_and_the_log(rest: ServiceProcess, keys: Keys) -> None:
    held = ask(rest, "spam again?")
    queue = call(rest, "GET", "/v4/organisations/D10/moderation/queue?page_size=100",
                 authorization=keys.moderator)  # fmt: skip
    assert queue.status == 200, queue.body
    items = queue.json()["items"]
    [item] = [i for i in items if i["conversation"]["id"] == held["id"]]
    assert item == {"kind": "conversation", "conversation": held, "reports": []}
    path = f"/v4/conversations/{held['id']}/approve?trkref=D10"
    body = {"reason": "ok", "note": "a word, not spam"}
    approved = call(rest, "POST", path, body, authorization=keys.moderator)
    assert approved.status == 200, approved.body
    decision = approved.json()
    assert TIME.fullmatch(decision.pop("decided_at"))
    assert decision == {
        "id": decision["id"], "target": "conversation", "target_id": held["id"],
        "from_status": "PENDING", "to_status": "PUBLISHED", "decided_by": keys.moderator_id,
        "reason": "ok", "note": "a word, not spam",
    }  # fmt: skip
    again = call(rest, "POST", path, {}, authorization=keys.moderator).json()
    assert (again["id"], again["from_status"], again["to_status"]) == (0, "PUBLISHED", "PUBLISHED")
    shown = call(rest, "GET", f"/v4/conversations/{held['id']}?trkref=D10").json()
    assert (shown["status"], shown["held_for"]) == ("PUBLISHED", [])
    rejected = call(rest, "POST", f"/v4/conversations/{held['id']}/reject?trkref=D10",
                    {"reason": "spam"}, authorization=keys.moderator)  # fmt: skip
    assert rejected.json()["to_status"] == "REJECTED"
    assert_rpc_status(call(rest, "GET", f"/v4/conversations/{held['id']}?trkref=D10"), 404)
    log = call(rest, "GET", "/v4/organisations/D10/moderation/decisions?page_size=1",
               authorization=keys.moderator).json()  # fmt: skip
    assert [d["to_status"] for d in log["decisions"]] == ["REJECTED"]
    after = call(rest, "GET", "/v4/organisations/D10/moderation/decisions?page_size=1&page_token="
                 + log["next_page_token"], authorization=keys.moderator).json()  # fmt: skip
    assert [d["id"] for d in after["decisions"]] == [decision["id"]]


def test_an_answer_is_held_then_approved(rest: ServiceProcess, keys: Keys) -> None:
    conversation = ask(rest, "Quiet?")
    held = call(rest, "POST", f"/v4/conversations/{conversation['id']}/answers?trkref=D10",
                {"response": "See www.example.com", "first_name": "Bo"}).json()  # fmt: skip
    assert (held["status"], held["held_for"]) == ("PENDING", ["link"])
    path = f"/v4/conversations/{conversation['id']}"
    assert call(rest, "GET", path + "?trkref=D10").json()["answers_count"] == 0
    vote = call(rest, "POST", f"/v4/conversation_answers/{held['id']}/increment_helpful?trkref=D10")
    assert_rpc_status(vote, 404)
    approved = call(rest, "POST", f"/v4/conversation_answers/{held['id']}/approve?trkref=D10",
                    {}, authorization=keys.moderator)  # fmt: skip
    assert approved.json()["target"] == "answer"
    assert call(rest, "GET", path + "?trkref=D10").json()["answers_count"] == 1


def test_a_shopper_key_is_refused_every_moderator_route(rest: ServiceProcess) -> None:
    conversation = ask(rest, "Refused?")
    bodies = set()
    for template in DECISION_ROUTES:
        path = template.format(conversation=conversation["id"], answer=1) + "?trkref=D10"
        refused = call(rest, "POST", path, {})
        assert assert_rpc_status(refused, 403) == DENIED
        bodies.add(refused.body)
    for template in LIST_ROUTES:
        for trkref in ("D10", "E20"):  # even an organisation out of the key's reach
            refused = call(rest, "GET", template.format(trkref=trkref))
            assert assert_rpc_status(refused, 403) == DENIED
            bodies.add(refused.body)
    assert len(bodies) == 1


def test_another_organisations_ids_are_the_same_404_as_missing_ones(
    rest: ServiceProcess, keys: Keys
) -> None:
    ours = ask(rest, "spam, ours?")
    theirs = ask(rest, "Theirs?", keys.rival_shopper, "E20")
    for template in DECISION_ROUTES:
        bodies = set()
        for target, trkref, authorization in [
            (999_999, "D10", keys.moderator),  # no such id
            (theirs["id"], "D10", keys.moderator),  # another organisation's
            (ours["id"], "E20", keys.rival),  # asked of the other organisation
            (ours["id"], "D10", keys.rival),  # out of the key's reach
        ]:
            path = template.format(conversation=target, answer=target) + f"?trkref={trkref}"
            found = call(rest, "POST", path, {}, authorization=authorization)
            assert_rpc_status(found, 404)
            bodies.add(found.body)
        assert len(bodies) == 1, bodies
    for template in LIST_ROUTES:
        unknown = call(rest, "GET", template.format(trkref="Z99"), authorization=keys.moderator)
        other = call(rest, "GET", template.format(trkref="E20"), authorization=keys.moderator)
        assert_rpc_status(unknown, 404)
        assert json.loads(other.body)["message"] == json.loads(unknown.body)["message"].replace(
            "Z99", "E20"
        )
    queue = call(rest, "GET", "/v4/organisations/E20/moderation/queue", authorization=keys.rival)
    assert ours["id"] not in [i["conversation"]["id"] for i in queue.json()["items"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "fields"),
    [
        ("POST", "/v4/conversations/abc/approve?trkref=D10", {}, None),
        ("POST", "/v4/conversations/0/approve?trkref=D10", {}, ["id"]),
        ("POST", "/v4/conversations/4294967296/reject?trkref=D10", {}, None),
        ("POST", "/v4/conversations/1/approve", {}, ["trkref"]),
        ("POST", "/v4/conversations/1/approve?trkref=D%2010", {}, ["trkref"]),
        ("POST", "/v4/conversation_answers/1/reject?trkref=D10", {"reason": "x" * 101}, ["reason"]),
        ("POST", "/v4/conversation_answers/1/reject?trkref=D10", {"note": "a\u0000b"}, ["note"]),
        ("POST", "/v4/conversations/1/approve?trkref=D10", {"reason": ["a list"]}, None),
        ("POST", "/v4/conversations/1/approve?trkref=D10&sneaky=1", {}, None),
        ("POST", "/v4/conversations/1/approve?trkref=D10", "{not json", None),
        ("GET", "/v4/organisations/D10/moderation/queue?page_size=-1", None, ["page_size"]),
        ("GET", "/v4/organisations/D10/moderation/queue?page_token=forged", None, ["page_token"]),
        ("GET", "/v4/organisations/D10/moderation/decisions?page_token=a.b", None, ["page_token"]),
    ],
)
def test_hostile_input_is_a_clear_400(
    rest: ServiceProcess, keys: Keys, method: str, path: str, body: Any, fields: list[str] | None
) -> None:
    refused = call(rest, method, path, body, authorization=keys.moderator)
    error = assert_rpc_status(refused, 400)
    if fields is not None:
        [details] = error["details"]
        assert [v["field"] for v in details["field_violations"]] == fields


def test_a_queue_token_is_bound_to_its_organisation_and_list(
    rest: ServiceProcess, keys: Keys
) -> None:
    for n in range(3):
        ask(rest, f"spam {n}?")
    page = call(rest, "GET", "/v4/organisations/D10/moderation/queue?page_size=1",
                authorization=keys.moderator).json()  # fmt: skip
    token = page["next_page_token"]
    assert token
    other = call(rest, "GET", f"/v4/organisations/D10/moderation/decisions?page_token={token}",
                 authorization=keys.moderator)  # fmt: skip
    assert_rpc_status(other, 400)


def test_grpc_moderation(rest: ServiceProcess, keys: Keys) -> None:
    held = ask(rest, "spam over gRPC?")
    method = "conversations.v4.ConversationService/"
    data = json.dumps({"id": held["id"], "trkref": "D10", "decision": {"reason": "fine"}})
    approved = grpcurl(rest.address, method + "ApproveConversation", data=data,
                       headers=[keys.moderator_grpc])  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    decision = json.loads(approved.stdout)
    assert (decision["to_status"], decision["from_status"], decision["reason"]) == (
        "PUBLISHED",
        "PENDING",
        "fine",
    )
    shopper = "authorization: " + DEMO_AUTHORIZATION
    refused = grpcurl(rest.address, method + "RejectConversation", data=data, headers=[shopper])
    assert refused.returncode != 0 and "PermissionDenied" in refused.stderr
    queue = grpcurl(rest.address, method + "ListModerationQueue",
                    data='{"trkref":"D10"}', headers=[keys.moderator_grpc])  # fmt: skip
    assert queue.returncode == 0, queue.stderr
    assert held["id"] not in [
        int(i["conversation"]["id"]) for i in json.loads(queue.stdout).get("items", [])
    ]


def test_a_moderator_lists_one_status(rest: ServiceProcess, keys: Keys) -> None:
    held = ask(rest, "spam, listed?")
    path = (
        f"/v4/organisations/D10/conversations?sku={ASKED_SKU}"
        "&page_size=100&filter=status%20%3D%20PENDING"
    )
    listed = call(rest, "GET", path, authorization=keys.moderator)
    assert listed.status == 200, listed.body
    body = listed.json()
    [shown] = [c for c in body["conversations"] if c["id"] == held["id"]]
    assert shown == held  # with why it is held, as a moderator reads it
    assert {c["status"] for c in body["conversations"]} == {"PENDING"}
    assert body["summary"]["question_count"] == len(body["conversations"])
    assert assert_rpc_status(call(rest, "GET", path), 403) == DENIED
