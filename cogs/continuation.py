"""The Continue button under every delivered video: a new clip that starts where it ends.

Pressing it opens a form with the video's prompt, prefilled and editable. Submitting it
takes the video's last frame (PyAV, in the media pool), uploads it to Discord on the
new job's status card, and starts an image-to-video job from that image's CDN URL with
the video's aspect ratio, duration, quality and sound, charged to whoever pressed, under
the same limits, queue and blocked words as /animate. The new video is posted as a reply
to the one it continues.

Both the button (`hh:continue:<job id>`) and the form (`hh:continue-form:<job id>`) carry
the job in their custom ids and are answered by registered handlers, so they work after
a restart. The source file is the service's original while its URL should still work
(full quality, even under a re-encoded post), else the video message's attachment (the
interaction brings fresh CDN URLs); when neither is left the press is refused privately.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from botkit import views
from botkit.i18n import public_tr, tr_for
from botkit.launch import (
    NOT_STARTED,
    cannot_post_message,
    missing_post_permissions,
    reply_private,
    start_job,
)
from botkit.permissions import member_role_ids
from cogs.generation import submitted_value
from core.errors import Refusal
from core.i18n import Tr, _
from core.jobs import IMAGE_TO_VIDEO, JobDraft
from core.prompts import PromptError, check_prompt
from core.uploads import MAX_SOURCE_BYTES, original_link_alive
from happyhorse import media
from happyhorse.errors import HappyHorseError
from storage.models import Job, JobState

if TYPE_CHECKING:
    from botkit.bot import HappyHorseBot

log = logging.getLogger(__name__)

FORM_ID = re.compile(r"hh:continue-form:(?P<job_id>[0-9]+)")
PROMPT_INPUT_ID = "hh:continue:prompt"
#: The form's prompt field: Discord allows at most 4,000 characters in a text input.
FORM_PROMPT_MAX = 4000
#: The most time the last frame may take (download and decode), well inside the 15
#: minutes an interaction token lives.
FRAME_DEADLINE_SECONDS = 120.0

SOURCE_GONE = _(
    "This video's file is gone (its message lost the attachment and the video service's "
    "link has expired), so it can't be continued. Start a new one with `/video` or `/animate`."
)


def _bot(interaction: discord.Interaction) -> HappyHorseBot:
    return interaction.client  # type: ignore[return-value]


def _source_urls(bot: HappyHorseBot, job: Job, message: discord.Message | None) -> list[str]:
    """Where the video's file can be fetched now, best first: the service's original while
    its URL should live (full quality, even when the post is a re-encode), then the
    message's attachment (the interaction brings its fresh CDN URL)."""
    urls = []
    if job.result_url and original_link_alive(
        job.completed_at, bot.settings.result_url_ttl_hours, discord.utils.utcnow()
    ):
        urls.append(job.result_url)
    if message is not None:
        urls.extend(
            a.url
            for a in message.attachments
            if a.filename.lower().endswith(".mp4") or (a.content_type or "").startswith("video/")
        )
    return urls


async def _continuable(interaction: discord.Interaction, job_id: int) -> Job | None:
    """The job, if it is a delivered video of this server; otherwise answer why not."""
    bot = _bot(interaction)
    tr = tr_for(interaction)
    job = await bot.store.jobs.get_job(job_id)
    if job is None or job.guild_id != interaction.guild_id or interaction.channel_id is None:
        await reply_private(interaction, tr._("That video is no longer available."))
        return None
    if job.erased_at is not None:
        await reply_private(
            interaction,
            tr._(
                "This video's prompt was erased under the server's data retention policy, so "
                "it can't be continued. Start a new one with `/video` or `/animate`."
            ),
        )
        return None
    if job.state not in (JobState.DELIVERED, JobState.COMPLETED) or job.result_url is None:
        await reply_private(
            interaction, tr._("That video has not been posted, so it can't be continued.")
        )
        return None
    return job


class ContinueForm(discord.ui.Modal):
    """The prompt for the continuation, in the presser's language; answered by
    `Continuation.on_continue_form`."""

    def __init__(self, job: Job, tr: Tr) -> None:
        super().__init__(
            title=tr._("Continue this video"),
            timeout=600,
            custom_id=f"hh:continue-form:{job.id}",
        )
        self.prompt: discord.ui.TextInput[ContinueForm] = discord.ui.TextInput(
            label=tr._("What happens next?"),
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=FORM_PROMPT_MAX,
            default=job.prompt[:FORM_PROMPT_MAX] or None,
            custom_id=PROMPT_INPUT_ID,
        )
        self.add_item(self.prompt)


class ContinueButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=views.template(views.CONTINUE),
):
    """Open the Continue form for a delivered video."""

    def __init__(self, job_id: int) -> None:
        super().__init__(views.continue_button(job_id))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ContinueButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Check what can be checked now (nobody types a prompt to be refused), then ask."""
        bot = _bot(interaction)
        tr = tr_for(interaction)
        job = await _continuable(interaction, self.job_id)
        if job is None:
            return
        if not _source_urls(bot, job, interaction.message):
            await reply_private(interaction, tr(SOURCE_GONE))
            return
        missing = missing_post_permissions(interaction)
        if missing:
            await reply_private(interaction, tr(cannot_post_message(missing)))
            return
        try:
            await _precheck(bot, interaction, job)
        except Refusal as refusal:
            await reply_private(interaction, tr(refusal.message))
            return
        await interaction.response.send_modal(ContinueForm(job, tr))


async def _precheck(bot: HappyHorseBot, interaction: discord.Interaction, job: Job) -> None:
    """The free checks /animate would make for this member here (raises `Refusal`)."""
    assert interaction.guild_id is not None and interaction.channel_id is not None
    await bot.queue.admit_member(interaction.guild_id, interaction.user.id)
    await bot.jobs.precheck(
        interaction.guild_id,
        interaction.channel_id,
        interaction.user.id,
        bot.jobs.cost_of(job.duration, job.quality),
        member_role_ids(interaction.user),
    )


class Continuation(commands.Cog):
    """Registers the Continue button and answers its form."""

    def __init__(self, bot: HappyHorseBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Register the button so presses after a restart still work."""
        self.bot.add_dynamic_items(ContinueButton)

    async def cog_unload(self) -> None:
        """Unregister the button."""
        self.bot.remove_dynamic_items(ContinueButton)

    @commands.Cog.listener("on_interaction")
    async def on_continue_form(self, interaction: discord.Interaction) -> None:
        """Answer a Continue form: last frame, upload, then the job as /animate would."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        match = FORM_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        bot = self.bot
        tr = tr_for(interaction)
        job = await _continuable(interaction, int(match["job_id"]))
        if job is None:
            return
        prompt = submitted_value(data.get("components"), PROMPT_INPUT_ID) or ""
        sources = _source_urls(bot, job, interaction.message)
        if not sources:
            await reply_private(interaction, tr(SOURCE_GONE))
            return
        try:
            # Everything that can refuse for free, before the public acknowledgement.
            await _precheck(bot, interaction, job)
            guild = await bot.store.guilds.get(job.guild_id)
            check_prompt(
                prompt,
                max_length=bot.settings.client.max_prompt_length,
                blocked_words=guild.blocked_words,
                required=False,
            )
        except Refusal as refusal:
            await reply_private(interaction, tr(refusal.message))
            return
        except PromptError as exc:
            reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
            await reply_private(interaction, tr(reason))
            return
        await interaction.response.defer(thinking=True)
        image_url = await self._upload_last_frame(interaction, job, sources)
        if image_url is None:
            return
        assert interaction.guild_id is not None and interaction.channel_id is not None
        draft = JobDraft(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            mode=IMAGE_TO_VIDEO,
            prompt=prompt,
            duration=job.duration,
            aspect_ratio=job.aspect_ratio,
            quality=job.quality,
            sound=job.sound,
            image_url=image_url,
            interaction_id=interaction.id,
            role_ids=member_role_ids(interaction.user),
            reply_to_message_id=interaction.message.id if interaction.message else None,
        )
        await start_job(bot, interaction, draft, deferred=True)

    async def _upload_last_frame(
        self, interaction: discord.Interaction, job: Job, sources: list[str]
    ) -> str | None:
        """Take the video's last frame (from the first source that works) and put it on
        the placeholder; its CDN URL, or ``None`` after telling the presser privately."""
        tr = tr_for(interaction)
        png = await self._last_frame(job, sources)
        if png is None:
            await _not_started(interaction, tr(SOURCE_GONE))
            return None
        public = await public_tr(self.bot, interaction)
        try:
            message = await interaction.edit_original_response(
                content="⏩ " + public._(
                    "Continuing video #{job} from its last frame…", job=job.id
                ),
                attachments=[discord.File(io.BytesIO(png), filename=f"continue-{job.id}.png")],
            )
        except discord.HTTPException as exc:
            log.warning("Job %s: could not upload the last frame: %s", job.id, exc)
            await _not_started(
                interaction, tr._("Discord refused the starting image; try again.")
            )
            return None
        if not message.attachments:
            await _not_started(interaction, tr._("Discord lost the starting image; try again."))
            return None
        return message.attachments[0].url


    async def _last_frame(self, job: Job, sources: list[str]) -> bytes | None:
        deadline = time.monotonic() + FRAME_DEADLINE_SECONDS
        with tempfile.TemporaryDirectory(prefix="happyhorse-continue-") as folder:
            path = Path(folder) / f"job-{job.id}.mp4"
            for url in sources:
                left = deadline - time.monotonic()
                if left <= 1.0:
                    break
                try:
                    await self.bot.api.download(url, path, MAX_SOURCE_BYTES, deadline_seconds=left)
                    left = max(1.0, deadline - time.monotonic())
                    return await self.bot.transcoder.last_frame(path, deadline_seconds=left)
                except (HappyHorseError, media.MediaError) as exc:
                    log.warning("Job %s: no last frame from one source: %s", job.id, exc)
        return None


async def _not_started(interaction: discord.Interaction, reason: str) -> None:
    """Replace the public placeholder with the neutral line; the reason goes privately."""
    try:
        public = await public_tr(_bot(interaction), interaction)
        await interaction.edit_original_response(content=public(NOT_STARTED), attachments=[])
    except discord.HTTPException as exc:
        log.info("Could not replace the Continue placeholder: %s", exc)
    await interaction.followup.send(reason, ephemeral=True)


async def setup(bot: HappyHorseBot) -> None:
    """Load the cog."""
    await bot.add_cog(Continuation(bot))
