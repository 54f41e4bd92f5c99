"""The conditional GET rows: a Detail answered 304 Not Modified over REST (If-None-Match
naming its current ETag: one stamp read, no rows, no body), beside gRPC Health/Check and
the same Detail answered 200 in full, and `GET /readyz` (Envoy asks gRPC Health/Check,
the 304's hops without its work), on one server. The targets, in bench/report.py's
RATIOS: the 304 at least 0.8 of Health/Check's throughput, over gRPC directly and through
the same Envoy. `python -m bench.run conditional` measures these rows alone; `make bench`
measures the 304 and /readyz rows with the others."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from bench import dataset, report
from bench.report import Row
from harness.service import ServiceProcess
from harness.support import opened_store

# The product the Detail is of: 20 conversations with 2 answers each, as bench/run.py's.
SKU, CONVERSATIONS, ANSWERS_EACH = "BENCH-CONDITIONAL", 20, 2


class MeasureRest(Protocol):
    def __call__(
        self,
        name: str,
        url: str,
        json_body: str | None,
        authorization: str,
        *,
        status: int = 200,
        if_none_match: str = "",
    ) -> Row: ...


def detail_path(conversation_id: int) -> str:
    return f"/v4/conversations/{conversation_id}?trkref=D10"


def entity_tag(url: str, authorization: str) -> str:
    """The ETag a GET of `url` answers with now."""
    request = urllib.request.Request(url, headers={"authorization": authorization})
    with urllib.request.urlopen(request, timeout=30) as response:
        tag = response.headers["etag"]
    assert tag, f"GET {url} has no ETag"
    return str(tag)


def not_modified_row(
    base_url: str, conversation_id: int, authorization: str, measure_rest: MeasureRest
) -> Row:
    """GETs of a Detail with If-None-Match naming its ETag: successes are 304s."""
    url = base_url + detail_path(conversation_id)
    return measure_rest(
        f"{report.NOT_MODIFIED_REST} REST Get answered 304 Not Modified via Envoy, SQLite",
        url,
        None,
        authorization,
        status=304,
        if_none_match=entity_tag(url, authorization),
    )


def ready_row(base_url: str, measure_rest: MeasureRest) -> Row:
    """GETs of /readyz: Envoy's Lua asks the service's gRPC Health/Check for each; successes
    are 200s (SERVING)."""
    return measure_rest(
        f"{report.READY_REST} REST /readyz via Envoy (gRPC Health/Check), SQLite",
        base_url + "/readyz",
        None,
        "",
    )


def run(
    workdir: Path,
    serve_rest: Callable[[Path, str], AbstractContextManager[ServiceProcess]],
    measure_health: Callable[[ServiceProcess], Row],
    measure_rest: MeasureRest,
    authorization: str,
) -> list[Row]:
    """Health/Check over gRPC, the Detail over REST in full and answered 304, on one
    `serve` with REST on a fresh SQLite database."""
    url = f"sqlite:///{workdir}/conditional.db"
    with serve_rest(workdir, url) as server:
        with opened_store(url) as store:
            ids = dataset.seed_answered(store, SKU, CONVERSATIONS, ANSWERS_EACH)
        conversation_id = ids[len(ids) // 2]
        rows = [measure_health(server)]
        get_url = server.base_url + detail_path(conversation_id)
        rows.append(measure_rest(f"{report.GET_REST} REST Get via Envoy, SQLite", get_url,
                                 None, authorization))  # fmt: skip
        rows.append(not_modified_row(server.base_url, conversation_id, authorization, measure_rest))
        rows.append(ready_row(server.base_url, measure_rest))
    return rows
