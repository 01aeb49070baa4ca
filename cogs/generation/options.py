"""What /video and /animate share in both dialects: option types, help texts and starters.

Both the seed contract's commands (`cogs.generation`) and the live service's
(`cogs.generation.native`) are declared from these, and call the same starters.
"""

from __future__ import annotations

from typing import Literal, Protocol

import discord
from discord import app_commands

from botkit.i18n import locale_str

AspectRatio = Literal["16:9", "9:16", "1:1"]
Quality = Literal["std", "pro"]
DURATION_CHOICES = [
    app_commands.Choice(name=locale_str("5 seconds"), value=5),
    app_commands.Choice(name=locale_str("10 seconds"), value=10),
]
# Discord enforces option lengths; our own, finer check (after normalisation) is in core.
PROMPT_OPTION_MAX = 6000

OPTION_NAMES = (
    locale_str("prompt"),
    locale_str("image"),
    locale_str("aspect_ratio"),
    locale_str("duration"),
    locale_str("quality"),
    locale_str("sound"),
    locale_str("last_frame"),
)
"""The options' names, for the catalogs (the code keeps the English ones)."""

OPTION_HELP: dict[str, str | locale_str] = {
    "aspect_ratio": locale_str("Frame shape: 16:9 landscape, 9:16 portrait, 1:1 square"),
    "duration": locale_str("Clip length (10 s costs twice as much)"),
    "quality": locale_str("std is faster and cheaper; pro looks better and costs twice as much"),
    "sound": locale_str("Generate a soundtrack with the video"),
}
PROMPT_HELP = locale_str("Describe the scene, the motion and the mood")
IMAGE_PROMPT_HELP = locale_str("What should happen in the video (optional)")
VIDEO_NAME, VIDEO_HELP = locale_str("video"), locale_str("Make a video from a text prompt")
ANIMATE_NAME, ANIMATE_HELP = locale_str("animate"), locale_str("Bring an image to life as a video")


class VideoStarter(Protocol):
    """Starts the jobs that /video and /animate ask for (the `Generation` cog)."""

    async def start_video(
        self,
        interaction: discord.Interaction,
        prompt: str,
        aspect_ratio: str,
        duration: int,
        quality: str,
        sound: bool,
    ) -> None:
        """Check and start a text-to-video request."""
        ...

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
        """Check and start an image-to-video request."""
        ...
