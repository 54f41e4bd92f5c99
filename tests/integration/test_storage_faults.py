"""Database faults on a real SQLite file: classified once, logged once, never hiding data loss."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import peewee
import pytest

from server.service.domain import DEFAULT_ORDER, Organisation, PageQuery
from server.service.errors import StorageUnavailable
from server.service.organisations import add_organisation
from server.storage.errors import FaultPeriods, as_domain_error
from server.storage.store import Store

DEMO = Organisation("D10", "Demo", "en-GB")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/faults.db")
    store.migrate()
    add_organisation(store, DEMO)
    return store


def test_a_deleted_file_is_unavailable_and_not_recreated(
    sqlite_store: Store, tmp_path: Path
) -> None:
    (tmp_path / "faults.db").unlink()
    try:
        for unit_of_work in (sqlite_store.organisations.list_all, sqlite_store.ping):
            with pytest.raises(StorageUnavailable) as raised:
                unit_of_work()
            assert str(raised.value) == (
                "database unavailable (database file deleted or replaced); retry later"
            )
        assert not (tmp_path / "faults.db").exists()
    finally:
        sqlite_store.close()


def test_detail_and_list_stop_reading_a_file_deleted_at_once(
    sqlite_store: Store, tmp_path: Path
) -> None:
    query = PageQuery("D10", "S", None, DEFAULT_ORDER, 20)
    try:
        assert asyncio.run(sqlite_store.read_page(query)).question_count == 0  # a check passes
        (tmp_path / "faults.db").unlink()
        for read in (sqlite_store.read_page(query), sqlite_store.read_conversation(1, 20)):
            with pytest.raises(StorageUnavailable, match="deleted or replaced"):
                asyncio.run(read)
        assert not (tmp_path / "faults.db").exists()
    finally:
        sqlite_store.close()


def test_the_same_file_put_back_ends_the_fault_and_another_file_does_not(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path, kept = tmp_path / "faults.db", tmp_path / "kept.db"
    os.link(path, kept)
    path.unlink()
    try:
        with pytest.raises(StorageUnavailable):
            sqlite_store.ping()
        os.rename(kept, path)
        assert sqlite_store.organisations.list_all() == [DEMO]
        os.replace(shutil.copy(path, tmp_path / "copy.db"), path)
        with pytest.raises(StorageUnavailable):
            sqlite_store.organisations.list_all()
    finally:
        sqlite_store.close()


def test_a_full_disk_hidden_behind_a_failed_rollback_is_named() -> None:

    try:
        try:
            raise peewee.OperationalError(_sqlite_error("database or disk is full", 13))
        except peewee.OperationalError:
            raise peewee.OperationalError(
                _sqlite_error("cannot rollback - no transaction is active", 1)
            ) from None
    except peewee.OperationalError as error:
        hidden = error
    # `from None` keeps the context: what SQLite said first still counts.
    assert str(as_domain_error(hidden)) == "database unavailable (disk full); retry later"


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def test_a_fault_is_logged_when_it_begins_and_when_it_ends_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = FaultPeriods()
    caplog.set_level(logging.INFO, logger="server.storage.errors")
    for _ in range(500):
        faults.failed(peewee.OperationalError("database is locked"))
    assert not faults.probe_succeeded()  # calls failed since the last probe
    assert faults.probe_succeeded()  # none since: over
    faults.succeeded()
    assert [record.getMessage() for record in caplog.records] == [
        "database unavailable (locked): database is locked; calls fail with UNAVAILABLE and "
        "health reports NOT_SERVING until it recovers",
        "database available again, health reports SERVING: 500 failures in "
        + caplog.records[1].getMessage().rsplit(" in ", 1)[1],
    ]
