"""What a walk through a List's pages shows while conversations are created, answered and
voted on, for each order (docs/api.md), over real Envoy and `serve` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.support import basic_authorization
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, http

HEADERS = {
    "authorization": basic_authorization(*DEMO_CREDENTIALS),
    "content-type": "application/json",
}


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[ServiceProcess]:
    with ServiceProcess(tmp_path, ["--database-url", database_url], rest=True, demo=True) as s:
        yield s


def post(service: ServiceProcess, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body)
    response = http("POST", service.base_url + path, data, HEADERS)
    assert response.status in (200, 202), response.body
    return response.json()


def ask(service: ServiceProcess, sku: str, question: str, helpful: int = 0) -> int:
    body = {"first_name": "A shopper", "question": question, "sku": sku}
    conversation_id = int(post(service, "/v4/organisations/D10/conversations", body)["id"])
    for _ in range(helpful):
        vote(service, conversation_id)
    return conversation_id


def answer(service: ServiceProcess, conversation_id: int) -> None:
    body = {"response": "It is.", "first_name": "Ann"}
    post(service, f"/v4/conversations/{conversation_id}/answers?trkref=D10", body)


def vote(service: ServiceProcess, conversation_id: int) -> None:
    post(service, f"/v4/conversations/{conversation_id}/increment_helpful?trkref=D10")


class Walk:
    """A walk through a product's List, one conversation a page."""

    def __init__(self, service: ServiceProcess, sku: str, order: str) -> None:
        self.service, self.sku, self.order = service, sku, order
        self.token: str | None = ""
        self.seen: list[str] = []

    def next(self) -> None:
        assert self.token is not None, "the walk is over"
        path = f"/v4/organisations/D10/conversations?sku={self.sku}&page_size=1"
        path += f"&order_by={self.order.replace(' ', '+')}&page_token={self.token}"
        response = http("GET", self.service.base_url + path, headers=HEADERS)
        assert response.status == 200, response.body
        page = response.json()
        self.seen += [c["question"] for c in page["conversations"]]
        self.token = page["next_page_token"] or None

    def to_the_end(self) -> list[str]:
        while self.token is not None:
            self.next()
        return self.seen


@pytest.mark.parametrize("order", ["created_at desc", "created_at asc"])
def test_by_creation_a_walk_shows_each_conversation_once_whatever_is_voted(
    served: ServiceProcess, order: str
) -> None:
    sku = order.replace(" ", "-")
    for question in ("A", "B", "C"):
        ask(served, sku, question)
    walk = Walk(served, sku, order)
    walk.next()
    for conversation_id in range(1, 4):
        vote(served, conversation_id)
    later = ask(served, sku, "D")
    seen = walk.to_the_end()
    # Newest first: D, created during the walk, is before where the walk stands; oldest
    # first, it is after, and shows.
    assert seen == (["C", "B", "A"] if order.endswith("desc") else ["A", "B", "C", "D"])
    assert later == 4


def test_by_helpfulness_a_conversation_voted_past_the_walk_is_skipped_never_repeated(
    served: ServiceProcess,
) -> None:
    ask(served, "HELPFUL", "A", helpful=2)
    ask(served, "HELPFUL", "B", helpful=1)
    c = ask(served, "HELPFUL", "C")
    walk = Walk(served, "HELPFUL", "helpful desc")
    walk.next()
    assert walk.seen == ["A"]
    # C now ties A and, newer, goes before it: before where the walk stands.
    vote(served, c)
    vote(served, c)
    ask(served, "HELPFUL", "D")  # 0 votes: after B, where the walk has yet to go
    assert walk.to_the_end() == ["A", "B", "D"]


def test_by_answers_a_conversation_answered_past_the_walk_is_skipped_never_repeated(
    served: ServiceProcess,
) -> None:
    for question, answers in (("A", 2), ("B", 1), ("C", 0)):
        conversation_id = ask(served, "ANSWERED", question)
        for _ in range(answers):
            answer(served, conversation_id)
    walk = Walk(served, "ANSWERED", "answers_count desc")
    walk.next()
    assert walk.seen == ["A"]
    # C now ties A and, newer, goes before it: before where the walk stands.
    answer(served, conversation_id)
    answer(served, conversation_id)
    ask(served, "ANSWERED", "D")  # no answer: after B, where the walk has yet to go
    assert walk.to_the_end() == ["A", "B", "D"]
