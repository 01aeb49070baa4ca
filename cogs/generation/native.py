"""/video and /animate as the live (native) service allows them: 3-15 s and a last frame.

The seed contract's commands (5 or 10 s, no last frame) are declared on the `Generation`
cog (`cogs.generation`); when the API client speaks the native dialect, the cog registers
these instead, so members never see an option the service in use does not support. Both
call the same `Generation.start_video` / `start_animate`.

No `from __future__ import annotations` here: discord.py reads these callbacks' option
types from their annotations, which must be real objects in the nested functions.
"""

from typing import Any

import discord
from discord import app_commands

from botkit.i18n import locale_str, locale_text
from cogs.generation.options import (
    ANIMATE_HELP,
    ANIMATE_NAME,
    IMAGE_PROMPT_HELP,
    OPTION_HELP,
    PROMPT_HELP,
    PROMPT_OPTION_MAX,
    VIDEO_HELP,
    VIDEO_NAME,
    AspectRatio,
    Quality,
    VideoStarter,
)
from core.i18n import Number
from happyhorse.models import NATIVE_DURATIONS

MIN_SECONDS, MAX_SECONDS = NATIVE_DURATIONS[0], NATIVE_DURATIONS[-1]
NATIVE_HELP = {
    **OPTION_HELP,
    "duration": locale_text(
        "Clip length, {min} to {max} s (cost grows with length)",
        min=Number(MIN_SECONDS),
        max=Number(MAX_SECONDS),
    ),
}
LAST_FRAME_HELP = locale_str("Optional: an image the video should end on (PNG, JPEG or WEBP)")


def native_commands(cog: VideoStarter) -> list[app_commands.Command[Any, ..., None]]:
    """The native dialect's /video and /animate, bound to the cog's shared starters."""

    @app_commands.command(name=VIDEO_NAME, description=VIDEO_HELP)
    @app_commands.guild_only()
    @app_commands.describe(prompt=PROMPT_HELP, **NATIVE_HELP)
    async def video(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, PROMPT_OPTION_MAX],
        aspect_ratio: AspectRatio = "16:9",
        duration: app_commands.Range[int, MIN_SECONDS, MAX_SECONDS] = 5,
        quality: Quality = "std",
        sound: bool = True,
    ) -> None:
        """/video (native): text-to-video, 3-15 s."""
        await cog.start_video(interaction, prompt, aspect_ratio, duration, quality, sound)

    @app_commands.command(name=ANIMATE_NAME, description=ANIMATE_HELP)
    @app_commands.guild_only()
    @app_commands.describe(
        image=locale_str("A PNG, JPEG or WEBP image to animate (the first frame)"),
        prompt=IMAGE_PROMPT_HELP,
        last_frame=LAST_FRAME_HELP,
        **NATIVE_HELP,
    )
    async def animate(
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, PROMPT_OPTION_MAX] | None = None,
        aspect_ratio: AspectRatio | None = None,
        duration: app_commands.Range[int, MIN_SECONDS, MAX_SECONDS] = 5,
        quality: Quality = "std",
        sound: bool = True,
        last_frame: discord.Attachment | None = None,
    ) -> None:
        """/animate (native): image-to-video, 3-15 s, optionally ending on `last_frame`."""
        await cog.start_animate(
            interaction, image, prompt, aspect_ratio, duration, quality, sound, last_frame
        )

    return [video, animate]
