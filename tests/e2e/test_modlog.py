"""The moderator log channel: /config log-channel, what is posted there, and a log channel
the bot cannot post in (said by /config show; nothing else breaks).
"""

from __future__ import annotations

from typing import Any

from core.modlog import PROMPT_SHOWN
from core.wording import quote
from storage.models import JobState
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.e2e.test_commands import accepted_job, fields, private_embed, private_text, settled
from tests.fake_discord import permissions
from tests.fake_discord.models import FakeChannel

MESSAGES = r"^/channels/{}/messages$"


def log_posts(running: Running, channel: FakeChannel) -> list[dict[str, Any]]:
    """The log embeds posted in `channel`, oldest first."""
    return [m["embeds"][0] for m in running.fake.channel_messages(channel) if m["embeds"]]


async def wait_log(
    running: Running, channel: FakeChannel, title_part: str, count: int = 1
) -> list[dict[str, Any]]:
    """Wait until `count` log embeds whose title contains `title_part` are posted."""

    async def check() -> bool:
        found = [e for e in log_posts(running, channel) if title_part in e["title"]]
        return len(found) >= count

    await eventually(check, timeout=10, what=f"a log post {title_part!r}")
    return [e for e in log_posts(running, channel) if title_part in e["title"]]


async def set_log_channel(running: Running, world: World, channel: FakeChannel | None) -> str:
    """Run /config log-channel as the moderator; return the private answer."""
    options = {} if channel is None else {"channel": channel}
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.mod, "config log-channel", options
    )
    return await private_text(inter)


async def test_log_channel_reports_jobs_failures_and_moderator_changes(
    start_bot: StartBot, world: World
) -> None:
    """Accepted jobs (with card link), failures with refunds and moderator changes are
    logged as embeds; user text that looks like mentions never pings anyone."""
    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log")
    role = fake.add_role(world.guild, "horses")
    async with start_bot() as running:
        answer = await set_log_channel(running, world, modlog)
        assert modlog.name in answer or str(modlog.id) in answer
        [change] = await wait_log(running, modlog, "Log channel set")
        assert fields(change)["Change"] == f"off → <#{modlog.id}>"

        prompt = f"@everyone @here <@&{role.id}> <@{world.bob.id}> a horse"
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": prompt, "duration": 10}
        )
        job = await accepted_job(running, inter)
        [accepted] = await wait_log(running, modlog, f"Video #{job.id} accepted")
        assert accepted["description"] == quote(prompt, PROMPT_SHOWN)
        assert "@everyone" not in accepted["description"]
        values = fields(accepted)
        assert values["Member"] == f"<@{world.alice.id}>"
        assert values["Type"] == "Text to video"
        assert values["Settings"] == "16:9 · 10 s · std · sound on"
        assert values["Cost"] == "2 credits"
        card_id = inter.original_message()["id"]  # type: ignore[index]
        assert card_id in values["Link"]

        failing = await fake.invoke_slash(
            world.guild, world.channel, world.bob, "video", {"prompt": "FAIL please"}
        )
        failed_job = await accepted_job(running, failing)
        await settled(running, failed_job.id, JobState.REFUNDED)
        [failure] = await wait_log(running, modlog, f"Video #{failed_job.id} failed")
        assert "1 credit refunded" in failure["title"]
        assert fields(failure)["Member"] == f"<@{world.bob.id}>"

        await private_text(
            await fake.invoke_slash(
                world.guild,
                world.channel,
                world.mod,
                "quotas set",
                {"user": world.bob, "credits": 3},
            )
        )
        [quota] = await wait_log(running, modlog, "Member allowance set")
        assert fields(quota) == {
            "Moderator": f"<@{world.mod.id}>",
            "Member": f"<@{world.bob.id}>",
            "Change": "— → `3`",
        }
        await private_text(
            await fake.invoke_slash(
                world.guild, world.channel, world.mod, "config block-word", {"word": "Zebra"}
            )
        )
        [word] = await wait_log(running, modlog, "Word blocked")
        assert fields(word)["Change"] == "— → `zebra`"

        posts = fake.find_requests("POST", MESSAGES.format(modlog.id))
        assert len(posts) == 6  # log channel, 2 accepted, 1 failed, quota, word
        for post in posts:
            assert post.json["allowed_mentions"] == {"parse": []}
        for message in fake.channel_messages(modlog):
            assert message["mentions"] == [] and message["mention_roles"] == []
            assert message["mention_everyone"] is False

        assert await set_log_channel(running, world, None) == "The moderator log is off."
        await delivered_again(running, world)
        assert len(fake.channel_messages(modlog)) == 6, "nothing is logged once it is off"


async def delivered_again(running: Running, world: World) -> None:
    """One more video by alice, to its delivery."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": "another horse"}
    )
    job = await accepted_job(running, inter)
    await settled(running, job.id)
    await running.bot.modlog.wait_idle()


async def test_a_log_channel_the_bot_cannot_post_in_is_reported_and_harmless(
    start_bot: StartBot, world: World
) -> None:
    """No Send Messages in the log channel: /config show says so; videos still deliver."""
    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log", bot_permissions=permissions.VIEW_CHANNEL)
    async with start_bot() as running:
        answer = await set_log_channel(running, world, modlog)
        assert "can't post there yet" in answer and "Send Messages" in answer
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a horse"}
        )
        job = await accepted_job(running, inter)
        await settled(running, job.id)
        await running.bot.modlog.wait_idle()
        assert fake.channel_messages(modlog) == []
        assert fake.find_requests("POST", MESSAGES.format(modlog.id)) == [], (
            "a refused post is an invalid request: it must not even be tried"
        )
        show = await fake.invoke_slash(world.guild, world.channel, world.mod, "config show")
        value = fields(await private_embed(show))["Log channel"]
        assert f"<#{modlog.id}>" in value
        assert "can't post there" in value and "Send Messages" in value


async def test_config_show_says_when_the_log_is_off(start_bot: StartBot, world: World) -> None:
    """Without a log channel /config show says it is off and how to turn it on."""
    async with start_bot():
        show = await world.fake.invoke_slash(world.guild, world.channel, world.mod, "config show")
        assert "Off" in fields(await private_embed(show))["Log channel"]


async def test_role_allowances_and_limits_reach_the_log(start_bot: StartBot, world: World) -> None:
    """/quotas role-set, /quotas role-remove and /config limits are moderator changes too."""
    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log")
    boosters = fake.add_role(world.guild, "boosters")
    async with start_bot() as running:
        await set_log_channel(running, world, modlog)
        mod = world.mod
        await private_text(
            await fake.invoke_slash(
                world.guild,
                world.channel,
                mod,
                "quotas role-set",
                {"role": boosters, "credits": 20},
            )
        )
        [role_set] = await wait_log(running, modlog, "Role allowance set")
        assert fields(role_set)["Role"] == f"<@&{boosters.id}>"
        assert fields(role_set)["Change"] == "— → `20`"
        await private_text(
            await fake.invoke_slash(
                world.guild, world.channel, mod, "quotas role-remove", {"role": boosters}
            )
        )
        await wait_log(running, modlog, "Role allowance set", count=2)
        await private_text(
            await fake.invoke_slash(
                world.guild, world.channel, mod, "config limits", {"member_running": 4}
            )
        )
        [limits] = await wait_log(running, modlog, "Queue limits set")
        assert "member_running=4" in fields(limits)["Change"]
        for message in fake.channel_messages(modlog):
            assert message["mention_roles"] == [] and message["mention_everyone"] is False
