"""The queue's dispatcher: one owned background task that starts queued jobs.

It is woken by events (a job queued, a slot freed, a cancel) and also looks every
`QUEUE_CHECK_INTERVAL_SECONDS` as a safety net (and when a 429 hold or 402 pause ends).
Each round refunds jobs that waited too long (their notices go through the failure-notice
outbox), starts every job whose turn it is, and refreshes the cards of the jobs still
waiting (their position and estimates), within the card edit throttle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from discord.ext import commands

from core.queue import DispatchReport
from storage.models import JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

FAILURE_PAUSE_SECONDS = 1.0


class Queue(commands.Cog):
    """Owns the dispatcher task; cancels it when the cog unloads (bot shutdown)."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        """Start the dispatcher (after Delivery's start-up recovery, which loads first)."""
        self.bot.cards.info_provider = self.bot.queue.card_info
        self._task = asyncio.create_task(self._run(), name="happyhorse-queue-dispatcher")
        self._task.add_done_callback(self._ended)

    async def cog_unload(self) -> None:
        """Stop the dispatcher; a round in flight is cancelled and its work redone next start."""
        for task in (self._task, self._refresh):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresh = None
        self.bot.cards.info_provider = None

    @staticmethod
    def _ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Queue task %s failed", task.get_name(), exc_info=task.exception())

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        queue = self.bot.queue
        while True:
            try:
                report = await queue.dispatch()
                await self._show(report)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("A queue dispatch round failed; trying again")
                await asyncio.sleep(FAILURE_PAUSE_SECONDS)
            await queue.wait_for_work(queue.next_check_in())

    async def _show(self, report: DispatchReport) -> None:
        """Update the cards of jobs that started or expired, and refresh waiting ones.

        Waiting cards are refreshed by a separate task (at most one at a time), so a long
        queue's card edits never hold up starting jobs.
        """
        cards = self.bot.cards
        for job in report.started:
            async with cards.lock(job.id):
                await cards.update(job, force=True)
        for job in [*report.expired, *report.failed]:
            async with cards.lock(job.id):
                await cards.update(job, note=job.last_error, force=True)
            cards.forget(job.id)
        if report.still_queued and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(
                self._refresh_cards(report), name="happyhorse-queue-cards"
            )
            self._refresh.add_done_callback(self._ended)

    async def _refresh_cards(self, report: DispatchReport) -> None:
        """Show each waiting job's current position and estimates (throttled per card)."""
        infos = await self.bot.queue.card_infos(report.still_queued)
        for job in report.still_queued:
            async with self.bot.cards.lock(job.id):
                fresh = await self.bot.store.jobs.get_job(job.id)
                if fresh is not None and fresh.state is JobState.QUEUED:
                    await self.bot.cards.update(fresh, info=infos.get(job.id))


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Queue(bot))
