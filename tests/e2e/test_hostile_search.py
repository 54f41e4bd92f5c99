"""Hostile `search` and `filter` of ListConversations, property-based, on SQLite and
PostgreSQL, through gRPC and through REST: any script, punctuation, quotes, the operators
of FTS5 and of PostgreSQL's tsquery, SQL, 10,000 characters.

Every answer is a page or INVALID_ARGUMENT (400) with a message naming the field, never a
5xx or INTERNAL; a page holds only the organisation's conversations.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from tests.e2e.service import HttpResponse, ServiceProcess, http
from tests.e2e.test_hostile_input import CHARACTERS, HYPOTHESIS, service

__all__ = ["service"]

QUESTIONS = [
    "Does the battery last a night? NEAR the café",
    "Quelle est la durée de la batterie ?",
    "Passt das Kabel? Größe „XL“",
    "この充電器は使えますか",
    "هل البطارية قابلة للاستبدال؟",
    'He said "OR" * ^ - AND NOT',
]
HOSTILE = [
    "NEAR(battery night)",
    "battery OR night",
    "battery AND NOT night",
    '"',
    '""',
    '"battery',
    "'",
    "*",
    "batt*",
    "^battery",
    "-battery",
    "question:battery",
    "{question answers}: battery",
    "battery & night | !cafe <-> x:*",
    "' OR 1=1 --",
    "'); DROP TABLE conversation; --",
    "%",
    "\\",
    "\u0301",
    "👍🏽",
    "充電器",
    "البطارية",
    "batterie größe",
    "a" * 10_000,
    "battery " * 1250,
    "x" * 500,
    "x" * 501,
]
SEARCHES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(CHARACTERS, max_size=40),
    st.lists(st.sampled_from(HOSTILE[:20]), max_size=4).map(" ".join),
)
FILTERS = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "answered = false",
            'created_at >= "2026-01-01T00:00:00Z"',
            "answered = true OR answered = false",
            "answered = 'true'",
            'created_at >= "2026-99-99T00:00:00Z"',
            "answered = true; DROP TABLE conversation",
            "has_retailer_answer = true AND",
            "(" * 1000,
        ]
    ),
    st.text(CHARACTERS, max_size=40),
)
ORDERS = st.sampled_from(["", "relevance", "answers_count desc", "created_at asc", "sideways"])


@pytest.fixture(scope="module")
def questions(service: tuple[ServiceProcess, str, str]) -> None:
    """D10's conversations in several scripts, about two products, created over gRPC."""
    process, _, authorization = service
    with grpc.insecure_channel(process.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        for n, question in enumerate(QUESTIONS):
            stub.CreateConversation(
                pb.CreateConversationRequest(
                    trkref="D10", first_name="A shopper", question=question, sku=f"SEARCH{n % 2}"
                ),
                timeout=10,
                metadata=[("authorization", authorization)],
            )


@HYPOTHESIS
@given(search=SEARCHES, filter_=FILTERS, order=ORDERS, sku=st.sampled_from(["", "SEARCH0"]))
def test_grpc_lists_a_page_or_invalid_argument(
    service: tuple[ServiceProcess, str, str],
    questions: None,
    search: str,
    filter_: str,
    order: str,
    sku: str,
) -> None:
    process, _, authorization = service
    request = pb.ListConversationsRequest(
        trkref="D10", sku=sku, search=search, filter=filter_, order_by=order
    )
    with grpc.insecure_channel(process.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            page = stub.ListConversations(
                request, timeout=10, metadata=[("authorization", authorization)]
            )
        except grpc.RpcError as error:
            call: Any = error
            assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, call.details()
            assert any(field in call.details() for field in ("search", "filter", "order_by"))
            return
    assert page.summary.question_count >= len(page.conversations)
    assert all(c.question in QUESTIONS for c in page.conversations)


def list_over_rest(service: tuple[ServiceProcess, str, str], **asked: str) -> HttpResponse:
    """GET D10's List with these query parameters."""
    process, _, authorization = service
    query = urllib.parse.urlencode(asked)
    url = f"{process.base_url}/v4/organisations/D10/conversations?{query}"
    return http("GET", url, None, {"authorization": authorization})


@HYPOTHESIS
@given(search=SEARCHES, filter_=FILTERS, order=ORDERS)
def test_rest_lists_a_page_or_a_400_json(
    service: tuple[ServiceProcess, str, str],
    questions: None,
    search: str,
    filter_: str,
    order: str,
) -> None:
    response = list_over_rest(service, search=search, filter=filter_, order_by=order)
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    if response.status == 200:
        assert all(c["question"] in QUESTIONS for c in payload.get("conversations", []))
        return
    assert response.status == 400, payload
    fields = {v["field"] for d in payload["details"] for v in d.get("field_violations", [])}
    assert fields and fields <= {"search", "filter", "order_by"}, payload


def test_a_search_in_another_script_finds_its_conversation(
    service: tuple[ServiceProcess, str, str], questions: None
) -> None:
    for word, question in [("この充電器は使えますか", QUESTIONS[3]), ("البطارية", QUESTIONS[4])]:
        response = list_over_rest(service, search=word)
        assert response.status == 200, response.body
        assert [c["question"] for c in response.json()["conversations"]] == [question]
