"""Slash commands, follow-ups, ephemeral replies, buttons, modals and validation."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fake_discord import CommandValidationError, permissions

from .conftest import World
from .selftest_bot import SelfTestBot

EPHEMERAL = 64


async def test_defer_followup_and_channel_file(world: World, bot: SelfTestBot) -> None:
    """A deferred command follows up and posts a file; both land where Discord puts them."""
    fake = world.fake
    inter = await fake.invoke_slash(
        world.guild, world.channel, world.alice, "render", {"prompt": "a horse", "style": "anime"}
    )
    assert await inter.wait_for_ack() == 5
    assert inter.ack_delay is not None and inter.ack_delay < 3
    followup = await inter.wait_for_followup()
    assert followup["content"] == "rendering 'a horse' style=anime count=1"
    # The first follow-up after a defer fills in the "thinking" message.
    original = inter.original_message()
    assert original is not None and followup["id"] == original["id"]
    assert followup["flags"] & 128 == 0
    clip = await fake.wait_for_message(
        world.channel, lambda m: bool(m["attachments"]), include_existing=True
    )
    assert [(a["filename"], a["size"]) for a in clip["attachments"]] == [("clip.mp4", 1024)]
    upload = fake.find_requests("POST", r"^/channels/\d+/messages$")[0]
    assert upload.file_summary == [("clip.mp4", 1024)]
    assert upload.json["allowed_mentions"] == {"parse": []}
    async with (
        aiohttp.ClientSession() as session,
        session.get(clip["attachments"][0]["url"]) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == b"\x00" * 1024


async def test_attachment_option_is_resolved_and_downloadable(
    world: World, bot: SelfTestBot
) -> None:
    """An attachment option arrives in data.resolved and the bot can read it from the CDN."""
    fake = world.fake
    image = fake.attachment("start.png", b"PNG" * 10, "image/png", width=4, height=4)
    inter = await fake.invoke_slash(
        world.guild,
        world.channel,
        world.alice,
        "render",
        {"prompt": "x", "style": "cinematic", "count": 2},
        attachments=[image],
    )
    resolved = inter.payload["data"]["resolved"]["attachments"][str(image.id)]
    assert resolved["content_type"] == "image/png" and resolved["width"] == 4
    message = await inter.wait_for_followup(n=2)
    assert message["content"] == "image start.png 30 bytes"


async def test_ephemeral_reply(world: World, bot: SelfTestBot) -> None:
    """An ephemeral reply carries flag 64 and never shows up in the channel."""
    inter = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "ping")
    assert await inter.wait_for_ack() == 4
    assert inter.initial_response is not None
    assert inter.initial_response["content"] == "pong"
    assert inter.initial_response["flags"] & EPHEMERAL
    assert world.fake.channel_messages(world.channel) == []
    callback = world.fake.find_requests("POST", r"/callback$")[0]
    assert callback.query == {"with_response": "1"}
    assert callback.json["data"]["flags"] == EPHEMERAL


async def test_subcommand_with_member_option_and_permission_check(
    world: World, bot: SelfTestBot
) -> None:
    """A group subcommand gets its member option; has_permissions reads Interaction.permissions."""
    fake = world.fake
    options = {"member": world.alice, "amount": 5}
    denied = await fake.invoke_slash(world.guild, world.channel, world.alice, "quotas set", options)
    await denied.wait_for_ack()
    assert denied.initial_response is not None
    assert denied.initial_response["content"] == "not allowed"
    allowed = await fake.invoke_slash(
        world.guild, world.channel, world.admin, "quotas set", options
    )
    await allowed.wait_for_ack()
    assert allowed.initial_response is not None
    assert allowed.initial_response["content"] == "quota for alice = 5"
    assert allowed.payload["data"]["options"][0]["type"] == 1


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        ("nope", {}, "no synced command"),
        ("render", {"prompt": "x", "style": "watercolour"}, "not one of the choices"),
        ("render", {"style": "anime"}, "required option 'prompt' missing"),
        ("render", {"prompt": "x", "style": "anime", "count": 9}, "above max_value"),
        ("render", {"prompt": "x", "style": "anime", "colour": "red"}, "no option 'colour'"),
        ("quotas", {}, "needs a subcommand"),
        ("quotas delete", {}, "no subcommand 'delete'"),
    ],
)
async def test_invalid_invocations_fail_loudly(
    world: World, bot: SelfTestBot, command: str, options: dict[str, object], message: str
) -> None:
    """The driver refuses what Discord's client would never send."""
    with pytest.raises(CommandValidationError, match=message):
        await world.fake.invoke_slash(world.guild, world.channel, world.alice, command, options)


async def test_persistent_dynamic_button(world: World, bot: SelfTestBot) -> None:
    """A DynamicItem button is clicked and the bot updates the message in place (type 7)."""
    fake = world.fake
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "counter")
    await inter.wait_for_ack()
    message = inter.original_message()
    assert message is not None
    click = await fake.click_button(message, "counter:0", world.alice)
    assert await click.wait_for_ack() == 7
    updated = fake.message(message["id"])
    assert updated is not None and updated["content"] == "count=1"
    assert updated["components"][0]["components"][0]["custom_id"] == "counter:1"
    again = await fake.click_button(updated, "counter:1", world.admin)
    await again.wait_for_ack()
    assert fake.channel_messages(world.channel)[-1]["content"] == "count=2"


async def test_context_menu_modal_and_submit(world: World, bot: SelfTestBot) -> None:
    """A message command answers with a modal; its submission reaches on_submit."""
    fake = world.fake
    photo = fake.attachment("horse.png", b"\x89PNG" + b"0" * 96, "image/png")
    target = fake.post_user_message(world.channel, world.alice, "look", attachments=[photo])
    inter = await fake.invoke_message_command(
        world.guild, world.channel, world.alice, "Animate image", target
    )
    assert await inter.wait_for_ack() == 9
    assert inter.modal is not None and inter.modal["custom_id"] == "animate-modal"
    with pytest.raises(CommandValidationError, match="required"):
        await fake.submit_modal(inter, {"seconds": "3"})
    submit = await fake.submit_modal(inter, {"prompt": "gallop", "seconds": "3"})
    assert await submit.wait_for_ack() == 4
    assert submit.initial_response is not None
    assert submit.initial_response["content"] == (
        "prompt=gallop seconds=3 file=horse.png bytes=100"
    )


async def test_second_ack_is_rejected(world: World, bot: SelfTestBot) -> None:
    """Acknowledging twice gets 400 with code 40060."""
    inter = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "ping")
    await inter.wait_for_ack()
    url = f"{world.fake.api_base}/interactions/{inter.id}/{inter.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["code"] == 40060
    assert inter.callback_errors == [(400, 40060)]


async def test_late_ack_times_out_and_gets_10062(world: World, bot: SelfTestBot) -> None:
    """A bot slower than the ack deadline fails wait_for_ack and gets Unknown interaction."""
    fake = world.fake
    fake.ack_deadline = 0.2
    bot.ack_delay = 0.4
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "slow")
    with pytest.raises(AssertionError, match="not acknowledged"):
        await inter.wait_for_ack()
    await fake.wait_for(lambda: bot.errors, what="the bot's error")
    assert [(e.status, e.code) for e in bot.errors] == [(404, 10062)]


async def test_expired_token_gets_50027(world: World, bot: SelfTestBot) -> None:
    """A follow-up after the token expired gets 401 with code 50027."""
    fake = world.fake
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "slow")
    await inter.wait_for_ack()
    inter.expire()
    bot.release.set()
    await fake.wait_for(lambda: bot.errors, what="the bot's error")
    assert [(e.status, e.code) for e in bot.errors] == [(401, 50027)]


async def test_missing_send_permission_is_403(world: World, bot: SelfTestBot) -> None:
    """Without Send Messages the channel post fails with 50013; the follow-up still works."""
    fake = world.fake
    fake.set_bot_permissions(world.channel, permissions.ALL_TEXT & ~permissions.SEND_MESSAGES)
    inter = await fake.invoke_slash(
        world.guild, world.channel, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    failed = await inter.wait_for_followup(n=2)
    assert failed["content"] == "failed: 403 50013"
    assert failed["flags"] & EPHEMERAL
    assert inter.payload["app_permissions"] == str(
        permissions.ALL_TEXT & ~permissions.SEND_MESSAGES
    )


async def test_missing_attach_files_is_403(world: World, bot: SelfTestBot) -> None:
    """Files need Attach Files."""
    fake = world.fake
    fake.set_bot_permissions(world.channel, permissions.ALL_TEXT & ~permissions.ATTACH_FILES)
    inter = await fake.invoke_slash(
        world.guild, world.channel, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    assert (await inter.wait_for_followup(n=2))["content"] == "failed: 403 50013"


async def test_file_over_upload_limit_is_413(world: World, bot: SelfTestBot) -> None:
    """A file over the guild's limit gets HTTP 413 with code 40005."""
    fake = world.fake
    fake.set_upload_limit(world.guild, 1000)
    bot.file_size = 1001
    inter = await fake.invoke_slash(
        world.guild, world.channel, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    assert (await inter.wait_for_followup(n=2))["content"] == "failed: 413 40005"
    rejected = fake.find_requests("POST", r"^/channels/\d+/messages$", status=413)
    assert rejected[0].response == {"code": 40005, "message": "Request entity too large"}


async def test_real_default_limit_is_ten_mebibytes(world: World, bot: SelfTestBot) -> None:
    """Exactly 10 MiB passes and one byte more does not."""
    fake = world.fake
    bot.file_size = 10 * 1024 * 1024 + 1
    inter = await fake.invoke_slash(
        world.guild, world.channel, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    assert (await inter.wait_for_followup(n=2))["content"] == "failed: 413 40005"


async def test_unknown_channel_is_404(world: World, bot: SelfTestBot) -> None:
    """Posting into a deleted channel gets 404 with code 10003."""
    fake = world.fake
    other = fake.add_text_channel(world.guild, "doomed")
    bot.gate = asyncio.Event()
    inter = await fake.invoke_slash(
        world.guild, other, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    await inter.wait_for_followup()
    fake.delete_channel(other)
    bot.gate.set()
    await fake.wait_for(lambda: bot.errors, what="the bot's error")
    assert [(e.status, e.code) for e in bot.errors] == [(404, 10003)]


async def test_blocked_dms_are_403_50007(world: World, bot: SelfTestBot) -> None:
    """DMs reach the user unless they block them (403, 50007)."""
    fake = world.fake
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "dm")
    await inter.wait_for_ack()
    assert fake.dm_messages(world.alice)[0]["content"] == "hello in private"
    fake.block_dms(world.alice)
    blocked = await fake.invoke_slash(world.guild, world.channel, world.alice, "dm")
    await blocked.wait_for_ack()
    assert blocked.initial_response is not None
    assert blocked.initial_response["content"] == "dm failed 50007"


async def test_label_layout_modal(world: World, bot: SelfTestBot) -> None:
    """Label-wrapped inputs (type 18) come back as discord.py 2.7 parses them."""
    fake = world.fake
    inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "feedback")
    assert await inter.wait_for_ack() == 9
    submit = await fake.submit_modal(inter, {"text": "great", "mood": ["Happy"]})
    await submit.wait_for_ack()
    assert submit.payload["data"]["components"][0]["type"] == 18
    assert submit.initial_response is not None
    assert submit.initial_response["content"] == "text=great mood=Happy"


async def test_thread_needs_send_messages_in_threads(world: World, bot: SelfTestBot) -> None:
    """In a thread the bot needs Send Messages in Threads, taken from the parent channel."""
    fake = world.fake
    thread = fake.add_thread(world.channel, "renders")
    inter = await fake.invoke_slash(
        world.guild, thread, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    clip = await fake.wait_for_message(
        thread, lambda m: bool(m["attachments"]), include_existing=True
    )
    assert clip["position"] >= 0
    await inter.wait_for_followup()
    fake.set_bot_permissions(thread, permissions.ALL_TEXT & ~permissions.SEND_MESSAGES_IN_THREADS)
    again = await fake.invoke_slash(
        world.guild, thread, world.alice, "render", {"prompt": "x", "style": "anime"}
    )
    assert (await again.wait_for_followup(n=2))["content"] == "failed: 403 50013"
