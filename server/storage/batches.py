"""Creates and votes written in batches: concurrent calls share one transaction on the write
connection (group commit, group_commit.py). Every item gets its outcome, or the error that
failed it alone, or its batch's."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TypeVar

import peewee

from server.service.domain import PendingCreate, StoredCreate, Vote
from server.service.errors import ConversationIdsExhausted, StorageUnavailable
from server.storage import conversations, votes
from server.storage.database import SharedConnection
from server.storage.errors import (
    DATABASE_ERRORS,
    FaultPeriods,
    OnUnavailable,
    as_domain_error,
    drop_frames,
    sequence_exhausted,
)
from server.storage.group_commit import GroupCommit

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class Batches:
    """The group commits of creates and of votes, on one write connection; each starts its
    writer thread with its first item."""

    def __init__(
        self, connection: SharedConnection, faults: FaultPeriods, on_unavailable: OnUnavailable
    ) -> None:
        self._connection = connection
        self._faults = faults
        self._on_unavailable = on_unavailable
        self.creates: GroupCommit[PendingCreate, StoredCreate] = GroupCommit(
            self.write_conversations,
            max_batch=conversations.MAX_BATCH,
            fail_queued_on=StorageUnavailable,
        )
        self.votes: GroupCommit[Vote, bool] = GroupCommit(
            self.write_votes, max_batch=votes.MAX_BATCH, fail_queued_on=StorageUnavailable
        )

    def close(self, timeout: float) -> None:
        """Refuse new items; write those queued, waiting up to `timeout` for each writer."""
        for writer in (self.creates, self.votes):
            writer.close(timeout)

    def write_conversations(self, batch: list[PendingCreate]) -> Sequence[StoredCreate | Exception]:
        """Write a batch in one statement; every create gets its outcome or its error."""
        return self._write_batch(conversations.insert_conversations, batch)

    def write_votes(self, batch: list[Vote]) -> Sequence[bool | Exception]:
        """Count a batch of votes in one transaction; every vote gets its outcome or its error."""
        now = datetime.datetime.now(datetime.UTC)
        return self._write_batch(lambda db, part: votes.record_votes(db, part, now), batch)

    def _write_batch(
        self,
        write: Callable[[peewee.Database, list[Item]], Sequence[Outcome | Exception]],
        batch: list[Item],
    ) -> Sequence[Outcome | Exception]:
        """A batch, written on the write connection: each item gets its outcome, or the error
        that failed it alone, or the batch's."""
        try:
            with self._connection.use() as db:
                outcomes = write(db, batch)
            self._faults.succeeded()
            return outcomes
        except ConversationIdsExhausted as error:
            return [error] * len(batch)
        except DATABASE_ERRORS as error:
            if sequence_exhausted(error):
                drop_frames(error)
                return [ConversationIdsExhausted()] * len(batch)
            failure = as_domain_error(error, self._on_unavailable)
            if isinstance(failure, StorageUnavailable):
                return [failure] * len(batch)
            if len(batch) == 1:
                return [failure]
            # One bad row fails the whole transaction: write each alone, so only it fails.
            return [outcome for item in batch for outcome in self._write_batch(write, [item])]
        except StorageUnavailable as error:  # the connection failed while this batch waited
            return [error] * len(batch)
