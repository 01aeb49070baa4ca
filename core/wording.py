"""How a job is described in words, the same on cards, posts and the moderator log.

Discord-free: the cogs put these strings into embeds, and `core.modlog` into log events.
"""

from __future__ import annotations

from storage.credits import Period, period_bounds
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


def past_period_note(job: Job, period: Period) -> str | None:
    """For a job refunded after its credit period ended: 'they went back to the credit
    period it was charged in, which ended <t:..:R>, so the current balance does not
    change'; ``None`` for a refund within the period (the credits can be spent again).

    Credits are charged to the period a job was accepted in (usage is summed per period
    from the job ledger), so a refund gives them back to that period; once it is over,
    they cannot be spent any more, and the words must not promise them.
    """
    if job.refunded_at is None:
        return None
    charged = period_bounds(job.created_at, period)
    if charged == period_bounds(job.refunded_at, period):
        return None
    ended = int(charged[1].timestamp())
    return (
        f"they went back to the credit period it was charged in, which ended <t:{ended}:R>, "
        "so the current balance does not change"
    )


def refund_words(job: Job, period: Period, *, verb: str = "refunded") -> str:
    """'2 credits refunded', with `past_period_note` when the job's credit period had
    ended before the refund."""
    amount = f"{credits_text(job.cost)} {verb}"
    note = past_period_note(job, period)
    return amount if note is None else f"{amount}: {note}"
