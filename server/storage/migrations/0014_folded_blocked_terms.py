"""Blocked terms are stored folded, in the form screening matches them in (the command line
and the API fold each term before storing it): the terms stored before are folded here, and
two that fold alike become one. The organisations whose terms change get a new terms
revision. Folding loses the spelling, so `down` leaves the folded terms as they are."""

from peewee import *

from server.service.text_folding import fold_words


def up(migrator, db):
    rows = list(db.execute_sql("SELECT id, organisation_id, term FROM blocked_term"))
    kept, wanted, changed = set(), set(), set()
    for row_id, organisation_id, term in rows:
        folded = fold_words(term).strip()[:200]
        if folded == term:
            kept.add((organisation_id, term))
            continue
        changed.add(organisation_id)
        db.execute_sql(f"DELETE FROM blocked_term WHERE id = {db.param}", (row_id,))
        if folded:
            wanted.add((organisation_id, folded))
    for organisation_id, folded in sorted(wanted - kept):
        db.execute_sql(
            f"INSERT INTO blocked_term (organisation_id, term) VALUES ({db.param}, {db.param})",
            (organisation_id, folded),
        )
    for organisation_id in sorted(changed):
        db.execute_sql(
            f"UPDATE organisation SET terms_revision = terms_revision + 1 WHERE id = {db.param}",
            (organisation_id,),
        )


def down(migrator, db):
    pass
