"""Public text in the server's language, through the Discord fake: status cards, the video
post and its buttons, refund notices and the moderator log, made by background work with
no interaction at hand. Private replies (the Continue form) stay in the presser's language.

* A server set to French (`/config language fr`) gets all of it in French, while a `ja`
  member's Continue form is Japanese.
* A pseudo-locale server gets cards, posts, notices and log entries with no English left
  outside the catalogs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.i18n import PSEUDO_LOCALE
from storage.models import Job, JobState, NewJob
from storage.sqlite import open_store
from tests.e2e.conftest import Running, StartBot, World, eventually
from tests.e2e.test_api_faults import first_task_id, order_video, wait_for_state
from tests.e2e.test_commands import accepted_job, fields, settled
from tests.e2e.test_i18n import english_left, private, texts
from tests.e2e.test_modlog import log_posts
from tests.fake_discord.models import FakeChannel

PROMPT = "a horse on the moon"


async def refunded_before_start(
    world: World, tmp_path: Path, log_channel: FakeChannel, language: str | None
) -> Job:
    """A job refunded just before a restart (its notice unsent), in a server whose log
    channel (and language, if given) are set: the next run tells the member and logs it,
    with no interaction at hand."""
    store = await open_store(tmp_path / "bot.sqlite3", default_daily_credits=10)
    try:
        await store.guilds.set_log_channel(world.guild.id, log_channel.id, world.mod.id)
        if language is not None:
            await store.guilds.set_language(world.guild.id, language, world.mod.id)
        job = await store.credits.reserve(
            NewJob(
                guild_id=world.guild.id,
                channel_id=world.channel.id,
                user_id=world.alice.id,
                mode="text-to-video",
                prompt=PROMPT,
                duration=10,
                aspect_ratio="16:9",
                quality="std",
                sound=True,
            )
        )
        assert job is not None
        assert await store.jobs.fail_and_refund(
            job.id, "The service lost the task", expected=JobState.RESERVED
        )
        return job
    finally:
        await store.close()


async def notice_of(world: World) -> dict[str, Any]:
    """The failure notice posted in #videos."""
    return await world.fake.wait_for_message(
        world.channel,
        lambda m: "The service lost the task" in m["content"],
        timeout=10,
        include_existing=True,
    )


async def delivered(running: Running, world: World) -> tuple[Job, dict[str, Any], dict[str, Any]]:
    """Alice's /video, through to its post: the job, its final card and the video post."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.alice, "video", {"prompt": PROMPT, "duration": 10}
    )
    job = await accepted_job(running, inter)
    job = await settled(running, job.id)
    marker = f"HappyHorse job #{job.id}"

    def is_post(m: dict[str, Any]) -> bool:
        return not m.get("interaction_metadata") and any(
            (e.get("footer") or {}).get("text") == marker for e in m["embeds"]
        )

    post = await world.fake.wait_for_message(
        world.channel, is_post, timeout=10, include_existing=True
    )
    card = await inter.wait_for_original(
        lambda m: m["embeds"][0]["title"].startswith("✅"), timeout=10
    )
    return job, card, post


async def log_entry(running: Running, channel: FakeChannel, title: Callable[[str], bool]) -> Any:
    """Wait for the log embed whose title matches."""

    async def found() -> bool:
        return any(title(e["title"]) for e in log_posts(running, channel))

    await eventually(found, timeout=10, what="a moderator log entry")
    return next(e for e in log_posts(running, channel) if title(e["title"]))


def labels(message: dict[str, Any]) -> list[str]:
    """The labels of a message's buttons, in order."""
    return [c.get("label", "") for row in message["components"] for c in row["components"]]


async def test_a_french_server_gets_cards_posts_notices_and_log_in_french(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """A server set to French: a refund notice and its log entry, the card's edits, the
    video post with its buttons and the moderator log are French; a ja member's Continue
    form there is Japanese."""
    fake = world.fake
    modlog = fake.add_text_channel(world.guild, "mod-log")
    refunded = await refunded_before_start(world, tmp_path, modlog, "fr")
    async with start_bot() as running:
        notice = await notice_of(world)
        assert notice["content"] == (
            f"<@{world.alice.id}>, ta vidéo n’a pas pu être créée : The service lost the task. "
            "2 crédits remboursés."
        )
        failed = await log_entry(running, modlog, lambda t: f"#{refunded.id}" in t)
        assert failed["title"] == f"❌ Échec de la vidéo #{refunded.id}, remboursement : 2 crédits"
        assert set(fields(failed)) == {"Membre", "Paramètres"}

        job, card, post = await delivered(running, world)
        assert card["embeds"][0]["title"] == "✅ Livrée"
        card_fields = fields(card["embeds"][0])
        assert card_fields["Coût"] == "2 crédits"
        assert card_fields["Remarque"].startswith("Publiée : ")
        assert post["content"] == f"<@{world.alice.id}>, ta vidéo est prête !"
        assert post["embeds"][0]["title"] == "🎬 Ta vidéo est prête"
        assert set(fields(post["embeds"][0])) == {"Paramètres", "Coût"}
        assert labels(post) == ["Régénérer", "Continuer", "Supprimer"]

        accepted = await log_entry(running, modlog, lambda t: f"#{job.id} acceptée" in t)
        assert accepted["title"] == f"🎬 Vidéo #{job.id} acceptée"
        values = fields(accepted)
        assert values["Membre"] == f"<@{world.alice.id}>"
        assert values["Type"] == "Texte vers vidéo"
        assert values["Coût"] == "2 crédits"
        assert "Lien" in values

        # A ja member's own form stays Japanese in this French server.
        press = await fake.click_button(post, f"hh:continue:{job.id}", world.bob, locale="ja")
        await press.wait_for_ack()
        assert press.modal is not None
        assert press.modal["title"] == "この動画の続きを作る"
        [row] = press.modal["components"]
        assert row["components"][0]["label"] == "次はどうなる？"


async def test_a_pseudo_locale_server_leaves_no_english_in_public_text(
    start_bot: StartBot, world: World, tmp_path: Path
) -> None:
    """In a server whose Discord language is the pseudo-locale: a refund notice, the
    card's final edit, the video post and its buttons and every moderator log entry have
    no English outside the catalogs (names, the prompt and the service's words aside);
    nor has a pseudo-locale member's Continue form."""
    world.guild.preferred_locale = PSEUDO_LOCALE
    modlog = world.fake.add_text_channel(world.guild, "mod-log")
    refunded = await refunded_before_start(world, tmp_path, modlog, None)
    async with start_bot() as running:
        # An interaction with public text records the server's Discord language.
        await private(
            await world.fake.invoke_slash(world.guild, world.channel, world.mod, "stats")
        )
        job, card, post = await delivered(running, world)
        notice = await notice_of(world)
        await log_entry(running, modlog, lambda t: f"#{job.id}" in t)
        await log_entry(running, modlog, lambda t: f"#{refunded.id}" in t)
        press = await world.fake.click_button(
            post, f"hh:continue:{job.id}", world.bob, locale=PSEUDO_LOCALE
        )
        await press.wait_for_ack()
        assert press.modal is not None
        form = [press.modal["title"], press.modal["components"][0]["components"][0]["label"]]
        found = [
            *form,
            *texts(notice),
            *texts(card),
            *texts(post),
            *labels(post),
            *[t for embed in log_posts(running, modlog) for t in texts({"embeds": [embed]})],
        ]
    leaks = []
    for text in found:
        cleaned = text
        for data in (PROMPT, "The service lost the task", "alice", "bob", "mod"):
            cleaned = cleaned.replace(data, "")
        if english_left(cleaned):
            leaks.append(text)
    assert leaks == []


async def test_a_french_servers_member_is_told_by_dm_in_french(
    start_bot: StartBot, world: World
) -> None:
    """The channel is deleted mid-job in a server set to French: the DM that replaces the
    channel notice is French, the reason the post was given up included."""
    fake = world.fake
    async with start_bot() as running:
        await private(
            await fake.invoke_slash(
                world.guild, world.channel, world.mod, "config language", {"language": "fr"}
            )
        )
        await order_video(world)
        await first_task_id(running)
        fake.delete_channel(world.channel)
        dm = await fake.wait_for_dm(world.alice, lambda m: "remboursé" in m["content"], timeout=10)
        job = await wait_for_state(running, JobState.REFUNDED)
        assert dm["content"] == (
            f"Ta vidéo (tâche #{job.id}) a été créée, mais je n’ai pas pu la publier dans "
            f"<#{world.channel.id}> : le salon n’existe plus. 1 crédit remboursé. Tu peux "
            f"encore la télécharger pendant environ un jour : {job.result_url}"
        )
