"""Hostile input, property-based: arbitrary Unicode, control characters, lengths around every
bound, on SQLite and PostgreSQL, through gRPC and through REST.

Every answer is OK or a 4xx-class status with a message, never a 5xx or INTERNAL, and what
is stored is exactly what was sent.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.databases import empty_postgres
from harness.support import (
    basic_authorization,
    organisation_with_key,
    stored_answers,
    stored_conversation,
)
from tests.e2e.service import HttpResponse, ServiceProcess, assert_rpc_status, http

# Any code point but surrogates (which neither protobuf nor JSON strings carry).
CHARACTERS = st.characters(exclude_categories=["Cs"])
# Any code point a valid single-line field may hold: no control characters.
PRINTABLE = st.characters(exclude_categories=["Cs", "Cc"])


def around(bound: int) -> st.SearchStrategy[str]:
    """Text of any content: valid and exotic, just around `bound` characters, or hostile."""
    return st.one_of(
        st.text(PRINTABLE, min_size=1, max_size=12).filter(str.strip),
        st.text(CHARACTERS, max_size=12),
        st.text(PRINTABLE, min_size=bound - 2, max_size=bound + 2),
        st.text(st.sampled_from(" \t\n\r\x00\x1f\x7f\u0085\u2028\ufeffa"), max_size=6),
    )


REQUESTS = st.fixed_dictionaries(
    {
        "first_name": around(100),
        "question": around(5000),
        "sku": around(100),
    },
    optional={
        "locale": st.one_of(around(35), st.sampled_from(["en-GB", "zh-Hant-TW", "", "en_GB"])),
        "request_id": st.one_of(st.uuids().map(str), st.text(CHARACTERS, max_size=40)),
    },
)
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# ALREADY_EXISTS: a request_id drawn again for a different request.
ALLOWED_GRPC = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, str, str]]:
    """The service with REST, its database URL and an authorization header for D10."""
    workdir = tmp_path_factory.mktemp("hostile")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir}/hostile.db"
    else:
        url = request.getfixturevalue("postgres_url")
        empty_postgres(url)
    authorization = basic_authorization(*organisation_with_key(url))
    with ServiceProcess(Path(workdir), ["--database-url", url], rest=True) as process:
        yield process, url, authorization


def assert_stored_as_sent(url: str, conversation_id: int, sent: dict[str, Any]) -> None:
    stored = stored_conversation(url, conversation_id)
    assert stored is not None
    assert (stored.first_name, stored.question, stored.sku) == (
        sent["first_name"],
        sent["question"],
        sent["sku"],
    )
    assert stored.locale == (sent.get("locale") or "en-GB")


@HYPOTHESIS
@given(sent=REQUESTS)
def test_grpc_answers_ok_or_invalid_argument(
    service: tuple[ServiceProcess, str, str], sent: dict[str, Any]
) -> None:
    process, url, authorization = service
    with grpc.insecure_channel(process.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            created = stub.CreateConversation(
                pb.CreateConversationRequest(trkref="D10", **sent),
                timeout=10,
                metadata=[("authorization", authorization)],
            )
        except grpc.RpcError as error:
            call: Any = error
            assert call.code() in ALLOWED_GRPC, call.details()
            assert call.details()
            return
    assert_stored_as_sent(url, created.id, sent)


@HYPOTHESIS
@given(
    sent=REQUESTS,
    raw=st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=200)),
)
def test_rest_answers_2xx_or_4xx_json(
    service: tuple[ServiceProcess, str, str], sent: dict[str, Any], raw: bytes | str | None
) -> None:
    process, url, authorization = service
    # Mostly well-formed JSON of hostile values; sometimes arbitrary bytes.
    body: bytes | str = json.dumps(sent) if raw is None else raw
    response = http(
        "POST",
        process.base_url + "/v4/organisations/D10/conversations",
        body,
        {"content-type": "application/json", "authorization": authorization},
    )

    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    if response.status == 200:
        assert_stored_as_sent(url, payload["id"], json.loads(body))
    else:
        # Refused as invalid, or as a request_id drawn again for another request.
        assert response.status in (400, 409), payload
        assert_rpc_status(response, response.status)


# Answers and votes

ANSWERS = st.fixed_dictionaries(
    {"response": around(5000), "first_name": around(100)},
    optional={
        "response_type": st.one_of(st.sampled_from(["owner", "retailer", ""]), around(20)),
        "town": around(100),
        "job_title": around(100),
        "reviewer_segment": around(100),
        "review_url": st.one_of(st.just("https://example.com/r"), around(2048)),
        "review_locale": st.one_of(around(35), st.sampled_from(["en-GB", "zh-Hant-TW"])),
        "reviewer_facebook_url": around(2048),
        "retailer_name": around(200),
        "retailer_image_url": around(2048),
        "request_id": st.one_of(st.uuids().map(str), st.text(CHARACTERS, max_size=40)),
    },
)


@pytest.fixture(scope="module")
def conversation_id(service: tuple[ServiceProcess, str, str]) -> int:
    """A conversation of D10 to answer and vote on."""
    process, _, authorization = service
    body = {"first_name": "A shopper", "question": "Hostile?", "sku": "HOSTILE"}
    created = http(
        "POST",
        process.base_url + "/v4/organisations/D10/conversations",
        json.dumps(body),
        {"content-type": "application/json", "authorization": authorization},
    )
    assert created.status == 200, created.body
    return int(created.json()["id"])


def assert_answer_stored_as_sent(url: str, conversation_id: int, sent: dict[str, Any]) -> None:
    stored = stored_conversation(url, conversation_id)
    assert stored is not None
    answers = stored_answers(url, conversation_id)  # held by screening or not
    [found] = [a for a in answers if a.response == sent["response"]][-1:]
    assert (found.first_name, found.town) == (sent["first_name"], sent.get("town", ""))
    assert found.response_type == (sent.get("response_type") or "owner")
    assert stored.answers_count == sum(a.status == "published" for a in answers)


@HYPOTHESIS
@given(sent=ANSWERS)
def test_answers_over_grpc_are_ok_or_invalid_argument(
    service: tuple[ServiceProcess, str, str], conversation_id: int, sent: dict[str, Any]
) -> None:
    process, url, authorization = service
    with grpc.insecure_channel(process.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            stub.CreateAnswer(
                pb.CreateAnswerRequest(
                    conversation_id=conversation_id, trkref="D10", answer=pb.NewAnswer(**sent)
                ),
                timeout=10,
                metadata=[("authorization", authorization)],
            )
        except grpc.RpcError as error:
            call: Any = error
            assert call.code() in ALLOWED_GRPC, call.details()
            assert call.details()
            return
    assert_answer_stored_as_sent(url, conversation_id, sent)


@HYPOTHESIS
@given(
    sent=ANSWERS,
    raw=st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=200)),
)
def test_answers_over_rest_are_2xx_or_4xx_json(
    service: tuple[ServiceProcess, str, str],
    conversation_id: int,
    sent: dict[str, Any],
    raw: bytes | str | None,
) -> None:
    process, url, authorization = service
    body: bytes | str = json.dumps(sent) if raw is None else raw
    response = http(
        "POST",
        f"{process.base_url}/v4/conversations/{conversation_id}/answers?trkref=D10",
        body,
        {"content-type": "application/json", "authorization": authorization},
    )
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    if response.status == 200:
        assert_answer_stored_as_sent(url, conversation_id, json.loads(body))
    else:
        assert response.status in (400, 409), payload
        assert_rpc_status(response, response.status)


@HYPOTHESIS
@given(
    voter_id=st.one_of(st.text(CHARACTERS, max_size=120), around(100)),
    trkref=st.one_of(st.just("D10"), st.text(CHARACTERS, max_size=40)),
    target=st.sampled_from(["conversations", "conversation_answers"]),
)
def test_votes_over_rest_are_202_or_4xx_json(
    service: tuple[ServiceProcess, str, str],
    conversation_id: int,
    voter_id: str,
    trkref: str,
    target: str,
) -> None:
    process, _, authorization = service
    query = urllib.parse.urlencode({"trkref": trkref, "voter_id": voter_id})
    response = http(
        "POST",
        f"{process.base_url}/v4/{target}/{conversation_id}/increment_helpful?{query}",
        None,
        {"authorization": authorization},
    )
    assert response.headers["content-type"] == "application/json"
    if response.status == 202:
        assert response.json() == {}
    else:
        # An invalid voter_id or trkref is 400; a valid trkref of no organisation, or an
        # answer id that is the conversation's, 404.
        assert response.status in (400, 404), response.body
        assert_rpc_status(response, response.status)
        assert response.status == 400 or trkref != "D10" or target == "conversation_answers"


# Reading answers a page at a time


def get_200_or_4xx(process: ServiceProcess, authorization: str, path: str) -> HttpResponse:
    """A GET that answers 200, or 400 or 404 with a google.rpc.Status body, in JSON."""
    response = http("GET", process.base_url + path, None, {"authorization": authorization})
    assert response.headers["content-type"] == "application/json"
    assert response.status in (200, 400, 404), response.body
    if response.status != 200:
        assert_rpc_status(response, response.status)
    return response


PAGE_SIZES = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["", "x", "1e3", "-0"]))


@HYPOTHESIS
@given(
    path_id=st.one_of(st.none(), st.text(CHARACTERS, max_size=20), st.integers(-5, 2**40)),
    trkref=st.one_of(st.just("D10"), st.text(CHARACTERS, max_size=40)),
    page_size=PAGE_SIZES,
    page_token=st.one_of(st.just(""), st.text(CHARACTERS, max_size=300)),
)
def test_list_answers_over_rest_is_200_or_4xx_json(
    service: tuple[ServiceProcess, str, str],
    conversation_id: int,
    path_id: str | int | None,
    trkref: str,
    page_size: int | str,
    page_token: str,
) -> None:
    process, _, authorization = service
    target = conversation_id if path_id is None else urllib.parse.quote(str(path_id), safe="")
    query = urllib.parse.urlencode(
        {"trkref": trkref, "page_size": page_size, "page_token": page_token}
    )
    response = get_200_or_4xx(process, authorization, f"/v4/conversations/{target}/answers?{query}")
    if response.status == 200:
        assert response.json()["answers_count"] >= len(response.json()["answers"])


@HYPOTHESIS
@given(
    answers_page_size=PAGE_SIZES,
    page_token=st.one_of(st.just(""), st.text(CHARACTERS, max_size=300)),
)
def test_list_answers_page_size_over_rest_is_200_or_4xx_json(
    service: tuple[ServiceProcess, str, str],
    conversation_id: int,
    answers_page_size: int | str,
    page_token: str,
) -> None:
    process, _, authorization = service
    query = urllib.parse.urlencode(
        {"sku": "HOSTILE", "answers_page_size": answers_page_size, "page_token": page_token}
    )
    response = get_200_or_4xx(
        process, authorization, f"/v4/organisations/D10/conversations?{query}"
    )
    if response.status == 200:
        embedded = min(int(answers_page_size) if str(answers_page_size) else 3, 5)
        assert all(len(c["answers"]) <= embedded for c in response.json()["conversations"])


@HYPOTHESIS
@given(
    target=st.integers(0, 2**32 - 1),
    trkref=st.one_of(st.just("D10"), st.text(CHARACTERS, max_size=40)),
    page_size=st.integers(-(2**31), 2**31 - 1),
    page_token=st.one_of(st.just(""), st.text(CHARACTERS, max_size=300)),
)
def test_list_answers_over_grpc_is_ok_or_a_client_error(
    service: tuple[ServiceProcess, str, str],
    target: int,
    trkref: str,
    page_size: int,
    page_token: str,
) -> None:
    process, _, authorization = service
    with grpc.insecure_channel(process.address) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        try:
            page = stub.ListAnswers(
                pb.ListAnswersRequest(
                    conversation_id=target,
                    trkref=trkref,
                    page_size=page_size,
                    page_token=page_token,
                ),
                timeout=10,
                metadata=[("authorization", authorization)],
            )
        except grpc.RpcError as error:
            call: Any = error
            allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
            assert call.code() in allowed, call.details()
            assert call.details()
            return
    assert page.answers_count >= len(page.answers) and trkref == "D10"
