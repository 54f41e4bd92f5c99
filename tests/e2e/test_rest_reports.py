"""Reports and erasure over REST through the real Envoy transcoder, and over gRPC: 202 `{}`,
the threshold sending an item back to the queue, a moderator's erase, other organisations'
ids, roles, hostile input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from harness.support import basic_authorization, create_key
from tests.e2e.service import (
    ASKED_SKU,
    DEMO_AUTHORIZATION,
    RivalKeys,
    ServiceProcess,
    ask,
    assert_rpc_status,
    call,
    free_port,
    grpcurl,
    scrape,
)

ROUTES = ["/v4/conversations/{id}/report", "/v4/conversation_answers/{id}/report"]


class Keys(RivalKeys):
    """A moderator's key of D10, a shopper's of R30 (post-moderated, threshold 2)."""

    def __init__(self, service: ServiceProcess) -> None:
        super().__init__(service, "R30", "--moderation", "post", "--report-threshold", "2")
        self.rival = basic_authorization(*create_key(self.database, "R30"))
        self.rival_grpc = "authorization: " + self.rival


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[ServiceProcess]:
    """The service with REST and metrics on, on a fresh embedded database."""
    workdir = tmp_path_factory.mktemp("reports")
    args = ["--metrics-address", str(metrics_port)]
    with ServiceProcess(workdir, args, rest=True, demo=True) as service:
        yield service


@pytest.fixture(scope="module")
def keys(rest: ServiceProcess) -> Iterator[Keys]:
    yield Keys(rest)


def answer(service: ServiceProcess, conversation: int) -> dict[str, Any]:
    created = call(service, "POST", f"/v4/conversations/{conversation}/answers?trkref=D10",
                   {"response": "It fits", "first_name": "Bo"})  # fmt: skip
    assert created.status == 200, created.body
    return dict(created.json())


def report(service: ServiceProcess, path: str, body: Any,
           authorization: str = DEMO_AUTHORIZATION) -> Any:  # fmt: skip
    return call(service, "POST", path, body, authorization=authorization)


def test_three_reporters_send_a_conversation_back_to_the_queue(
    rest: ServiceProcess, keys: Keys, metrics_port: int
) -> None:
    shown = ask(rest, "Reported?")
    path = f"/v4/conversations/{shown['id']}/report?trkref=D10"
    before = call(rest, "GET", f"/v4/organisations/D10/conversations?sku={ASKED_SKU}").json()
    for reporter in ("a", "a", "b"):
        sent = report(rest, path, {"reason": "spam", "reporter_id": reporter})
        assert (sent.status, sent.json()) == (202, {})
    assert call(rest, "GET", f"/v4/conversations/{shown['id']}?trkref=D10").status == 200
    sent = report(rest, path, {"reason": "OFF_TOPIC"})
    assert (sent.status, sent.json()) == (202, {})
    assert_rpc_status(call(rest, "GET", f"/v4/conversations/{shown['id']}?trkref=D10"), 404)
    after = call(rest, "GET", f"/v4/organisations/D10/conversations?sku={ASKED_SKU}").json()
    assert after["summary"]["question_count"] == before["summary"]["question_count"] - 1
    queue = call(rest, "GET", "/v4/organisations/D10/moderation/queue?page_size=100",
                 authorization=keys.moderator).json()  # fmt: skip
    [item] = [i for i in queue["items"] if i["conversation"]["id"] == shown["id"]]
    assert (item["conversation"]["status"], item["conversation"]["held_for"]) == (
        "PENDING", ["reported"])  # fmt: skip
    assert item["reports"] == [{"reason": "OFF_TOPIC", "count": 1}, {"reason": "SPAM", "count": 2}]
    log = call(rest, "GET", "/v4/organisations/D10/moderation/decisions?page_size=1",
               authorization=keys.moderator).json()  # fmt: skip
    [decision] = log["decisions"]
    assert {k: decision[k] for k in ("target", "target_id", "from_status", "to_status",
            "decided_by", "reason", "note")} == {
        "target": "conversation", "target_id": shown["id"], "from_status": "PUBLISHED",
        "to_status": "PENDING", "decided_by": "", "reason": "reported", "note": "3 reporters",
    }  # fmt: skip
    # Now pending: a shopper's report is the missing item's 404.
    hidden = report(rest, path, {"reason": "spam"})
    missing = report(rest, "/v4/conversations/999999/report?trkref=D10", {"reason": "spam"})
    assert_rpc_status(hidden, 404)
    assert hidden.body == missing.body
    samples = scrape(metrics_port)
    assert samples['conversation_service_reports_total{reason="spam"}'] >= 2
    assert samples['conversation_service_reports_total{reason="off_topic"}'] == 1
    assert samples['conversation_service_reported_back_total{target="conversation"}'] == 1


def test_an_answer_reported_leaves_its_conversation(rest: ServiceProcess, keys: Keys) -> None:
    shown = ask(rest, "Answered?")
    given = answer(rest, shown["id"])
    path = f"/v4/conversation_answers/{given['id']}/report?trkref=D10"
    for reporter in ("a", "b", "c"):
        assert report(rest, path, {"reason": "offensive", "reporter_id": reporter}).status == 202
    found = call(rest, "GET", f"/v4/conversations/{shown['id']}?trkref=D10").json()
    assert (found["answers_count"], found["answers"]) == (0, [])


def test_another_organisations_ids_are_the_same_404_as_missing_ones(
    rest: ServiceProcess, keys: Keys
) -> None:
    ours = ask(rest, "Ours?")
    theirs = ask(rest, "Theirs?", keys.rival, "R30")
    for template in ROUTES:
        bodies = set()
        for target, trkref, authorization in [
            (999_999, "D10", DEMO_AUTHORIZATION),  # no such id
            (theirs["id"], "D10", DEMO_AUTHORIZATION),  # another organisation's
            (ours["id"], "R30", keys.rival),  # asked of the other organisation
            (ours["id"], "D10", keys.rival),  # out of the key's reach
        ]:
            path = template.format(id=target) + f"?trkref={trkref}"
            found = report(rest, path, {"reason": "spam"}, authorization)
            assert_rpc_status(found, 404)
            bodies.add(found.body)
        assert len(bodies) == 1, bodies


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/v4/conversations/abc/report?trkref=D10", {"reason": "spam"}, None),
        ("/v4/conversations/0/report?trkref=D10", {"reason": "spam"}, ["id"]),
        ("/v4/conversations/4294967296/report?trkref=D10", {"reason": "spam"}, None),
        ("/v4/conversations/1/report", {"reason": "spam"}, ["trkref"]),
        ("/v4/conversations/1/report?trkref=D%2010", {"reason": "spam"}, ["trkref"]),
        ("/v4/conversations/1/report?trkref=D10", {}, ["report.reason"]),
        ("/v4/conversations/1/report?trkref=D10", {"reason": "boring"}, None),
        ("/v4/conversations/1/report?trkref=D10", {"reason": 99}, ["report.reason"]),
        ("/v4/conversation_answers/1/report?trkref=D10",
         {"reason": "spam", "reporter_id": "x" * 101}, ["report.reporter_id"]),
        ("/v4/conversation_answers/1/report?trkref=D10",
         {"reason": "spam", "reporter_id": "a\u0000b"}, ["report.reporter_id"]),
        ("/v4/conversation_answers/1/report?trkref=D10",
         {"reason": "spam", "reporter_id": "   "}, ["report.reporter_id"]),
        ("/v4/conversations/1/report?trkref=D10&sneaky=1", {"reason": "spam"}, None),
        ("/v4/conversations/1/report?trkref=D10", "{not json", None),
    ],
)  # fmt: skip
def test_hostile_input_is_a_clear_400(
    rest: ServiceProcess, keys: Keys, path: str, body: Any, fields: list[str] | None
) -> None:
    error = assert_rpc_status(report(rest, path, body), 400)
    if fields is not None:
        [details] = error["details"]
        assert [v["field"] for v in details["field_violations"]] == fields


def test_grpc_reports_and_the_organisations_threshold(rest: ServiceProcess, keys: Keys) -> None:
    theirs = ask(rest, "Theirs, over gRPC?", keys.rival, "R30")
    method = "conversations.v4.ConversationService/ReportConversation"
    for reporter in ("a", "b"):
        data = json.dumps({"id": theirs["id"], "trkref": "R30",
                           "report": {"reason": "SPAM", "reporter_id": reporter}})  # fmt: skip
        sent = grpcurl(rest.address, method, data=data, headers=[keys.rival_grpc])
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {}
    again = grpcurl(rest.address, method, data=data, headers=[keys.rival_grpc])
    assert again.returncode != 0 and "NotFound" in again.stderr
    bad = json.dumps({"id": theirs["id"], "trkref": "R30", "report": {}})
    refused = grpcurl(rest.address, method, data=bad, headers=[keys.rival_grpc])
    assert refused.returncode != 0 and "InvalidArgument" in refused.stderr


ERASE_ROUTES = ["/v4/conversations/{id}/erase", "/v4/conversation_answers/{id}/erase"]
DENIED = {"code": 7, "message": "this method needs a moderator key", "details": []}


def test_a_moderator_erases_an_answer_then_its_conversation(
    rest: ServiceProcess, keys: Keys
) -> None:
    shown = ask(rest, "Erased?")
    given = answer(rest, shown["id"])
    path = f"/v4/conversation_answers/{given['id']}/erase?trkref=D10"
    assert assert_rpc_status(call(rest, "POST", path, {}), 403) == DENIED
    erased = call(rest, "POST", path, {"reason": "erasure request"}, authorization=keys.moderator)
    assert erased.status == 200, erased.body
    decision = erased.json()
    del decision["decided_at"], decision["id"]
    assert decision == {
        "target": "answer", "target_id": given["id"], "from_status": "PUBLISHED",
        "to_status": "ERASED", "decided_by": keys.moderator_id,
        "reason": "erasure request", "note": "",
    }  # fmt: skip
    found = call(rest, "GET", f"/v4/conversations/{shown['id']}?trkref=D10").json()
    assert (found["answers_count"], found["answers"]) == (0, [])
    again = call(rest, "POST", path, {}, authorization=keys.moderator)
    missing = call(rest, "POST", "/v4/conversation_answers/999999/erase?trkref=D10", {},
                   authorization=keys.moderator)  # fmt: skip
    assert_rpc_status(again, 404)
    assert again.body == missing.body
    path = f"/v4/conversations/{shown['id']}/erase?trkref=D10"
    assert call(rest, "POST", path, {}, authorization=keys.moderator).status == 200
    assert_rpc_status(call(rest, "GET", f"/v4/conversations/{shown['id']}?trkref=D10"), 404)


def test_erasing_another_organisations_ids_is_the_missing_ones_404(
    rest: ServiceProcess, keys: Keys
) -> None:
    theirs = ask(rest, "Theirs, erased?", keys.rival, "R30")
    for template in ERASE_ROUTES:
        bodies = set()
        for target, trkref in [(999_999, "D10"), (theirs["id"], "D10"), (theirs["id"], "R30")]:
            path = template.format(id=target) + f"?trkref={trkref}"
            found = call(rest, "POST", path, {}, authorization=keys.moderator)
            assert_rpc_status(found, 404)
            bodies.add(found.body)
        assert len(bodies) == 1, bodies
    assert call(rest, "GET", f"/v4/conversations/{theirs['id']}?trkref=R30",
                authorization=keys.rival).status == 200  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/v4/conversations/abc/erase?trkref=D10", {}, None),
        ("/v4/conversations/0/erase?trkref=D10", {}, ["id"]),
        ("/v4/conversations/1/erase", {}, ["trkref"]),
        ("/v4/conversation_answers/1/erase?trkref=D10", {"reason": "x" * 101}, ["reason"]),
        ("/v4/conversation_answers/1/erase?trkref=D10", {"note": "a\u0000b"}, ["note"]),
        ("/v4/conversations/1/erase?trkref=D10&sneaky=1", {}, None),
        ("/v4/conversations/1/erase?trkref=D10", "{not json", None),
    ],
)  # fmt: skip
def test_hostile_erase_input_is_a_clear_400(
    rest: ServiceProcess, keys: Keys, path: str, body: Any, fields: list[str] | None
) -> None:
    error = assert_rpc_status(call(rest, "POST", path, body, authorization=keys.moderator), 400)
    if fields is not None:
        [details] = error["details"]
        assert [v["field"] for v in details["field_violations"]] == fields


def test_grpc_erase(rest: ServiceProcess, keys: Keys) -> None:
    theirs = ask(rest, "Erased over gRPC?", keys.rival, "R30")
    data = json.dumps({"id": theirs["id"], "trkref": "R30"})
    method = "conversations.v4.ConversationService/EraseConversation"
    refused = grpcurl(rest.address, method, data=data, headers=[keys.rival_grpc])
    assert refused.returncode != 0 and "PermissionDenied" in refused.stderr
    ours = ask(rest, "Ours, erased over gRPC?")
    data = json.dumps({"id": ours["id"], "trkref": "D10", "decision": {"note": "asked by mail"}})
    erased = grpcurl(rest.address, method, data=data, headers=["authorization: " + keys.moderator])
    assert erased.returncode == 0, erased.stderr
    decision = json.loads(erased.stdout)
    assert (decision["to_status"], decision["note"]) == ("ERASED", "asked by mail")
