"""The database keeps each product's stamp (migration 0015): a change made in plain SQL, as
an operator or a migration makes it, moves the stamp of its product and keeps the counts
exact, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from playhouse.migrations import Runner

from harness.support import CALLER, answer, create
from server.package_data import MIGRATIONS
from server.service.domain import NewAnswer, NewConversation, Stamp
from server.storage.store import Store
from tests.integration.test_moderation import assert_counts_exact

MIGRATION = "0015_revisions_by_triggers"


def execute(store: Store, sql: str, *params: object) -> None:
    """One statement in plain SQL, `?` for each parameter, in a transaction of its own."""
    with store.session():
        store.db.execute_sql(sql.replace("?", store.db.param), params)  # type: ignore[no-untyped-call]


def stamp(store: Store, sku: str = "S1") -> Stamp:
    return asyncio.run(store.product_stamp("D10", sku, None))


def revision(store: Store, sku: str = "S1") -> int:
    return stamp(store, sku)[2]


def insert_conversation_sql(store: Store, sku: str, status: str = "published") -> None:
    execute(
        store,
        "INSERT INTO conversation (organisation_id, sku, first_name, question, locale,"
        " created_at, helpful, unhelpful, embeddable, retailer_locale, status)"
        " SELECT id, ?, 'Ann', 'Does it fit', 'en-GB', '2026-01-01 00:00:00', 0, 0, ?,"
        " 'en-GB', ? FROM organisation WHERE trkref = 'D10'",
        sku,
        False,
        status,
    )


def test_each_change_in_plain_sql_moves_its_products_stamp(
    store: Store, organisation: object
) -> None:
    first = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    given = answer(store, NewAnswer("D10", first.id, "Yes", "Bo"), CALLER)
    other = create(store, NewConversation("D10", "Cy", "Fits?", "S2"), CALLER)
    changes: list[tuple[str, tuple[Any, ...]]] = [
        ("UPDATE conversation SET question = 'Changed' WHERE id = ?", (first.id,)),
        ("UPDATE answer SET response = 'No' WHERE id = ?", (given.id,)),
        (
            "INSERT INTO answer (conversation_id, response, created_at, first_name, town,"
            " reviewer_segment, helpful, unhelpful, review_url, review_locale, response_type)"
            " VALUES (?, 'Maybe', '2026-01-01 00:00:00', 'Di', '', '', 0, 0, '', '', 'owner')",
            (first.id,),
        ),
        ("DELETE FROM answer WHERE id = ?", (given.id,)),
        ("UPDATE conversation_count SET answered_count = answered_count WHERE sku = ?", ("S1",)),
    ]
    for sql, params in changes:
        before, untouched = revision(store), stamp(store, "S2")
        execute(store, sql, *params)
        assert revision(store) > before, sql
        assert stamp(store, "S2") == untouched, sql
    # A conversation moved to another product moves both products' stamps.
    revisions = (revision(store), revision(store, "S2"))
    execute(store, "UPDATE conversation SET sku = 'S1' WHERE id = ?", other.id)
    assert revision(store) > revisions[0] and revision(store, "S2") > revisions[1]


def test_a_conversation_inserted_in_plain_sql_moves_its_products_stamp(
    store: Store, organisation: object
) -> None:
    create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    before = revision(store)
    insert_conversation_sql(store, "S1")
    insert_conversation_sql(store, "S3")  # a product without conversations until now
    assert revision(store) > before and revision(store, "S3") > 0


def test_conversations_deleted_in_plain_sql_are_counted_out_exactly(
    store: Store, organisation: object
) -> None:
    for sku in ("S1", "S1", "S3"):
        create(store, NewConversation("D10", "Ann", "Fits?", sku), CALLER)
    answer(store, NewAnswer("D10", 1, "Yes", "Bo"), CALLER)
    store.moderation.add_terms("D10", ["spam"])
    create(store, NewConversation("D10", "Cy", "spam", "S3"), CALLER)  # held: not counted
    assert stamp(store)[:2] == (2, 1) and stamp(store, "S3")[:2] == (1, 0)
    before = revision(store)
    execute(store, "DELETE FROM answer WHERE conversation_id = ?", 1)
    execute(store, "DELETE FROM conversation WHERE id = ?", 1)
    assert stamp(store)[:2] == (1, 0) and revision(store) > before
    execute(store, "DELETE FROM conversation WHERE sku = ?", "S3")
    assert stamp(store, "S3")[:2] == (0, 0)
    assert_counts_exact(store)


def test_the_revision_triggers_migrate_down_and_up(store: Store, organisation: object) -> None:
    runner = Runner(store.db, str(MIGRATIONS))
    with store.reading():
        assert runner.down(MIGRATION) == [MIGRATION]
    insert_conversation_sql(store, "S1")
    assert revision(store) == 0  # nothing moves it without the triggers
    with store.reading():
        assert runner.up() == [MIGRATION]
    first = create(store, NewConversation("D10", "Ann", "Fits?", "S1"), CALLER)
    before = revision(store)
    execute(store, "UPDATE conversation SET question = 'Changed' WHERE id = ?", first.id)
    assert stamp(store)[0] == 1 and revision(store) > before
