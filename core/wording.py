"""How a job is described in words, the same on cards, posts and the moderator log.

Discord-free: the cogs put these strings into embeds, and `core.modlog` into log events.
Each is a `core.i18n.Message`: English as a ``str``, said in any locale with ``tr(text)``.
"""

from __future__ import annotations

from core.i18n import Message, Number, _, ngettext
from storage.models import Job

IMAGE_TO_VIDEO = "image-to-video"


def short(text: str, limit: int) -> str:
    """Cut text to a length Discord accepts, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def settings_line(job: Job) -> Message:
    """'16:9 · 5 s · std · sound on' for a job."""
    sound = _("sound on") if job.sound else _("no sound")
    return _(
        "{ratio} · {seconds} s · {quality} · {sound}",
        ratio=job.aspect_ratio,
        seconds=job.duration,
        quality=job.quality,
        sound=sound,
    )


def credits_text(amount: int) -> Message:
    """'1 credit' / '2 credits' (the number in the reader's convention)."""
    return ngettext("{count} credit", "{count} credits", amount, count=Number(amount))


def kind_label(job: Job) -> Message:
    """'Text to video' or 'Image to video'."""
    return _("Image to video") if job.mode == IMAGE_TO_VIDEO else _("Text to video")
