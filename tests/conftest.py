"""Suite-wide fixtures: the throw-away PostgreSQL cluster and a fresh database per test.

PostgreSQL tests use ``pg_database`` (a migrated, empty database) or ``pg_empty_database``
(no schema at all). The cluster starts once per test session, on first use, and stops at
the end. Without PostgreSQL installed those tests are skipped with the reason, except
under ``CI=true``, where a missing PostgreSQL fails them: CI must test both engines.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest

from storage.postgres import PostgresDatabase
from tests.pg_cluster import TempCluster, find_binaries

TEMPLATE = "happyhorse_template"
"""A migrated database that every test database is copied from (cheaper than migrating)."""

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    """A PostgreSQL cluster in a temporary folder on a free loopback port."""
    binaries = find_binaries()
    if binaries is None:
        reason = (
            "PostgreSQL is not installed (no initdb in $PG_BIN, /usr/lib/postgresql/*/bin or "
            "PATH); install it (apt-get install postgresql) to run the PostgreSQL tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    cluster = TempCluster.start(binaries)
    try:
        asyncio.run(_migrate_template(cluster))
        yield cluster
    finally:
        cluster.stop()


async def _migrate_template(cluster: TempCluster) -> None:
    cluster.sql(f"CREATE DATABASE {TEMPLATE}")
    db = await PostgresDatabase.open(cluster.url(TEMPLATE))
    await db.close()


def _fresh(cluster: TempCluster, template: str) -> Iterator[str]:
    name = f"test_{os.getpid()}_{next(_names)}"
    cluster.sql(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield cluster.url(name)
    finally:
        cluster.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database(pg_cluster: TempCluster) -> Iterator[str]:
    """The URL of a new, migrated, empty PostgreSQL database, dropped after the test."""
    yield from _fresh(pg_cluster, TEMPLATE)


@pytest.fixture
def pg_empty_database(pg_cluster: TempCluster) -> Iterator[str]:
    """The URL of a new PostgreSQL database without any schema, dropped after the test."""
    yield from _fresh(pg_cluster, "template0")
