"""The dispatcher's statements read through indexes, never the whole job ledger (SQLite's
EXPLAIN QUERY PLAN, on the statements exactly as the store sends them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from storage import JobState, SQLiteStore
from storage.models import Claimant
from tests.storage.helpers import GUILD, USER, reserve

Recorded = list[tuple[str, Any]]


def record(store: SQLiteStore) -> Recorded:
    """Record every statement the store's database is asked to run from now on."""
    seen: Recorded = []
    db: Any = store.database
    for name in ("execute", "fetch_all", "fetch_one"):
        original: Callable[..., Awaitable[Any]] = getattr(db, name)

        async def recording(
            sql: str, params: Any = (), *args: Any, _run: Any = original, **kwargs: Any
        ) -> Any:
            seen.append((sql, params))
            return await _run(sql, params, *args, **kwargs)

        setattr(db, name, recording)
    return seen


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_dispatch_statements_use_indexes(store: SQLiteStore) -> None:
    """Picking, reading the member queues, claiming and expiring never scan ``jobs`` or
    every member: the waiting guilds and members come from partial indexes on
    ``queued > 0``, each member's queue from ``jobs_member_queue``."""
    job = await reserve(store, queued=True)
    await reserve(store, queued=True)
    seen = record(store)
    members = await store.jobs.waiting_members(member_running=2, server_running=10)
    assert [(m.guild_id, m.user_id) for m in members] == [(GUILD, USER)]
    one = await store.jobs.waiting_members(member_running=2, server_running=10, guild_id=GUILD)
    assert one == members
    assert len(await store.jobs.member_queues([(GUILD, USER)])) == 2
    assert await store.jobs.claim_queued(
        job.id, member_running=2, server_running=10, claimant=Claimant("p"), lease_seconds=9
    )
    assert await store.jobs.expire_queued(datetime(2000, 1, 1, tzinfo=UTC), "old") == []
    assert await store.jobs.release_hold(job.id, Claimant("p")) is False
    reserved = await store.jobs.get_job(job.id)
    assert reserved is not None and reserved.state is JobState.RESERVED
    assert len(seen) >= 5
    for sql, params in list(seen):
        plan = await store.database.fetch_all("EXPLAIN QUERY PLAN " + sql, params)
        details = [row["detail"] for row in plan]
        scans = [d for d in details if d.startswith("SCAN") and " USING " not in d]
        tables = [d for d in scans if d.split()[1] in {"jobs", "queue_members", "m", "g"}]
        assert not tables, (sql, details)
        assert not any("SCAN m " in d or d == "SCAN m" for d in details), (sql, details)
        if "g.guild_id = :guild_id" in sql:  # one guild: its row, not every waiting guild
            assert any(d.startswith("SEARCH g USING INDEX queue_guilds_waiting") for d in details)
