"""A tiny discord.py bot that exercises what the fake must support."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands


class CounterButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"counter:(?P<n>\d+)"):
    """A persistent button whose custom_id carries its state (``counter:<n>``)."""

    def __init__(self, n: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Clicked {n}", custom_id=f"counter:{n}", style=discord.ButtonStyle.primary
            )
        )
        self.n = n

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> CounterButton:
        """Rebuild the button from its custom_id."""
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Count the click by editing the message (callback type 7)."""
        view = discord.ui.View(timeout=None)
        view.add_item(CounterButton(self.n + 1))
        await interaction.response.edit_message(content=f"count={self.n + 1}", view=view)


class PromptModal(discord.ui.Modal, title="Animate image"):
    """The modal the context-menu command answers with."""

    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt", max_length=200
    )
    seconds: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Seconds", custom_id="seconds", required=False, max_length=2
    )

    def __init__(self, target: discord.Message) -> None:
        super().__init__(custom_id="animate-modal", timeout=None)
        self.target = target

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        """Answer ephemerally with the values and the target's attachment bytes."""
        attachment = self.target.attachments[0]
        data = await attachment.read()
        await interaction.response.send_message(
            f"prompt={self.prompt.value} seconds={self.seconds.value or '5'} "
            f"file={attachment.filename} bytes={len(data)}",
            ephemeral=True,
        )


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    """A modal in the newer layout: Label (type 18) wrapping a text input and a select."""

    def __init__(self) -> None:
        super().__init__(custom_id="feedback-modal", timeout=None)
        self.text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
            custom_id="text", style=discord.TextStyle.paragraph
        )
        self.mood: discord.ui.Select[FeedbackModal] = discord.ui.Select(
            custom_id="mood",
            options=[discord.SelectOption(label="Happy"), discord.SelectOption(label="Sad")],
        )
        self.add_item(discord.ui.Label(text="Your feedback", component=self.text))
        self.add_item(discord.ui.Label(text="Mood", component=self.mood))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        """Echo the values."""
        await interaction.response.send_message(
            f"text={self.text.value} mood={','.join(self.mood.values)}", ephemeral=True
        )


class SelfTestCog(commands.Cog):
    """Commands that cover the interaction shapes the real bot uses."""

    quotas = app_commands.Group(name="quotas", description="Manage quotas")

    def __init__(self, bot: SelfTestBot) -> None:
        self.bot = bot

    @app_commands.command(name="render", description="Render a clip")
    @app_commands.describe(prompt="What to render", style="Look", count="How many", image="Start")
    async def render(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 100],
        style: Literal["cinematic", "anime"],
        count: app_commands.Range[int, 1, 4] = 1,
        image: discord.Attachment | None = None,
    ) -> None:
        """Defer, then follow up and post a file in the channel."""
        await interaction.response.defer(thinking=True)
        size = self.bot.file_size
        await interaction.followup.send(f"rendering {prompt!r} style={style} count={count}")
        assert isinstance(interaction.channel, discord.abc.Messageable)
        if self.bot.gate is not None:
            await self.bot.gate.wait()
        try:
            await interaction.channel.send(
                "here is your clip",
                file=discord.File(_bytes(size), filename="clip.mp4"),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(f"failed: {exc.status} {exc.code}", ephemeral=True)
        if image is not None:
            data = await image.read()
            await interaction.followup.send(f"image {image.filename} {len(data)} bytes")

    @app_commands.command(name="ping", description="Answer privately")
    async def ping(self, interaction: discord.Interaction[Any]) -> None:
        """Answer ephemerally at once."""
        await interaction.response.send_message("pong", ephemeral=True)

    @app_commands.command(name="counter", description="Post a persistent counter button")
    async def counter(self, interaction: discord.Interaction[Any]) -> None:
        """Send a message with a DynamicItem button."""
        view = discord.ui.View(timeout=None)
        view.add_item(CounterButton(0))
        await interaction.response.send_message("count=0", view=view)

    @app_commands.command(name="status", description="Post and edit a status message")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        """Send a channel message, edit it, then edit the original response."""
        await interaction.response.send_message("working")
        assert isinstance(interaction.channel, discord.abc.Messageable)
        message = await interaction.channel.send("status: queued")
        await message.edit(content="status: done")
        await interaction.edit_original_response(content="finished")

    @app_commands.command(name="slow", description="Defer, then wait for the test")
    async def slow(self, interaction: discord.Interaction[Any]) -> None:
        """Sleep ``bot.ack_delay`` before deferring; later follow up when released."""
        await asyncio.sleep(self.bot.ack_delay)
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)
            return
        await self.bot.release.wait()
        try:
            await interaction.followup.send("late result")
        except discord.HTTPException as exc:
            self.bot.errors.append(exc)

    @app_commands.command(name="feedback", description="Open the feedback form")
    async def feedback(self, interaction: discord.Interaction[Any]) -> None:
        """Answer with a Label-layout modal."""
        await interaction.response.send_modal(FeedbackModal())

    @app_commands.command(name="dm", description="DM the invoker")
    async def dm(self, interaction: discord.Interaction[Any]) -> None:
        """Try a DM and report the outcome ephemerally."""
        try:
            await interaction.user.send("hello in private")
        except discord.Forbidden as exc:
            await interaction.response.send_message(f"dm failed {exc.code}", ephemeral=True)
        else:
            await interaction.response.send_message("dm sent", ephemeral=True)

    @quotas.command(name="set", description="Set a member's quota")
    @app_commands.describe(member="Who", amount="Clips per day")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def quotas_set(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 0, 100],
    ) -> None:
        """Subcommand with a member option."""
        await interaction.response.send_message(
            f"quota for {member.display_name} = {amount}",
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @quotas.command(name="show", description="Show quotas")
    async def quotas_show(self, interaction: discord.Interaction[Any]) -> None:
        """Subcommand without options."""
        await interaction.response.send_message("no quotas", ephemeral=True)

    async def cog_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        """Refuse missing permissions politely."""
        if isinstance(error, app_commands.MissingPermissions):
            await interaction.response.send_message("not allowed", ephemeral=True)
            return
        raise error


@app_commands.context_menu(name="Animate image")
async def animate_image(interaction: discord.Interaction[Any], message: discord.Message) -> None:
    """Message command answered with a modal."""
    await interaction.response.send_modal(PromptModal(message))


def _bytes(size: int) -> Any:
    import io

    return io.BytesIO(b"\x00" * size)


class SelfTestBot(commands.Bot):
    """The bot under test. ``guild_id`` is the development guild to sync to."""

    def __init__(self, guild_id: int, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=0.05,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.guild_id = guild_id
        self.file_size = 1024
        self.ack_delay = 0.0
        self.release = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.errors: list[discord.HTTPException] = []
        self.seen_messages: list[discord.Message] = []

    async def setup_hook(self) -> None:
        """Register the cog, the context menu and the dynamic button; sync to the guild."""
        await self.add_cog(SelfTestCog(self))
        self.tree.add_command(animate_image)
        self.add_dynamic_items(CounterButton)
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        """Remember every message the gateway delivered."""
        self.seen_messages.append(message)
