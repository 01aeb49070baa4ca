"""/video, /animate and the "Animate image" context menu: options in, jobs out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs.launch import cannot_post_message, missing_post_permissions, reply_private, start_job
from core.errors import Refusal
from core.images import check_image, closest_aspect_ratio
from core.jobs import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, JobDraft

if TYPE_CHECKING:
    from cogs.runtime import HappyHorseBot

log = logging.getLogger(__name__)

AspectRatio = Literal["16:9", "9:16", "1:1"]
Quality = Literal["std", "pro"]
DURATION_CHOICES = [
    app_commands.Choice(name="5 seconds", value=5),
    app_commands.Choice(name="10 seconds", value=10),
]
# Discord enforces option lengths; our own, finer check (after normalisation) is in core.
PROMPT_OPTION_MAX = 6000

OPTION_HELP = {
    "aspect_ratio": "Frame shape: 16:9 landscape, 9:16 portrait, 1:1 square",
    "duration": "Clip length (10 s costs twice as much)",
    "quality": "std is faster and cheaper; pro looks better and costs twice as much",
    "sound": "Generate a soundtrack with the video",
}


def _require_guild(interaction: discord.Interaction) -> tuple[int, int]:
    if interaction.guild_id is None or interaction.channel_id is None:
        raise Refusal("Videos can only be made in a server channel, not in DMs.")
    return interaction.guild_id, interaction.channel_id


def image_draft(
    interaction: discord.Interaction,
    attachment: discord.Attachment,
    *,
    prompt: str | None,
    aspect_ratio: str | None,
    duration: int,
    quality: str,
    sound: bool,
    max_image_bytes: int,
) -> JobDraft:
    """Check an image attachment and describe the image-to-video job it asks for."""
    guild_id, channel_id = _require_guild(interaction)
    check_image(
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        max_bytes=max_image_bytes,
    )
    return JobDraft(
        guild_id=guild_id,
        channel_id=channel_id,
        user_id=interaction.user.id,
        mode=IMAGE_TO_VIDEO,
        prompt=prompt,
        duration=duration,
        aspect_ratio=aspect_ratio or closest_aspect_ratio(attachment.width, attachment.height),
        quality=quality,
        sound=sound,
        image_url=attachment.url,
        interaction_id=interaction.id,
    )


class AnimateModal(discord.ui.Modal, title="Animate image"):
    """Asks for an (optional) prompt before animating an image from a message."""

    prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
        label="What should happen? (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=4000,
        placeholder="The horse shakes its mane and gallops towards the camera",
    )

    def __init__(self, bot: HappyHorseBot, attachment: discord.Attachment) -> None:
        super().__init__(timeout=600)
        self.bot = bot
        self.attachment = attachment

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Start the job with the prompt the user typed."""
        try:
            draft = image_draft(
                interaction,
                self.attachment,
                prompt=self.prompt.value,
                aspect_ratio=None,
                duration=5,
                quality="std",
                sound=True,
                max_image_bytes=self.bot.settings.max_image_bytes,
            )
        except Refusal as refusal:
            await reply_private(interaction, refusal.message)
            return
        await start_job(self.bot, interaction, draft)

    async def on_error(  # type: ignore[override]  # Modal's own signature has no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        """Log the failure and tell the user, privately."""
        log.exception("Animate modal failed for user %s", interaction.user.id, exc_info=error)
        await reply_private(interaction, "Something went wrong starting that video. Try again.")


class Generation(commands.Cog):
    """Text-to-video and image-to-video commands."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self.animate_menu = app_commands.ContextMenu(
            name="Animate image", callback=self.animate_message
        )
        self.animate_menu.guild_only = True

    async def cog_load(self) -> None:
        """Register the context-menu command (cogs cannot declare those as methods)."""
        self.bot.tree.add_command(self.animate_menu)

    async def cog_unload(self) -> None:
        """Remove the context-menu command."""
        self.bot.tree.remove_command(self.animate_menu.name, type=self.animate_menu.type)

    @app_commands.command(name="video", description="Make a video from a text prompt")
    @app_commands.guild_only()
    @app_commands.describe(prompt="Describe the scene, the motion and the mood", **OPTION_HELP)
    @app_commands.choices(duration=DURATION_CHOICES)
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_OPTION_MAX],
        aspect_ratio: AspectRatio = "16:9",
        duration: int = 5,
        quality: Quality = "std",
        sound: bool = True,
    ) -> None:
        """/video: text-to-video."""
        try:
            guild_id, channel_id = _require_guild(interaction)
        except Refusal as refusal:
            await reply_private(interaction, refusal.message)
            return
        draft = JobDraft(
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=interaction.user.id,
            mode=TEXT_TO_VIDEO,
            prompt=prompt,
            duration=duration,
            aspect_ratio=aspect_ratio,
            quality=quality,
            sound=sound,
            interaction_id=interaction.id,
        )
        await start_job(self.bot, interaction, draft)

    @app_commands.command(name="animate", description="Bring an image to life as a video")
    @app_commands.guild_only()
    @app_commands.describe(
        image="A PNG, JPEG or WEBP image to animate",
        prompt="What should happen in the video (optional)",
        **OPTION_HELP,
    )
    @app_commands.choices(duration=DURATION_CHOICES)
    async def animate(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, PROMPT_OPTION_MAX] | None = None,
        aspect_ratio: AspectRatio | None = None,
        duration: int = 5,
        quality: Quality = "std",
        sound: bool = True,
    ) -> None:
        """/animate: image-to-video from an attached image."""
        try:
            draft = image_draft(
                interaction,
                image,
                prompt=prompt,
                aspect_ratio=aspect_ratio,
                duration=duration,
                quality=quality,
                sound=sound,
                max_image_bytes=self.bot.settings.max_image_bytes,
            )
        except Refusal as refusal:
            await reply_private(interaction, refusal.message)
            return
        await start_job(self.bot, interaction, draft)

    async def animate_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Context menu: pick the message's first usable image and ask for a prompt in a modal."""
        try:
            _require_guild(interaction)
        except Refusal as refusal:
            await reply_private(interaction, refusal.message)
            return
        images = [
            a for a in message.attachments if (a.content_type or "").startswith("image/")
        ] or list(message.attachments)
        if not images:
            await reply_private(
                interaction,
                "That message has no image attached. Use it on a message with a "
                "PNG, JPEG or WEBP image.",
            )
            return
        first_refusal: Refusal | None = None
        for attachment in images:
            try:
                check_image(
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size=attachment.size,
                    max_bytes=self.bot.settings.max_image_bytes,
                )
            except Refusal as refusal:
                first_refusal = first_refusal or refusal
                continue
            missing = missing_post_permissions(interaction)
            if missing:
                await reply_private(interaction, cannot_post_message(missing))
                return
            try:
                assert interaction.guild_id is not None and interaction.channel_id is not None
                await self.bot.jobs.precheck(
                    interaction.guild_id,
                    interaction.channel_id,
                    interaction.user.id,
                    self.bot.jobs.cost_of(5, "std"),
                )
            except Refusal as refusal:
                await reply_private(interaction, refusal.message)
                return
            await interaction.response.send_modal(AnimateModal(self.bot, attachment))
            return
        assert first_refusal is not None
        await reply_private(interaction, first_refusal.message)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Generation(bot))
