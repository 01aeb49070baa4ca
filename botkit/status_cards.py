"""Live status cards: the deferred response of a request, edited as its job moves on.

Edits are throttled per card (Discord does not publish per-channel edit limits; a few
seconds apart is safe), and an interaction token is only used while it is comfortably
younger than its 15-minute lifetime. After that, or after a restart (when no token is
kept), the card is edited as an ordinary channel message through its stored id.

Edits are requested, not awaited (`request`): the newest request per card replaces an
older one still waiting, and a few worker tasks send them, one edit per card at a time.
So a slow or rate-limited edit never holds up a poll or a delivery, and a card that
changed three times while Discord was slow is edited once, to its latest state.

Every edit of a card, the workers' included, holds that card's lock (`lock`), and a card
shown in a final state (posted, failed, refunded, cancelled) is never edited again by
this process: a refresh that read the job before it settled cannot overwrite the final
edit. Per process: each process keeps only the cards it edited, in maps bounded by
`MAX_CARDS` (least recently used forgotten first), because with several processes a
job's final edit is often made by another process and its card is never forgotten here.

Cards are public: every edit is drawn in the job's server's language (`core.languages`,
cached per guild), read when the edit is made, so background edits need no interaction.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import discord

from botkit.cards import status_card
from botkit.views import cancel_view
from core.i18n import ENGLISH, Tr
from core.languages import GuildLanguages
from core.queue import CardInfo
from happyhorse.models import TaskState
from storage.models import Job, JobState

log = logging.getLogger(__name__)

# How long shutdown waits for final card edits already asked for.
FINAL_FLUSH_SECONDS = 2.0

# Stop using a token this long before it expires, so no edit races the deadline.
TOKEN_SAFETY_MARGIN = datetime.timedelta(seconds=90)
INVALID_WEBHOOK_TOKEN = 50027
# Card edits sent at once (each to a different card).
EDIT_WORKERS = 3
# Edits kept for cards not shown yet (jobs whose card is never shown are dropped).
MAX_UNPLACED = 1000
# States a card may still be drawn in once it showed a final one.
FINAL_STATES = frozenset({JobState.DELIVERED, JobState.REFUNDED, JobState.FAILED, JobState.EXPIRED})
# Cards (and finished job ids) remembered per process; the least recently used go first.
MAX_CARDS = 5000


@dataclass
class _Request:
    job: Job
    api_state: TaskState | None
    note: str | None
    final: bool


@dataclass
class _Card:
    interaction: discord.Interaction | None
    last_edit: float = 0.0
    last_key: tuple[object, ...] = field(default=("", ""))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StatusCards:
    """Keeps each in-flight job's status card up to date without flooding Discord."""

    def __init__(
        self,
        client: discord.Client,
        *,
        min_interval: float,
        languages: GuildLanguages | None = None,
    ) -> None:
        """Edit through ``client``, at most once per ``min_interval`` seconds a card;
        ``languages`` gives each server's language for its cards (English without it)."""
        self._client = client
        self._languages = languages
        self._min_interval = min_interval
        # Per process, bounded (MAX_CARDS, least recently used out): the cards this process
        # edits; a job settled by another process is never forgotten here otherwise.
        self._cards: OrderedDict[int, _Card] = OrderedDict()
        # Jobs whose card showed a final state here: never redrawn (bounded the same way).
        self._finished: OrderedDict[int, None] = OrderedDict()
        # Queue position and estimates for a job (set by the queue cog).
        self.info_provider: Callable[[Job], Awaitable[CardInfo]] | None = None
        self._queued: dict[int, _Request] = {}
        self._editing: set[int] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False
        # Edits asked for before the card existed (the job outran its own card).
        self._unplaced: dict[int, _Request] = {}

    async def info(self, job: Job) -> CardInfo | None:
        """What the card shows beyond the job: position, estimates, a pause."""
        if self.info_provider is None:
            return None
        try:
            return await self.info_provider(job)
        except Exception:
            # A card is a courtesy: an estimate that fails must not stop the edit.
            log.exception("Could not work out the queue details of job %s", job.id)
            return None

    @staticmethod
    def view_for(job: Job, tr: Tr = ENGLISH) -> discord.ui.View | None:
        """The card's buttons: Cancel while queued, none once the job went to the API."""
        return cancel_view(job.id, tr) if job.state is JobState.QUEUED else None

    async def tr(self, job: Job) -> Tr:
        """The language of the job's card: its server's."""
        if self._languages is None:
            return ENGLISH
        return await self._languages.tr(job.guild_id)

    def request(
        self,
        job: Job,
        *,
        api_state: TaskState | None = None,
        note: str | None = None,
        final: bool = False,
    ) -> None:
        """Ask for the card to show this state; returns at once (see the module docstring).

        `final` edits regardless of the throttle and forgets the card afterwards.
        """
        if self._closed or (job.id in self._finished and job.state not in FINAL_STATES):
            return
        waiting = self._queued.get(job.id)
        if waiting is not None and waiting.final and not final:
            return  # a final state is never replaced by an earlier one arriving late
        self._queued[job.id] = _Request(job, api_state, note, final)
        if len(self._workers) < EDIT_WORKERS:
            task = asyncio.get_running_loop().create_task(self._work(), name="card-edits")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        while True:
            job_id = next((j for j in self._queued if j not in self._editing), None)
            if job_id is None:
                return
            req = self._queued.pop(job_id)
            self._editing.add(job_id)
            try:
                # The card's lock, as every other editor holds it: a refresh that read the
                # job earlier cannot land after (and over) this edit.
                async with self.lock(job_id):
                    await self.update(
                        req.job, api_state=req.api_state, note=req.note, force=req.final
                    )
            except Exception:
                log.exception("Editing the card of job %s failed", job_id)
            finally:
                self._editing.discard(job_id)
            if req.final:
                self.forget(job_id)

    async def idle(self) -> None:
        """Wait until every edit asked for so far was sent (or failed)."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)

    async def close(self, flush_seconds: float = FINAL_FLUSH_SECONDS) -> None:
        """At shutdown: send the final edits still waiting (within `flush_seconds`), drop
        the rest and cancel the workers.

        A final state (posted, failed, refunded) is shown once and never redone after a
        restart, so it is flushed; an intermediate one is redrawn by the next run anyway.
        """
        self._closed = True
        self._queued = {job_id: req for job_id, req in self._queued.items() if req.final}
        if self._queued and self._workers:
            # The workers return once nothing is left to edit.
            _, unfinished = await asyncio.wait(set(self._workers), timeout=flush_seconds)
            if unfinished:
                log.warning("Shutting down with %d card edits unsent", len(self._queued))
        self._queued.clear()
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    def track(self, job_id: int, interaction: discord.Interaction) -> None:
        """Remember the interaction whose response is this job's card.

        A final edit asked for before this (a quick job can complete, or even be posted,
        before its card is shown) is sent now, so the card does not stay behind; any other
        waits for the throttle like every edit (the card was drawn just now).
        """
        card = self._card(job_id)
        card.interaction = interaction
        card.last_edit = time.monotonic()
        missed = self._unplaced.pop(job_id, None)
        if missed is not None:
            self.request(
                missed.job, api_state=missed.api_state, note=missed.note, final=missed.final
            )

    def lock(self, job_id: int) -> asyncio.Lock:
        """Held around "read the job, edit its card" so two editors of one card cannot
        leave it showing an older state (say, a Cancel button after the job started)."""
        return self._card(job_id).lock

    def _card(self, job_id: int) -> _Card:
        """The job's card (created if new), now the most recently used."""
        card = self._cards.get(job_id)
        if card is None:
            card = self._cards[job_id] = _Card(interaction=None)
            while len(self._cards) > MAX_CARDS:
                self._cards.popitem(last=False)
        self._cards.move_to_end(job_id)
        return card

    def finished(self, job_id: int) -> bool:
        """Whether this process showed the job's card in a final state (no redraws)."""
        return job_id in self._finished

    def forget(self, job_id: int) -> None:
        """Drop a settled job's card from memory; it is not redrawn by this process again.

        Safe while the card's lock is held: the holder keeps its lock object, and a later
        editor finds the job finished and edits nothing.
        """
        self._cards.pop(job_id, None)
        self._finished[job_id] = None
        self._finished.move_to_end(job_id)
        while len(self._finished) > MAX_CARDS:
            self._finished.popitem(last=False)

    async def update(
        self,
        job: Job,
        *,
        api_state: TaskState | None = None,
        note: str | None = None,
        force: bool = False,
        info: CardInfo | None = None,
    ) -> None:
        """Edit the job's card if its state changed and the last edit is old enough.

        `force` skips the throttle (used for final states, which must always show).
        `info` (queue position, estimates) is looked up when not given.
        Failures to edit are logged and ignored: a card is a courtesy, not the delivery.
        """
        if job.id in self._finished and job.state not in FINAL_STATES:
            return  # shown final already: an older state must not come back
        card = self._card(job.id)
        if card.interaction is None and job.progress_message_id is None:
            self._unplaced[job.id] = _Request(job, api_state, note, force)
            while len(self._unplaced) > MAX_UNPLACED:
                self._unplaced.pop(next(iter(self._unplaced)))
            return
        now = time.monotonic()
        if not force and now - card.last_edit < self._min_interval:
            return
        info = info or await self.info(job)
        key = (job.state.value, api_state.value if api_state else "", info and info.key())
        if not force and key == card.last_key:
            return
        tr = await self.tr(job)
        embed = status_card(job, api_state, note, info, tr=tr)
        try:
            await self._edit(job, card, embed, self.view_for(job, tr))
        except (discord.HTTPException, discord.RateLimited) as exc:
            log.debug("Could not edit the card of job %s: %s", job.id, exc)
        card.last_edit = now
        card.last_key = key

    async def _edit(
        self, job: Job, card: _Card, embed: discord.Embed, view: discord.ui.View | None
    ) -> None:
        interaction = card.interaction
        if interaction is not None:
            deadline = interaction.expires_at - TOKEN_SAFETY_MARGIN
            if discord.utils.utcnow() < deadline:
                try:
                    await interaction.edit_original_response(
                        content=None, embed=embed, view=view
                    )
                    return
                except discord.HTTPException as exc:
                    # Discord says the token is dead (401/50027) sooner than we computed:
                    # never retry it (invalid requests count toward a Cloudflare ban).
                    if exc.status != 401 and exc.code != INVALID_WEBHOOK_TOKEN:
                        raise
                    log.info("The card token of job %s expired early; editing as a message", job.id)
            card.interaction = None  # the token is too old to use again
        if job.progress_message_id is None:
            return
        channel = self._client.get_partial_messageable(job.channel_id)
        await channel.get_partial_message(job.progress_message_id).edit(
            content=None, embed=embed, view=view
        )
