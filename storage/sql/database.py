"""What the shared SQL stores need from a database engine.

The stores in ``storage.sql`` are written once, in SQL both engines run unchanged:

* parameters are named ``:name`` (a mapping) or positional ``?`` (a sequence); the
  PostgreSQL adapter rewrites them to ``$n``;
* timestamps are epoch seconds (``REAL`` on SQLite, ``DOUBLE PRECISION`` on PostgreSQL),
  booleans are ``0``/``1`` integers, ids are 64-bit integers;
* rows are read by column name (``row["state"]``).

Where the engines' semantics differ, the difference lives behind two hooks:

* ``transaction()`` is exclusive against every other transaction and every locked
  statement, like SQLite's ``BEGIN IMMEDIATE`` (PostgreSQL takes one advisory lock in
  exclusive mode), so a read-then-write block behaves the same on both engines.
* ``fetch_one(sql, params, lock=key)`` (and ``execute``/``fetch_all``) runs one statement
  exclusive against every other statement or transaction holding the same key, and
  against unkeyed transactions (PostgreSQL: the shared advisory lock in shared mode, then
  an advisory lock on a 64-bit hash of the key, for the statement's own transaction;
  SQLite: its single writer already serialises every write). The credit reservation locks
  ``("member", guild, user)``, so one member's reservations serialise across processes
  while other members' go on in parallel. ``transaction(lock=key)`` does the same for a
  block of statements.

A read-decide-write block that must be ONE transaction and cheap on both engines (the
acknowledgement path's admission and reservation) is written once as a *program*: a
generator that yields ``(sql, params)`` and is sent back each statement's rows.
``Database.run(program, lock=key)`` runs it in one transaction: on SQLite in one trip to
the database thread inside the group commit (see ``storage.sqlite.database``), on
PostgreSQL as ``transaction(lock=key)``. An exception the program raises (a refusal)
rolls the whole of it back and reaches the caller.

Single statements need no lock to be atomic: a guarded ``UPDATE ... WHERE state = ...``
is atomic on both engines (PostgreSQL re-checks the ``WHERE`` of a row another transaction
changed meanwhile), and its row count tells the caller whether it won. A lock is needed
when a statement's decision rests on *other* rows that a concurrent statement may be
inserting, as a reservation's balance check does.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
LockKey: TypeAlias = tuple[str | int, ...]
Engine: TypeAlias = Literal["sqlite", "postgres"]
T = TypeVar("T")
Query: TypeAlias = tuple[str, Params]
Program: TypeAlias = Generator[Query, list[Any], T]
"""A transaction body: yields each statement, is sent its rows, returns the result."""


class StoreUnavailableError(RuntimeError):
    """The database server could not be reached or refused us (never says the password)."""


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any:
        """The value of the named column."""
        ...


class Executor(Protocol):
    """Runs statements."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return how many rows it changed."""
        ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Run a query (or a statement with ``RETURNING``) and return every row."""
        ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """Run a query (or a statement with ``RETURNING``) and return its first row."""
        ...


class Transaction(Executor, Protocol):
    """Statements inside one open transaction (see ``Database.transaction``)."""


def drive_sync(program: Program[T], fetch_all: Callable[[str, Params], list[Any]]) -> T:
    """Run ``program`` to its result, answering each statement with ``fetch_all``."""
    try:
        query = next(program)
        while True:
            query = program.send(fetch_all(*query))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        program.close()


async def drive(program: Program[T], executor: Executor) -> T:
    """Run ``program`` statement by statement on ``executor`` (a database or a transaction).

    On a database (not a transaction) each statement commits by itself: use this only for
    programs that read, where no single snapshot is needed.
    """
    try:
        query = next(program)
        while True:
            query = program.send(await executor.fetch_all(*query))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        program.close()


class Database(Protocol):
    """An open, migrated database of either engine."""

    engine: Engine
    """Which engine this is, for the rare statement that must differ between them (for
    example a claim that adds ``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

    async def execute(self, sql: str, params: Params = (), *, lock: LockKey | None = None) -> int:
        """Run one statement (under ``lock``, if given); return how many rows it changed."""
        ...

    async def fetch_all(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> list[Any]:
        """Run a query or ``RETURNING`` statement (under ``lock``); return every row."""
        ...

    async def fetch_one(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> Any | None:
        """Run a query or ``RETURNING`` statement (under ``lock``); return its first row."""
        ...

    def transaction(
        self, *, lock: LockKey | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A transaction: committed when the block ends, rolled back if it raises.

        See the module docstring for what it excludes, with and without ``lock``. Not
        re-entrant: inside the block use the yielded transaction, not the database.
        """
        ...

    async def run(
        self, program: Callable[[], Program[T]], *, lock: LockKey | None = None
    ) -> T:
        """Run ``program()`` in one transaction (under ``lock``) and return its result.

        See the module docstring; the program must only yield statements and decide in
        plain Python (no awaiting, no other database calls). Whatever it raises rolls it
        back and is raised here.
        """
        ...

    async def close(self) -> None:
        """Release the connection(s)."""
        ...
