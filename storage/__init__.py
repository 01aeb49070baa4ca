"""The bot's memory: SQLite (default) or PostgreSQL, behind the ``Store`` interface.

``open_store(location, ...)`` opens either engine: a ``postgresql://`` URL selects
PostgreSQL, anything else is a SQLite file path. Both engines run the same store classes
(``storage.sql``); each engine package holds only its ``Database`` and migrations.

Discord-free and API-free: nothing here imports ``discord`` or ``happyhorse``.
"""

from storage.credits import MAX_CREDITS, Period, period_bounds, validate_credits
from storage.models import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    UNFINISHED_STATES,
    AllowanceSource,
    AuditAction,
    AuditEntry,
    Balance,
    CostTable,
    DayOutcomes,
    GuildLimits,
    GuildSettings,
    GuildStats,
    Job,
    JobState,
    MemberAdmission,
    MemberVideos,
    NewJob,
    QueueRounds,
    Reservation,
    UsageSummary,
    UserUsage,
)
from storage.opening import is_postgres_url, open_store, open_store_from_settings
from storage.sql import SQLStore
from storage.sql.database import StoreUnavailableError
from storage.sqlite import SQLiteStore
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
    "TERMINAL_STATES",
    "UNFINISHED_STATES",
    "AllowanceSource",
    "AuditAction",
    "AuditEntry",
    "Balance",
    "CostTable",
    "CreditStore",
    "Database",
    "DayOutcomes",
    "GuildLimits",
    "GuildSettings",
    "GuildSettingsStore",
    "GuildStats",
    "Job",
    "JobState",
    "JobStore",
    "MemberAdmission",
    "MemberVideos",
    "Migration",
    "MigrationError",
    "NewJob",
    "Period",
    "QueueRounds",
    "Reservation",
    "SQLStore",
    "SQLiteStore",
    "SchemaTooNewError",
    "Store",
    "StoreUnavailableError",
    "UsageSummary",
    "UserUsage",
    "is_postgres_url",
    "load_migrations",
    "open_store",
    "open_store_from_settings",
    "period_bounds",
    "validate_credits",
]
