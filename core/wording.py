"""How a job is described in words, the same on cards, posts and the moderator log.

Discord-free: the cogs put these strings into embeds, and `core.modlog` into log events.
Text that comes from outside the bot (prompts, names, the video service's errors) goes
through `quote` or `code`, so Discord shows it as written.
Each is a `core.i18n.Message`: English as a ``str``, said in any locale with ``tr(text)``.
"""

from __future__ import annotations

import re

from core.i18n import Message, Number, _, ngettext
from storage.credits import Period, period_bounds
from storage.models import Job

IMAGE_TO_VIDEO = "image-to-video"

# Links are left as they are (escaping inside one would break it; on its own a URL shows
# where it goes). The pattern is discord.py's `utils._URL_REGEX`.
_URL = re.compile(r"<[^: >]+:/[^ >]+>|(?:https?|steam)://[^\s<]+[^<.,:;\"'\]\s]")
# What Discord's markdown gives a meaning to, as discord.py's `utils.escape_markdown` sees
# it, and the masked link `[text](url)` (its "[" escaped): emphasis, strike, spoilers and
# code anywhere; `<@…>`, `<#…>`, `</…>`, `<t:…>` and emoji; and at a line start, quotes,
# headings, subtext, lists and numbered lists. A backslash before punctuation shows it.
_MARKDOWN = re.compile(
    r"^(?P<indent>[ \t]*)(?P<marker>>>>|>|#{1,3}|-#|-|\d+\.)(?=[ \t])"
    r"|[\\*_~|`\[]|<(?=[@#:/]|[at]:)",
    re.MULTILINE,
)
# @everyone and @here stay readable but are no longer a mention (a zero-width space).
_MASS_MENTION = re.compile(r"@(everyone|here)")
ZERO_WIDTH_SPACE = "\u200b"


def short(text: str, limit: int) -> str:
    """Cut text to a length Discord accepts, marking the cut. For the bot's own words only:
    text from members or the video service goes through `quote` (or `code`)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape_markdown(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        marker = match.group("marker")
        if marker is None:
            return "\\" + match.group(0)
        if marker[0].isdigit():  # "1. " is a numbered list: escape the dot
            return f"{match.group('indent')}{marker[:-1]}\\."
        return f"{match.group('indent')}\\{marker}"

    return _MARKDOWN.sub(one, text)


def quote(text: str, limit: int) -> str:
    """Text from outside the bot (a prompt, a member's name, an error the video service
    wrote) as Discord must show it: literally, cut to at most `limit` characters.

    Markdown is escaped (so `[Claim Nitro](https://…)` is shown as written, not as a link
    under the bot's name), @everyone and @here are defused, links are left working. Every
    embed and message that quotes such text goes through here.
    """
    pieces: list[str] = []
    at = 0
    for link in _URL.finditer(text):
        pieces.append(_escape_markdown(text[at : link.start()]))
        pieces.append(link.group(0))
        at = link.end()
    pieces.append(_escape_markdown(text[at:]))
    shown = _MASS_MENTION.sub(f"@{ZERO_WIDTH_SPACE}\\1", "".join(pieces))
    if len(shown) <= limit:
        return shown
    cut = shown[: limit - 1]
    # Never end on the first half of an escape: a lone backslash would escape the "…".
    if (len(cut) - len(cut.rstrip("\\"))) % 2:
        cut = cut[:-1]
    return cut + "…"


def code(text: str, limit: int) -> str:
    """Outside text in a code span (`like this`), cut to `limit`: a backtick in it could
    end the span early and let the rest render, so backticks are shown as ˋ."""
    return f"`{short(text.replace('`', 'ˋ'), limit)}`"


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


def past_period_note(job: Job, period: Period) -> Message | None:
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
    return _(
        "they went back to the credit period it was charged in, which ended {ended}, "
        "so the current balance does not change",
        ended=f"<t:{ended}:R>",
    )


def refund_words(job: Job, period: Period, *, verb: str = "refunded") -> Message:
    """'2 credits refunded' (``verb="returned"``: '2 credits returned'), with
    `past_period_note` when the job's credit period had ended before the refund."""
    count = Number(job.cost)
    if verb == "returned":
        amount = ngettext(
            "{count} credit returned", "{count} credits returned", job.cost, count=count
        )
    else:
        amount = ngettext(
            "{count} credit refunded", "{count} credits refunded", job.cost, count=count
        )
    note = past_period_note(job, period)
    if note is None:
        return amount
    return _("{amount}: {note}", amount=amount, note=note)
