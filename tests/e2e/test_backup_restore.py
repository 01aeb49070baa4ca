"""A backup taken mid-run from a real `python bot.py`, while it writes, restored after it
stops: every job and balance in the backup comes back, and the next run settles each job
(no video posted twice, every charge matched)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from storage.models import GuildLimits, Job, JobState
from storage.sqlite import open_store
from tests.e2e.process import REPO
from tests.e2e.test_restart import (
    CREDITS,
    Harness,
    all_jobs,
    ask,
    card,
    harness,
    people,
    stop_cleanly,
    use_sandbox,
    video_posts,
    wait_cards_recorded,
    wait_jobs,
)

__all__ = ["harness"]


def storage_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storage", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def snapshot(h: Harness, backup: Path) -> tuple[list[Job], dict[int, int]]:
    """The jobs and each member's used credits in a backup (read from a copy of it)."""
    copy = h.tmp_path / "inspect.sqlite3"
    shutil.copyfile(backup, copy)
    jobs = await all_jobs(copy, people(h.world), h.world.guild.id)
    store = await open_store(copy, default_daily_credits=CREDITS)
    try:
        used = {
            m.id: (await store.credits.balance(h.world.guild.id, m.id)).used
            for m in people(h.world)
        }
    finally:
        await store.close()
    return jobs, used


def charged(jobs: list[Job]) -> Counter[int]:
    """Credits each member is charged for: every job not refunded."""
    totals: Counter[int] = Counter()
    for job in jobs:
        if job.refunded_at is None:
            totals[job.user_id] += job.cost
    return totals


async def test_backup_mid_run_restores_every_job_and_balance(harness: Harness) -> None:
    """Backup while commands are accepted and videos polled; restore; all of it is back."""
    h, world = harness, harness.world
    await use_sandbox(h, processing_after=0.3, complete_after=4.0)
    store = await open_store(h.db, default_daily_credits=CREDITS)
    try:
        await store.guilds.set_limits(
            world.guild.id,
            GuildLimits(member_running=0, member_queued=0, server_running=0),
            world.mod.id,
        )
    finally:
        await store.close()
    first = await h.start()
    early = [
        await ask(h.fake, world, member, f"early horse {n}")
        for n, member in enumerate([world.alice, world.bob, world.mod, world.alice])
    ]
    for inter in early:
        await card(inter)
    await wait_cards_recorded(h.db, world, len(early))

    # Writes in flight on every side: new commands being accepted and charged, and the
    # bot polling and recording the early jobs, while the backup is taken.
    backup = h.tmp_path / "backups" / "mid-run.sqlite3"
    late = [
        asyncio.create_task(ask(h.fake, world, member, f"late horse {n}"))
        for n, member in enumerate([world.bob, world.alice, world.mod])
    ]
    taken = await asyncio.to_thread(storage_cli, "--database", str(h.db), "backup", str(backup))
    await asyncio.gather(*late)
    assert taken.returncode == 0, taken.stderr

    saved, saved_used = await snapshot(h, backup)
    assert len(saved) >= len(early)
    assert [j.id for j in saved] == list(range(1, len(saved) + 1)), "no job is missing"
    assert any(not j.state.is_terminal for j in saved), "the backup was taken mid-run"
    assert saved_used == {m.id: charged(saved)[m.id] for m in people(world)}

    refused = storage_cli("--database", str(h.db), "restore", str(backup))
    assert refused.returncode == 1 and "refusing to restore" in refused.stderr
    await wait_jobs(h.db, world, lambda jobs: len(jobs) == len(early) + 3, "the late jobs")
    await stop_cleanly(first)

    restored = storage_cli("--database", str(h.db), "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    back = await all_jobs(h.db, people(world), world.guild.id)
    assert [(j.id, j.user_id, j.prompt, j.cost, j.state) for j in back] == [
        (j.id, j.user_id, j.prompt, j.cost, j.state) for j in saved
    ]
    _, used_back = await snapshot(h, h.db)
    assert used_back == saved_used

    # The next run picks the restored jobs up and settles every one of them.
    second = await h.start()
    await wait_jobs(
        h.db,
        world,
        lambda jobs: len(jobs) == len(saved) and all(j.state.is_terminal for j in jobs),
        "every restored job to be delivered or refunded",
        timeout=30.0,
    )
    await stop_cleanly(second)
    final = await all_jobs(h.db, people(world), world.guild.id)
    assert {j.state for j in final} <= {JobState.DELIVERED, JobState.REFUNDED}
    assert all(count == 1 for count in video_posts(h.fake, world).values())
    _, used_final = await snapshot(h, h.db)
    assert used_final == {m.id: charged(final)[m.id] for m in people(world)}
