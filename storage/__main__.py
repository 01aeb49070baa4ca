"""``python -m storage backup FILE`` and ``python -m storage restore FILE``: SQLite backups.

The database is the one the bot uses: ``--database PATH``, else ``DATABASE_PATH`` (from the
environment or ``.env``), else ``data/happyhorse.sqlite3``. A backup can be taken while
the bot runs; a restore refuses while a bot runs on the database. With ``DATABASE_URL``
set (PostgreSQL) use ``pg_dump``/``pg_restore`` instead, as README ("Backups") shows.

Exit status: 0 done, 1 refused or failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from storage.backup import DEFAULT_LIVE_WITHIN_SECONDS, BackupError, backup, restore
from storage.opening import is_postgres_url
from storage.sqlite.database import DEFAULT_DATABASE_PATH
from storage.sqlite.filelock import DatabaseInUseError

POSTGRES_HELP = (
    "DATABASE_URL points at PostgreSQL: back it up with pg_dump and restore it with "
    "pg_restore (see README, 'Backups'); this command is for the SQLite file"
)


def parser() -> argparse.ArgumentParser:
    """The command line: ``backup FILE`` or ``restore FILE``, and ``--database``."""
    root = argparse.ArgumentParser(
        prog="python -m storage", description="Back up or restore the bot's SQLite database."
    )
    root.add_argument(
        "--database",
        type=Path,
        help="the SQLite file (default: DATABASE_PATH, else data/happyhorse.sqlite3)",
    )
    commands = root.add_subparsers(dest="command", required=True)
    take = commands.add_parser(
        "backup", help="copy the database to FILE, consistently, even while the bot runs"
    )
    take.add_argument("file", type=Path)
    put = commands.add_parser(
        "restore", help="replace the database with FILE (refused while a bot runs on it)"
    )
    put.add_argument("file", type=Path)
    put.add_argument(
        "--live-within",
        type=float,
        default=DEFAULT_LIVE_WITHIN_SECONDS,
        metavar="SECONDS",
        help="a registered bot process that beat this recently counts as running "
        f"(default {DEFAULT_LIVE_WITHIN_SECONDS:g})",
    )
    return root


def database_path(explicit: Path | None) -> Path | None:
    """The SQLite file to work on, or None when the bot is configured for PostgreSQL."""
    if explicit is not None:
        return explicit
    if is_postgres_url(os.environ.get("DATABASE_URL", "").strip()):
        return None
    return Path(os.environ.get("DATABASE_PATH", "").strip() or DEFAULT_DATABASE_PATH)


def main(argv: list[str] | None = None) -> int:
    """Run one command; print what was done, or why not, and return the exit status."""
    load_dotenv()
    args = parser().parse_args(argv)
    database = database_path(args.database)
    if database is None:
        print(f"error: {POSTGRES_HELP}", file=sys.stderr)
        return 2
    database = database.resolve()
    try:
        if args.command == "backup":
            info = asyncio.run(backup(database, args.file))
            print(
                f"Backed up {database} to {info.path}: {info.jobs} jobs, schema version "
                f"{info.schema_version}, {info.size_bytes:,} bytes"
            )
        else:
            done = asyncio.run(restore(args.file, database, live_within_seconds=args.live_within))
            kept = f"; the replaced database is kept at {done.previous}" if done.previous else ""
            print(
                f"Restored {database} from {args.file}: {done.restored.jobs} jobs, schema "
                f"version {done.restored.schema_version}{kept}"
            )
    except (BackupError, DatabaseInUseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
