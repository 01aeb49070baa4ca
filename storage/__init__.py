"""The bot's memory: SQLite via aiosqlite, behind the ``Store`` interface.

Discord-free and API-free: nothing here imports ``discord`` or ``happyhorse``.
"""

from storage.credits import MAX_CREDITS, Period, period_bounds, validate_credits
from storage.models import (
    ALLOWED_TRANSITIONS,
    RUNNING_STATES,
    TERMINAL_STATES,
    UNFINISHED_STATES,
    AllowanceSource,
    AuditAction,
    AuditEntry,
    Balance,
    CostTable,
    GuildLimits,
    GuildSettings,
    Job,
    JobState,
    NewJob,
    QueueRounds,
    UsageSummary,
    UserUsage,
)
from storage.sqlite import SQLiteStore, open_store
from storage.sqlite.database import (
    DEFAULT_DATABASE_PATH,
    Database,
    Migration,
    MigrationError,
    SchemaTooNewError,
    load_migrations,
)
from storage.store import CreditStore, GuildSettingsStore, JobStore, Store

__all__ = [
    "ALLOWED_TRANSITIONS",
    "DEFAULT_DATABASE_PATH",
    "MAX_CREDITS",
    "RUNNING_STATES",
    "TERMINAL_STATES",
    "UNFINISHED_STATES",
    "AllowanceSource",
    "AuditAction",
    "AuditEntry",
    "Balance",
    "CostTable",
    "CreditStore",
    "Database",
    "GuildLimits",
    "GuildSettings",
    "GuildSettingsStore",
    "Job",
    "JobState",
    "JobStore",
    "Migration",
    "MigrationError",
    "NewJob",
    "Period",
    "QueueRounds",
    "SQLiteStore",
    "SchemaTooNewError",
    "Store",
    "UsageSummary",
    "UserUsage",
    "load_migrations",
    "open_store",
    "period_bounds",
    "validate_credits",
]
