"""Detail and List over REST through the real Envoy transcoder: exact JSON and every error."""

from __future__ import annotations

import json
import urllib.parse
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

CONVERSATIONS = "/v4/organisations/D10/conversations"


@pytest.fixture(scope="module")
def rest(rest: ServiceProcess) -> ServiceProcess:
    """The shared `rest` service, holding three conversations about AIPTPDV5700 and one
    about another product."""
    for n, (sku, locale) in enumerate(
        [
            ("AIPTPDV5700", "en-GB"),
            ("AIPTPDV5700", "fr-FR"),
            ("AIPTPDV5700", "en-GB"),
            ("X", "en-GB"),
        ]
    ):
        body = {"first_name": "A shopper", "question": f"q{n}", "sku": sku, "locale": locale}
        created = call(rest, "POST", CONVERSATIONS, json.dumps(body))
        assert created.status == 200, created.body
    return rest


def get(service: ServiceProcess, path: str, **params: str) -> HttpResponse:
    query = urllib.parse.urlencode(params)
    return call(service, "GET", f"{path}?{query}" if query else path)


def conversation_json(conversation_id: int, question: str, created_at: str) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "first_name": "A shopper",
        "question": question,
        "created_at": created_at,
        "helpful": 0,
        "unhelpful": 0,
        "embeddable": False,
        "retailer_locale": "en-GB",
        "answers": [],
        "answers_count": 0,
        "answers_next_page_token": "",
        "status": "PUBLISHED",
        "held_for": [],
    }


def test_detail_is_the_v4_object_with_answers_count(rest: ServiceProcess) -> None:
    response = get(rest, "/v4/conversations/2", trkref="D10")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == conversation_json(2, "q1", body["created_at"])
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    # Numbers are numbers, every default printed, snake_case names.
    assert b'"id":2,' in response.body and b'"answers_count":0' in response.body


def test_list_is_the_v4_shape_with_a_summary_and_a_token(rest: ServiceProcess) -> None:
    first = get(rest, CONVERSATIONS, sku="AIPTPDV5700", page_size="2")
    assert first.status == 200
    body = first.json()
    assert list(body) == ["summary", "conversations", "next_page_token"]
    assert body["summary"] == {"question_count": 3, "answers_count": 0}
    assert [c["id"] for c in body["conversations"]] == [3, 2]
    assert body["conversations"][0] == conversation_json(
        3, "q2", body["conversations"][0]["created_at"]
    )
    second = get(
        rest, CONVERSATIONS, sku="AIPTPDV5700", page_size="2", page_token=body["next_page_token"]
    )
    assert second.json()["summary"] == body["summary"]
    assert [c["id"] for c in second.json()["conversations"]] == [1]
    assert second.json()["next_page_token"] == ""


def test_list_filters_by_locale_and_orders_oldest_first(rest: ServiceProcess) -> None:
    body = get(
        rest, CONVERSATIONS, sku="AIPTPDV5700", locale="en-gb", order_by="created_at asc"
    ).json()
    assert [c["id"] for c in body["conversations"]] == [1, 3]
    assert body["summary"] == {"question_count": 2, "answers_count": 0}


def test_an_unknown_product_is_an_empty_list_with_zero_counts(rest: ServiceProcess) -> None:
    assert get(rest, CONVERSATIONS, sku="NOTHING").json() == {
        "summary": {"question_count": 0, "answers_count": 0},
        "conversations": [],
        "next_page_token": "",
    }


def test_not_found_is_byte_identical_for_missing_foreign_and_unreachable(
    rest: ServiceProcess,
) -> None:
    database = f"sqlite:///{rest.workdir}/var/conversations.db"
    added = cli(database, "organisations", "add", "E20", "--name", "Second", "--locale", "de-DE")
    assert added.returncode == 0, added.stderr
    outsider = basic_authorization(*create_key(database, "E20"))
    both = basic_authorization(*create_key(database, "D10", "E20"))
    missing = call(rest, "GET", "/v4/conversations/999?trkref=D10", authorization=both)
    foreign = call(rest, "GET", "/v4/conversations/2?trkref=E20", authorization=both)
    absent = call(rest, "GET", "/v4/conversations/2?trkref=D10", authorization=outsider)
    for response in (missing, foreign, absent):
        assert response.status == 404
    assert missing.body == foreign.body == absent.body
    assert json.loads(absent.body)["code"] == 5
    listed = call(rest, "GET", f"{CONVERSATIONS}?sku=AIPTPDV5700", authorization=outsider)
    assert listed.status == 404 and b"D10" in listed.body
    # A token of D10's list is no way into anything else, even with a key for both.
    token = get(rest, CONVERSATIONS, sku="AIPTPDV5700", page_size="1").json()["next_page_token"]
    crossed = call(
        rest,
        "GET",
        f"/v4/organisations/E20/conversations?sku=AIPTPDV5700&page_token={token}",
        authorization=both,
    )
    assert crossed.status == 400 and b"page_token" in crossed.body


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v4/conversations/2", "trkref"),
        (f"{CONVERSATIONS}?page_size=5&filter=answered%20%3D%201", "filter"),
        (f"{CONVERSATIONS}?search=%21%3F", "search"),
        (f"{CONVERSATIONS}?sku=AIPTPDV5700&page_size=-1", "page_size"),
        (f"{CONVERSATIONS}?sku=AIPTPDV5700&order_by=id", "order_by"),
        (f"{CONVERSATIONS}?sku=AIPTPDV5700&locale=not%20a%20tag", "locale"),
        (f"{CONVERSATIONS}?sku=AIPTPDV5700&page_token=tampered.token", "page_token"),
        (f"{CONVERSATIONS}?sku=%01%02", "sku"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    rest: ServiceProcess, path: str, field: str
) -> None:
    response = call(rest, "GET", path)
    assert response.status == 400
    body = response.json()
    assert body["code"] == 3
    [details] = body["details"]
    assert [v["field"] for v in details["field_violations"]] == [field]


@pytest.mark.parametrize(
    "path",
    [
        f"{CONVERSATIONS}?sku=AIPTPDV5700&unknown=1",
        "/v4/conversations/2?trkref=D10&sku=X",
        "/v4/conversations/not-a-number?trkref=D10",
        f"{CONVERSATIONS}?sku=AIPTPDV5700&page_size=lots",
    ],
)
def test_unknown_or_malformed_query_parameters_are_400(rest: ServiceProcess, path: str) -> None:
    assert_rpc_status(call(rest, "GET", path), 400)


def test_reading_needs_an_api_key(rest: ServiceProcess) -> None:
    for path in ("/v4/conversations/1?trkref=D10", f"{CONVERSATIONS}?sku=AIPTPDV5700"):
        response = call(rest, "GET", path, authorization="")
        assert_rpc_status(response, 401)
        assert response.headers["www-authenticate"] == 'Basic realm="Platform API v4"'


def test_hostile_inputs_never_fail_the_server(rest: ServiceProcess) -> None:
    for value in ["%00", "%E2%80%AE" * 50, "A" * 4000, "%27%20OR%201%3D1--", "%F0%9F%92%A9"]:
        for path in (
            f"{CONVERSATIONS}?sku={value}",
            f"{CONVERSATIONS}?sku=AIPTPDV5700&locale={value}",
            f"{CONVERSATIONS}?sku=AIPTPDV5700&page_token={value}",
            f"{CONVERSATIONS}?sku=AIPTPDV5700&order_by={value}",
            f"/v4/conversations/1?trkref={value}",
        ):
            response = call(rest, "GET", path)
            if response.status != 200:  # refused as invalid, or as no such organisation
                assert response.status in (400, 404), (path, response.status, response.body)
                assert_rpc_status(response, response.status)
    assert get(rest, CONVERSATIONS, sku="AIPTPDV5700").json()["summary"]["question_count"] == 3


def test_grpcurl_describes_and_calls_the_read_methods(rest: ServiceProcess) -> None:
    described = grpcurl(rest.address, "describe", "conversations.v4.ConversationService")
    assert described.returncode == 0, described.stderr
    assert "rpc GetConversation" in described.stdout
    assert "AIP-158" in described.stdout  # ListConversations' documentation
    listed = grpcurl(
        rest.address,
        "conversations.v4.ConversationService/ListConversations",
        data='{"trkref":"D10","sku":"AIPTPDV5700","page_size":1}',
        headers=[f"authorization: {DEMO_AUTHORIZATION}"],
    )
    assert listed.returncode == 0, listed.stderr
    assert '"questionCount": 3' in listed.stdout or '"question_count": 3' in listed.stdout
