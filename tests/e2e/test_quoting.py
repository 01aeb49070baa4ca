"""A member's prompt is shown as written everywhere the bot quotes it: markdown escaped, so a
masked link `[Claim Nitro](https://…)` never appears as a link under the bot's name."""

from __future__ import annotations

import re

from core.wording import quote
from tests.e2e.conftest import StartBot, World
from tests.e2e.test_commands import accepted_job, private_embed, settled
from tests.e2e.test_job_admin import show_job
from tests.e2e.test_modlog import set_log_channel, wait_log

BAIT = "[Claim Nitro](https://nitro.example/claim) @everyone **free** ~~gift~~ ||now||"
# A masked link as Discord parses it: "[" (not escaped), text, "](" then the target.
MASKED_LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(")
EMPHASIS = re.compile(r"(?<!\\)(\*\*|~~|\|\|)")


def shown_literally(text: str) -> bool:
    """True when Discord would render `text` with no link, no emphasis and no @everyone."""
    return (
        MASKED_LINK.search(text) is None
        and EMPHASIS.search(text) is None
        and "@everyone" not in text
    )


def test_quote_escapes_what_discord_would_render() -> None:
    """The rule itself: the bait is escaped, a plain prompt is untouched, links still work."""
    assert not shown_literally(BAIT)
    assert shown_literally(quote(BAIT, 2000))
    assert quote("a silver horse running through neon rain", 100) == (
        "a silver horse running through neon rain"
    )
    assert "https://nitro.example/claim" in quote(BAIT, 2000)
    assert quote("*" * 50, 10) == "\\*\\*\\*\\*…"  # never cut inside an escape


async def test_card_post_jobs_job_and_log_show_the_prompt_escaped(
    start_bot: StartBot, world: World
) -> None:
    """Status card, delivery post, /jobs, /job and the moderator log all show the bait as
    text, not as a masked link, emphasis or @everyone."""
    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log")
    async with start_bot() as running:
        await set_log_channel(running, world, modlog)
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": BAIT}
        )
        job = await accepted_job(running, inter)
        card = inter.original_message()
        assert card is not None
        shown = {"status card": card["embeds"][0]["description"]}

        [accepted] = await wait_log(running, modlog, f"Video #{job.id} accepted")
        shown["moderator log"] = accepted["description"]

        job = await settled(running, job.id)
        post = fake.message(job.delivered_message_id or 0)
        assert post is not None
        shown["delivery post"] = post["embeds"][0]["description"]

        listing = await fake.invoke_slash(world.guild, world.channel, world.alice, "jobs")
        lines = (await private_embed(listing))["description"].split("\n")
        shown["/jobs"] = next(line for line in lines if "Claim Nitro" in line)  # its prompt
        record = await show_job(world, job.id)
        shown["/job"] = record["embeds"][0]["description"]

    for where, text in shown.items():
        assert shown_literally(text), f"{where} renders the prompt as markdown: {text!r}"
        assert "Claim Nitro" in text, where
    assert shown["status card"] == quote(BAIT, 1000)
