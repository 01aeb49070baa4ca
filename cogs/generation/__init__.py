"""/video, /animate and the "Animate image" context menu: options in, jobs out."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from botkit.i18n import locale_str, tr_for
from botkit.launch import cannot_post_message, missing_post_permissions, reply_private, start_job
from botkit.permissions import member_role_ids
from cogs.generation.native import native_commands
from cogs.generation.options import (
    ANIMATE_HELP,
    ANIMATE_NAME,
    DURATION_CHOICES,
    IMAGE_PROMPT_HELP,
    OPTION_HELP,
    PROMPT_HELP,
    PROMPT_OPTION_MAX,
    VIDEO_HELP,
    VIDEO_NAME,
    AspectRatio,
    Quality,
)
from core.errors import Refusal
from core.i18n import ENGLISH, Tr, _
from core.images import check_image, closest_aspect_ratio
from core.jobs import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, JobDraft

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

def _require_guild(interaction: discord.Interaction) -> tuple[int, int]:
    if interaction.guild_id is None or interaction.channel_id is None:
        raise Refusal(_("Videos can only be made in a server channel, not in DMs."))
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
    last_frame: discord.Attachment | None = None,
) -> JobDraft:
    """Check an image attachment (and an optional last frame) and describe the job."""
    guild_id, channel_id = _require_guild(interaction)
    for image in (attachment, last_frame):
        if image is not None:
            check_image(
                filename=image.filename,
                content_type=image.content_type,
                size=image.size,
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
        last_frame_url=None if last_frame is None else last_frame.url,
        role_ids=member_role_ids(interaction.user),
    )


PROMPT_INPUT_ID = "hh:animate:prompt"
MAX_OPEN_FORMS = 500
# The form's custom id carries everything needed to answer it, so a form opened before a
# restart is still answered after it: channel, message, attachment and user ids.
ANIMATE_FORM_ID = re.compile(
    r"hh:animate:(?P<channel>[0-9]+):(?P<message>[0-9]+):(?P<attachment>[0-9]+):(?P<user>[0-9]+)"
)


def animate_form_id(message: discord.Message, attachment: discord.Attachment, user_id: int) -> str:
    """The custom id of the Animate image form for this image and user (at most ~90 chars)."""
    return f"hh:animate:{message.channel.id}:{message.id}:{attachment.id}:{user_id}"


def submitted_value(components: Any, custom_id: str) -> str | None:
    """The value of a text input in a modal submission, whatever its layout (rows or labels)."""
    if isinstance(components, dict):
        if components.get("custom_id") == custom_id and "value" in components:
            return str(components["value"])
        components = [components.get("component"), *(components.get("components") or [])]
    if isinstance(components, list):
        for component in components:
            found = submitted_value(component, custom_id)
            if found is not None:
                return found
    return None


ANIMATE_MENU_NAME = locale_str("Animate image")
"""The context menu's name (in Discord's menus: Title Case and spaces are allowed there)."""


class AnimateModal(discord.ui.Modal):
    """Asks for an (optional) prompt before animating an image from a message, in the
    member's language.

    Submissions are answered by `Generation.on_animate_form`, not here: that also answers
    a form that was opened before a restart, when no Modal object exists any more.
    """

    def __init__(self, *, tr: Tr = ENGLISH, timeout: float | None = 600, custom_id: str) -> None:
        super().__init__(title=tr._("Animate image"), timeout=timeout, custom_id=custom_id)
        self.prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            label=tr._("What should happen? (optional)"),
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=4000,
            placeholder=tr._("The horse shakes its mane and gallops towards the camera"),
            custom_id=PROMPT_INPUT_ID,
        )
        self.add_item(self.prompt)


class Generation(commands.Cog):
    """Text-to-video and image-to-video commands."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot
        self.animate_menu = app_commands.ContextMenu(
            name=ANIMATE_MENU_NAME, callback=self.animate_message
        )
        self.animate_menu.guild_only = True
        # Images of forms opened by this process (saves fetching the message on submit).
        self._form_images: dict[str, discord.Attachment] = {}
        if bot.api.dialect.name == "native":
            # The live service takes 3-15 s and a last frame: register those options
            # instead, so members only ever see what the service in use supports.
            self.__cog_app_commands__ = [
                c for c in self.__cog_app_commands__ if c.name not in {"video", "animate"}
            ] + native_commands(self)

    async def cog_load(self) -> None:
        """Register the context-menu command (cogs cannot declare those as methods)."""
        self.bot.tree.add_command(self.animate_menu)

    async def cog_unload(self) -> None:
        """Remove the context-menu command."""
        self.bot.tree.remove_command(self.animate_menu.name, type=self.animate_menu.type)

    @app_commands.command(name=VIDEO_NAME, description=VIDEO_HELP)
    @app_commands.guild_only()
    @app_commands.describe(prompt=PROMPT_HELP, **OPTION_HELP)
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
        await self.start_video(interaction, prompt, aspect_ratio, duration, quality, sound)

    async def start_video(
        self,
        interaction: discord.Interaction,
        prompt: str,
        aspect_ratio: str,
        duration: int,
        quality: str,
        sound: bool,
    ) -> None:
        """Check and start a text-to-video request (shared by both dialects' /video)."""
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
            role_ids=member_role_ids(interaction.user),
        )
        await start_job(self.bot, interaction, draft)

    @app_commands.command(name=ANIMATE_NAME, description=ANIMATE_HELP)
    @app_commands.guild_only()
    @app_commands.describe(
        image=locale_str("A PNG, JPEG or WEBP image to animate"),
        prompt=IMAGE_PROMPT_HELP,
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
        await self.start_animate(interaction, image, prompt, aspect_ratio, duration, quality, sound)

    async def start_animate(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: str | None,
        aspect_ratio: str | None,
        duration: int,
        quality: str,
        sound: bool,
        last_frame: discord.Attachment | None = None,
    ) -> None:
        """Check and start an image-to-video request (shared by both dialects' /animate)."""
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
                last_frame=last_frame,
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
                _(
                    "That message has no image attached. Use it on a message with a "
                    "PNG, JPEG or WEBP image."
                ),
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
                await self.bot.queue.admit_member(interaction.guild_id, interaction.user.id)
                await self.bot.jobs.precheck(
                    interaction.guild_id,
                    interaction.channel_id,
                    interaction.user.id,
                    self.bot.jobs.cost_of(5, "std"),
                    member_role_ids(interaction.user),
                )
            except Refusal as refusal:
                await reply_private(interaction, refusal.message)
                return
            form_id = animate_form_id(message, attachment, interaction.user.id)
            self._form_images[form_id] = attachment
            if len(self._form_images) > MAX_OPEN_FORMS:  # forms never submitted
                self._form_images.pop(next(iter(self._form_images)))
            await interaction.response.send_modal(
                AnimateModal(tr=tr_for(interaction), timeout=600, custom_id=form_id)
            )
            return
        assert first_refusal is not None
        await reply_private(interaction, first_refusal.message)

    @commands.Cog.listener("on_interaction")
    async def on_animate_form(self, interaction: discord.Interaction) -> None:
        """Answer an Animate image form: start an image-to-video job with the typed prompt."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        match = ANIMATE_FORM_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        form_id = match.group(0)
        try:
            attachment = self._form_images.pop(form_id, None) or await self._fetch_image(match)
            draft = image_draft(
                interaction,
                attachment,
                prompt=submitted_value(data.get("components"), PROMPT_INPUT_ID),
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

    async def _fetch_image(self, match: re.Match[str]) -> discord.Attachment:
        """The form's image, from a fresh copy of its message (fresh CDN URL too)."""
        channel = self.bot.get_partial_messageable(int(match["channel"]))
        try:
            message = await channel.fetch_message(int(match["message"]))
        except discord.HTTPException:
            raise Refusal(
                _(
                    "I can't find that image any more (was the message deleted?). "
                    "Use Animate image on it again, or /animate."
                )
            ) from None
        for attachment in message.attachments:
            if attachment.id == int(match["attachment"]):
                return attachment
        raise Refusal(_("That image was removed from its message. Use /animate instead."))


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Generation(bot))

