"""What /video and /animate share in both dialects: option types, help texts and starters.

Both the seed contract's commands (`cogs.generation`) and the live service's
(`cogs.generation.native`) are declared from these, and call the same starters.
"""

from __future__ import annotations

from typing import Literal, Protocol

import discord
from discord import app_commands

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
