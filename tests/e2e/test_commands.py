"""Every command and option of the bot's surface, its happy path and its refusals.

The real bot runs in-process against the Discord fake and a real sandbox (see conftest).
Assertions look at what Discord received (the fake), what the API received (the sandbox's
task list) and what was charged or changed (the SQLite store).
"""

from __future__ import annotations

from typing import Any

from happyhorse.sandbox.state import SandboxTask
from storage.models import AllowanceSource, AuditAction, Job, JobState
from tests.e2e.conftest import PNG_1x1, Running, StartBot, World, eventually, no_limits
from tests.fake_discord import permissions
from tests.fake_discord.commands import modal_inputs
from tests.fake_discord.interactions import InteractionRecord

EPHEMERAL = 64
FOOTER = "HappyHorse job #"
MANAGE_SERVER = "Manage Server"


# -- helpers ---------------------------------------------------------------------------------


async def private_reply(inter: InteractionRecord) -> dict[str, Any]:
    """The interaction's initial response, asserting it is an ephemeral message (type 4)."""
    assert await inter.wait_for_ack() == 4, f"expected an ephemeral reply, got {inter.ack_type}"
    assert inter.ack_data is not None
    assert inter.ack_data.get("flags", 0) & EPHEMERAL, "the reply must be ephemeral"
    return inter.ack_data


async def private_text(inter: InteractionRecord) -> str:
    """The content of an ephemeral initial response."""
    content: str = (await private_reply(inter)).get("content") or ""
    return content


async def private_embed(inter: InteractionRecord) -> dict[str, Any]:
    """The one embed of an ephemeral initial response."""
    [embed] = (await private_reply(inter))["embeds"]
    result: dict[str, Any] = embed
    return result


def fields(embed: dict[str, Any]) -> dict[str, str]:
    """An embed's fields as {name: value}."""
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def accepted_job(running: Running, inter: InteractionRecord) -> Job:
    """Wait for a request to be deferred and its status card shown; return its job."""
    assert await inter.wait_for_ack() == 5, f"expected a deferral, got {inter.ack_type}"
    assert inter.ack_delay is not None and inter.ack_delay < 3.0
    card = await inter.wait_for_original(
        lambda m: any(
            (e.get("footer") or {}).get("text", "").startswith(FOOTER) for e in m["embeds"]
        ),
        timeout=5,
    )
    job_id = int(card["embeds"][0]["footer"]["text"].removeprefix(FOOTER))
    job = await running.store.jobs.get_job(job_id)
    assert job is not None
    return job


async def settled(running: Running, job_id: int, state: JobState = JobState.DELIVERED) -> Job:
    """Wait until a job reaches `state`; return it."""

    async def check() -> bool:
        job = await running.store.jobs.get_job(job_id)
        return job is not None and job.state is state

    await eventually(check, timeout=10, what=f"job {job_id} to be {state.value}")
    job = await running.store.jobs.get_job(job_id)
    assert job is not None
    return job


def sandbox_task(running: Running, job: Job) -> SandboxTask:
    """The task the sandbox received for a job."""
    assert job.task_id is not None, f"job {job.id} was never submitted"
    return running.sandbox.state.tasks[job.task_id]


async def used(running: Running, member_id: int) -> int:
    """Credits a member has used this period."""
    return (await running.store.credits.balance(running.world.guild.id, member_id)).used


async def delivered_video(running: Running, world: World, prompt: str, **options: Any) -> Job:
    """Run /video as alice until its clip is posted; return the delivered job."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": prompt, **options}
    )
    job = await accepted_job(running, inter)
    return await settled(running, job.id)


# -- /video ----------------------------------------------------------------------------------


async def test_video_options_reach_the_api_and_are_charged(
    start_bot: StartBot, world: World
) -> None:
    """/video sends exactly the chosen aspect ratio, duration, quality and sound, and charges
    5 s std = 1, 10 s x2, pro x2."""
    fake = world.fake
    cases: list[tuple[dict[str, Any], tuple[str, int, str, bool], int]] = [
        ({}, ("16:9", 5, "std", True), 1),  # the defaults
        ({"aspect_ratio": "9:16", "duration": 10, "sound": False}, ("9:16", 10, "std", False), 2),
        ({"aspect_ratio": "1:1", "quality": "pro", "sound": True}, ("1:1", 5, "pro", True), 2),
        (
            {"aspect_ratio": "16:9", "duration": 10, "quality": "pro", "sound": False},
            ("16:9", 10, "pro", False),
            4,
        ),
    ]
    async with start_bot() as running:
        await no_limits(running)  # four at once: none of them waits in the queue
        spent = 0
        jobs = []
        for n, (options, (ratio, duration, quality, sound), cost) in enumerate(cases):
            prompt = f"horse number {n} trotting"
            inter = await fake.invoke_slash(
                world.guild, world.channel, world.alice, "video", {"prompt": prompt, **options}
            )
            job = await accepted_job(running, inter)
            task = sandbox_task(running, job)
            assert (task.mode, task.prompt) == ("text-to-video", prompt)
            assert (task.aspect_ratio, task.duration, task.quality, task.sound) == (
                ratio,
                duration,
                quality,
                sound,
            )
            assert task.image_urls == ()
            assert job.cost == cost
            spent += cost
            assert await used(running, world.alice.id) == spent
            jobs.append(job)
        assert spent == 9 and len(running.sandbox.state.tasks) == len(cases)

        # 1 credit left: a 10 s pro video (4) is refused privately and charges nothing.
        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "video",
            {"prompt": "one more", "duration": 10, "quality": "pro"},
        )
        assert "Not enough credits" in await private_text(inter)
        assert await used(running, world.alice.id) == 9
        assert len(running.sandbox.state.tasks) == len(cases)
        for job in jobs:
            await settled(running, job.id)


# -- /animate and the context menu -----------------------------------------------------------


async def test_animate_sends_the_image_and_takes_its_shape(
    start_bot: StartBot, world: World
) -> None:
    """/animate makes an image-to-video job with the image URL, the aspect ratio defaulting
    to the image's shape and the prompt optional; explicit options win."""
    fake = world.fake
    portrait = fake.attachment("portrait.png", PNG_1x1, "image/png", width=720, height=1280)
    square = fake.attachment("square.png", PNG_1x1, "image/png", width=512, height=512)
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "animate", attachments=[portrait]
        )
        job = await accepted_job(running, inter)
        task = sandbox_task(running, job)
        assert task.mode == "image-to-video" and job.mode == "image-to-video"
        assert task.image_urls == (portrait.url,)
        assert task.aspect_ratio == "9:16"
        assert (task.duration, task.quality, task.sound) == (5, "std", True)
        assert job.prompt == ""
        assert await used(running, world.alice.id) == 1

        inter = await fake.invoke_slash(
            world.guild,
            world.channel,
            world.alice,
            "animate",
            {
                "image": square,
                "prompt": "the horse shakes its mane",
                "aspect_ratio": "16:9",
                "duration": 10,
                "quality": "pro",
                "sound": False,
            },
        )
        second = await accepted_job(running, inter)
        task = sandbox_task(running, second)
        assert task.image_urls == (square.url,)
        assert task.prompt == "the horse shakes its mane"
        assert (task.aspect_ratio, task.duration, task.quality, task.sound) == (
            "16:9",
            10,
            "pro",
            False,
        )
        assert await used(running, world.alice.id) == 1 + 4

        # A file that is not an image is refused privately, before anything is charged.
        notes = fake.attachment("notes.txt", b"not a picture", "text/plain")
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "animate", attachments=[notes]
        )
        assert "PNG, JPEG or WEBP" in await private_text(inter)
        assert await used(running, world.alice.id) == 5
        assert len(running.sandbox.state.tasks) == 2
        await settled(running, job.id)
        await settled(running, second.id)


async def test_animate_image_menu_asks_for_a_prompt_then_animates(
    start_bot: StartBot, world: World
) -> None:
    """'Animate image' on a message with an image answers with a modal; submitting it starts
    an image-to-video job of that image."""
    fake = world.fake
    image = fake.attachment("tall.png", PNG_1x1, "image/png", width=600, height=1000)
    async with start_bot() as running:
        posted = fake.post_user_message(world.channel, world.bob, "look", attachments=[image])
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.alice, "Animate image", posted
        )
        assert await menu.wait_for_ack() == 9
        assert menu.modal is not None
        [text_input] = modal_inputs(menu.modal)
        assert await used(running, world.alice.id) == 0, "opening the modal charges nothing"

        submit = await fake.submit_modal(menu, {text_input["custom_id"]: "it gallops away"})
        job = await accepted_job(running, submit)
        assert (job.user_id, job.mode, job.prompt) == (
            world.alice.id,
            "image-to-video",
            "it gallops away",
        )
        task = sandbox_task(running, job)
        assert task.mode == "image-to-video"
        assert task.image_urls == (posted["attachments"][0]["url"],)
        assert task.aspect_ratio == "9:16"
        assert await used(running, world.alice.id) == 1
        await settled(running, job.id)


async def test_animate_image_menu_on_a_message_without_image_is_refused(
    start_bot: StartBot, world: World
) -> None:
    """'Animate image' on a text-only message is refused privately and opens no modal."""
    fake = world.fake
    async with start_bot() as running:
        posted = fake.post_user_message(world.channel, world.bob, "no picture here")
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.alice, "Animate image", posted
        )
        assert "no image" in await private_text(menu)
        assert menu.modal is None
        assert running.sandbox.state.tasks == {}


async def test_animate_image_menu_refuses_before_the_form_when_it_would_be_refused(
    start_bot: StartBot, world: World
) -> None:
    """With no credits left, or in a closed channel, the menu refuses at once: no form to fill."""
    fake = world.fake
    image = fake.attachment("pic.png", PNG_1x1, "image/png", width=10, height=10)
    async with start_bot() as running:
        posted = fake.post_user_message(world.channel, world.bob, "look", attachments=[image])
        await running.store.credits.set_user_allowance(
            world.guild.id, world.alice.id, 0, world.mod.id
        )
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.alice, "Animate image", posted
        )
        assert "Not enough credits" in await private_text(menu)
        assert menu.modal is None

        other = fake.add_text_channel(world.guild, "elsewhere")
        await running.store.guilds.add_allowed_channel(world.guild.id, other.id, world.mod.id)
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.bob, "Animate image", posted
        )
        assert "can't be made in this channel" in await private_text(menu)
        assert menu.modal is None
        assert running.sandbox.state.tasks == {}


async def open_form_then_stop(
    start_bot: StartBot, world: World, *, width: int, height: int
) -> tuple[dict[str, Any], InteractionRecord, str]:
    """Alice opens the Animate image form on Bob's image; the bot then stops.

    Returns the image message, the menu interaction and the form's text-input id.
    """
    fake = world.fake
    image = fake.attachment("pic.png", PNG_1x1, "image/png", width=width, height=height)
    async with start_bot():
        posted = fake.post_user_message(world.channel, world.bob, "look", attachments=[image])
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.alice, "Animate image", posted
        )
        assert await menu.wait_for_ack() == 9
        assert menu.modal is not None
        [text_input] = modal_inputs(menu.modal)
    return posted, menu, str(text_input["custom_id"])


async def test_animate_image_form_opened_before_a_restart_still_works(
    start_bot: StartBot, world: World
) -> None:
    """A form open while the bot restarts is answered by the new process, with the image."""
    fake = world.fake
    posted, menu, input_id = await open_form_then_stop(start_bot, world, width=1600, height=900)
    async with start_bot() as running:
        submit = await fake.submit_modal(menu, {input_id: "after the restart"})
        job = await accepted_job(running, submit)
        assert (job.user_id, job.mode, job.prompt) == (
            world.alice.id,
            "image-to-video",
            "after the restart",
        )
        assert sandbox_task(running, job).image_urls == (posted["attachments"][0]["url"],)
        assert job.aspect_ratio == "16:9"
        await settled(running, job.id)


async def test_animate_image_form_for_a_deleted_message_is_refused_after_a_restart(
    start_bot: StartBot, world: World
) -> None:
    """If the image's message is gone by the time a pre-restart form is sent, say so, free."""
    fake = world.fake
    posted, menu, input_id = await open_form_then_stop(start_bot, world, width=10, height=10)
    fake.delete_message(posted)
    async with start_bot() as running:
        submit = await fake.submit_modal(menu, {input_id: "too late"})
        assert "can't find that image" in await private_text(submit)
        assert await used(running, world.alice.id) == 0
        assert running.sandbox.state.tasks == {}


# -- /quota and /quotas ----------------------------------------------------------------------


async def test_quota_shows_own_credits_privately(start_bot: StartBot, world: World) -> None:
    """/quota answers the invoker privately with credits left, used, the reset and the costs."""
    fake = world.fake
    async with start_bot() as running:
        job = await delivered_video(running, world, "a long horse", duration=10)
        inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "quota")
        embed = await private_embed(inter)
        shown = fields(embed)
        assert {"Left", "Used", "Resets", "Costs"} <= set(shown)
        assert shown["Left"] == "**8** of 10"
        assert shown["Used"] == "2"
        assert shown["Resets"].startswith("<t:")
        for line in ("5 s std: 1 credit", "10 s std: 2 credits", "5 s pro: 2 credits"):
            assert line in shown["Costs"]
        assert "10 s pro: 4 credits" in shown["Costs"]
        assert "alice" in embed["title"]
        assert job.cost == 2


async def test_quota_of_another_member_needs_manage_server(
    start_bot: StartBot, world: World
) -> None:
    """/quota user=other is refused for a member and shown to a moderator."""
    fake = world.fake
    async with start_bot():
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "quota", {"user": world.bob}
        )
        text = await private_text(inter)
        assert MANAGE_SERVER in text
        assert not inter.ack_data or not inter.ack_data.get("embeds")

        inter = await fake.invoke_slash(
            world.guild, world.channel, world.mod, "quota", {"user": world.bob}
        )
        embed = await private_embed(inter)
        assert "bob" in embed["title"]
        assert fields(embed)["Left"] == "**10** of 10"


async def test_quotas_commands_change_credits_and_are_audited(
    start_bot: StartBot, world: World
) -> None:
    """/quotas set, default, reset and show work for a moderator: private confirmations,
    the store changes and every change is audited."""
    fake = world.fake
    guild, channel, mod, alice, bob = world.guild, world.channel, world.mod, world.alice, world.bob
    async with start_bot() as running:
        credits = running.store.credits

        inter = await fake.invoke_slash(
            guild, channel, mod, "quotas set", {"user": bob, "credits": 25}
        )
        text = await private_text(inter)
        assert f"<@{bob.id}>" in text and "25 credits per day" in text
        balance = await credits.balance(guild.id, bob.id)
        assert (balance.allowance, balance.source) == (25, AllowanceSource.USER)

        inter = await fake.invoke_slash(guild, channel, mod, "quotas default", {"credits": 7})
        assert "7 credits per day" in await private_text(inter)
        balance = await credits.balance(guild.id, alice.id)
        assert (balance.allowance, balance.source) == (7, AllowanceSource.GUILD)
        assert (await credits.balance(guild.id, bob.id)).allowance == 25

        job = await delivered_video(running, world, "a spending horse", quality="pro")
        assert await used(running, alice.id) == 2
        inter = await fake.invoke_slash(guild, channel, mod, "quotas reset", {"user": alice})
        assert "7 of 7 left" in await private_text(inter)
        assert await used(running, alice.id) == 0
        assert (await running.store.jobs.get_job(job.id)) == job, "the job itself is untouched"

        inter = await fake.invoke_slash(guild, channel, mod, "quotas show", {"user": bob})
        embed = await private_embed(inter)
        assert "bob" in embed["title"] and fields(embed)["Left"] == "**25** of 25"
        changes = fields(embed)["Recent moderator changes"]
        assert f"<@{mod.id}> set user allowance: default → 25" in changes
        assert "reset" not in changes, "alice's reset is not bob's history"

        audit = list(reversed(await credits.list_audit(guild.id)))
        assert [(a.action, a.target_user_id, a.old_value, a.new_value) for a in audit] == [
            (AuditAction.SET_USER_ALLOWANCE, bob.id, None, "25"),
            (AuditAction.SET_GUILD_DEFAULT, None, None, "7"),
            (AuditAction.RESET_USAGE, alice.id, "2", "0"),
        ]
        assert all(a.moderator_id == mod.id for a in audit)


async def test_quotas_commands_are_refused_for_a_member(start_bot: StartBot, world: World) -> None:
    """Every /quotas subcommand is refused at run time for a member without Manage Server,
    even when Discord delivers it, and changes nothing."""
    fake = world.fake
    guild, channel, alice, bob = world.guild, world.channel, world.alice, world.bob
    async with start_bot() as running:
        await running.store.credits.balance(guild.id, bob.id)
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("quotas set", {"user": bob, "credits": 999}),
            ("quotas set", {"user": alice, "credits": 999}),
            ("quotas default", {"credits": 999}),
            ("quotas reset", {"user": alice}),
            ("quotas show", {"user": bob}),
        ]
        for command, options in attempts:
            inter = await fake.invoke_slash(guild, channel, alice, command, options)
            reply = await private_reply(inter)
            assert MANAGE_SERVER in (reply.get("content") or ""), command
            assert not reply.get("embeds"), f"/{command} must not show a balance"
        assert await running.store.credits.list_audit(guild.id) == []
        for member in (alice, bob):
            balance = await running.store.credits.balance(guild.id, member.id)
            assert (balance.allowance, balance.source) == (10, AllowanceSource.DEFAULT)
        assert (await running.store.guilds.get(guild.id)).default_credits is None
        # Discord would hide the group from members by default; the bot does not rely on it.
        [quotas] = [c for c in fake.commands(guild) if c["name"] == "quotas"]
        assert int(quotas["default_member_permissions"]) == permissions.MANAGE_GUILD


# -- /config ---------------------------------------------------------------------------------


async def test_config_allowed_channels_limit_where_videos_are_made(
    start_bot: StartBot, world: World
) -> None:
    """/config allow-channel closes other channels (the refusal names the allowed one),
    show lists it and remove-channel reopens everything."""
    fake = world.fake
    guild, videos, mod, alice = world.guild, world.channel, world.mod, world.alice
    general = fake.add_text_channel(guild, "general")
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            guild, videos, mod, "config allow-channel", {"channel": videos}
        )
        assert f"<#{videos.id}>" in await private_text(inter)
        assert (await running.store.guilds.get(guild.id)).allowed_channel_ids == {videos.id}

        inter = await fake.invoke_slash(guild, general, alice, "video", {"prompt": "a horse"})
        text = await private_text(inter)
        assert "can't be made in this channel" in text and f"<#{videos.id}>" in text
        assert await used(running, alice.id) == 0 and running.sandbox.state.tasks == {}

        inter = await fake.invoke_slash(guild, videos, mod, "config show")
        shown = fields(await private_embed(inter))
        assert shown["Allowed channels"] == f"<#{videos.id}>"
        assert shown["Blocked words"] == "None"

        inter = await fake.invoke_slash(
            guild, videos, alice, "video", {"prompt": "a horse in the right place"}
        )
        allowed = await accepted_job(running, inter)
        assert allowed.channel_id == videos.id

        inter = await fake.invoke_slash(
            guild, videos, mod, "config remove-channel", {"channel": videos}
        )
        assert "every channel is allowed" in await private_text(inter)
        assert (await running.store.guilds.get(guild.id)).allowed_channel_ids == frozenset()

        inter = await fake.invoke_slash(guild, general, alice, "video", {"prompt": "a horse"})
        reopened = await accepted_job(running, inter)
        assert reopened.channel_id == general.id

        actions = [a.action for a in reversed(await running.store.credits.list_audit(guild.id))]
        assert actions == [AuditAction.ADD_ALLOWED_CHANNEL, AuditAction.REMOVE_ALLOWED_CHANNEL]
        await settled(running, allowed.id)
        await settled(running, reopened.id)


async def test_config_blocked_words_refuse_prompts(start_bot: StartBot, world: World) -> None:
    """/config block-word refuses prompts with the word (any case), show lists it and
    unblock-word allows it again."""
    fake = world.fake
    guild, channel, mod, alice = world.guild, world.channel, world.mod, world.alice
    async with start_bot() as running:
        inter = await fake.invoke_slash(guild, channel, mod, "config block-word", {"word": "Zebra"})
        assert "`zebra` are now refused" in await private_text(inter)

        inter = await fake.invoke_slash(
            guild, channel, alice, "video", {"prompt": "a ZEBRA racing a horse"}
        )
        assert "does not allow" in await private_text(inter)
        assert await used(running, alice.id) == 0 and running.sandbox.state.tasks == {}

        inter = await fake.invoke_slash(guild, channel, mod, "config show")
        assert fields(await private_embed(inter))["Blocked words"] == "`zebra`"

        inter = await fake.invoke_slash(
            guild, channel, mod, "config unblock-word", {"word": "zebra"}
        )
        assert "allowed again" in await private_text(inter)
        assert (await running.store.guilds.get(guild.id)).blocked_words == ()

        inter = await fake.invoke_slash(
            guild, channel, alice, "video", {"prompt": "a ZEBRA racing a horse"}
        )
        job = await accepted_job(running, inter)
        assert sandbox_task(running, job).prompt == "a ZEBRA racing a horse"
        await settled(running, job.id)


async def test_config_commands_are_refused_for_a_member(start_bot: StartBot, world: World) -> None:
    """Every /config subcommand is refused at run time for a member and changes nothing."""
    fake = world.fake
    guild, channel, alice = world.guild, world.channel, world.alice
    async with start_bot() as running:
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("config show", {}),
            ("config allow-channel", {"channel": channel}),
            ("config remove-channel", {"channel": channel}),
            ("config block-word", {"word": "horse"}),
            ("config unblock-word", {"word": "horse"}),
        ]
        for command, options in attempts:
            inter = await fake.invoke_slash(guild, channel, alice, command, options)
            reply = await private_reply(inter)
            assert MANAGE_SERVER in (reply.get("content") or ""), command
            assert not reply.get("embeds"), command
        settings = await running.store.guilds.get(guild.id)
        assert settings.allowed_channel_ids == frozenset() and settings.blocked_words == ()
        assert await running.store.credits.list_audit(guild.id) == []


# -- /jobs -----------------------------------------------------------------------------------


async def test_jobs_without_any_job_says_so(start_bot: StartBot, world: World) -> None:
    """/jobs with no jobs yet answers privately that there are none."""
    async with start_bot():
        inter = await world.fake.invoke_slash(world.guild, world.channel, world.alice, "jobs")
        assert "no videos here yet" in await private_text(inter)


async def test_jobs_lists_recent_jobs_with_their_state(start_bot: StartBot, world: World) -> None:
    """/jobs lists the invoker's jobs, newest first, with state, settings and message link."""
    fake = world.fake
    async with start_bot() as running:
        ok = await delivered_video(running, world, "a happy horse", aspect_ratio="1:1")
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "a FAIL horse"}
        )
        failed = await accepted_job(running, inter)
        await settled(running, failed.id, JobState.REFUNDED)
        other = await fake.invoke_slash(
            world.guild, world.channel, world.bob, "video", {"prompt": "bob's own horse"}
        )
        bobs = await accepted_job(running, other)

        inter = await fake.invoke_slash(world.guild, world.channel, world.alice, "jobs")
        description = (await private_embed(inter))["description"]
        lines = description.split("\n")
        first = next(i for i, line in enumerate(lines) if f"**#{failed.id}**" in line)
        second = next(i for i, line in enumerate(lines) if f"**#{ok.id}**" in line)
        assert first < second, "newest first"
        assert "Refunded" in lines[first]
        assert "Delivered" in lines[second] and "1:1 · 5 s · std" in lines[second]
        link = f"https://discord.com/channels/{world.guild.id}/{world.channel.id}/"
        assert f"{link}{ok.delivered_message_id}" in lines[second]
        assert f"**#{bobs.id}**" not in description and "bob's own horse" not in description
        await settled(running, bobs.id)


# -- buttons ---------------------------------------------------------------------------------


def video_message(world: World, job: Job) -> dict[str, Any]:
    """The channel message carrying a delivered job's video."""
    assert job.delivered_message_id is not None
    message = world.fake.message(job.delivered_message_id)
    assert message is not None, f"the video of job {job.id} is gone"
    return message


async def test_regenerate_repeats_the_settings_charged_to_the_clicker(
    start_bot: StartBot, world: World
) -> None:
    """Regenerate starts a new job with the same settings, charged to whoever clicks."""
    fake = world.fake
    options = {"aspect_ratio": "9:16", "duration": 10, "quality": "pro", "sound": False}
    async with start_bot() as running:
        original = await delivered_video(running, world, "a horse on the moon", **options)
        assert await used(running, world.alice.id) == 4
        click = await fake.click_button(
            video_message(world, original), f"hh:regen:{original.id}", world.bob
        )
        again = await accepted_job(running, click)
        assert again.id != original.id
        assert again.user_id == world.bob.id
        same = ("mode", "prompt", "duration", "aspect_ratio", "quality", "sound", "cost")
        assert [getattr(again, f) for f in same] == [getattr(original, f) for f in same]
        task = sandbox_task(running, again)
        assert (task.prompt, task.aspect_ratio, task.duration, task.quality, task.sound) == (
            "a horse on the moon",
            "9:16",
            10,
            "pro",
            False,
        )
        assert await used(running, world.bob.id) == 4
        assert await used(running, world.alice.id) == 4, "the requester is not charged again"

        # A clicker who cannot afford it is refused privately; nothing is started.
        carol = fake.add_member(world.guild, "carol")
        await running.store.credits.set_user_allowance(world.guild.id, carol.id, 1, world.mod.id)
        click = await fake.click_button(
            video_message(world, original), f"hh:regen:{original.id}", carol
        )
        assert "Not enough credits" in await private_text(click)
        assert await used(running, carol.id) == 0 and len(running.sandbox.state.tasks) == 2
        regenerated = await settled(running, again.id)
        assert video_message(world, regenerated)["content"].startswith(f"<@{world.bob.id}>")


async def test_delete_button_respects_who_may_delete(start_bot: StartBot, world: World) -> None:
    """Delete: the requester can; another member is refused privately; a member with
    Manage Messages can."""
    fake = world.fake
    janitor = fake.add_member(
        world.guild, "janitor", permissions.DEFAULT_MEMBER | permissions.MANAGE_MESSAGES
    )
    async with start_bot() as running:
        first = await delivered_video(running, world, "first horse")
        second = await delivered_video(running, world, "second horse")
        first_msg, second_msg = video_message(world, first), video_message(world, second)

        click = await fake.click_button(first_msg, f"hh:delete:{first.id}", world.bob)
        assert "Manage Messages" in await private_text(click)
        assert fake.message(first_msg["id"]) is not None, "bob must not delete it"

        click = await fake.click_button(first_msg, f"hh:delete:{first.id}", janitor)
        assert await click.wait_for_ack() == 5
        assert click.ack_data is not None and click.ack_data.get("flags", 0) & EPHEMERAL
        assert (await click.wait_for_followup())["content"] == "Deleted."
        assert fake.message(first_msg["id"]) is None

        click = await fake.click_button(second_msg, f"hh:delete:{second.id}", world.alice)
        assert await click.wait_for_ack() == 5
        assert (await click.wait_for_followup())["content"] == "Deleted."
        assert fake.message(second_msg["id"]) is None
        visible = {m["id"] for m in fake.channel_messages(world.channel)}
        assert not visible & {first_msg["id"], second_msg["id"]}
        assert await used(running, world.alice.id) == 2, "deleting refunds nothing"


async def test_buttons_keep_working_after_a_restart(start_bot: StartBot, world: World) -> None:
    """Regenerate and Delete on a message posted by an earlier run of the bot still work."""
    fake = world.fake
    async with start_bot() as running:
        original = await delivered_video(running, world, "a horse before the restart")
    posted = video_message(world, original)

    async with start_bot() as running:
        click = await fake.click_button(posted, f"hh:regen:{original.id}", world.bob)
        again = await accepted_job(running, click)
        assert (again.user_id, again.prompt) == (world.bob.id, "a horse before the restart")
        assert await used(running, world.bob.id) == 1
        await settled(running, again.id)

        click = await fake.click_button(posted, f"hh:delete:{original.id}", world.alice)
        assert await click.wait_for_ack() == 5
        assert (await click.wait_for_followup())["content"] == "Deleted."
        assert fake.message(posted["id"]) is None
