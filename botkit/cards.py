"""How jobs look in Discord: the live status card, the delivery embed, the job list."""

from __future__ import annotations

import datetime

import discord

from core.queue import CardInfo
from core.wording import credits_text, kind_label, settings_line, short
from happyhorse.models import TaskState
from storage.models import Job, JobState

FOOTER_PREFIX = "HappyHorse job #"
SANDBOX_BANNER = "Sandbox test clip: no API key is configured"
BRAND = discord.Colour.from_rgb(233, 120, 52)
NO_CANCEL_NOTE = (
    "Sent to the video service, which has no way to cancel a job, so it can no longer be "
    "cancelled."
)
ESTIMATING = "estimating…"
_STATE_LINES = {
    JobState.QUEUED: ("🕒", "Queued"),
    JobState.RESERVED: ("⏳", "Sending to the video service…"),
    JobState.SUBMITTED: ("⏳", "Queued"),
    JobState.COMPLETED: ("📦", "Finished, uploading…"),
    JobState.DELIVERED: ("✅", "Delivered"),
    JobState.FAILED: ("❌", "Failed"),
    JobState.EXPIRED: ("⌛", "Timed out"),
    JobState.REFUNDED: ("↩️", "Refunded"),
}


def job_marker(job_id: int) -> str:
    """The footer text that marks a message as belonging to a job (used to find it again)."""
    return f"{FOOTER_PREFIX}{job_id}"


def _mark_sandbox(embed: discord.Embed, job: Job) -> None:
    """Say on a job's embed that it is a sandbox test clip, when it is one."""
    if job.sandbox:
        embed.set_author(name=f"🧪 {SANDBOX_BANNER}")


def when(moment: datetime.datetime | None) -> str:
    """'≈ <t:…:R>' for an estimate, or 'estimating…' without one."""
    return ESTIMATING if moment is None else f"≈ <t:{int(moment.timestamp())}:R>"


def status_card(
    job: Job,
    api_state: TaskState | None = None,
    note: str | None = None,
    info: CardInfo | None = None,
) -> discord.Embed:
    """The live status card shown while a job is in flight (and its final state)."""
    icon, label = _STATE_LINES.get(job.state, ("⏳", job.state.value))
    if job.state is JobState.SUBMITTED and api_state is TaskState.PROCESSING:
        icon, label = "🎬", "Generating"
    if job.state is JobState.QUEUED and info is not None and info.position is not None:
        label = f"Queued: position {info.position} of {info.total}"
    if job.state is JobState.REFUNDED and job.cancelled_by is not None:
        icon, label = "🚫", "Cancelled"
    embed = discord.Embed(title=f"{icon} {label}", colour=BRAND)
    if job.prompt:
        embed.description = short(job.prompt, 1000)
    embed.add_field(name="Type", value=kind_label(job), inline=True)
    embed.add_field(name="Settings", value=settings_line(job), inline=True)
    embed.add_field(name="Cost", value=credits_text(job.cost), inline=True)
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Started", value=f"<t:{int(job.created_at.timestamp())}:R>", inline=True)
    if job.state is JobState.QUEUED and info is not None:
        embed.add_field(name="Starts", value=when(info.starts_at), inline=True)
        embed.add_field(name="Ready", value=when(info.ready_at), inline=True)
        if info.paused:
            embed.add_field(name="Status", value=info.paused, inline=False)
    elif job.state is JobState.SUBMITTED and info is not None:
        embed.add_field(name="Expected ready", value=when(info.ready_at), inline=True)
    if job.state is JobState.REFUNDED and job.cancelled_by is not None:
        embed.add_field(
            name="Cancelled by",
            value=f"<@{job.cancelled_by}> · {credits_text(job.cost)} returned",
            inline=False,
        )
    if note is None and job.state is JobState.SUBMITTED:
        note = NO_CANCEL_NOTE
    if note:
        embed.add_field(name="Note", value=short(note, 1000), inline=False)
    _mark_sandbox(embed, job)
    embed.set_footer(text=job_marker(job.id))
    return embed


def delivery_embed(job: Job, *, link_only: bool) -> discord.Embed:
    """The embed on the message that carries a finished video."""
    embed = discord.Embed(title="🎬 Your video is ready", colour=BRAND)
    if job.prompt:
        embed.description = short(job.prompt, 2000)
    embed.add_field(name="Settings", value=settings_line(job), inline=True)
    embed.add_field(name="Cost", value=credits_text(job.cost), inline=True)
    if link_only and job.result_url:
        embed.add_field(
            name="Download",
            value=f"[Open the video]({job.result_url}) (too large to upload here; "
            "the link expires within a day)",
            inline=False,
        )
        embed.url = job.result_url
    _mark_sandbox(embed, job)
    embed.set_footer(text=job_marker(job.id))
    return embed


def job_line(
    job: Job, guild_id: int | None, position: tuple[int, int] | None = None
) -> str:
    """One line of /jobs: state, settings, prompt and the best link we have."""
    icon, label = _STATE_LINES.get(job.state, ("•", job.state.value))
    prompt = short(discord.utils.escape_markdown(job.prompt or "(no prompt)"), 60)
    link = ""
    if job.delivered_message_id and job.message_deleted_at is None and guild_id:
        link = (
            f" · [message](https://discord.com/channels/{guild_id}/{job.channel_id}/"
            f"{job.delivered_message_id})"
        )
    elif job.result_url and job.state in {JobState.COMPLETED, JobState.DELIVERED}:
        link = f" · [video]({job.result_url})"
    if job.state is JobState.QUEUED and position is not None:
        label = f"Queued: position {position[0]} of {position[1]}"
    return (
        f"{icon} **#{job.id}** {label} · {settings_line(job)} · {credits_text(job.cost)} · "
        f"<t:{int(job.created_at.timestamp())}:R>{link}\n  {prompt}"
    )
