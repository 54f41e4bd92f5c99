"""A moderator's reads over REST through the real Envoy transcoder, and over gRPC, on SQLite
and PostgreSQL: Detail and ListAnswers of every status (exact JSON), ListAnswers' status
filter, other organisations' ids, hostile filters, and a moderator's and a shopper's reads of
one product, in either order and with If-None-Match, each served its own view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from harness.support import basic_authorization, cli, create_key
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    HttpResponse,
    ServiceProcess,
    assert_rpc_status,
    call,
    empty_database,
    grpcurl,
)

DENIED = {"code": 7, "message": "this method needs a moderator key", "details": []}
PENDING_ONLY = "filter=status%20%3D%20PENDING"


class Served:
    """The service, D10's moderator key and E20's, and what the tests read: per product, a
    published conversation with a published and a pending answer; a pending conversation."""

    def __init__(self, service: ServiceProcess, url: str) -> None:
        self.service = service
        added = cli(url, "organisations", "add", "E20", "--name", "Rival", "--locale", "en-GB")
        assert added.returncode == 0, added.stderr
        assert cli(url, "terms", "add", "D10", "spam").returncode == 0
        self.moderator = basic_authorization(*create_key(url, "D10", role="moderator"))
        self.rival = basic_authorization(*create_key(url, "E20", role="moderator"))
        self.pending = ask(service, "Is this spam?", "HELD-1")

    def product(self, sku: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A published conversation about `sku`, and its published and pending answers."""
        conversation = ask(self.service, "Is it quiet?", sku)
        path = f"/v4/conversations/{conversation['id']}/answers?trkref=D10"
        answers = []
        for text in ("Very quiet.", "Mail me@example.com"):
            created = call(self.service, "POST", path, {"response": text, "first_name": "Bo"})
            assert created.status == 200, created.body
            answers.append(dict(created.json()))
        return conversation, answers

    def get(self, path: str, authorization: str = DEMO_AUTHORIZATION, **headers: str) -> Any:
        return call(self.service, "GET", path, authorization=authorization, headers=headers)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp(f"moderator-reads-{request.param}")
    url = empty_database(request, workdir)
    with ServiceProcess(workdir, ["--database-url", url], rest=True, demo=True) as service:
        yield Served(service, url)


def ask(service: ServiceProcess, question: str, sku: str) -> dict[str, Any]:
    body = {"first_name": "A shopper", "question": question, "sku": sku}
    created = call(service, "POST", "/v4/organisations/D10/conversations", body)
    assert created.status == 200, created.body
    return dict(created.json())


def test_a_moderator_reads_a_pending_conversation_and_answers_of_every_status(
    served: Served,
) -> None:
    conversation, (published, pending) = served.product("READ-1")
    assert (pending["status"], pending["held_for"]) == ("PENDING", ["email_address"])
    path = f"/v4/conversations/{conversation['id']}?trkref=D10"
    shown = served.get(path, served.moderator)
    assert shown.status == 200, shown.body
    assert shown.json() == {**conversation, "answers": [published, pending], "answers_count": 1}
    assert served.get(path).json() == {**conversation, "answers": [published], "answers_count": 1}
    held = served.pending
    assert (held["status"], held["held_for"]) == ("PENDING", ["blocked_term"])
    found = served.get(f"/v4/conversations/{held['id']}?trkref=D10", served.moderator)
    assert found.json() == held
    answers = f"/v4/conversations/{conversation['id']}/answers?trkref=D10"
    listed = served.get(f"{answers}&{PENDING_ONLY}", served.moderator)
    assert listed.json() == {"answers": [pending], "next_page_token": "", "answers_count": 1}
    every = served.get(answers, served.moderator).json()
    assert every == {"answers": [published, pending], "next_page_token": "", "answers_count": 1}
    assert assert_rpc_status(served.get(f"{answers}&{PENDING_ONLY}"), 403) == DENIED


def test_pending_ids_are_the_404_of_a_missing_one_for_shoppers_and_other_organisations(
    served: Served,
) -> None:
    held = served.pending["id"]
    missing = served.get("/v4/conversations/999999?trkref=D10")
    assert_rpc_status(missing, 404)
    for path, authorization, headers in [
        (f"/v4/conversations/{held}?trkref=D10", DEMO_AUTHORIZATION, {}),
        (f"/v4/conversations/{held}?trkref=D10", DEMO_AUTHORIZATION, {"if-none-match": "*"}),
        (f"/v4/conversations/{held}/answers?trkref=D10", DEMO_AUTHORIZATION, {}),
        (f"/v4/conversations/{held}/answers?trkref=D10", DEMO_AUTHORIZATION,
         {"if-none-match": "*"}),
        (f"/v4/conversations/{held}?trkref=D10", served.rival, {}),  # out of the key's reach
        (f"/v4/conversations/{held}?trkref=E20", served.rival, {}),  # not E20's
        (f"/v4/conversations/{held}/answers?trkref=E20&{PENDING_ONLY}", served.rival, {}),
        ("/v4/conversations/999999?trkref=D10", served.moderator, {}),
    ]:  # fmt: skip
        found = served.get(path, authorization, **headers)
        assert (found.status, found.body) == (404, missing.body), (path, headers)


def roles_read(served: Served, path: str, order: list[str]) -> dict[str, HttpResponse]:
    """Each role's read of `path`, in `order`, twice; what each read first."""
    read: dict[str, HttpResponse] = {}
    for role in order * 2:
        response = served.get(path, served.moderator if role == "moderator" else DEMO_AUTHORIZATION)
        assert response.status == 200, response.body
        first = read.setdefault(role, response)
        assert (response.body, response.headers["etag"]) == (first.body, first.headers["etag"])
    return read


@pytest.mark.parametrize("order", [["moderator", "shopper"], ["shopper", "moderator"]])
def test_a_moderators_and_a_shoppers_reads_of_one_product_are_each_their_own(
    served: Served, order: list[str]
) -> None:
    sku = f"ROLES-{order[0]}"
    conversation, (published, pending) = served.product(sku)
    answers = f"/v4/conversations/{conversation['id']}/answers?trkref=D10"
    for path in [
        f"/v4/conversations/{conversation['id']}?trkref=D10",
        f"/v4/organisations/D10/conversations?sku={sku}",
        answers,
    ]:
        read = roles_read(served, path, order)
        moderator, shopper = read["moderator"], read["shopper"]
        assert pending["id"] in [a["id"] for a in pages_answers(moderator.json())]
        assert [a["id"] for a in pages_answers(shopper.json())] == [published["id"]]
        assert moderator.headers["etag"] != shopper.headers["etag"]
        for role, own, other in [
            ("moderator", moderator, shopper),
            ("shopper", shopper, moderator),
        ]:
            authorization = served.moderator if role == "moderator" else DEMO_AUTHORIZATION
            sent = served.get(path, authorization, **{"if-none-match": other.headers["etag"]})
            assert (sent.status, sent.body) == (200, own.body), (path, role)
            matched = served.get(path, authorization, **{"if-none-match": own.headers["etag"]})
            assert (matched.status, matched.body) == (304, b""), (path, role)


def pages_answers(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The answers a Detail, a List (of one conversation) or a ListAnswers holds."""
    if "conversations" in body:
        [conversation] = body["conversations"]
        return list(conversation["answers"])
    return list(body["answers"])


def test_an_answers_page_token_is_the_roles_own(served: Served) -> None:
    conversation, _ = served.product("TOKENS-1")
    path = f"/v4/conversations/{conversation['id']}/answers?trkref=D10&page_size=1"
    tokens = {}
    for role, authorization in [("moderator", served.moderator), ("shopper", DEMO_AUTHORIZATION)]:
        listed = served.get("/v4/organisations/D10/conversations?sku=TOKENS-1&answers_page_size=0",
                            authorization).json()  # fmt: skip
        tokens[role] = listed["conversations"][0]["answers_next_page_token"]
        assert tokens[role]
        first = served.get(f"{path}&page_token={tokens[role]}", authorization)
        assert first.status == 200, first.body
    refused = served.get(f"{path}&page_token={tokens['moderator']}")
    assert assert_rpc_status(refused, 400)["details"][0]["field_violations"][0]["field"] == (
        "page_token"
    )
    assert_rpc_status(served.get(f"{path}&page_token={tokens['shopper']}", served.moderator), 400)


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("answered = true", "unknown field 'answered': one of status"),
        ("status = pending", "status takes = and one of PENDING, PUBLISHED, REJECTED"),
        ("status = PENDING OR status = REJECTED", "OR is not supported: join comparisons with AND"),
        ("status = PENDING AND status = PENDING", "status is given twice"),
        ('status = "PENDING', "has a string without its closing double quote"),
        ("status = PENDING; DROP TABLE answer",
         "';' is not allowed: a filter is comparisons joined by AND"),
        ("status = PENDING" + " " * 1000, "must be at most 1000 characters"),
    ],
)  # fmt: skip
def test_a_hostile_filter_is_a_clear_400(served: Served, text: str, description: str) -> None:
    conversation = served.pending["id"]
    path = f"/v4/conversations/{conversation}/answers?trkref=D10&filter={quote(text)}"
    violation = {"field": "filter", "description": description, "reason": "INVALID_FILTER"}
    expected = {
        "code": 3,
        "message": f"invalid request: filter: {description}",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": [violation]}
        ],
    }
    for authorization in (served.moderator, DEMO_AUTHORIZATION):  # refused before the role
        assert assert_rpc_status(served.get(path, authorization), 400) == expected


def test_grpc_moderator_reads(served: Served) -> None:
    method = "conversations.v4.ConversationService/"
    held = served.pending["id"]
    moderator, shopper, rival = (
        f"authorization: {authorization}"
        for authorization in (served.moderator, DEMO_AUTHORIZATION, served.rival)
    )

    def rpc(name: str, asked: dict[str, Any], header: str) -> Any:
        return grpcurl(served.service.address, method + name, data=json.dumps(asked),
                       headers=[header])  # fmt: skip

    found = rpc("GetConversation", {"id": held, "trkref": "D10"}, moderator)
    assert found.returncode == 0, found.stderr
    shown = json.loads(found.stdout)
    assert (shown["status"], shown["held_for"]) == ("PENDING", ["blocked_term"])
    pending = {"conversation_id": held, "trkref": "D10", "filter": "status = PENDING"}
    listed = rpc("ListAnswers", pending, moderator)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {}  # a pending conversation without answers
    refused = rpc("ListAnswers", pending, shopper)
    assert refused.returncode != 0 and "PermissionDenied" in refused.stderr
    hostile = rpc("ListAnswers", {**pending, "filter": "status = PENDING OR true"}, moderator)
    assert hostile.returncode != 0 and "InvalidArgument" in hostile.stderr
    assert "OR is not supported" in hostile.stderr
    errors = set()
    for name, asked, header in [
        ("GetConversation", {"id": 999_999, "trkref": "D10"}, moderator),
        ("GetConversation", {"id": held, "trkref": "D10"}, shopper),
        ("GetConversation", {"id": held, "trkref": "D10"}, rival),
        ("GetConversation", {"id": held, "trkref": "E20"}, rival),
        ("ListAnswers", {**pending, "trkref": "E20"}, rival),
    ]:
        missing = rpc(name, asked, header)
        assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr
        errors.add(missing.stderr)
    assert len(errors) == 1, errors
