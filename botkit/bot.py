"""The Bot subclass: it holds the core services and loads the cogs, nothing more.

Everything it needs (settings, store, API client) is created by the caller and handed in,
so tests build the same bot against their own database file, sandbox and Discord fake.

It is always an `AutoShardedBot`: with no SHARD_COUNT, Discord's recommended number of
shards all run here; with SHARD_COUNT and SHARD_IDS, only those. A process with no
shards at all (`gateway_free`) logs in over REST and runs the background work only:
start it with `run_without_gateway` instead of `start`. In both cases
`wait_until_ready()` is when background loops may begin.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import discord
import yarl
from discord.ext import commands

from botkit.command_sync import sync_commands
from botkit.gateway_heartbeat import install_heartbeat_latency_fix
from botkit.i18n import CatalogTranslator
from botkit.modlog import ModLog
from botkit.posting import Poster
from botkit.status_cards import StatusCards
from core.eta import CompletionEstimator
from core.heartbeat import Heartbeats
from core.jobs import JobService
from core.languages import GuildLanguages
from core.metrics import discord_trace
from core.modlog import job_cancelled
from core.processes import ProcessRegistry
from core.queue import QueueService
from core.settings import BotSettings
from core.transcode import Transcoder
from happyhorse.client import HappyHorseClient
from storage.store import Store

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "cogs.processes",
    "cogs.errors",
    "cogs.generation",
    "cogs.delivery",
    "cogs.queue",
    "cogs.buttons",
    "cogs.continuation",
    "cogs.quota",
    "cogs.history",
    "cogs.moderation",
    "cogs.modlog",
    "cogs.stats",
    "cogs.job_admin",
    "cogs.retention",
    "cogs.privacy",
    "cogs.health",
)


class HappyHorseBot(commands.AutoShardedBot):
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
        install_heartbeat_latency_fix()
        # The bot never joins voice: skip discord.py's warnings about voice libraries.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        # Counts Discord requests and errors for /metrics.
        options.setdefault("http_trace", discord_trace())
        if settings.shard_ids is not None:
            options["shard_ids"] = list(settings.shard_ids)
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
            shard_count=settings.shard_count,
            **options,
        )
        self.settings = settings
        #: This process in the shared registry (set by `cogs.processes` once registered).
        self.registry: ProcessRegistry | None = None
        #: Background loops beat here; the health endpoint reads it ("scheduler").
        self.heartbeats = Heartbeats()
        self._logged_in_without_gateway = asyncio.Event()
        self._closed_event = asyncio.Event()
        self.store = store
        self.api = client
        #: The media worker pool (re-encodes, last frames); closed with the bot.
        self.transcoder = Transcoder(settings.transcode_concurrency)
        self.jobs = service or JobService(store, client, settings)
        # The completion-time estimator can be the scheduler's learned model.
        self.queue = QueueService(store, self.jobs, settings, estimator=estimator)
        # Each server's language for public messages (core.languages has the rule).
        self.languages = GuildLanguages(store.guilds)
        self.cards = StatusCards(
            self, min_interval=settings.status_edit_interval_seconds, languages=self.languages
        )
        # Every video is posted through this one poster (delivery and Deliver again).
        self._downloads = Path(tempfile.mkdtemp(prefix="happyhorse-"))
        self.poster = Poster(
            self,
            store,
            client,
            self.jobs,
            settings,
            self._downloads,
            transcoder=self.transcoder,
            languages=self.languages,
        )
        # The moderator log sink: `self.modlog.post(guild_id, core.modlog event)`.
        self.modlog = ModLog(self, store.guilds, languages=self.languages)
        self.queue.add_cancel_listener(
            lambda event: self.modlog.post(
                event.job.guild_id, job_cancelled(event.job, event.by_user_id)
            )
        )

    @property
    def gateway_free(self) -> bool:
        """True for a process with no gateway shard: REST and background work only."""
        return self.settings.gateway_free

    @property
    def expected_shards(self) -> list[int]:
        """The shard ids this process should have connected (none when gateway-free)."""
        if self.shard_ids is not None:
            return list(self.shard_ids)
        return list(range(self.shard_count or 1))

    def gateway_connected(self) -> bool:
        """Whether every shard of this process is identified and its socket open."""
        if self.gateway_free:
            return False
        shards = self.shards
        return (
            self.is_ready()
            and all(shard_id in shards for shard_id in self.expected_shards)
            and not any(info.is_closed() for info in shards.values())
        )

    async def wait_until_ready(self) -> None:
        """Wait until background work may begin.

        With a gateway: until every shard of this process is ready (discord.py's own
        readiness). Without one: until `run_without_gateway` has logged in.
        """
        if self.gateway_free:
            await self._logged_in_without_gateway.wait()
        else:
            await super().wait_until_ready()

    async def run_without_gateway(self, token: str) -> None:
        """Log in over REST, run the cogs' background work, return once `close()` is called.

        For a process with `SHARD_IDS=` (no shards): it answers no interactions but polls,
        delivers and notifies like any other, since all of that goes over REST.
        """
        if not self.gateway_free:
            raise RuntimeError("run_without_gateway needs settings with SHARD_IDS empty")
        await self.login(token)
        user = self.user
        log.info(
            "Logged in as %s (%s) without a gateway: background work only",
            user,
            user.id if user else "?",
        )
        self._logged_in_without_gateway.set()
        await self._closed_event.wait()

    async def close(self) -> None:
        """Close discord.py's connections, then release `run_without_gateway`."""
        try:
            await super().close()
            if self.registry is not None:
                await self.registry.leave()
        finally:
            try:
                await self.transcoder.close()
            finally:
                shutil.rmtree(self._downloads, ignore_errors=True)
            self._closed_event.set()

    async def setup_hook(self) -> None:
        """Load the cogs, then sync the command tree (to the dev guild, if one is set) as
        SYNC_COMMANDS says: only when it changed (auto), always or never."""
        if not self.gateway_free and (
            self.settings.discord_api_base_url or self.settings.discord_gateway_url
        ):
            await self._use_configured_gateway()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # Reads the catalogs now and localises command names and descriptions in the sync.
        await self.tree.set_translator(CatalogTranslator())
        await sync_commands(
            self, self.tree, self.store, self.settings.sync_commands, self.settings.dev_guild_id
        )

    async def _use_configured_gateway(self) -> None:
        """Pointed at another Discord (a local fake): connect to its gateway.

        Without a gateway URL, ask the REST base where its gateway is rather than using
        Discord's default one. With automatic sharding, discord.py would connect to the URL
        /gateway/bot announces and ignore DISCORD_GATEWAY_URL, so the recommended shard
        count is read here and the configured URL kept.
        """
        shards, url, _ = await self.http.get_bot_gateway()
        if not self.settings.discord_gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            log.info("Using the gateway announced by %s", self.settings.discord_api_base_url)
        if self.shard_count is None:
            self.shard_count = shards

    async def on_ready(self) -> None:
        """Log who we are once the gateway is ready."""
        user = self.user
        log.info(
            "Logged in as %s (%s) in %d guilds", user, user.id if user else "?", len(self.guilds)
        )
