"""How jobs look in Discord: the live status card, the delivery embed, the job list.

Each takes the `Tr` of its readers: the server's language for cards and posts, the
member's for /jobs. The footer marker stays English: it is how a message is found again.
"""

from __future__ import annotations

import datetime

import discord

from core.i18n import ENGLISH, Tr, _
from core.queue import CardInfo
from core.wording import credits_text, kind_label, quote, settings_line
from happyhorse.models import TaskState
from storage.models import Job, JobState

FOOTER_PREFIX = "HappyHorse job #"
SANDBOX_BANNER = _("Sandbox test clip: no API key is configured")
BRAND = discord.Colour.from_rgb(233, 120, 52)
NO_CANCEL_NOTE = _(
    "Sent to the video service, which has no way to cancel a job, so it can no longer be "
    "cancelled."
)
ESTIMATING = _("estimating…")
_STATE_LINES = {
    JobState.QUEUED: ("🕒", _("Queued")),
    JobState.RESERVED: ("⏳", _("Sending to the video service…")),
    JobState.SUBMITTED: ("⏳", _("Queued")),
    JobState.COMPLETED: ("📦", _("Finished, uploading…")),
    JobState.DELIVERED: ("✅", _("Delivered")),
    JobState.FAILED: ("❌", _("Failed")),
    JobState.EXPIRED: ("⌛", _("Timed out")),
    JobState.REFUNDED: ("↩️", _("Refunded")),
}


def job_marker(job_id: int) -> str:
    """The footer text that marks a message as belonging to a job (used to find it again)."""
    return f"{FOOTER_PREFIX}{job_id}"


def _mark_sandbox(embed: discord.Embed, job: Job, tr: Tr) -> None:
    """Say on a job's embed that it is a sandbox test clip, when it is one."""
    if job.sandbox:
        embed.set_author(name=f"🧪 {tr(SANDBOX_BANNER)}")


def when(moment: datetime.datetime | None, tr: Tr = ENGLISH) -> str:
    """'≈ <t:…:R>' for an estimate, or 'estimating…' without one."""
    return tr(ESTIMATING) if moment is None else f"≈ <t:{int(moment.timestamp())}:R>"


def _queued_label(position: int, total: int | None, tr: Tr) -> str:
    return tr._("Queued: position {position} of {total}", position=position, total=total)


def status_card(
    job: Job,
    api_state: TaskState | None = None,
    note: str | None = None,
    info: CardInfo | None = None,
    *,
    tr: Tr = ENGLISH,
) -> discord.Embed:
    """The live status card shown while a job is in flight (and its final state), in
    ``tr``'s language (the server's)."""
    icon, state = _STATE_LINES.get(job.state, ("⏳", job.state.value))
    label = tr(state)
    if job.state is JobState.SUBMITTED and api_state is TaskState.PROCESSING:
        icon, label = "🎬", tr._("Generating")
    if job.state is JobState.QUEUED and info is not None and info.position is not None:
        label = _queued_label(info.position, info.total, tr)
    if job.state is JobState.REFUNDED and job.cancelled_by is not None:
        icon, label = "🚫", tr._("Cancelled")
    embed = discord.Embed(title=f"{icon} {label}", colour=BRAND)
    if job.prompt:
        embed.description = quote(job.prompt, 1000)
    embed.add_field(name=tr._("Type"), value=tr(kind_label(job)), inline=True)
    embed.add_field(name=tr._("Settings"), value=tr(settings_line(job)), inline=True)
    embed.add_field(name=tr._("Cost"), value=tr(credits_text(job.cost)), inline=True)
    embed.add_field(name=tr._("Requested by"), value=f"<@{job.user_id}>", inline=True)
    embed.add_field(
        name=tr._("Started"), value=f"<t:{int(job.created_at.timestamp())}:R>", inline=True
    )
    if job.state is JobState.QUEUED and info is not None:
        embed.add_field(name=tr._("Starts"), value=when(info.starts_at, tr), inline=True)
        embed.add_field(name=tr._("Ready"), value=when(info.ready_at, tr), inline=True)
        if info.paused:
            embed.add_field(name=tr._("Status"), value=tr(info.paused), inline=False)
    elif job.state is JobState.SUBMITTED and info is not None:
        embed.add_field(name=tr._("Expected ready"), value=when(info.ready_at, tr), inline=True)
    if job.state is JobState.REFUNDED and job.cancelled_by is not None:
        embed.add_field(
            name=tr._("Cancelled by"),
            value=tr._(
                "{moderator} · {credits} returned",
                moderator=f"<@{job.cancelled_by}>",
                credits=credits_text(job.cost),
            ),
            inline=False,
        )
    if note is None and job.state is JobState.SUBMITTED:
        note = NO_CANCEL_NOTE
    if note:
        embed.add_field(name=tr._("Note"), value=quote(tr(note), 1000), inline=False)
    _mark_sandbox(embed, job, tr)
    embed.set_footer(text=job_marker(job.id))
    return embed


def delivery_embed(job: Job, *, link_only: bool, tr: Tr = ENGLISH) -> discord.Embed:
    """The embed on the message that carries a finished video (the server's language)."""
    embed = discord.Embed(title=tr._("🎬 Your video is ready"), colour=BRAND)
    if job.prompt:
        embed.description = quote(job.prompt, 2000)
    embed.add_field(name=tr._("Settings"), value=tr(settings_line(job)), inline=True)
    embed.add_field(name=tr._("Cost"), value=tr(credits_text(job.cost)), inline=True)
    if link_only and job.result_url:
        embed.add_field(
            name=tr._("Download"),
            value=tr._(
                "[Open the video]({url}) (too large to upload here; the link expires within "
                "a day)",
                url=job.result_url,
            ),
            inline=False,
        )
        embed.url = job.result_url
    _mark_sandbox(embed, job, tr)
    embed.set_footer(text=job_marker(job.id))
    return embed


def job_line(
    job: Job,
    guild_id: int | None,
    position: tuple[int, int] | None = None,
    *,
    tr: Tr = ENGLISH,
) -> str:
    """One line of /jobs: state, settings, prompt and the best link we have."""
    icon, state = _STATE_LINES.get(job.state, ("•", job.state.value))
    label = tr(state)
    prompt = quote(job.prompt or tr._("(no prompt)"), 60)
    link = ""
    if job.delivered_message_id and job.message_deleted_at is None and guild_id:
        url = (
            f"https://discord.com/channels/{guild_id}/{job.channel_id}/"
            f"{job.delivered_message_id}"
        )
        link = " · " + tr._("[message]({url})", url=url)
    elif job.result_url and job.state in {JobState.COMPLETED, JobState.DELIVERED}:
        link = " · " + tr._("[video]({url})", url=job.result_url)
    if job.state is JobState.QUEUED and position is not None:
        label = _queued_label(position[0], position[1], tr)
    return (
        f"{icon} **#{job.id}** {label} · {tr(settings_line(job))} · "
        f"{tr(credits_text(job.cost))} · "
        f"<t:{int(job.created_at.timestamp())}:R>{link}\n  {prompt}"
    )
