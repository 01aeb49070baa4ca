"""The buttons under the bot's messages, as plain components.

Each button carries its job in its custom id (`hh:<action>:<job id>`). Clicks are routed
by the dynamic items that `cogs.buttons` registers at start-up, matching `template`, so no
view is kept in memory and a click on a message posted by an earlier process still works.
The same holds with several processes: any process with the gateway shard that receives
the click handles it.

Labels are in the readers' language: the server's, as the buttons sit under public
messages (pass that `Tr`).
"""

from __future__ import annotations

import discord

from core.i18n import ENGLISH, Tr

REGENERATE = "regen"
DELETE = "delete"
CANCEL = "cancel"
CONTINUE = "continue"


def custom_id(action: str, job_id: int) -> str:
    """The custom id of a job's button."""
    return f"hh:{action}:{job_id}"


def template(action: str) -> str:
    """The pattern a dynamic item matches for `action` (the job id in group `job_id`)."""
    return rf"hh:{action}:(?P<job_id>[0-9]+)"


def regenerate_button(job_id: int, tr: Tr = ENGLISH) -> discord.ui.Button[discord.ui.View]:
    """Regenerate: a new job with the same settings, charged to whoever clicks."""
    return discord.ui.Button(
        label=tr._("Regenerate"),
        emoji="🔁",
        style=discord.ButtonStyle.primary,
        custom_id=custom_id(REGENERATE, job_id),
    )


def continue_button(job_id: int, tr: Tr = ENGLISH) -> discord.ui.Button[discord.ui.View]:
    """Continue: a new image-to-video job from this video's last frame."""
    return discord.ui.Button(
        label=tr._("Continue"),
        emoji="⏩",
        style=discord.ButtonStyle.secondary,
        custom_id=custom_id(CONTINUE, job_id),
    )


def original_button(url: str, tr: Tr = ENGLISH) -> discord.ui.Button[discord.ui.View]:
    """A link to the video as the service made it (before a re-encode), while it lives."""
    return discord.ui.Button(
        label=tr._("Original"), emoji="🔗", style=discord.ButtonStyle.link, url=url
    )


def delete_button(job_id: int, tr: Tr = ENGLISH) -> discord.ui.Button[discord.ui.View]:
    """Delete a delivered video."""
    return discord.ui.Button(
        label=tr._("Delete"),
        emoji="🗑️",
        style=discord.ButtonStyle.secondary,
        custom_id=custom_id(DELETE, job_id),
    )


def cancel_button(job_id: int, tr: Tr = ENGLISH) -> discord.ui.Button[discord.ui.View]:
    """Cancel a queued job."""
    return discord.ui.Button(
        label=tr._("Cancel"),
        emoji="✖️",
        style=discord.ButtonStyle.danger,
        custom_id=custom_id(CANCEL, job_id),
    )


def _routed(*items: discord.ui.Item[discord.ui.View]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()  # nothing to keep in memory: clicks reach the registered dynamic items
    return view


def cancel_view(job_id: int, tr: Tr = ENGLISH) -> discord.ui.View:
    """The Cancel button on a queued job's card."""
    return _routed(cancel_button(job_id, tr))


def result_view(
    job_id: int, *, original_url: str | None = None, tr: Tr = ENGLISH
) -> discord.ui.View:
    """The buttons under a delivered video; ``original_url`` adds an "Original" link."""
    items = [regenerate_button(job_id, tr), continue_button(job_id, tr), delete_button(job_id, tr)]
    if original_url is not None:
        items.append(original_button(original_url, tr))
    return _routed(*items)
