"""A throw-away PostgreSQL cluster for tests and measurements.

``TempCluster.start()`` runs ``initdb`` into a fresh temporary folder, starts ``postgres``
on a free loopback port with ``pg_ctl`` and ``stop()`` shuts it down and deletes the folder.
PostgreSQL refuses to run as root, so when the tests run as root (CI containers) every
server binary runs as the ``postgres`` system user via ``runuser``, in a folder it owns.

The binaries are found in ``$PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``, else
on ``PATH``. ``find_binaries()`` returns ``None`` when PostgreSQL is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"
"""The system user server binaries run as when we are root."""

DB_SUPERUSER = "postgres"
"""The database superuser ``initdb`` creates (trust authentication, loopback only)."""


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class TempCluster:
    """A running throw-away cluster; ``url(database)`` builds connection URLs."""

    binaries: Path
    folder: Path
    port: int

    @classmethod
    def start(cls, binaries: Path | None = None, *, durable: bool = False) -> TempCluster:
        """initdb + pg_ctl start on a free loopback port; raises if PostgreSQL is missing.

        ``durable=False`` (tests) turns fsync off: the cluster is deleted afterwards anyway.
        ``durable=True`` keeps PostgreSQL's crash-safe defaults, for honest measurements.
        """
        binaries = binaries or find_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb found; set PG_BIN)")
        folder = Path(tempfile.mkdtemp(prefix="happyhorse-pg-"))
        cluster = cls(binaries, folder, _free_port())
        try:
            if os.geteuid() == 0:
                shutil.chown(folder, SERVER_USER, SERVER_USER)
            cluster._run(
                "initdb", "-D", str(folder / "data"), "-U", DB_SUPERUSER, "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            options = [
                f"-p {cluster.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={folder}",
                "-c max_connections=300",
            ]
            if not durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            cluster._run(
                "pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
                "-o", " ".join(options), "-w", "-t", "60", "start",
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cluster

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``database`` as the superuser over loopback TCP."""
        return f"postgresql://{DB_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one SQL statement with ``psql`` as the superuser; return its output."""
        done = subprocess.run(
            [
                str(self.binaries / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_SUPERUSER, "-d", database,
                "-c", statement,
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def log(self) -> str:
        """The server log so far (for failure messages)."""
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, binary: str, *args: str) -> None:
        command = [str(self.binaries / binary), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(
                f"{binary} failed ({done.returncode}): {done.stderr.strip() or done.stdout}\n"
                f"{self.log()[-2000:]}"
            )
