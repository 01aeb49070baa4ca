"""Community controls end to end: role allowances, limits and cool-downs, the fair queue,
Cancel, 429 and 402 on generate, and queue wait timeouts.

The real bot runs in-process against the Discord fake and a real sandbox (see conftest);
the SIGKILL restart of a bot with a queue is in test_restart.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from storage.models import AllowanceSource, AuditAction, Job, JobState
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.fake_discord.interactions import InteractionRecord
from tests.fake_discord.models import FakeMember

EPHEMERAL = 64
FOOTER = "HappyHorse job #"
CANCEL = "hh:cancel:"
PAUSED = "paused: the video service account is out of credits"


# -- helpers ---------------------------------------------------------------------------------


async def private_text(inter: InteractionRecord) -> str:
    """An ephemeral initial response's content."""
    assert await inter.wait_for_ack() == 4, f"expected a private reply, got {inter.ack_type}"
    assert inter.ack_data is not None and inter.ack_data.get("flags", 0) & EPHEMERAL
    content: str = inter.ack_data.get("content") or ""
    return content


async def private_embed(inter: InteractionRecord) -> dict[str, Any]:
    assert await inter.wait_for_ack() == 4
    assert inter.ack_data is not None and inter.ack_data.get("flags", 0) & EPHEMERAL
    [embed] = inter.ack_data["embeds"]
    result: dict[str, Any] = embed
    return result


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


def custom_ids(message: dict[str, Any]) -> list[str]:
    """Every component custom id on a message."""
    return [
        button["custom_id"]
        for row in message.get("components") or []
        for button in row.get("components") or []
        if "custom_id" in button
    ]


def title(message: dict[str, Any]) -> str:
    embeds = message.get("embeds") or []
    return str(embeds[0].get("title", "")) if embeds else ""


async def ask(
    world: World, member: FakeMember, prompt: str = "a horse on a beach", **options: Any
) -> InteractionRecord:
    """/video as `member`; the bot must defer publicly within Discord's 3 s."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, member, "video", {"prompt": prompt, **options}
    )
    assert await inter.wait_for_ack() == 5, f"expected a deferral, got {inter.ack_type}"
    return inter


async def card(inter: InteractionRecord, shows: str = "", timeout: float = 10.0) -> dict[str, Any]:
    """The request's status card, once its title contains `shows`."""

    def ready(message: dict[str, Any]) -> bool:
        embeds = message.get("embeds") or []
        return (
            bool(embeds)
            and (embeds[0].get("footer") or {}).get("text", "").startswith(FOOTER)
            and shows in embeds[0].get("title", "")
        )

    return await inter.wait_for_original(ready, timeout)


def job_id_of(message: dict[str, Any]) -> int:
    return int(message["embeds"][0]["footer"]["text"].removeprefix(FOOTER))


async def job(running: Running, job_id: int) -> Job:
    found = await running.store.jobs.get_job(job_id)
    assert found is not None
    return found


async def reaches(running: Running, job_id: int, state: JobState, timeout: float = 15.0) -> Job:
    async def check() -> bool:
        return (await job(running, job_id)).state is state

    await eventually(check, timeout, what=f"job {job_id} to be {state.value}")
    return await job(running, job_id)


async def used(running: Running, member: FakeMember) -> int:
    return (await running.store.credits.balance(running.world.guild.id, member.id)).used


async def set_limits(running: Running, **limits: int) -> str:
    """/config limits as the moderator; return the private confirmation."""
    world = running.world
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.mod, "config limits", limits
    )
    return await private_text(inter)


# -- role allowances ----------------------------------------------------------------------------


async def test_allowance_resolution_override_then_highest_role_then_default_then_setting(
    start_bot: StartBot, world: World
) -> None:
    """Role allowances are set and removed by moderators (audited), and /quota and
    /quotas show say where each member's allowance comes from."""
    fake, guild, channel = world.fake, world.guild, world.channel
    booster = fake.add_role(guild, "Booster")
    artist = fake.add_role(guild, "Artist")
    carol = fake.add_member(guild, "carol", roles=[booster, artist])
    dave = fake.add_member(guild, "dave", roles=[artist])
    async with start_bot() as running:
        for role, credits in ((booster, 20), (artist, 7)):
            inter = await fake.invoke_slash(
                guild, channel, world.mod, "quotas role-set", {"role": role, "credits": credits}
            )
            assert f"<@&{role.id}>" in await private_text(inter)

        async def quota_of(member: FakeMember) -> dict[str, str]:
            inter = await fake.invoke_slash(guild, channel, member, "quota", {})
            return fields(await private_embed(inter))

        # No server default yet: the highest role, else the bot's setting (10).
        carol_quota = await quota_of(carol)
        assert carol_quota["Left"] == "**20** of 20"
        assert f"from role <@&{booster.id}>" in carol_quota["Allowance"]
        assert (await quota_of(dave))["Left"] == "**7** of 7"
        alice_quota = await quota_of(world.alice)
        assert alice_quota["Left"] == "**10** of 10"
        assert alice_quota["Allowance"] == "the bot's default"

        inter = await fake.invoke_slash(guild, channel, world.mod, "quotas default", {"credits": 4})
        await private_text(inter)
        assert (await quota_of(world.alice))["Allowance"] == "this server's default"
        assert (await quota_of(world.alice))["Left"] == "**4** of 4"
        assert (await quota_of(dave))["Left"] == "**7** of 7"  # a role beats the default

        inter = await fake.invoke_slash(
            guild, channel, world.mod, "quotas set", {"user": carol, "credits": 2}
        )
        await private_text(inter)
        carol_quota = await quota_of(carol)
        assert carol_quota["Left"] == "**2** of 2"
        assert carol_quota["Allowance"] == "set for this member by a moderator"

        inter = await fake.invoke_slash(
            guild, channel, world.mod, "quotas role-remove", {"role": artist}
        )
        assert "no longer has its own allowance" in await private_text(inter)
        assert (await quota_of(dave))["Left"] == "**4** of 4"

        # Moderators see the source too; the role change is in the audit log.
        inter = await fake.invoke_slash(guild, channel, world.mod, "quotas show", {"user": dave})
        shown = fields(await private_embed(inter))
        assert shown["Allowance"] == "this server's default"
        audit = await running.store.credits.list_audit(guild.id)
        role_changes = [e for e in audit if e.action is AuditAction.SET_ROLE_ALLOWANCE]
        assert [(e.target_role_id, e.old_value, e.new_value) for e in role_changes] == [
            (artist.id, "7", None),
            (artist.id, None, "7"),
            (booster.id, None, "20"),
        ]
        assert all(e.moderator_id == world.mod.id for e in role_changes)

        # The role allowance is what the reservation charges against.
        balance = await running.store.credits.balance(guild.id, carol.id, [booster.id])
        assert balance.source is AllowanceSource.USER


async def test_role_allowance_lets_a_booster_make_more_videos(
    start_bot: StartBot, world: World
) -> None:
    """With 1 credit by default and 3 for Boosters, a Booster's third video is accepted and
    a plain member's second is refused."""
    fake, guild, channel = world.fake, world.guild, world.channel
    booster = fake.add_role(guild, "Booster")
    carol = fake.add_member(guild, "carol", roles=[booster])
    async with start_bot(default_daily_credits=1) as running:
        await set_limits(running, member_running=0)
        inter = await fake.invoke_slash(
            guild, channel, world.mod, "quotas role-set", {"role": booster, "credits": 3}
        )
        await private_text(inter)
        for n in range(3):
            await card(await ask(world, carol, f"booster horse {n}"))
        assert await used(running, carol) == 3
        await card(await ask(world, world.alice, "plain horse"))
        refused = await fake.invoke_slash(
            guild, channel, world.alice, "video", {"prompt": "another plain horse"}
        )
        assert "Not enough credits" in await private_text(refused)


async def test_role_commands_need_manage_server(start_bot: StartBot, world: World) -> None:
    fake, guild, channel = world.fake, world.guild, world.channel
    booster = fake.add_role(guild, "Booster")
    async with start_bot() as running:
        for command, options in (
            ("quotas role-set", {"role": booster, "credits": 99}),
            ("quotas role-remove", {"role": booster}),
            ("config limits", {"member_running": 9}),
        ):
            inter = await fake.invoke_slash(guild, channel, world.alice, command, options)
            assert "Manage Server" in await private_text(inter)
        assert await running.store.credits.role_allowances(guild.id) == {}
        assert (await running.store.guilds.get(guild.id)).limits.member_running is None


# -- limits, the queue and fairness --------------------------------------------------------------


async def test_config_limits_shows_and_sets(start_bot: StartBot, world: World) -> None:
    async with start_bot() as running:
        shown = await set_limits(running)
        assert "Running per member: 2" in shown and "Queued per member: 3" in shown
        assert "Running in this server: 10" in shown and "Cool-down between requests: none" in shown
        changed = await set_limits(running, server_running=0, cooldown_seconds=30)
        assert "Running in this server: no limit" in changed and "30 s" in changed
        assert "Running per member: 2" in changed  # untouched options keep their value
        [entry] = await running.store.credits.list_audit(world.guild.id, 1)
        assert entry.action is AuditAction.SET_LIMITS and entry.moderator_id == world.mod.id


async def test_member_running_limit_queues_and_the_queue_starts_it_when_a_slot_frees(
    start_bot: StartBot, world: World
) -> None:
    """With 1 running per member, alice's second video waits (position, Cancel button,
    /jobs), then starts by itself when the first is done; each is charged once."""
    async with start_bot() as running:
        await set_limits(running, member_running=1)
        first = await card(await ask(world, world.alice, "first horse"))
        second_inter = await ask(world, world.alice, "second horse")
        second = await card(second_inter, "Queued: position 1 of 1")
        assert custom_ids(second) == [f"{CANCEL}{job_id_of(second)}"]
        assert CANCEL not in "".join(custom_ids(first))
        waiting = fields(second["embeds"][0])
        assert waiting["Starts"] == waiting["Ready"] == "estimating…"  # no history yet
        assert fields(first["embeds"][0]).get("Expected ready") == "estimating…"
        assert (await job(running, job_id_of(second))).state is JobState.QUEUED
        assert await used(running, world.alice) == 2  # queued jobs hold their credits

        jobs_inter = await world.fake.invoke_slash(
            world.guild, world.channel, world.alice, "jobs", {}
        )
        listing = (await private_embed(jobs_inter))["description"]
        assert f"#{job_id_of(second)}** Queued: position 1 of 1" in listing

        await reaches(running, job_id_of(first), JobState.DELIVERED)
        done = await reaches(running, job_id_of(second), JobState.DELIVERED)
        assert done.task_id is not None
        started = await second_inter.wait_for_original(lambda m: not custom_ids(m))
        assert "Queued: position" not in title(started)  # no Cancel once sent to the API
        assert await used(running, world.alice) == 2
        assert running.sandbox.state.request_counts["generate"] == 2


async def test_server_running_limit_queues_other_members(
    start_bot: StartBot, world: World
) -> None:
    async with start_bot() as running:
        await set_limits(running, server_running=1)
        first = await card(await ask(world, world.alice, "alice's horse"))
        bob_card = await card(await ask(world, world.bob, "bob's horse"), "Queued: position 1 of 1")
        await reaches(running, job_id_of(first), JobState.DELIVERED)
        await reaches(running, job_id_of(bob_card), JobState.DELIVERED)
        assert await used(running, world.bob) == 1


async def test_fairness_a_later_member_starts_before_a_members_third_job(
    start_bot: StartBot, world: World
) -> None:
    """alice queues three, bob one afterwards: bob's starts before alice's third."""
    async with start_bot() as running:
        await set_limits(running, server_running=1, member_running=0, member_queued=5)
        a1 = job_id_of(await card(await ask(world, world.alice, "alice one")))
        a2 = job_id_of(await card(await ask(world, world.alice, "alice two"), "Queued"))
        a3 = job_id_of(await card(await ask(world, world.alice, "alice three"), "Queued"))
        b1 = job_id_of(await card(await ask(world, world.bob, "bob one"), "Queued"))
        jobs = {n: await reaches(running, n, JobState.DELIVERED, 30) for n in (a1, a2, a3, b1)}
        order = sorted(jobs, key=lambda n: jobs[n].submitted_at or jobs[n].created_at)
        assert order.index(b1) < order.index(a3)
        assert order[0] == a1
        assert running.sandbox.state.request_counts["generate"] == 4


async def test_cooldown_refuses_for_free_and_says_when(start_bot: StartBot, world: World) -> None:
    async with start_bot() as running:
        await set_limits(running, cooldown_seconds=600)
        await card(await ask(world, world.alice, "a horse"))
        again = await world.fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "another horse"}
        )
        text = await private_text(again)
        assert "cool-down" in text and "<t:" in text and ":R>" in text
        assert "Nothing was charged" in text
        assert await used(running, world.alice) == 1
        await card(await ask(world, world.bob, "bob is not cooling down"))


async def test_member_queue_limit_refuses_for_free_and_says_when(
    start_bot: StartBot, world: World
) -> None:
    async with start_bot() as running:
        await set_limits(running, member_running=1, member_queued=1)
        await card(await ask(world, world.alice, "running horse"))
        await card(await ask(world, world.alice, "queued horse"), "Queued")
        over = await world.fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": "one too many"}
        )
        text = await private_text(over)
        assert "waiting in the queue" in text and "<t:" in text
        assert await used(running, world.alice) == 2


# -- 429 and 402 on generate ----------------------------------------------------------------------


async def test_429_on_generate_queues_instead_of_refusing_and_the_job_is_made_later(
    start_bot: StartBot, world: World
) -> None:
    """A 429 (after the client's own retries) keeps the job queued, tells the member why,
    and the queue makes it once the Retry-After has passed: one task, charged once."""
    async with start_bot() as running:
        # The client retries a 429 itself (max_retries=2): three 429s reach the bot.
        running.sandbox.state.faults.add("generate", status=429, retry_after="1", count=3)
        inter = await ask(world, world.alice)
        queued = await card(inter, "Queued")
        why = await inter.wait_for_followup(timeout=10)
        assert why["flags"] & EPHEMERAL and "busy" in why["content"]
        done = await reaches(running, job_id_of(queued), JobState.DELIVERED)
        assert done.task_id is not None and list(running.sandbox.state.tasks) == [done.task_id]
        assert running.sandbox.state.request_counts["generate"] == 4
        assert await used(running, world.alice) == 1


async def test_402_pauses_everyone_then_resumes(
    start_bot: StartBot, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A 402 pauses submission for everyone: jobs stay queued, the operator log says what to
    do, /config show and the cards say so; after the account is topped up (the probe
    succeeds) both jobs are made, each once."""
    caplog.set_level(logging.INFO)
    async with start_bot(queue_pause_backoff_seconds=2.0) as running:
        running.sandbox.state.faults.add("generate", status=402, count=2)
        alice_inter = await ask(world, world.alice, "alice during the outage")
        alice_card = await card(alice_inter, "Queued")
        why = await alice_inter.wait_for_followup(timeout=10)
        assert "out of credits" in why["content"] and why["flags"] & EPHEMERAL
        assert running.bot.queue.gate.out_of_credits
        bob_inter = await ask(world, world.bob, "bob during the outage")
        bob_card = await card(bob_inter, "Queued")
        assert PAUSED in fields(bob_card["embeds"][0]).values()
        assert running.sandbox.state.request_counts["generate"] == 1  # bob was not sent
        show = await world.fake.invoke_slash(
            world.guild, world.channel, world.mod, "config show", {}
        )
        assert PAUSED in fields(await private_embed(show))["Video service"]
        assert any(
            "Top up the HappyHorse account" in r.getMessage() and r.levelno == logging.ERROR
            for r in caplog.records
        )

        alice_done = await reaches(running, job_id_of(alice_card), JobState.DELIVERED, 30)
        bob_done = await reaches(running, job_id_of(bob_card), JobState.DELIVERED, 30)
        assert not running.bot.queue.gate.out_of_credits
        # The first 402, one failed probe, then the two jobs.
        assert running.sandbox.state.request_counts["generate"] == 4
        assert {alice_done.task_id, bob_done.task_id} == set(running.sandbox.state.tasks)
        assert await used(running, world.alice) == 1 and await used(running, world.bob) == 1
        assert any("submission resumed" in r.getMessage() for r in caplog.records)


async def test_a_402_pause_survives_a_restart(start_bot: StartBot, world: World) -> None:
    """Regression (the pause was held in memory, so the first submit after a restart found
    out again): a restarted bot still knows the account is out of credits; /config show
    and a new request's card say so, and nothing is sent until the backoff is over."""
    async with start_bot(queue_pause_backoff_seconds=600.0) as running:
        running.sandbox.state.faults.add("generate", status=402, count=1)
        before = await ask(world, world.alice, "alice before the restart")
        await card(before, "Queued")
        assert "out of credits" in (await before.wait_for_followup(timeout=10))["content"]
    async with start_bot(queue_pause_backoff_seconds=600.0) as running:
        generates = running.sandbox.state.request_counts["generate"]
        show = await world.fake.invoke_slash(
            world.guild, world.channel, world.mod, "config show", {}
        )
        assert PAUSED in fields(await private_embed(show))["Video service"]
        after = await ask(world, world.bob, "bob after the restart")
        bob_card = await card(after, "Queued")
        assert PAUSED in fields(bob_card["embeds"][0]).values()
        assert "out of credits" in (await after.wait_for_followup(timeout=10))["content"]
        assert running.sandbox.state.request_counts["generate"] == generates


async def test_queued_job_that_waits_too_long_is_refunded_with_a_notice(
    start_bot: StartBot, world: World
) -> None:
    async with start_bot(queue_max_wait_seconds=1.0, queue_pause_backoff_seconds=0.2) as running:
        running.sandbox.state.faults.add("generate", status=402, count=-1)
        inter = await ask(world, world.alice, "a horse nobody can make")
        job_id = job_id_of(await card(inter, "Queued"))
        refunded = await reaches(running, job_id, JobState.REFUNDED)
        assert refunded.last_error is not None and "waited in the queue" in refunded.last_error
        notice = await world.fake.wait_for_message(
            world.channel,
            lambda m: "waited in the queue for more than 1 second" in m["content"],
            timeout=10,
            include_existing=True,
        )
        assert f"<@{world.alice.id}>" in notice["content"] and "refunded" in notice["content"]
        assert await used(running, world.alice) == 0
        await inter.wait_for_original(lambda m: "Refunded" in title(m) and not custom_ids(m))
        assert not running.sandbox.state.tasks


# -- Cancel ---------------------------------------------------------------------------------------


async def test_cancel_by_requester_and_by_moderator_refused_for_anyone_else(
    start_bot: StartBot, world: World
) -> None:
    fake = world.fake
    async with start_bot() as running:
        await set_limits(running, member_running=1)
        first = job_id_of(await card(await ask(world, world.alice, "alice running")))
        second_inter = await ask(world, world.alice, "alice waiting")
        second = await card(second_inter, "Queued")
        third_inter = await ask(world, world.alice, "alice waiting too")
        third = await card(third_inter, "Queued")
        assert await used(running, world.alice) == 3

        # bob may not.
        click = await fake.click_button(
            second_inter.original_message_id, f"{CANCEL}{job_id_of(second)}", world.bob
        )
        assert "Only the person who asked" in await private_text(click)
        assert (await job(running, job_id_of(second))).state is JobState.QUEUED

        # alice may: the card says so, the button goes, the credit comes back.
        click = await fake.click_button(
            second_inter.original_message_id, f"{CANCEL}{job_id_of(second)}", world.alice
        )
        assert await click.wait_for_ack() == 7  # the card itself is updated
        cancelled = second_inter.original_message()
        assert cancelled is not None and title(cancelled) == "🚫 Cancelled"
        assert f"<@{world.alice.id}>" in fields(cancelled["embeds"][0])["Cancelled by"]
        assert custom_ids(cancelled) == []
        assert "returned" in (await click.wait_for_followup())["content"]
        assert await used(running, world.alice) == 2
        gone = await job(running, job_id_of(second))
        assert gone.state is JobState.REFUNDED and gone.cancelled_by == world.alice.id

        # a moderator may too.
        click = await fake.click_button(
            third_inter.original_message_id, f"{CANCEL}{job_id_of(third)}", world.mod
        )
        assert await click.wait_for_ack() == 7
        assert (await job(running, job_id_of(third))).cancelled_by == world.mod.id
        assert await used(running, world.alice) == 1

        await reaches(running, first, JobState.DELIVERED)
        assert running.sandbox.state.request_counts["generate"] == 1
        # A cancelled job gets no failure notice (the card already says it).
        assert not [
            m for m in fake.channel_messages(world.channel) if "could not be made" in m["content"]
        ]


async def test_cancel_is_not_offered_once_the_job_is_sent(
    start_bot: StartBot, world: World
) -> None:
    """A job sent to the API loses its Cancel button and its card says the API has no
    cancel; a click on a card that could not be updated is refused, and nothing is
    refunded."""
    fake = world.fake
    async with start_bot() as running:
        await set_limits(running, member_running=1)
        first = job_id_of(await card(await ask(world, world.alice, "first")))
        inter = await ask(world, world.alice, "second")
        job_id = job_id_of(await card(inter, "Queued"))
        sent = await inter.wait_for_original(lambda m: not custom_ids(m), timeout=15)
        assert "no way to cancel" in fields(sent["embeds"][0]).get("Note", "")
        await reaches(running, job_id, JobState.DELIVERED)

        # A card whose edits fail keeps its button after the job is sent.
        third = job_id_of(await card(await ask(world, world.alice, "third")))
        other = await ask(world, world.alice, "fourth")
        stale = await card(other, "Queued")
        fake.fail_requests("PATCH", r"/messages/@original$", 400, 50035, "Invalid", count=1000)
        fake.fail_requests("PATCH", r"^/channels/", 400, 50035, "Invalid", count=1000)
        await reaches(running, third, JobState.DELIVERED)
        await reaches(running, job_id_of(stale), JobState.SUBMITTED)
        still = other.original_message()
        assert still is not None and custom_ids(still) == [f"{CANCEL}{job_id_of(stale)}"]
        click = await fake.click_button(
            other.original_message_id, f"{CANCEL}{job_id_of(stale)}", world.alice
        )
        assert "can't be cancelled any more" in await private_text(click)
        assert (await job(running, job_id_of(stale))).cancelled_by is None
        await reaches(running, job_id_of(stale), JobState.DELIVERED)
        assert await used(running, world.alice) == 4
        assert first != job_id


async def test_cards_show_estimates_once_there_is_history(
    start_bot: StartBot, world: World
) -> None:
    """Once the learned completion model has enough history (five jobs here), a queued card
    says when it should start and be ready, and a running card when it should be ready."""
    async with start_bot(poll_min_history=5) as running:
        await set_limits(running, member_running=1)
        for n in range(5):
            await card(await ask(world, world.bob, f"history {n}"))
            await eventually(
                lambda: _settled(running, world.bob), timeout=15, what="bob's videos"
            )
        first = await ask(world, world.alice, "first")
        second = await card(await ask(world, world.alice, "second"), "Queued: position 1 of 1")
        waiting = fields(second["embeds"][0])
        assert waiting["Starts"].startswith("≈ <t:") and waiting["Ready"].startswith("≈ <t:")
        shown = await first.wait_for_original(
            lambda m: fields(m["embeds"][0]).get("Expected ready", "").startswith("≈ <t:")
        )
        assert title(shown) != ""


async def _settled(running: Running, member: FakeMember) -> bool:
    jobs = await running.store.jobs.recent_jobs(running.world.guild.id, member.id, 50)
    return all(j.state is JobState.DELIVERED for j in jobs)


async def test_a_cancel_is_posted_in_the_moderator_log(start_bot: StartBot, world: World) -> None:
    """A cancel reaches the log channel, naming who cancelled and what was refunded."""
    from tests.e2e.test_modlog import set_log_channel, wait_log

    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log")
    async with start_bot() as running:
        await set_log_channel(running, world, modlog)
        await set_limits(running, member_running=1)
        await card(await ask(world, world.alice, "alice running"))
        waiting_inter = await ask(world, world.alice, "alice waiting")
        waiting = job_id_of(await card(waiting_inter, "Queued"))
        click = await fake.click_button(
            waiting_inter.original_message_id, f"{CANCEL}{waiting}", world.mod
        )
        assert await click.wait_for_ack() == 7
        [post] = await wait_log(running, modlog, f"Video #{waiting} cancelled")
        assert "1 credit refunded" in post["title"]
        assert fields(post)["By"] == f"<@{world.mod.id}>"
        assert fields(post)["Member"] == f"<@{world.alice.id}>"
