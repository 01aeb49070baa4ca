"""The Bot subclass: it holds the core services and loads the cogs, nothing more.

Everything it needs (settings, store, API client) is created by the caller and handed in,
so tests build the same bot against their own database file, sandbox and Discord fake.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.ext import commands

from cogs.status_cards import StatusCards
from core.eta import CompletionEstimator
from core.jobs import JobService
from core.queue import QueueService
from core.settings import BotSettings
from happyhorse.client import HappyHorseClient
from storage.store import Store

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "cogs.errors",
    "cogs.generation",
    "cogs.delivery",
    "cogs.queue",
    "cogs.buttons",
    "cogs.quota",
    "cogs.history",
    "cogs.moderation",
)


def requester_mentions(user_id: int) -> discord.AllowedMentions:
    """Mentions that may ping the requester and nobody else."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(id=user_id)], replied_user=False
    )


class HappyHorseBot(commands.Bot):
    """The HappyHorse Discord bot: slash commands, delivery loop and persistent buttons."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        client: HappyHorseClient,
        *,
        service: JobService | None = None,
        estimator: CompletionEstimator | None = None,
        **options: Any,
    ) -> None:
        # The bot never joins voice: skip discord.py's warnings about voice libraries.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            # Safe default for every message: nobody is pinged unless a message opts in.
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            # A rate limit longer than this raises RateLimited instead of stalling the
            # delivery loop behind one status-card edit (30 s is discord.py's minimum).
            max_ratelimit_timeout=30.0,
            **options,
        )
        self.settings = settings
        self.store = store
        self.api = client
        self.jobs = service or JobService(store, client, settings)
        # The completion-time estimator can be the scheduler's learned model.
        self.queue = QueueService(store, self.jobs, settings, estimator=estimator)
        self.cards = StatusCards(self, min_interval=settings.status_edit_interval_seconds)

    async def setup_hook(self) -> None:
        """Load the cogs, then sync the command tree (dev guild first, if one is set)."""
        if self.settings.discord_api_base_url and not self.settings.discord_gateway_url:
            # Pointed at another REST base without a gateway URL: ask it where its gateway is
            # rather than connecting to Discord's default one.
            _, url, _ = await self.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            log.info("Using the gateway announced by %s", self.settings.discord_api_base_url)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if not self.settings.sync_commands:
            return
        if self.settings.dev_guild_id is not None:
            guild = discord.Object(id=self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("Synced %d commands to dev guild %s", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("Synced %d global commands (may take a while to appear)", len(synced))

    async def on_ready(self) -> None:
        """Log who we are once the gateway is ready."""
        user = self.user
        log.info(
            "Logged in as %s (%s) in %d guilds", user, user.id if user else "?", len(self.guilds)
        )
