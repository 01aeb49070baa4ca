"""A ``Database`` that records every statement a store method runs, for the query-plan test.

``RecordingDatabase`` wraps an open database of either engine and passes every call
through unchanged, noting each statement's SQL and parameters on the way: single
statements, the statements of a ``transaction()`` block and each statement a transaction
program (``run``) yields. The test builds the real stores on it and calls their methods,
so what it checks is always what the methods run today, never a copy of their SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from storage.sql.database import Database, Engine, LockKey, Params, Program, T, Transaction


@dataclass(frozen=True)
class Statement:
    """One statement a store method ran, and the method (``label``) that ran it."""

    label: str
    sql: str
    params: Params


class _RecordingTransaction:
    """A transaction whose statements are recorded (see ``RecordingDatabase``)."""

    def __init__(self, inner: Transaction, note: Callable[[str, Params], None]) -> None:
        self._inner = inner
        self._note = note

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Record, then run one statement."""
        self._note(sql, params)
        return await self._inner.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Record, then run a query."""
        self._note(sql, params)
        return await self._inner.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """Record, then run a query for its first row."""
        self._note(sql, params)
        return await self._inner.fetch_one(sql, params)


class RecordingDatabase:
    """Passes every call to ``inner`` and records the statements under the current label.

    Set ``label`` (say ``"notices: jobs.claim_notices"``) before calling a store method;
    ``statements`` then holds what it ran, under that label.
    """

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.engine: Engine = inner.engine
        self.label = ""
        self.statements: list[Statement] = []

    def _note(self, sql: str, params: Params) -> None:
        self.statements.append(Statement(self.label, sql, params))

    async def execute(self, sql: str, params: Params = (), *, lock: LockKey | None = None) -> int:
        """Record, then run one statement."""
        self._note(sql, params)
        return await self.inner.execute(sql, params, lock=lock)

    async def fetch_all(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> list[Any]:
        """Record, then run a query."""
        self._note(sql, params)
        return await self.inner.fetch_all(sql, params, lock=lock)

    async def fetch_one(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> Any | None:
        """Record, then run a query for its first row."""
        self._note(sql, params)
        return await self.inner.fetch_one(sql, params, lock=lock)

    @asynccontextmanager
    async def transaction(self, *, lock: LockKey | None = None) -> AsyncIterator[Transaction]:
        """The inner transaction, with its statements recorded."""
        async with self.inner.transaction(lock=lock) as tx:
            yield _RecordingTransaction(tx, self._note)

    async def run(self, program: Callable[[], Program[T]], *, lock: LockKey | None = None) -> T:
        """Run the program on the inner database, recording each statement it yields."""

        def recorded() -> Program[T]:
            inner = program()
            try:
                query = next(inner)
                while True:
                    self._note(*query)
                    query = inner.send((yield query))
            except StopIteration as done:
                result: T = done.value
                return result
            finally:
                inner.close()

        return await self.inner.run(recorded, lock=lock)

    async def close(self) -> None:
        """Close the inner database."""
        await self.inner.close()
