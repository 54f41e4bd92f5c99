"""The moderation queue's gauges follow each read of it, and a decision counts."""

from __future__ import annotations

import datetime

from prometheus_client import REGISTRY

from server import metrics


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_queue_gauges_follow_each_read_and_an_emptied_queue_reads_zero() -> None:
    now = datetime.datetime.now(datetime.UTC)
    reported = metrics.report_moderation_queue(
        [("Q1", 3, now - datetime.timedelta(hours=1)), ("Q2", 1, None)], set()
    )
    assert reported == {"Q1", "Q2"}
    assert sample("conversation_service_moderation_queue_depth", trkref="Q1") == 3
    age = sample("conversation_service_moderation_queue_oldest_seconds", trkref="Q1")
    assert age is not None and 3600 <= age < 3600 + 600
    reported = metrics.report_moderation_queue([("Q2", 2, now)], reported)
    assert sample("conversation_service_moderation_queue_depth", trkref="Q1") == 0
    assert sample("conversation_service_moderation_queue_oldest_seconds", trkref="Q1") == 0
    assert sample("conversation_service_moderation_queue_depth", trkref="Q2") == 2


def test_decisions_count_by_target_and_verdict() -> None:
    name = "conversation_service_moderation_decisions_total"
    before = sample(name, target="answer", verdict="reject") or 0
    metrics.count_moderation_decision("answer", "reject")
    assert sample(name, target="answer", verdict="reject") == before + 1
