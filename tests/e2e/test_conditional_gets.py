"""Conditional GETs over REST through the real Envoy and `serve`, on SQLite and PostgreSQL:
ETag and Cache-Control on Detail, List and ListAnswers, 304 for If-None-Match, HEAD, a new
tag after every write, nothing for another organisation, hostile If-None-Match values."""

from __future__ import annotations

import functools
import http.client
import json
import re
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest

from harness.support import basic_authorization, cli, create_key
from server.package_data import DESCRIPTOR_SET
from tests.e2e.service import (
    DEMO_AUTHORIZATION,
    GRPCURL,
    HttpResponse,
    ServiceProcess,
    assert_rpc_status,
    call,
    empty_database,
)

CONVERSATIONS = "/v4/organisations/D10/conversations"
SKU = "COND-1"
STRONG_TAG = re.compile(r'"[A-Za-z0-9_-]{22}"')
CACHE_CONTROL = "private, no-cache"


class Served:
    """The service, the conversation of D10 its tests read (with one answer), and another
    organisation's conversation and key."""

    def __init__(self, service: ServiceProcess, database_url: str) -> None:
        self.service = service
        self.conversation = ask(service, SKU)
        self.answer = answer(service, self.conversation)
        added = cli(
            database_url,
            *("organisations", "add", "E20", "--name", "E", "--locale", "en-GB"),
            *("--moderation", "post"),
        )
        assert added.returncode == 0, added.stderr
        self.other_key = basic_authorization(*create_key(database_url, "E20"))
        created = call(
            service,
            "POST",
            "/v4/organisations/E20/conversations",
            {"first_name": "B", "question": "Theirs?", "sku": SKU},
            authorization=self.other_key,
        )
        assert created.status == 200, created.body
        self.others = int(created.json()["id"])

    def paths(self) -> list[str]:
        """Detail, the product's List, the conversation's answers."""
        return [
            f"/v4/conversations/{self.conversation}?trkref=D10",
            f"{CONVERSATIONS}?sku={SKU}&page_size=5",
            f"/v4/conversations/{self.conversation}/answers?trkref=D10",
        ]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp(f"conditional-{request.param}")
    url = empty_database(request, workdir)
    with ServiceProcess(workdir, ["--database-url", url], rest=True, demo=True) as service:
        yield Served(service, url)


def ask(service: ServiceProcess, sku: str) -> int:
    body = {"first_name": "A shopper", "question": "Does it fold?", "sku": sku}
    created = call(service, "POST", CONVERSATIONS, body)
    assert created.status == 200, created.body
    return int(created.json()["id"])


def answer(service: ServiceProcess, conversation_id: int) -> int:
    path = f"/v4/conversations/{conversation_id}/answers?trkref=D10"
    created = call(service, "POST", path, {"response": "It folds.", "first_name": "Ann"})
    assert created.status == 200, created.body
    return int(created.json()["id"])


def vote(served: Served, path: str) -> None:
    voted = call(served.service, "POST", path)
    assert voted.status == 202, voted.body


def get(served: Served, path: str, **headers: str) -> HttpResponse:
    return call(served.service, "GET", path, headers=headers)


def tag_of(served: Served, path: str) -> str:
    response = get(served, path)
    assert response.status == 200, response.body
    return response.headers["etag"]


def test_a_read_carries_a_strong_tag_and_a_match_is_304_without_a_body(served: Served) -> None:
    for path in served.paths():
        first = get(served, path)
        assert first.status == 200, first.body
        assert STRONG_TAG.fullmatch(first.headers["etag"]), first.headers
        assert first.headers["cache-control"] == CACHE_CONTROL
        tag = first.headers["etag"]
        for sent in (tag, f"W/{tag}", f'"other", {tag}', "*", f' "x" ,W/{tag} '):
            again = get(served, path, **{"if-none-match": sent})
            assert again.status == 304, (path, sent, again.status, again.body[:200])
            assert again.body == b""
            assert again.headers["etag"] == tag
            assert again.headers["cache-control"] == CACHE_CONTROL
            assert "content-type" not in again.headers and "content-length" not in again.headers
            assert "x-not-modified" not in again.headers
        other = get(served, path, **{"if-none-match": '"not-this-one"'})
        assert (other.status, other.body, other.headers["etag"]) == (200, first.body, tag)


def test_the_tag_changes_with_every_write_and_only_then(served: Served) -> None:
    paths = served.paths()
    seen = [[tag_of(served, path) for path in paths]]
    assert [tag_of(served, path) for path in paths] == seen[0]  # no write, the same tag
    conversation = served.conversation
    votes = [
        f"/v4/conversations/{conversation}/increment_helpful?trkref=D10",
        f"/v4/conversation_answers/{served.answer}/increment_unhelpful?trkref=D10",
    ]
    writes: list[Callable[[], object]] = [
        lambda: answer(served.service, conversation),
        *(functools.partial(vote, served, path) for path in votes),
        lambda: ask(served.service, SKU),
    ]
    for write in writes:
        old = seen[-1]
        write()
        now = [tag_of(served, path) for path in paths]
        assert all(a != b for a, b in zip(old, now, strict=True)), (old, now)
        for path, tag in zip(paths, old, strict=True):
            stale = get(served, path, **{"if-none-match": tag})
            assert stale.status == 200 and stale.body, path
        seen.append(now)
    before = [tag_of(served, path) for path in paths]
    ask(served.service, "ANOTHER-PRODUCT")  # another product's write
    assert [tag_of(served, path) for path in paths] == before


def test_head_answers_the_headers_of_get_without_a_body(served: Served) -> None:
    host, port = served.service.base_url.removeprefix("http://").split(":")
    for path in served.paths():
        full = get(served, path)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("HEAD", path, headers={"authorization": DEMO_AUTHORIZATION})
            head = connection.getresponse()
            assert head.read() == b""
            assert head.status == 200
            assert head.getheader("etag") == full.headers["etag"]
            assert head.getheader("cache-control") == CACHE_CONTROL
            assert head.getheader("content-length") == str(len(full.body))
            # The connection is clean: the next response starts where the HEAD's headers end.
            sent = {"authorization": DEMO_AUTHORIZATION, "if-none-match": full.headers["etag"]}
            connection.request("HEAD", path, headers=sent)
            not_modified = connection.getresponse()
            assert (not_modified.status, not_modified.read()) == (304, b"")
        finally:
            connection.close()
    start = f"HEAD {served.paths()[0]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raw = raw_exchange(served, f"{start}Authorization: {DEMO_AUTHORIZATION}\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n"), raw  # headers only, not one byte of body
    start = f"HEAD /v4/conversations/{served.others}?trkref=D10 HTTP/1.1\r\nHost: x\r\n"
    start += "Connection: close\r\n"
    raw = raw_exchange(served, f"{start}Authorization: {DEMO_AUTHORIZATION}\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404 ") and raw.endswith(b"\r\n\r\n"), raw


def test_grpc_answers_a_match_with_an_empty_message_marked_not_modified(served: Served) -> None:
    path, *_ = served.paths()
    tag = tag_of(served, path)
    asked = json.dumps({"trkref": "D10", "id": served.conversation})
    method = "conversations.v4.ConversationService/GetConversation"
    headers = [f"authorization: {DEMO_AUTHORIZATION}", f"if-none-match: {tag}"]
    matched = verbose_grpcurl(served, method, asked, headers)
    assert matched.returncode == 0, matched.stderr
    assert f"etag: {tag}" in matched.stdout and "x-not-modified: true" in matched.stdout
    assert "Response contents:\n{\n  \n}" in matched.stdout, matched.stdout
    headers[1] = 'if-none-match: "other"'
    full = verbose_grpcurl(served, method, asked, headers)
    assert full.returncode == 0 and f"etag: {tag}" in full.stdout, full.stderr
    assert "x-not-modified" not in full.stdout and '"question": "Does it fold?"' in full.stdout


def test_no_tag_reveals_another_organisations_conversation(served: Served) -> None:
    for path in (
        f"/v4/conversations/{served.others}?trkref=D10",
        f"/v4/conversations/{served.others}?trkref=E20",
        f"/v4/conversations/{served.others}/answers?trkref=D10",
        f"/v4/organisations/E20/conversations?sku={SKU}",
    ):
        for headers in ({}, {"if-none-match": "*"}):
            refused = get(served, path, **headers)
            assert refused.status == 404, (path, refused.status)
            assert "etag" not in refused.headers
            assert_rpc_status(refused, 404)
    theirs = call(
        served.service,
        "GET",
        f"/v4/conversations/{served.others}?trkref=E20",
        authorization=served.other_key,
    )
    assert theirs.status == 200 and STRONG_TAG.fullmatch(theirs.headers["etag"])


def test_an_error_or_an_organisation_wide_list_carries_no_tag(served: Served) -> None:
    bad = get(served, f"{CONVERSATIONS}?sku={SKU}&page_size=-1", **{"if-none-match": "*"})
    assert_rpc_status(bad, 400)
    assert "etag" not in bad.headers
    wide = get(served, CONVERSATIONS, **{"if-none-match": "*"})
    assert wide.status == 200 and wide.json()["conversations"]
    assert "etag" not in wide.headers
    assert wide.headers["cache-control"] == CACHE_CONTROL


def test_hostile_if_none_match_values_are_ignored_or_refused_never_a_500(served: Served) -> None:
    path = served.paths()[0]
    tag = tag_of(served, path)
    ignored = [
        '"' + "a" * 15000 + '"',
        "W/",
        '"',
        ",,,,",
        "W/W/" + tag,
        tag[:-1],
        "**",
        "\\" + tag[1:],
        ", ".join(f'"{n}"' for n in range(1500)),
    ]
    for value in ignored:
        response = get(served, path, **{"if-none-match": value})
        assert response.status == 200, (value[:40], response.status)
        assert response.headers["etag"] == tag
    many = ", ".join([*(f'"{n}"' for n in range(1000)), tag])
    assert get(served, path, **{"if-none-match": many}).status == 304
    too_large = get(served, path, **{"if-none-match": '"' + "a" * 20000 + '"'})
    assert too_large.status == 431
    # Many If-None-Match headers: each is read, the matching one last.
    for count in (50, 150):
        lines = "".join(f'If-None-Match: "n{n}"\r\n' for n in range(count - 1))
        request = (f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {DEMO_AUTHORIZATION}\r\n"
                   f"{lines}If-None-Match: {tag}\r\nConnection: close\r\n\r\n")  # fmt: skip
        answered = raw_exchange(served, request)
        assert answered.startswith(b"HTTP/1.1 304 "), answered[:100]
    latin = raw_exchange(
        served,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {DEMO_AUTHORIZATION}\r\n"
        'If-None-Match: "\xe9t\xe9"\r\nConnection: close\r\n\r\n',
    )
    assert latin.startswith(b"HTTP/1.1 200 "), latin[:100]


def verbose_grpcurl(
    served: Served, method: str, data: str, headers: list[str]
) -> subprocess.CompletedProcess[str]:
    """grpcurl -v: the response's headers (initial metadata) printed with its message. The
    contract comes from the descriptor set, not reflection (test_serve tests that): the call
    is the one under test."""
    flags = [arg for header in headers for arg in ("-H", header)]
    contract = ["-protoset", str(DESCRIPTOR_SET)]
    command = [GRPCURL, "-v", "-plaintext", *contract, "-d", data, *flags, served.service.address]
    command.append(method)
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def raw_exchange(served: Served, request: str) -> bytes:
    """What the REST port sends back for one raw HTTP/1.1 request, until it closes."""
    host, port = served.service.base_url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request.encode("latin-1"))
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received
