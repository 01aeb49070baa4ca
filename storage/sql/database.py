"""What the shared SQL stores need from a database engine.

The stores in ``storage.sql`` are written once, in SQL both engines run unchanged:

* parameters are named ``:name`` (a mapping) or positional ``?`` (a sequence); the
  PostgreSQL adapter rewrites them to ``$n``;
* timestamps are epoch seconds (``REAL`` on SQLite, ``DOUBLE PRECISION`` on PostgreSQL),
  booleans are ``0``/``1`` integers, ids are 64-bit integers;
* rows are read by column name (``row["state"]``).

Where the engines' semantics differ, the difference lives behind ``Database.transaction``:

* ``transaction()`` without a lock is exclusive against every other unlocked transaction,
  like SQLite's ``BEGIN IMMEDIATE`` (PostgreSQL takes one advisory lock for it), so a
  read-then-write block behaves the same on both engines.
* ``transaction(lock=key)`` is exclusive against every other transaction holding the same
  key (PostgreSQL: an advisory lock on a 64-bit hash of the key; SQLite: its single writer
  already excludes everything). The credit reservation locks ``("member", guild, user)``
  so concurrent reservations of one member serialise across processes while other members
  go on in parallel.

Single statements need no transaction: a guarded ``UPDATE ... WHERE state = ...`` is atomic
on both engines (PostgreSQL re-checks the ``WHERE`` of a row another transaction changed
meanwhile), and its row count tells the caller whether it won.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeAlias

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
LockKey: TypeAlias = tuple[str | int, ...]
Engine: TypeAlias = Literal["sqlite", "postgres"]


class StoreUnavailableError(RuntimeError):
    """The database server could not be reached or refused us (never says the password)."""


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any:
        """The value of the named column."""
        ...


class Executor(Protocol):
    """Runs statements: the database itself, or one open transaction."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return how many rows it changed."""
        ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Run a query (or a statement with ``RETURNING``) and return every row."""
        ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """Run a query (or a statement with ``RETURNING``) and return its first row."""
        ...


class Database(Executor, Protocol):
    """An open, migrated database of either engine."""

    engine: Engine
    """Which engine this is, for the rare statement that must differ between them (for
    example a claim that adds ``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

    def transaction(
        self, *, lock: LockKey | None = None
    ) -> AbstractAsyncContextManager[Executor]:
        """A transaction: committed when the block ends, rolled back if it raises.

        See the module docstring for what ``lock`` excludes. Not re-entrant: inside the
        block use the yielded executor, not the database.
        """
        ...

    async def close(self) -> None:
        """Release the connection(s)."""
        ...
