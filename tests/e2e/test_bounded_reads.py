"""Every response is bounded by the contract: the largest each method can make is served
whole over REST (real Envoy) and over gRPC, and a conversation's answers beyond the few a
List or a Detail embeds are read a page at a time (ListAnswers)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import basic, basic_authorization
from server.api.largest import largest, largest_answer
from server.service import answer_pages, conversations
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, http

DEMO = basic_authorization(*DEMO_CREDENTIALS)
METADATA = basic(*DEMO_CREDENTIALS)
# The widest texts each way: `<` is six bytes in the transcoder's JSON (\u003c), an emoji
# four in protobuf. URLs may not hold `<`: theirs are of emoji in both.
WIDEST_JSON, WIDEST_UTF8 = "<", "\U0001f600"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[ServiceProcess]:
    args = ["--database-url", database_url]
    with ServiceProcess(tmp_path, args, rest=True, demo=True) as service:
        yield service


@contextlib.contextmanager
def stub(service: ServiceProcess) -> Iterator[Any]:
    """The service's gRPC stub, taking responses of any size."""
    with grpc.insecure_channel(
        service.address, options=[("grpc.max_receive_message_length", -1)]
    ) as channel:
        yield pb_grpc.ConversationServiceStub(channel)


def a_largest_answer(wide: str) -> pb.NewAnswer:
    """The largest answer the contract takes, its texts of `wide` characters."""
    largest = largest_answer(wide)
    url = "https://example.com/" + WIDEST_UTF8 * (len(largest.review_url) - 20)
    return pb.NewAnswer(
        response=largest.response,
        first_name=largest.first_name,
        response_type="retailer",
        town=largest.town,
        job_title=largest.job_title,
        reviewer_segment=largest.reviewer_segment,
        review_url=url,
        review_locale="en-GB",
        reviewer_facebook_url=url,
        retailer_name=largest.retailer_name,
        retailer_image_url=url,
    )


def fill_product(service: ServiceProcess, sku: str, wide: str, answers: int) -> list[int]:
    """A full List page of the largest conversations on `sku`, each with `answers` of the
    largest answers; their ids."""
    created: list[int] = []
    with stub(service) as api:
        question = pb.CreateConversationRequest(
            trkref="D10", first_name=wide * 100, question=wide * 5000, sku=sku
        )
        new_answer = a_largest_answer(wide)

        def one(_: int) -> int:
            conversation = api.CreateConversation(question, metadata=METADATA)
            for _ in range(answers):
                asked = pb.CreateAnswerRequest(
                    conversation_id=conversation.id, trkref="D10", answer=new_answer
                )
                api.CreateAnswer(asked, metadata=METADATA)
            return int(conversation.id)

        with ThreadPoolExecutor(4) as pool:
            created = list(pool.map(one, range(conversations.PAGE_SIZE_MAX)))
    return created


def add_answers(service: ServiceProcess, conversation_id: int, wide: str, count: int) -> None:
    with stub(service) as api:
        asked = pb.CreateAnswerRequest(
            conversation_id=conversation_id, trkref="D10", answer=a_largest_answer(wide)
        )
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: api.CreateAnswer(asked, metadata=METADATA), range(count)))


def get(service: ServiceProcess, path: str) -> tuple[int, bytes]:
    response = http("GET", service.base_url + path, headers={"authorization": DEMO})
    return response.status, response.body


def test_the_largest_response_of_each_method_is_served_whole_over_rest_and_grpc(
    served: ServiceProcess,
) -> None:
    embedded = answer_pages.EMBEDDED_MAX
    # In each product, one conversation with more answers than a page of ListAnswers.
    answered: dict[str, int] = {}
    for sku, wide in (("WIDE-JSON", WIDEST_JSON), ("WIDE-UTF8", WIDEST_UTF8)):
        answered[sku] = fill_product(served, sku, wide, embedded)[0]
        add_answers(served, answered[sku], wide, answer_pages.PAGE_SIZE_MAX - embedded + 1)
    bound = largest()

    # REST: the List page, the Detail and the page of answers of the JSON-widest texts.
    list_path = "/v4/organisations/D10/conversations?sku=WIDE-JSON&page_size=100"
    list_path += f"&answers_page_size={embedded}"
    status, body = get(served, list_path)
    assert status == 200, body[:300]
    page = json.loads(body)
    assert len(page["conversations"]) == 100
    assert all(len(c["answers"]) == embedded for c in page["conversations"])
    # Within the bound, and near it: URLs, ids and counts are below their widest.
    assert 0.8 * bound.json_bytes < len(body) <= bound.json_bytes
    many = answered["WIDE-JSON"]
    status, body = get(served, f"/v4/conversations/{many}?trkref=D10")
    assert status == 200 and len(json.loads(body)["answers"]) == answer_pages.DETAIL_ANSWERS
    status, body = get(served, f"/v4/conversations/{many}/answers?trkref=D10&page_size=100")
    assert status == 200 and len(json.loads(body)["answers"]) == answer_pages.PAGE_SIZE_MAX

    # gRPC: the same of the UTF-8-widest texts.
    with stub(served) as api:
        asked = pb.ListConversationsRequest(
            trkref="D10", sku="WIDE-UTF8", page_size=100, answers_page_size=embedded
        )
        listed = api.ListConversations(asked, metadata=METADATA)
        assert 0.95 * bound.grpc_bytes < listed.ByteSize() <= bound.grpc_bytes
        many = answered["WIDE-UTF8"]
        answers = api.ListAnswers(
            pb.ListAnswersRequest(trkref="D10", conversation_id=many, page_size=100),
            metadata=METADATA,
        )
        assert len(answers.answers) == answer_pages.PAGE_SIZE_MAX
    assert "refused by Envoy" not in served.log()


def rest_call(service: ServiceProcess, method: str, path: str, body: Any = None) -> Any:
    headers = {"authorization": DEMO, "content-type": "application/json"}
    data = None if body is None else json.dumps(body)
    response = http(method, service.base_url + path, data, headers)
    assert response.status in (200, 202), response.body
    return response.json()


def a_conversation_with_answers(service: ServiceProcess, sku: str, count: int) -> int:
    body = {"first_name": "A shopper", "question": "Is it quiet?", "sku": sku}
    conversation_id = int(
        rest_call(service, "POST", "/v4/organisations/D10/conversations", body)["id"]
    )
    for n in range(count):
        answer = {"response": f"Answer {n}", "first_name": "Ann"}
        rest_call(
            service, "POST", f"/v4/conversations/{conversation_id}/answers?trkref=D10", answer
        )
    return conversation_id


def walk_answers(service: ServiceProcess, conversation_id: int, token: str, size: int) -> list[str]:
    """The responses of every answer from `token` on, `size` a page."""
    responses: list[str] = []
    while True:
        path = f"/v4/conversations/{conversation_id}/answers?trkref=D10&page_size={size}"
        page = rest_call(service, "GET", path + (f"&page_token={token}" if token else ""))
        assert len(page["answers"]) <= size
        responses += [a["response"] for a in page["answers"]]
        token = page["next_page_token"]
        if not token:
            return responses


def test_a_list_embeds_a_few_answers_and_list_answers_pages_the_rest(
    served: ServiceProcess,
) -> None:
    conversation_id = a_conversation_with_answers(served, "MANY", 7)
    every = [f"Answer {n}" for n in range(7)]
    listed = rest_call(served, "GET", "/v4/organisations/D10/conversations?sku=MANY")
    [conversation] = listed["conversations"]
    assert [a["response"] for a in conversation["answers"]] == every[:3]
    assert conversation["answers_count"] == 7 == listed["summary"]["answers_count"]
    rest = walk_answers(served, conversation_id, conversation["answers_next_page_token"], 2)
    assert rest == every[3:]
    path = "/v4/organisations/D10/conversations?sku=MANY&answers_page_size=0"
    [none] = rest_call(served, "GET", path)["conversations"]
    assert none["answers"] == [] and none["answers_count"] == 7
    assert walk_answers(served, conversation_id, none["answers_next_page_token"], 3) == every
    path = "/v4/organisations/D10/conversations?sku=MANY&answers_page_size=50"
    [most] = rest_call(served, "GET", path)["conversations"]
    assert len(most["answers"]) == answer_pages.EMBEDDED_MAX


def test_a_detail_embeds_a_first_page_of_answers(served: ServiceProcess) -> None:
    count = answer_pages.DETAIL_ANSWERS + 5
    conversation_id = a_conversation_with_answers(served, "DETAILED", count)
    found = rest_call(served, "GET", f"/v4/conversations/{conversation_id}?trkref=D10")
    assert len(found["answers"]) == answer_pages.DETAIL_ANSWERS
    assert found["answers_count"] == count
    rest = walk_answers(served, conversation_id, found["answers_next_page_token"], 20)
    assert rest == [f"Answer {n}" for n in range(answer_pages.DETAIL_ANSWERS, count)]
    few = a_conversation_with_answers(served, "DETAILED", 2)
    whole = rest_call(served, "GET", f"/v4/conversations/{few}?trkref=D10")
    assert (len(whole["answers"]), whole["answers_next_page_token"]) == (2, "")


def test_a_page_of_answers_shows_every_answer_and_vote_acknowledged_before_it(
    served: ServiceProcess,
) -> None:
    conversation_id = a_conversation_with_answers(served, "FRESH", 1)
    path = f"/v4/conversations/{conversation_id}/answers?trkref=D10"
    first = rest_call(served, "GET", path)
    assert [a["helpful"] for a in first["answers"]] == [0]
    rest_call(
        served,
        "POST",
        f"/v4/conversation_answers/{first['answers'][0]['id']}/increment_helpful?trkref=D10",
    )
    assert [a["helpful"] for a in rest_call(served, "GET", path)["answers"]] == [1]
    rest_call(served, "POST", f"{path}", {"response": "Later", "first_name": "Bo"})
    again = rest_call(served, "GET", path)
    assert ([a["response"] for a in again["answers"]], again["answers_count"]) == (
        ["Answer 0", "Later"],
        2,
    )


def test_list_answers_refuses_bad_parameters_with_400(served: ServiceProcess) -> None:
    conversation_id = a_conversation_with_answers(served, "BAD", 0)
    base = f"{served.base_url}/v4/conversations/{conversation_id}/answers?trkref=D10"
    auth = {"authorization": DEMO}
    negative = http("GET", base + "&page_size=-1", headers=auth)
    assert (negative.status, negative.json()["details"][0]["field_violations"][0]["reason"]) == (
        400,
        "NEGATIVE",
    )
    forged = http("GET", base + "&page_token=abc.def", headers=auth)
    assert forged.status == 400 and "NOT_A_PAGE_TOKEN" in forged.body.decode()
    zero = http("GET", f"{served.base_url}/v4/conversations/0/answers?trkref=D10", headers=auth)
    assert zero.status == 400 and "OUT_OF_RANGE" in zero.body.decode()
    missing = http(
        "GET", f"{served.base_url}/v4/conversations/99999/answers?trkref=D10", headers=auth
    )
    assert missing.status == 404
