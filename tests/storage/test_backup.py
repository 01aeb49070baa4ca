"""SQLite backups: consistent while a writer holds a transaction open, and a restore that
refuses while a bot has the database open or has beaten recently."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.backup import BackupError, backup, restore
from storage.sqlite import open_store
from storage.sqlite.filelock import DatabaseInUseError, FileLock
from tests.storage.helpers import GUILD, OTHER_USER, USER, reserve

REPO = Path(__file__).resolve().parents[2]
CREDITS = 10


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "happyhorse.sqlite3"


async def test_backup_holds_committed_work_only_and_never_waits_for_a_writer(
    db: Path, tmp_path: Path
) -> None:
    """A write transaction open during the backup is absent from it, whole; then present."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        await reserve(store, user_id=USER)
        await reserve(store, user_id=USER, duration=10)
        writer = sqlite3.connect(db, isolation_level=None, timeout=5)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE jobs SET prompt = 'half-written' WHERE id = 1")
        writer.execute("DELETE FROM jobs WHERE id = 2")
        # The writer holds SQLite's write lock: the backup neither waits nor sees its work.
        first = await backup(db, tmp_path / "one.sqlite3")
        writer.execute("COMMIT")
        writer.close()
        second = await backup(db, tmp_path / "two.sqlite3")
        balance = await store.credits.balance(GUILD, USER)
    finally:
        await store.close()
    assert (first.jobs, second.jobs) == (2, 1)
    with sqlite3.connect(first.path) as copy:
        assert copy.execute("SELECT prompt FROM jobs WHERE id = 1").fetchone()[0] != (
            "half-written"
        )
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    copied = await open_store(first.path, default_daily_credits=CREDITS)
    try:
        assert (await copied.credits.balance(GUILD, USER)).used == 3
    finally:
        await copied.close()
    assert balance.used == 1  # the live database moved on; the first copy did not
    assert not list(tmp_path.glob(".*partial*")), "no partial file is left behind"


async def test_restore_refuses_while_the_database_is_open(db: Path, tmp_path: Path) -> None:
    """A store open on the target (a running bot) holds the lock: restore says so."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        await reserve(store)
        saved = await backup(db, tmp_path / "saved.sqlite3")
        with pytest.raises(DatabaseInUseError, match=r"has .* open\. Stop it"):
            await restore(saved.path, db)
    finally:
        await store.close()
    done = await restore(saved.path, db)
    assert done.restored.jobs == 1
    assert done.previous is not None and done.previous.exists()


async def test_restore_refuses_while_a_registered_process_beats(db: Path, tmp_path: Path) -> None:
    """No lock held (a bot on another machine), but the registry shows a recent beat."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        saved = await backup(db, tmp_path / "saved.sqlite3")
        await store.processes.beat("otherhost:4242:abcd")
    finally:
        await store.close()
    with pytest.raises(DatabaseInUseError, match=r"otherhost:4242:abcd \(\d+ s ago\)"):
        await restore(saved.path, db)
    # A process silent for longer than the window is taken for stopped (killed).
    done = await restore(saved.path, db, live_within_seconds=0)
    assert done.restored.jobs == 0


async def test_a_bot_cannot_open_the_database_while_a_restore_holds_it(db: Path) -> None:
    """The other side of the lock: a bot starting mid-restore is refused, clearly."""
    await (await open_store(db, default_daily_credits=CREDITS)).close()
    lock = FileLock.exclusive(db)
    assert lock is not None
    try:
        with pytest.raises(DatabaseInUseError, match="being restored"):
            await open_store(db, default_daily_credits=CREDITS)
    finally:
        lock.release()
    store = await open_store(db, default_daily_credits=CREDITS)
    await store.close()


async def test_restore_brings_back_jobs_and_balances_and_keeps_the_replaced_file(
    db: Path, tmp_path: Path
) -> None:
    """After a restore the backup's jobs and balances are back; later work is set aside."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        kept = [await reserve(store, user_id=USER), await reserve(store, user_id=OTHER_USER)]
        saved = await backup(db, tmp_path / "saved.sqlite3")
        await reserve(store, user_id=USER, duration=10)  # after the backup
    finally:
        await store.close()
    done = await restore(saved.path, db)
    assert done.previous is not None
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        jobs = [j for u in (USER, OTHER_USER) for j in await store.jobs.recent_jobs(GUILD, u, 10)]
        assert sorted(j.id for j in jobs) == [j.id for j in kept]
        assert (await store.credits.balance(GUILD, USER)).used == 1
        assert (await store.credits.balance(GUILD, OTHER_USER)).used == 1
    finally:
        await store.close()
    replaced = await open_store(done.previous, default_daily_credits=CREDITS)
    try:
        assert (await replaced.credits.balance(GUILD, USER)).used == 3
    finally:
        await replaced.close()


async def test_restore_refuses_what_is_not_a_backup(db: Path, tmp_path: Path) -> None:
    """Not SQLite, not the bot's schema, or written by a newer bot: refused, target untouched."""
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a SQLite database"):
        await restore(junk, db)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    with pytest.raises(BackupError, match="not a HappyHorse bot database"):
        await restore(other, db)
    newer = tmp_path / "newer.sqlite3"
    store = await open_store(newer, default_daily_credits=CREDITS)
    await store.close()
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    with pytest.raises(BackupError, match="schema version 999"):
        await restore(newer, db)
    assert not db.exists()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


async def test_cli_backup_and_restore(db: Path, tmp_path: Path) -> None:
    """`python -m storage backup|restore FILE --database PATH` and their exit codes."""
    store = await open_store(db, default_daily_credits=CREDITS)
    try:
        await reserve(store)
        taken = run_cli("--database", str(db), "backup", str(tmp_path / "b.sqlite3"))
        assert taken.returncode == 0, taken.stderr
        assert "1 jobs" in taken.stdout
        refused = run_cli("--database", str(db), "restore", str(tmp_path / "b.sqlite3"))
        assert refused.returncode == 1
        assert "refusing to restore" in refused.stderr
    finally:
        await store.close()
    restored = run_cli("--database", str(db), "restore", str(tmp_path / "b.sqlite3"))
    assert restored.returncode == 0, restored.stderr
    assert "the replaced database is kept at" in restored.stdout


def test_cli_points_postgres_users_at_pg_dump(tmp_path: Path) -> None:
    """With DATABASE_URL on PostgreSQL and no --database, the CLI says to use pg_dump."""
    env = {**os.environ, "DATABASE_URL": "postgresql://bot@localhost/happyhorse"}
    done = run_cli("backup", str(tmp_path / "b.sqlite3"), env=env)
    assert done.returncode == 2
    assert "pg_dump" in done.stderr
