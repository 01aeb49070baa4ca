"""The command payload hash per sync target: compare, sync, remember, one process at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage import SQLStore, open_store

TARGET = "app:1:guild:2"


class Syncs:
    """A stand-in for Discord's sync endpoint that counts calls and can be held open."""

    def __init__(self) -> None:
        self.count = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> None:
        self.count += 1
        self.entered.set()
        await self.release.wait()


async def test_syncs_once_per_payload_and_again_when_it_changes(store: SQLStore) -> None:
    """Same hash: no sync; a new hash: one sync, then remembered."""
    syncs = Syncs()
    sync_store = store.command_sync
    assert await sync_store.stored_hash(TARGET) is None
    assert await sync_store.sync_if_changed(TARGET, "a" * 64, syncs)
    assert not await sync_store.sync_if_changed(TARGET, "a" * 64, syncs)
    assert not await sync_store.sync_if_changed(TARGET, "a" * 64, syncs)
    assert await sync_store.sync_if_changed(TARGET, "b" * 64, syncs)
    assert await sync_store.sync_if_changed("app:1:global", "b" * 64, syncs)
    assert syncs.count == 3
    assert await sync_store.stored_hash(TARGET) == "b" * 64
    await sync_store.forget(TARGET)
    assert await sync_store.sync_if_changed(TARGET, "b" * 64, syncs)


async def test_a_failed_sync_stores_nothing(store: SQLStore) -> None:
    """Discord refused the sync: the hash is not stored, so the next start tries again."""

    async def refused() -> None:
        raise RuntimeError("400 Bad Request")

    with pytest.raises(RuntimeError, match="400"):
        await store.command_sync.sync_if_changed(TARGET, "a" * 64, refused)
    assert await store.command_sync.stored_hash(TARGET) is None


async def test_processes_starting_together_sync_once(db_path: str | Path) -> None:
    """Two processes (two connections) with the same payload: one syncs, the other waits
    for it under the lock, then finds the hash and skips."""
    first = await open_store(db_path, default_daily_credits=10)
    second = await open_store(db_path, default_daily_credits=10)
    try:
        syncs = Syncs()
        syncs.release.clear()
        one = asyncio.create_task(first.command_sync.sync_if_changed(TARGET, "c" * 64, syncs))
        await syncs.entered.wait()  # the first holds the lock, mid-sync
        two = asyncio.create_task(second.command_sync.sync_if_changed(TARGET, "c" * 64, syncs))
        await asyncio.sleep(0)
        assert not two.done()
        syncs.release.set()
        assert sorted(await asyncio.gather(one, two)) == [False, True]
        assert syncs.count == 1
    finally:
        await first.close()
        await second.close()
