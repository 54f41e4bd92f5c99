"""Stamp reads: what a product's rows in conversation_count hold (conversations, answers,
revision), read alone, for the entity tags of conditional reads (server/service/conditional.py).

Every change to what a List, a Detail or a page of answers of a product shows changes
these in its own transaction (the database's triggers, server/storage/read_cache.py), so
a stamp names one state of everything such a read can show. One indexed row: a product's
row, or a conversation's joined to its product's, scoped to the organisation asked for.
"""

from __future__ import annotations

import functools

import peewee

from server.service.domain import SHOPPER, Stamp
from server.storage.models import ConversationCountRow, ConversationRow, OrganisationRow, database
from server.storage.prepared import Prepared, parameter, prepare


@functools.lru_cache(maxsize=4)
def _conversation_statement(db: peewee.Database, published: bool) -> Prepared:
    """A conversation's product stamp, when the conversation is the `trkref`'s (and
    `published`: when it is published)."""
    counts = ConversationCountRow
    product = (
        (counts.organisation == ConversationRow.organisation)
        & (counts.sku == ConversationRow.sku)
        & (counts.locale == ConversationRow.locale)
    )
    found = (ConversationRow.id == parameter("id")) & (
        OrganisationRow.trkref == parameter("trkref")
    )
    if published:
        found &= ConversationRow.status == peewee.SQL("'published'")
    return prepare(
        ConversationRow.select(
            peewee.fn.COALESCE(counts.question_count, 0),
            peewee.fn.COALESCE(counts.answers_count, 0),
            peewee.fn.COALESCE(counts.revision, 0),
        )
        .join(OrganisationRow)
        .switch(ConversationRow)
        .join(counts, peewee.JOIN.LEFT_OUTER, on=product)
        .where(found)
    )


@functools.lru_cache(maxsize=4)
def _product_statement(db: peewee.Database, by_locale: bool) -> Prepared:
    """A product's stamp in one locale, or summed over its locales (each part only grows,
    so the sums change whenever one of them does)."""
    counts = ConversationCountRow
    organisation = OrganisationRow.select(OrganisationRow.id).where(
        OrganisationRow.trkref == parameter("trkref")
    )
    where = (counts.organisation == organisation) & (counts.sku == parameter("sku"))
    if by_locale:
        where &= counts.locale == parameter("locale")
    return prepare(
        counts.select(
            peewee.fn.COALESCE(peewee.fn.SUM(counts.question_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(counts.answers_count), 0),
            peewee.fn.COALESCE(peewee.fn.SUM(counts.revision), 0),
        ).where(where)
    )


def conversation_stamp(asked: tuple[str, int, str]) -> Stamp | None:
    """The stamp of the product of conversation `id` of organisation `trkref`; None when
    there is no such conversation of that organisation, or, for a shopper (`role`), no such
    published one: a shopper's If-None-Match finds nothing it could not read."""
    trkref, conversation_id, role = asked
    db = database.obj
    statement = _conversation_statement(db, role == SHOPPER)
    rows = statement.run(db, {"id": conversation_id, "trkref": trkref})
    if not rows:
        return None
    questions, answers, revision = rows[0]
    return (int(questions), int(answers), int(revision))


def product_stamp(asked: tuple[str, str, str | None]) -> Stamp:
    """The stamp of product `sku` of organisation `trkref`, in `locale` or in every locale;
    all zeros for a product without conversations."""
    trkref, sku, locale = asked
    db = database.obj
    values = {"trkref": trkref, "sku": sku, "locale": locale}
    [(questions, answers, revision)] = _product_statement(db, locale is not None).run(db, values)
    return (int(questions), int(answers), int(revision))
