"""Answers and votes over REST through the real Envoy transcoder: exact JSON, 202, every error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.support import basic_authorization, cli, create_key
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    HttpResponse,
    ServiceProcess,
    assert_rpc_status,
    call,
    grpcurl,
)

REQUEST_ID = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
OWNER = {
    "response": "Very quiet.",
    "first_name": "Ann",
    "town": "Leeds",
    "job_title": "Nurse",
    "reviewer_segment": "Family",
    "review_url": "https://example.com/reviews/1",
    "review_locale": "en-gb",
    "reviewer_facebook_url": "https://www.facebook.com/ann",
}
VOTES = [
    "/v4/conversations/{conversation}/increment_helpful",
    "/v4/conversations/{conversation}/increment_unhelpful",
    "/v4/conversation_answers/{answer}/increment_helpful",
    "/v4/conversation_answers/{answer}/increment_unhelpful",
]


def question(service: ServiceProcess, sku: str = "AIPTPDV5700") -> int:
    body = {"first_name": "A shopper", "question": "Is it quiet?", "sku": sku}
    created = call(service, "POST", "/v4/organisations/D10/conversations", body)
    assert created.status == 200, created.body
    return int(created.json()["id"])


def answer(service: ServiceProcess, conversation_id: int, body: Any = None) -> HttpResponse:
    path = f"/v4/conversations/{conversation_id}/answers?trkref=D10"
    return call(service, "POST", path, OWNER if body is None else body)


def detail(service: ServiceProcess, conversation_id: int) -> dict[str, Any]:
    found = call(service, "GET", f"/v4/conversations/{conversation_id}?trkref=D10")
    assert found.status == 200, found.body
    return dict(found.json())


def test_an_answer_is_the_v4_answer_object_and_shows_in_detail_and_list(
    rest: ServiceProcess,
) -> None:
    conversation_id = question(rest, sku="ANSWERED")
    created = answer(rest, conversation_id)
    assert created.status == 200 and created.headers["content-type"] == "application/json"
    body = created.json()
    assert body == {
        "id": body["id"],
        "response": "Very quiet.",
        "created_at": body["created_at"],
        "first_name": "Ann",
        "town": "Leeds",
        "job_title": "Nurse",
        "reviewer_segment": "Family",
        "helpful": 0,
        "unhelpful": 0,
        "review_url": "https://example.com/reviews/1",
        "review_locale": "en-GB",
        "reviewer_facebook_url": "https://www.facebook.com/ann",
        "response_type": "owner",
        "status": "PUBLISHED",
        "held_for": [],
    }
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    retailer = answer(
        rest,
        conversation_id,
        {
            "response": "Thanks for asking!",
            "first_name": "Demo retailer",
            "response_type": "retailer",
            "retailer_name": "Demo retailer",
            "retailer_image_url": "https://example.com/logo.png",
        },
    ).json()
    assert retailer["retailer_name"] == "Demo retailer" and retailer["town"] == ""
    found = detail(rest, conversation_id)
    assert found["answers"] == [body, retailer] and found["answers_count"] == 2
    listed = call(rest, "GET", "/v4/organisations/D10/conversations?sku=ANSWERED").json()
    assert listed["summary"] == {"question_count": 1, "answers_count": 2}
    assert listed["conversations"][0]["answers"] == [body, retailer]


def test_votes_answer_202_with_an_empty_object_and_count_once_per_voter(
    rest: ServiceProcess,
) -> None:
    conversation_id = question(rest)
    answer_id = answer(rest, conversation_id).json()["id"]
    for template in VOTES:
        path = template.format(conversation=conversation_id, answer=answer_id)
        for suffix in ("", "", "&voter_id=shopper-1", "&voter_id=shopper-1"):
            voted = call(rest, "POST", f"{path}?trkref=D10{suffix}")
            assert (voted.status, voted.body) == (202, b"{}"), path
            assert voted.headers["content-type"] == "application/json"
            assert not any(name.startswith("grpc-") for name in voted.headers)
    found = detail(rest, conversation_id)
    # Two anonymous votes, and shopper-1 once per target, on its first counter.
    assert (found["helpful"], found["unhelpful"]) == (3, 2)
    assert (found["answers"][0]["helpful"], found["answers"][0]["unhelpful"]) == (3, 2)


def test_an_answer_request_id_by_header_or_body_is_idempotent(rest: ServiceProcess) -> None:
    conversation_id = question(rest)
    first = answer(rest, conversation_id, {**OWNER, "request_id": REQUEST_ID})
    path = f"/v4/conversations/{conversation_id}/answers?trkref=D10"
    retried = call(rest, "POST", path, OWNER, headers={"idempotency-key": REQUEST_ID})
    assert (first.status, retried.status) == (200, 200)
    assert retried.json() == first.json()
    reused = call(
        rest, "POST", path, {**OWNER, "response": "Other"}, headers={"idempotency-key": REQUEST_ID}
    )
    assert reused.status == 409 and reused.json()["code"] == 6
    assert detail(rest, conversation_id)["answers_count"] == 1


def test_a_bad_answer_is_400_listing_every_field(rest: ServiceProcess) -> None:
    conversation_id = question(rest)
    response = answer(
        rest,
        conversation_id,
        {"response": "", "first_name": "", "review_url": "nope", "response_type": "shopper"},
    )
    assert response.status == 400
    body = response.json()
    assert body["code"] == 3
    [details] = body["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in details["field_violations"]] == [
        "response",
        "first_name",
        "response_type",
        "review_url",
    ]
    assert detail(rest, conversation_id)["answers_count"] == 0


def test_not_found_is_byte_identical_on_every_new_route(rest: ServiceProcess) -> None:
    conversation_id = question(rest)
    answer_id = answer(rest, conversation_id).json()["id"]
    database = f"sqlite:///{rest.workdir}/var/conversations.db"
    added = cli(database, "organisations", "add", "E20", "--name", "Second", "--locale", "de-DE")
    assert added.returncode == 0, added.stderr
    outsider = basic_authorization(*create_key(database, "E20"))
    both = basic_authorization(*create_key(database, "D10", "E20"))
    routes = [("/v4/conversations/{conversation}/answers", OWNER), *((v, None) for v in VOTES)]
    for template, body in routes:
        bodies = set()
        for conversation, answer_, trkref, authorization in [
            (999_999, 999_999, "D10", both),  # no such id
            (conversation_id, answer_id, "E20", both),  # another organisation's
            (conversation_id, answer_id, "D10", outsider),  # out of the key's reach
        ]:
            path = template.format(conversation=conversation, answer=answer_)
            response = call(rest, "POST", f"{path}?trkref={trkref}", body, authorization)
            assert response.status == 404, (path, response.body)
            bodies.add(response.body)
        [only] = bodies
        target = "answer" if "conversation_answers" in template else "conversation"
        assert json.loads(only) == {
            "code": 5,
            "message": f"the {target} does not exist or you are not authorised to access it",
            "details": [],
        }
    found = detail(rest, conversation_id)
    assert (found["helpful"], found["unhelpful"], found["answers_count"]) == (0, 0, 1)


@pytest.mark.parametrize(
    "path",
    [
        "/v4/conversations/1/answers?trkref=D10&unknown=1",
        "/v4/conversations/not-a-number/answers?trkref=D10",
        "/v4/conversations/1/increment_helpful?trkref=D10&unknown=1",
        "/v4/conversations/1/increment_helpful?trkref=D10&voter_id=a&voter_id=b&voter_id=c&x=1",
        "/v4/conversation_answers/x/increment_unhelpful?trkref=D10",
    ],
)
def test_unknown_or_malformed_parameters_are_400(rest: ServiceProcess, path: str) -> None:
    body = OWNER if path.split("?")[0].endswith("/answers") else None
    response = call(rest, "POST", path, body)
    assert_rpc_status(response, 400)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v4/conversations/1/answers", "trkref"),
        ("/v4/conversations/1/increment_helpful", "trkref"),
        ("/v4/conversation_answers/1/increment_helpful?trkref=D10&voter_id=%01", "voter_id"),
        (
            f"/v4/conversation_answers/1/increment_helpful?trkref=D10&voter_id={'v' * 101}",
            "voter_id",
        ),
    ],
)
def test_bad_vote_and_answer_parameters_are_400_naming_the_field(
    rest: ServiceProcess, path: str, field: str
) -> None:
    body = OWNER if path.split("?")[0].endswith("/answers") else None
    response = call(rest, "POST", path, body)
    [details] = assert_rpc_status(response, 400)["details"]
    assert [v["field"] for v in details["field_violations"]] == [field]


def test_answers_and_votes_need_an_api_key(rest: ServiceProcess) -> None:
    conversation_id = question(rest)
    for path, body in [
        (f"/v4/conversations/{conversation_id}/answers?trkref=D10", OWNER),
        (f"/v4/conversations/{conversation_id}/increment_helpful?trkref=D10", None),
        ("/v4/conversation_answers/1/increment_unhelpful?trkref=D10", None),
    ]:
        response = call(rest, "POST", path, body, authorization="")
        assert response.status == 401
        assert response.headers["www-authenticate"] == 'Basic realm="Platform API v4"'
    found = detail(rest, conversation_id)
    assert (found["helpful"], found["answers_count"]) == (0, 0)


def test_grpcurl_describes_and_calls_the_answer_and_vote_methods(rest: ServiceProcess) -> None:
    described = grpcurl(rest.address, "describe", "conversations.v4.ConversationService")
    assert described.returncode == 0, described.stderr
    for method in ("CreateAnswer", "IncrementConversationHelpful", "IncrementAnswerUnhelpful"):
        assert f"rpc {method}" in described.stdout
    conversation_id = question(rest)
    voted = grpcurl(
        rest.address,
        "conversations.v4.ConversationService/IncrementConversationHelpful",
        data=json.dumps({"id": conversation_id, "trkref": "D10", "voter_id": "grpcurl"}),
        headers=[f"authorization: {DEMO_AUTHORIZATION}"],
    )
    assert voted.returncode == 0, voted.stderr
    assert json.loads(voted.stdout) == {}
    assert detail(rest, conversation_id)["helpful"] == 1
