"""Live status cards: the deferred response of a request, edited as its job moves on.

Edits are throttled per card (Discord does not publish per-channel edit limits; a few
seconds apart is safe), and an interaction token is only used while it is comfortably
younger than its 15-minute lifetime. After that, or after a restart (when no token is
kept), the card is edited as an ordinary channel message through its stored id.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field

import discord

from cogs.cards import status_card
from happyhorse.models import TaskState
from storage.models import Job

log = logging.getLogger(__name__)

# Stop using a token this long before it expires, so no edit races the deadline.
TOKEN_SAFETY_MARGIN = datetime.timedelta(seconds=90)
INVALID_WEBHOOK_TOKEN = 50027


@dataclass
class _Card:
    interaction: discord.Interaction | None
    last_edit: float = 0.0
    last_key: tuple[str, str] = field(default=("", ""))


class StatusCards:
    """Keeps each in-flight job's status card up to date without flooding Discord."""

    def __init__(self, client: discord.Client, *, min_interval: float) -> None:
        self._client = client
        self._min_interval = min_interval
        self._cards: dict[int, _Card] = {}

    def track(self, job_id: int, interaction: discord.Interaction) -> None:
        """Remember the interaction whose response is this job's card."""
        self._cards[job_id] = _Card(interaction=interaction, last_edit=time.monotonic())

    def forget(self, job_id: int) -> None:
        """Drop a settled job's card from memory."""
        self._cards.pop(job_id, None)

    async def update(
        self,
        job: Job,
        *,
        api_state: TaskState | None = None,
        note: str | None = None,
        force: bool = False,
    ) -> None:
        """Edit the job's card if its state changed and the last edit is old enough.

        `force` skips the throttle (used for final states, which must always show).
        Failures to edit are logged and ignored: a card is a courtesy, not the delivery.
        """
        card = self._cards.setdefault(job.id, _Card(interaction=None))
        key = (job.state.value, api_state.value if api_state else "")
        now = time.monotonic()
        if not force and (key == card.last_key or now - card.last_edit < self._min_interval):
            return
        embed = status_card(job, api_state, note)
        try:
            await self._edit(job, card, embed)
        except (discord.HTTPException, discord.RateLimited) as exc:
            log.debug("Could not edit the card of job %s: %s", job.id, exc)
        card.last_edit = now
        card.last_key = key

    async def _edit(self, job: Job, card: _Card, embed: discord.Embed) -> None:
        interaction = card.interaction
        if interaction is not None:
            deadline = interaction.expires_at - TOKEN_SAFETY_MARGIN
            if discord.utils.utcnow() < deadline:
                try:
                    await interaction.edit_original_response(content=None, embed=embed)
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
        await channel.get_partial_message(job.progress_message_id).edit(content=None, embed=embed)
