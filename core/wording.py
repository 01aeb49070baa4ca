"""How a job is described in words, the same on cards, posts and the moderator log.

Discord-free: the cogs put these strings into embeds, and `core.modlog` into log events.
"""

from __future__ import annotations

from storage.models import Job

IMAGE_TO_VIDEO = "image-to-video"


def short(text: str, limit: int) -> str:
    """Cut text to a length Discord accepts, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def settings_line(job: Job) -> str:
    """'16:9 · 5 s · std · sound on' for a job."""
    sound = "sound on" if job.sound else "no sound"
    return f"{job.aspect_ratio} · {job.duration} s · {job.quality} · {sound}"


def credits_text(amount: int) -> str:
    """'1 credit' / '2 credits'."""
    return f"{amount} credit" if amount == 1 else f"{amount} credits"


def kind_label(job: Job) -> str:
    """'Text to video' or 'Image to video'."""
    return "Image to video" if job.mode == IMAGE_TO_VIDEO else "Text to video"
