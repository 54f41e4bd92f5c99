"""Rules of the input and of the counts over real Envoy and `serve`, on SQLite and
PostgreSQL: 64-bit counters, URLs without quotes or credentials, names without
bidirectional controls, a blank voter_id, an id below 1."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.support import basic_authorization, opened_store
from server.storage.models import AnswerRow, ConversationRow
from tests.e2e.service import DEMO_CREDENTIALS, HttpResponse, ServiceProcess, http

DEMO = {"authorization": basic_authorization(*DEMO_CREDENTIALS)}


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[ServiceProcess, str]]:
    with ServiceProcess(tmp_path, ["--database-url", database_url], rest=True, demo=True) as s:
        yield s, database_url


def call(service: ServiceProcess, method: str, path: str, body: Any = None) -> HttpResponse:
    headers = {**DEMO, "content-type": "application/json"}
    return http(
        method, service.base_url + path, None if body is None else json.dumps(body), headers
    )


def conversation_and_answer(service: ServiceProcess) -> tuple[int, int]:
    body = {"first_name": "A shopper", "question": "Is it quiet?", "sku": "RULES"}
    created = call(service, "POST", "/v4/organisations/D10/conversations", body)
    assert created.status == 200, created.body
    conversation_id = int(created.json()["id"])
    path = f"/v4/conversations/{conversation_id}/answers?trkref=D10"
    answered = call(service, "POST", path, {"response": "Yes.", "first_name": "Ann"})
    assert answered.status == 200, answered.body
    return conversation_id, int(answered.json()["id"])


def answer(service: ServiceProcess, body: dict[str, str]) -> HttpResponse:
    """An answer to a new conversation."""
    conversation_id, _ = conversation_and_answer(service)
    return call(service, "POST", f"/v4/conversations/{conversation_id}/answers?trkref=D10", body)


def reasons(response: HttpResponse) -> list[tuple[str, str]]:
    assert response.status == 400, response.body
    [details] = response.json()["details"]
    return [(v["field"], v["reason"]) for v in details["field_violations"]]


@pytest.mark.parametrize("start", [2**31 - 1, 2**32 - 1])
def test_a_vote_past_32_bits_counts_and_reads_back(
    served: tuple[ServiceProcess, str], start: int
) -> None:
    service, url = served
    conversation_id, answer_id = conversation_and_answer(service)
    with opened_store(url) as store, store.session():
        ConversationRow.update(helpful=start).where(ConversationRow.id == conversation_id).execute()
        AnswerRow.update(unhelpful=start).where(AnswerRow.id == answer_id).execute()
    voted = [
        call(service, "POST", f"/v4/conversations/{conversation_id}/increment_helpful?trkref=D10"),
        call(
            service, "POST", f"/v4/conversation_answers/{answer_id}/increment_unhelpful?trkref=D10"
        ),
    ]
    assert [v.status for v in voted] == [202, 202], [v.body for v in voted]
    found = call(service, "GET", f"/v4/conversations/{conversation_id}?trkref=D10")
    assert found.status == 200, found.body
    # The contract's counts are uint32: one past its largest shows as the largest.
    shown = min(start + 1, 2**32 - 1)
    assert (found.json()["helpful"], found.json()["answers"][0]["unhelpful"]) == (shown, shown)
    with opened_store(url) as store:
        stored = store.get_conversation(conversation_id)
    assert stored is not None and (stored.helpful, stored.answers[0].unhelpful) == (start + 1,) * 2


@pytest.mark.parametrize(
    "url",
    [
        'https://example.com/"onmouseover="x',
        "https://example.com/<script>",
        "https://example.com/it's",
        "https://user:password@example.com/",
        "https://example.com@attacker.test/",
    ],
)
def test_a_url_with_quotes_brackets_or_credentials_is_refused(
    served: tuple[ServiceProcess, str], url: str
) -> None:
    answered = answer(served[0], {"response": "Yes.", "first_name": "Ann", "review_url": url})
    assert reasons(answered) == [("review_url", "NOT_A_URL")]


def test_a_name_with_a_right_to_left_override_is_refused(
    served: tuple[ServiceProcess, str],
) -> None:
    service, _ = served
    body = {"first_name": "Ann\u202egnp.exe", "question": "Fine \u202b?", "sku": "RULES"}
    created = call(service, "POST", "/v4/organisations/D10/conversations", body)
    assert reasons(created) == [("first_name", "BIDI_CONTROL")]
    answered = answer(service, {"response": "Yes.", "first_name": "A", "town": "\u2067L\u2069"})
    assert reasons(answered) == [("town", "BIDI_CONTROL")]


def test_a_voter_id_of_only_a_zero_width_space_is_blank(
    served: tuple[ServiceProcess, str],
) -> None:
    service, _ = served
    conversation_id, _ = conversation_and_answer(service)
    query = urllib.parse.urlencode({"trkref": "D10", "voter_id": "\u200b"})
    voted = call(service, "POST", f"/v4/conversations/{conversation_id}/increment_helpful?{query}")
    assert reasons(voted) == [("voter_id", "REQUIRED")]


def test_reading_id_0_is_400_like_votes_and_answers(served: tuple[ServiceProcess, str]) -> None:
    service, _ = served
    read = call(service, "GET", "/v4/conversations/0?trkref=D10")
    voted = call(service, "POST", "/v4/conversations/0/increment_helpful?trkref=D10")
    answers = call(service, "GET", "/v4/conversations/0/answers?trkref=D10")
    assert reasons(read) == reasons(voted) == [("id", "OUT_OF_RANGE")]
    assert reasons(answers) == [("conversation_id", "OUT_OF_RANGE")]
    assert read.json()["message"] == "invalid request: id: must be at least 1"
