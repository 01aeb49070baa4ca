"""The lock beside a SQLite file that tells a running bot from a restore.

Every ``Database`` holds a *shared* ``flock`` on ``<file>.lock`` while it is open (any
number of bots and tools at once); ``python -m storage restore`` takes it *exclusively*,
without waiting. So a restore cannot start while anything has the database open, and
nothing can open it while a restore is replacing it. The kernel drops the lock when its
holder exits, even by SIGKILL, so a crashed bot never leaves the file locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from storage.sql.database import StoreUnavailableError


class DatabaseInUseError(StoreUnavailableError):
    """The SQLite file is locked by a restore, or (for a restore) is open elsewhere."""


def lock_path(database: Path) -> Path:
    """The lock file of the database at ``database``."""
    return database.with_name(database.name + ".lock")


class FileLock:
    """One held ``flock`` on a database's lock file; ``release()`` lets it go."""

    def __init__(self, fd: int, path: Path) -> None:
        """Use ``shared`` or ``exclusive``."""
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def _take(cls, database: Path, mode: int) -> FileLock | None:
        path = lock_path(database)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    @classmethod
    def shared(cls, database: Path) -> FileLock:
        """Hold the database open alongside others; refuse while a restore runs."""
        held = cls._take(database, fcntl.LOCK_SH)
        if held is None:
            raise DatabaseInUseError(
                f"{database} is being restored from a backup (python -m storage restore "
                f"holds {lock_path(database).name}); start the bot again when it has finished"
            )
        return held

    @classmethod
    def exclusive(cls, database: Path) -> FileLock | None:
        """The database to oneself, or None when a bot or tool has it open."""
        return cls._take(database, fcntl.LOCK_EX)

    def release(self) -> None:
        """Let the lock go (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
