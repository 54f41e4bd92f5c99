"""Answers and votes over gRPC on real databases: the full path, isolation, exact counts
under concurrency."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from conversations.v4 import conversation_service_pb2 as pb
from conversations.v4 import conversation_service_pb2_grpc as pb_grpc
from harness.support import TEST_SECRET, Metadata, basic, store_key
from server.app import RunningServer
from server.service.domain import Organisation
from server.service.organisations import add_organisation
from server.storage.models import VoteRow
from server.storage.store import Store

E20 = Organisation(trkref="E20", name="Second retailer", locale="de-DE")
REQUEST_ID = "5b0c8a52-1c87-4d11-9a55-0d1d0c3a6e01"
QUESTION = pb.CreateConversationRequest(
    trkref="D10", first_name="A shopper", question="Is it quiet?", sku="AIPTPDV5700"
)
OWNER_ANSWER = pb.NewAnswer(
    response="Very quiet.\nEven at night.",
    first_name="Ann",
    town="Leeds",
    job_title="Nurse",
    reviewer_segment="Family",
    review_url="https://example.com/reviews/1",
    review_locale="en-gb",
)


@pytest.fixture
def server(start: Callable[..., RunningServer], organisation: Organisation) -> RunningServer:
    return start(rate_limit=0)


@pytest.fixture
def stub(server: RunningServer) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.ConversationServiceStub(channel)


@pytest.fixture
def d10(store: Store, organisation: Organisation) -> Metadata:
    store_key(store, "d10-key", "D10")
    return basic("d10-key", TEST_SECRET)


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as error:
        failed: Any = error
        return failed.code(), failed.details()
    return grpc.StatusCode.OK, ""


def test_an_answer_shows_in_detail_and_list_and_counts(stub: Any, d10: Metadata) -> None:
    question = stub.CreateConversation(QUESTION, metadata=d10)
    answer = stub.CreateAnswer(
        pb.CreateAnswerRequest(conversation_id=question.id, trkref="D10", answer=OWNER_ANSWER),
        metadata=d10,
    )
    assert answer.id >= 1 and answer.response_type == "owner"
    assert (answer.review_locale, answer.job_title, answer.helpful) == ("en-GB", "Nurse", 0)
    assert not answer.HasField("retailer_name") and not answer.HasField("reviewer_facebook_url")
    retailer = stub.CreateAnswer(
        pb.CreateAnswerRequest(
            conversation_id=question.id,
            trkref="D10",
            answer=pb.NewAnswer(
                response="Thanks for asking!",
                first_name="Demo retailer",
                response_type="retailer",
                retailer_name="Demo retailer",
                retailer_image_url="https://example.com/logo.png",
            ),
        ),
        metadata=d10,
    )
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert list(found.answers) == [answer, retailer] and found.answers_count == 2
    listed = stub.ListConversations(
        pb.ListConversationsRequest(trkref="D10", sku="AIPTPDV5700"), metadata=d10
    )
    assert (listed.summary.question_count, listed.summary.answers_count) == (1, 2)
    assert list(listed.conversations[0].answers) == [answer, retailer]


def test_an_answer_request_id_returns_the_first_and_refuses_another_answer(
    stub: Any, d10: Metadata
) -> None:
    question = stub.CreateConversation(QUESTION, metadata=d10)
    asked = pb.CreateAnswerRequest(conversation_id=question.id, trkref="D10", answer=OWNER_ANSWER)
    asked.answer.request_id = REQUEST_ID
    first = stub.CreateAnswer(asked, metadata=d10)
    assert stub.CreateAnswer(asked, metadata=d10) == first
    asked.answer.response = "Something else"
    code, details = code_of(lambda: stub.CreateAnswer(asked, metadata=d10))
    assert code is grpc.StatusCode.ALREADY_EXISTS and "new answer" in details
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert found.answers_count == 1


def test_every_bad_answer_field_is_listed_at_once(stub: Any, d10: Metadata) -> None:
    question = stub.CreateConversation(QUESTION, metadata=d10)
    bad = pb.NewAnswer(
        response=" ",
        first_name="x" * 101,
        response_type="shopper",
        town="a\x00b",
        review_url="javascript:alert(1)",
        review_locale="not a tag",
        reviewer_facebook_url="ftp://example.com",
        retailer_name="Only for retailers",
        request_id="not-a-uuid",
    )
    try:
        stub.CreateAnswer(
            pb.CreateAnswerRequest(conversation_id=question.id, trkref="D10", answer=bad),
            metadata=d10,
        )
    except grpc.RpcError as error:
        failed: Any = error
        assert failed.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = failed.details()
    else:
        raise AssertionError("a bad answer was accepted")
    for field in (
        "response",
        "first_name",
        "response_type",
        "town",
        "review_url",
        "review_locale",
        "reviewer_facebook_url",
        "retailer_name",
        "request_id",
    ):
        assert f"{field}:" in details, field
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert found.answers_count == 0


def vote_methods(stub: Any) -> dict[str, tuple[Callable[..., Any], type]]:
    """Each vote RPC and its request, by target and counter."""
    return {
        f"{target} {counter}": (
            getattr(stub, f"Increment{target.title()}{counter.title()}"),
            getattr(pb, f"Increment{target.title()}{counter.title()}Request"),
        )
        for target in ("conversation", "answer")
        for counter in ("helpful", "unhelpful")
    }


def test_each_vote_method_counts_on_its_target(stub: Any, d10: Metadata) -> None:
    question = stub.CreateConversation(QUESTION, metadata=d10)
    answer = stub.CreateAnswer(
        pb.CreateAnswerRequest(conversation_id=question.id, trkref="D10", answer=OWNER_ANSWER),
        metadata=d10,
    )
    for name, (method, request) in vote_methods(stub).items():
        target_id = question.id if name.startswith("conversation") else answer.id
        for _ in range(2 if name.endswith(" helpful") else 1):
            assert method(request(id=target_id, trkref="D10"), metadata=d10) == empty_pb2.Empty()
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert (found.helpful, found.unhelpful) == (2, 1)
    assert (found.answers[0].helpful, found.answers[0].unhelpful) == (2, 1)


def test_no_route_reaches_another_organisation_and_not_found_is_one_error(
    store: Store, stub: Any, d10: Metadata
) -> None:
    add_organisation(store, E20)
    store_key(store, "both", "D10", "E20")
    store_key(store, "e20-key", "E20")
    both, e20 = basic("both", TEST_SECRET), basic("e20-key", TEST_SECRET)
    question = stub.CreateConversation(QUESTION, metadata=d10)
    answer = stub.CreateAnswer(
        pb.CreateAnswerRequest(conversation_id=question.id, trkref="D10", answer=OWNER_ANSWER),
        metadata=d10,
    )
    cases = [
        ("D10", 999_999, both),  # no such id
        ("E20", None, both),  # another organisation's
        ("D10", None, e20),  # an organisation out of the key's reach
    ]
    for name, (method, request) in [
        ("answer", (stub.CreateAnswer, None)),
        *vote_methods(stub).items(),
    ]:
        outcomes = set()
        for trkref, missing_id, metadata in cases:
            own_id = answer.id if name.startswith("answer ") else question.id
            target_id = missing_id or own_id
            if request is None:
                asked: Any = pb.CreateAnswerRequest(
                    conversation_id=target_id, trkref=trkref, answer=OWNER_ANSWER
                )
            else:
                asked = request(id=target_id, trkref=trkref, voter_id="v")
            outcomes.add(code_of(functools.partial(method, asked, metadata=metadata)))
        [(code, details)] = outcomes
        assert code is grpc.StatusCode.NOT_FOUND and "not authorised" in details, name
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert (found.helpful, found.unhelpful, found.answers_count) == (0, 0, 1)
    assert (found.answers[0].helpful, found.answers[0].unhelpful) == (0, 0)


def votes_from_threads(
    stub: Any, metadata: Metadata, conversation_id: int, voter: Callable[[int, int], str]
) -> list[grpc.StatusCode]:
    """64 threads of 50 helpful votes each on one conversation; every call's status."""
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def voting(thread: int) -> None:
        for n in range(50):
            request = pb.IncrementConversationHelpfulRequest(
                id=conversation_id, trkref="D10", voter_id=voter(thread, n)
            )
            vote = functools.partial(
                stub.IncrementConversationHelpful, request, metadata=metadata, timeout=30
            )
            code, _ = code_of(vote)
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=voting, args=(t,)) for t in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return codes


@pytest.mark.parametrize(
    ("voter", "added"),
    [
        (lambda thread, n: "", 3200),  # no voter_id: every vote counts
        (lambda thread, n: f"voter-{thread}-{n}", 3200),  # 3,200 voters, once each
        (lambda thread, n: "one-voter", 1),  # one voter, 3,200 times
    ],
    ids=["anonymous", "distinct-voters", "one-voter"],
)
def test_concurrent_votes_are_never_lost_nor_doubled(
    store: Store, stub: Any, d10: Metadata, voter: Callable[[int, int], str], added: int
) -> None:
    question = stub.CreateConversation(QUESTION, metadata=d10)
    codes = votes_from_threads(stub, d10, question.id, voter)
    assert codes == [grpc.StatusCode.OK] * 3200
    found = stub.GetConversation(
        pb.GetConversationRequest(id=question.id, trkref="D10"), metadata=d10
    )
    assert (found.helpful, found.unhelpful) == (added, 0)
    with store.reading():
        voters = VoteRow.select().where(VoteRow.target_id == question.id).count()
    assert voters == (0 if added == 3200 and not voter(0, 0) else added)


def test_votes_and_answers_share_the_key_s_rate_limit(
    start: Callable[..., RunningServer], d10: Metadata
) -> None:
    limited = start(rate_limit=0.001, rate_burst=3)
    with grpc.insecure_channel(f"127.0.0.1:{limited.port}") as channel:
        stub = pb_grpc.ConversationServiceStub(channel)
        question = stub.CreateConversation(QUESTION, metadata=d10)
        vote = pb.IncrementConversationHelpfulRequest(id=question.id, trkref="D10")
        stub.IncrementConversationHelpful(vote, metadata=d10)
        answer = pb.CreateAnswerRequest(
            conversation_id=question.id, trkref="D10", answer=OWNER_ANSWER
        )
        stub.CreateAnswer(answer, metadata=d10)
        refused = [
            code_of(functools.partial(stub.IncrementConversationHelpful, vote, metadata=d10)),
            code_of(functools.partial(stub.CreateAnswer, answer, metadata=d10)),
        ]
    assert [code for code, _ in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
