"""/job (with Refund and Deliver again), the Regenerate, Delete and Cancel buttons and
/privacy speak the clicker's language, through the Discord fake.

* A `de` moderator's /job and Refund, a `de` member's Cancel refusal and /privacy export
  are German.
* The pseudo-locale drives all of them, and finds no user-facing English outside the
  catalogs (names, prompts and values the members typed aside).
"""

from __future__ import annotations

from typing import Any

from core.i18n import PSEUDO_LOCALE
from storage.models import GuildLimits, JobState
from tests.e2e.conftest import Running, StartBot, World
from tests.e2e.test_commands import delivered_video, fields
from tests.e2e.test_i18n import english_left, private, texts
from tests.e2e.test_job_admin import buttons, video_posts
from tests.e2e.test_privacy import video, wait_state
from tests.e2e.test_queue import card, job_id_of
from tests.fake_discord import FakeMember, InteractionRecord

CANCEL = "hh:cancel:"
PEOPLE = ("alice", "bob", "mod", "Horse Club", "everyone")


async def slash(
    world: World, member: FakeMember, command: str, locale: str, **options: Any
) -> dict[str, Any]:
    """A command's private answer, asked in ``locale``."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, member, command, options or None, locale=locale
    )
    return await private(inter)


async def clicked(
    world: World, message: Any, custom_id: str, member: FakeMember, locale: str
) -> InteractionRecord:
    """Click a button in ``locale``."""
    return await world.fake.click_button(message, custom_id, member, locale=locale)


async def queued_video(running: Running, world: World, member: FakeMember) -> tuple[Any, int]:
    """With one running video per member and the service's status checks failing (so the
    first stays running), ``member``'s second video waits in the queue: its /video
    interaction (the card with Cancel) and its job id."""
    await running.store.guilds.set_limits(
        world.guild.id, GuildLimits(member_running=1, member_queued=5), world.mod.id
    )
    running.sandbox.state.faults.add("status", status=503, count=-1)
    first = await video(running, world, member, f"running horse {member.id}")
    await wait_state(running, first, JobState.SUBMITTED)
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, member, "video", {"prompt": "a waiting horse"}
    )
    assert await inter.wait_for_ack() == 5
    shown = await card(inter, "Queued")
    return inter, job_id_of(shown)


async def test_a_de_moderator_and_member_get_job_cancel_and_privacy_in_german(
    start_bot: StartBot, world: World
) -> None:
    """/job, its Refund reply, a refused Cancel and /privacy export, all in German."""
    async with start_bot() as running:
        job = await delivered_video(running, world, "ein Pferd im Schnee")

        export = await slash(world, world.alice, "privacy export", "de")
        assert export["content"].startswith("Deine Daten auf diesem Server: 1 Video, deine Credits")
        assert export["content"].endswith("über dich. Nur du siehst das.")

        record = await slash(world, world.mod, "job", "de", id=job.id)
        [embed] = record["embeds"]
        assert embed["title"] == f"Job #{job.id}: geliefert"
        values = fields(embed)
        assert values["Mitglied"] == f"<@{world.alice.id}>"
        assert values["Kosten"] == "1 Credit"
        assert values["Erstattung"] == "Nicht erstattet"
        assert values["Verlauf"].splitlines()[0].endswith("Angefragt (Credits reserviert)")
        [button] = record["components"][0]["components"]
        assert button["label"] == "Erstatten"

        refund = await clicked(world, record, f"hh:jobrefund:{job.id}", world.mod, "de")
        assert (await private(refund))["content"] == (
            f"1 Credit für Job #{job.id} an <@{world.alice.id}> erstattet."
        )

        inter, queued = await queued_video(running, world, world.alice)
        refusal = await clicked(
            world, inter.original_message_id, f"{CANCEL}{queued}", world.bob, "de"
        )
        assert (await private(refusal))["content"] == (
            "Nur wer dieses Video angefragt hat oder ein Moderator („Server verwalten“) "
            "kann es abbrechen."
        )


def leaks_in(where: str, message: dict[str, Any], *data: str) -> list[str]:
    """The texts of ``message`` with English left once catalog text and ``data`` (names,
    prompts) are taken out."""
    found = []
    for text in texts(message):
        cleaned = text
        for value in (*PEOPLE, *data):
            cleaned = cleaned.replace(value, "")
        if english_left(cleaned):
            found.append(f"{where}: {text!r}")
    for row in message.get("components") or []:
        for component in row["components"]:
            if english_left(component.get("label") or ""):
                found.append(f"{where}: button {component.get('label')!r}")
    return found


async def test_pseudo_locale_job_buttons_and_privacy_leave_no_english(
    start_bot: StartBot, world: World
) -> None:
    """/job, Deliver again (posted, still posted), Refund (once, then refused), an unknown
    job; /privacy export, delete, delete-member and their confirmations; Regenerate on an
    erased video, Delete refused and done; Cancel refused and done: every private text is
    catalog text in the pseudo-locale."""
    pseudo = PSEUDO_LOCALE
    fake, alice, bob, mod = world.fake, world.alice, world.bob, world.mod
    leaks: list[str] = []
    async with start_bot() as running:
        prompt = "a horse on the moon"
        job = await delivered_video(running, world, prompt)
        [post] = video_posts(running, world, job.id)
        fake.delete_message(post)

        record = await slash(world, mod, "job", pseudo, id=job.id)
        leaks += leaks_in("/job", record, prompt)
        assert f"hh:redeliver:{job.id}" in buttons(record)
        again = await clicked(world, record, f"hh:redeliver:{job.id}", mod, pseudo)
        leaks += leaks_in("Deliver again", await private(again))
        still = await clicked(world, record, f"hh:redeliver:{job.id}", mod, pseudo)
        leaks += leaks_in("Deliver again (still posted)", await private(still))
        for step in ("Refund", "Refund (again)"):
            refund = await clicked(world, record, f"hh:jobrefund:{job.id}", mod, pseudo)
            leaks += leaks_in(step, await private(refund))
        leaks += leaks_in(
            "/job refunded", await slash(world, mod, "job", pseudo, id=job.id), prompt
        )
        leaks += leaks_in("/job unknown", await slash(world, mod, "job", pseudo, id=999999))

        [repost] = video_posts(running, world, job.id)
        leaks += leaks_in("/privacy export", await slash(world, alice, "privacy export", pseudo))
        for who, command, options in (
            (alice, "privacy delete", {}),
            (mod, "privacy delete-member", {"user": bob}),
        ):
            inter = await fake.invoke_slash(
                world.guild, world.channel, who, command, options, locale=pseudo
            )
            await private(inter)
            warning = await inter.wait_for_original()
            leaks += leaks_in(f"/{command}", warning)
            [row] = warning["components"]
            [button] = row["components"]
            confirm = await clicked(world, warning, button["custom_id"], who, pseudo)
            assert await confirm.wait_for_ack() in (4, 6)
            done = await confirm.wait_for_original(lambda m: not m.get("components"))
            leaks += leaks_in(f"/{command} confirmed", done)

        regen = await clicked(world, repost, f"hh:regen:{job.id}", alice, pseudo)
        leaks += leaks_in("Regenerate (erased)", await private(regen))
        refused = await clicked(world, repost, f"hh:delete:{job.id}", bob, pseudo)
        leaks += leaks_in("Delete (refused)", await private(refused))
        deleted = await clicked(world, repost, f"hh:delete:{job.id}", alice, pseudo)
        leaks += leaks_in("Delete", await private(deleted))

        inter, queued = await queued_video(running, world, bob)
        refusal = await clicked(
            world, inter.original_message_id, f"{CANCEL}{queued}", alice, pseudo
        )
        leaks += leaks_in("Cancel (refused)", await private(refusal))
        cancel = await clicked(world, inter.original_message_id, f"{CANCEL}{queued}", bob, pseudo)
        assert await cancel.wait_for_ack() == 7  # the card itself is updated
        leaks += leaks_in("Cancel", await cancel.wait_for_followup())
        assert running.bot.is_ready()
    assert leaks == []
