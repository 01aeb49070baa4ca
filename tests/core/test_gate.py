"""The 402/429 submit gate, kept in the database: shared by every process, kept by a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.jobs import JobDraft, JobService
from core.queue import BUSY_STATUS, OUT_OF_CREDITS_STATUS, QueueService, StartKind, SubmitGate
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from happyhorse.sandbox import SandboxServer
from storage import SQLStore, open_store
from storage.models import JobState
from tests.core.conftest import Clock

GUILD, CHANNEL, ALICE, BOB = 1, 2, 10, 20


def draft(user: int = ALICE) -> JobDraft:
    return JobDraft(
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=user,
        mode="text-to-video",
        prompt="a horse in the rain",
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
    )


async def test_gate_pauses_on_402_with_doubling_backoff_and_resumes_on_success(
    store: SQLStore, clock: Clock
) -> None:
    gate = SubmitGate(store.gate, 30.0, 100.0, clock)
    await gate.refresh()
    assert gate.is_open() and gate.status is None
    assert await gate.on_out_of_credits() == 30.0
    assert not gate.is_open() and gate.status == OUT_OF_CREDITS_STATUS
    clock.advance(30)
    assert gate.is_open()  # time for one probe; still reported as paused
    assert gate.status == OUT_OF_CREDITS_STATUS
    assert await gate.on_out_of_credits() == 60.0
    assert await gate.on_out_of_credits() == 100.0  # capped
    assert await gate.on_accepted() is True
    assert gate.is_open() and gate.status is None and not gate.out_of_credits
    assert (await gate.refresh()).not_before is None
    assert await gate.on_out_of_credits() == 30.0  # the backoff starts over


async def test_gate_holds_until_retry_after_on_429(store: SQLStore, clock: Clock) -> None:
    gate = SubmitGate(store.gate, 30.0, 600.0, clock)
    assert await gate.on_rate_limited(7.0) == 7.0
    assert gate.status == BUSY_STATUS and gate.seconds_until_open() == pytest.approx(7.0)
    await gate.on_rate_limited(2.0)  # a shorter hold never shortens the current one
    assert gate.seconds_until_open() == pytest.approx(7.0)
    clock.advance(7)
    assert gate.is_open() and gate.status is None
    assert await gate.on_accepted() is False


async def test_only_one_process_takes_the_probe_of_a_pause(store: SQLStore, clock: Clock) -> None:
    """Two processes' gates on one database: when the backoff is over, one probes."""
    first, second = (SubmitGate(store.gate, 30.0, 600.0, clock) for _ in range(2))
    await first.on_out_of_credits()
    assert not await first.claim_probe()  # not due yet
    clock.advance(30)
    assert await second.claim_probe()
    assert not await first.claim_probe()  # the other process has it
    clock.advance(30)
    assert await first.claim_probe()  # that probe never answered: try again


@pytest.fixture
async def second_client(settings: BotSettings) -> AsyncIterator[HappyHorseClient]:
    async with HappyHorseClient(settings.client) as client:
        yield client


async def test_a_402_seen_by_one_process_pauses_the_other_and_survives_a_restart(
    store: SQLStore,
    service: JobService,
    settings: BotSettings,
    clock: Clock,
    sandbox: SandboxServer,
    second_client: HappyHorseClient,
    database: str | Path,
) -> None:
    """Regression (the pause was in one process's memory): process A's submit gets a 402;
    process B's next request is queued without a generate call, and a restarted process
    still sees the pause and its backoff, on SQLite and PostgreSQL."""
    other = JobService(store, second_client, settings, clock=clock)
    for jobs in (service, other):
        await store.processes.beat(jobs.claimant.process_id)
    queue_a = QueueService(store, service, settings, clock=clock)
    queue_b = QueueService(store, other, settings, clock=clock)

    sandbox.state.faults.add("generate", status=402, count=1)
    held = await queue_a.start(await queue_a.accept(draft(ALICE)))
    assert held.kind is StartKind.QUEUED and held.job.state is JobState.QUEUED
    generates = sandbox.state.request_counts.get("generate", 0)

    waiting = await queue_b.start(await queue_b.accept(draft(BOB)))
    assert waiting.kind is StartKind.QUEUED and waiting.message is not None
    assert "out of credits" in waiting.message
    assert sandbox.state.request_counts.get("generate", 0) == generates  # B never asked
    assert (await queue_b.card_info(waiting.job)).paused == OUT_OF_CREDITS_STATUS
    assert await queue_b.service_status() == OUT_OF_CREDITS_STATUS

    restarted_store = await open_store(database, default_daily_credits=4, clock=clock)
    try:
        gate = SubmitGate(restarted_store.gate, settings.queue_pause_backoff_seconds, 3600, clock)
        state = await gate.refresh()
        assert gate.out_of_credits and not gate.is_open()
        assert state.not_before == clock() + timedelta(seconds=settings.queue_pause_backoff_seconds)
        # The backoff doubles from where it was, not from the start.
        assert await gate.on_out_of_credits() == 2 * settings.queue_pause_backoff_seconds
    finally:
        await restarted_store.close()
