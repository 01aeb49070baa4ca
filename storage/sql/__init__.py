"""The stores, written once in SQL that both engines run (see ``storage.sql.database``)."""

from storage.sql.common import MAX_BLOCKED_WORD_LENGTH, Clock, utc_now
from storage.sql.credits import SQLCreditStore
from storage.sql.database import (
    Database,
    Engine,
    Executor,
    LockKey,
    Params,
    Row,
    Transaction,
)
from storage.sql.guilds import SQLGuildSettingsStore
from storage.sql.jobs import SQLJobStore
from storage.sql.store import SQLStore

__all__ = [
    "MAX_BLOCKED_WORD_LENGTH",
    "Clock",
    "Database",
    "Engine",
    "Executor",
    "LockKey",
    "Params",
    "Row",
    "SQLCreditStore",
    "SQLGuildSettingsStore",
    "SQLJobStore",
    "SQLStore",
    "Transaction",
    "utc_now",
]
