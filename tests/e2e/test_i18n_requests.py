"""/video, /animate and the Animate image menu in the member's language (issue 16).

* Their command, option, choice and menu names and descriptions are synced in every locale,
  within Discord's limits.
* A ``ja`` member and a ``de`` member get the same refusal each in their own language; the
  first status card is in the server's language while the member's refusals stay theirs.
* The pseudo-locale run drives /video, /animate (with attachments), the Animate image menu
  and its form through their refusals and finds no English outside the catalogs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.i18n import PSEUDO_LOCALE, for_locale
from tests.e2e.conftest import PNG_1x1, StartBot, World
from tests.e2e.test_dialect_options import native_bot, synced_options
from tests.e2e.test_i18n import LOCALISED, _name_ok, _walk, english_left, private, texts
from tests.fake_discord import permissions as perms
from tests.fake_discord.commands import modal_inputs

REQUESTS = ("video", "animate")
MENU = "Animate image"


async def test_request_commands_and_the_menu_carry_valid_localisations(
    start_bot: StartBot, world: World
) -> None:
    """/video, /animate (every option and choice) and the Animate image menu have a name
    and a description in each of our locales, within Discord's limits."""
    async with start_bot():
        synced = world.fake.commands(world.guild)
    commands = {c["name"]: c for c in synced}
    assert set(REQUESTS) <= set(commands), "English names stay canonical"
    problems: list[str] = []
    for name in REQUESTS:
        for path, item in _walk(commands[name], name):
            names = item.get("name_localizations") or {}
            descriptions = item.get("description_localizations") or {}
            if LOCALISED - set(names):
                problems.append(f"{path}: no name in {sorted(LOCALISED - set(names))}")
            if LOCALISED - set(descriptions):
                problems.append(f"{path}: no description in {sorted(LOCALISED - set(names))}")
            problems += [f"{path}: bad name {v!r}" for v in names.values() if not _name_ok(v)]
            problems += [
                f"{path}: long description {v!r}"
                for v in descriptions.values()
                if not 1 <= len(v) <= 100
            ]
            for choice in item.get("choices") or []:
                if choice["name"].endswith("seconds"):
                    missing = LOCALISED - set(choice.get("name_localizations") or {})
                    if missing:
                        problems.append(f"{path}: choice {choice['name']} lacks {missing}")
    [menu] = [c for c in synced if c["name"] == MENU and c.get("type") == 3]
    menu_names = menu.get("name_localizations") or {}
    assert set(menu_names) >= LOCALISED
    assert all(1 <= len(v) <= 32 for v in menu_names.values())
    assert problems == []
    assert commands["animate"]["name_localizations"]["de"] == "animieren"
    assert menu_names["ja"] == "画像をアニメ化" and menu_names["de"] == "Bild animieren"


async def test_a_ja_member_and_a_de_member_get_video_refusals_in_their_language(
    start_bot: StartBot, world: World
) -> None:
    """A blocked word and the cool-down refuse /video in the member's own language, in a
    French server whose first status card is French."""
    fake, guild, channel = world.fake, world.guild, world.channel
    guild.preferred_locale = "fr"
    async with start_bot():
        await private(
            await fake.invoke_slash(
                guild, channel, world.mod, "config block-word", {"word": "zebra"}
            )
        )
        ja = await private(
            await fake.invoke_slash(
                guild, channel, world.alice, "video", {"prompt": "a zebra runs"}, locale="ja"
            )
        )
        assert ja["content"] == (
            "プロンプトにこのサーバーで禁止されている言葉（'zebra'）が含まれています。"
            "言い換えてもう一度お試しください。"
        )
        de = await private(
            await fake.invoke_slash(
                guild, channel, world.bob, "video", {"prompt": "a zebra runs"}, locale="de"
            )
        )
        assert de["content"] == (
            "Dein Prompt enthält ein Wort, das dieser Server nicht erlaubt ('zebra'). "
            "Formuliere ihn um und versuch es noch einmal."
        )

        await private(
            await fake.invoke_slash(
                guild, channel, world.mod, "config limits", {"cooldown_seconds": 600}
            )
        )
        started = await fake.invoke_slash(
            guild, channel, world.alice, "video", {"prompt": "a horse runs"}, locale="ja"
        )
        assert await started.wait_for_ack() == 5
        french = for_locale("fr")
        card = await started.wait_for_original(
            lambda m: any(
                f["name"] == french._("Requested by")
                for e in m.get("embeds") or []
                for f in e.get("fields") or []
            )
        )
        assert card is not None, "the first status card is in the server's language"
        again = await private(
            await fake.invoke_slash(
                guild, channel, world.alice, "video", {"prompt": "a horse runs"}, locale="ja"
            )
        )
        assert again["content"].startswith("このサーバーでは動画の間に600秒の待ち時間があります。")
        de_again = await private(
            await fake.invoke_slash(
                guild, channel, world.alice, "video", {"prompt": "a horse runs"}, locale="de"
            )
        )
        assert de_again["content"].startswith(
            "Auf diesem Server gilt eine Wartezeit von 600 s zwischen Videos."
        )


def _leaks(where: str, reply: dict[str, Any]) -> list[str]:
    found = []
    for text in texts(reply):
        cleaned = text
        for value in ("zebra", "image/gif", ".gif", "image/png", "alice", "bob"):
            cleaned = cleaned.replace(value, "")
        if english_left(cleaned):
            found.append(f"{where}: {text!r}")
    return found


async def test_pseudo_locale_finds_no_english_in_video_animate_and_the_form(
    start_bot: StartBot, world: World
) -> None:
    """/video, /animate, the Animate image menu, its form and their refusals, in the
    pseudo-locale: every word a member reads comes from the catalogs."""
    fake, guild, channel, mod = world.fake, world.guild, world.channel, world.mod
    gif = fake.attachment("anim.gif", b"GIF89a", "image/gif", width=1, height=1)
    mislabelled = fake.attachment("horse.png", PNG_1x1, "image/jpeg", width=1, height=1)
    big = fake.attachment("big.png", PNG_1x1 + bytes(11 * 1024 * 1024), "image/png")
    empty = fake.attachment("empty.png", b"", "image/png")
    png = fake.attachment("horse.png", PNG_1x1, "image/png", width=1, height=1)
    leaks: list[str] = []
    async with start_bot():
        await private(
            await fake.invoke_slash(guild, channel, mod, "config block-word", {"word": "zebra"})
        )
        refusals: list[tuple[str, dict[str, Any], list[Any]]] = [
            ("video", {"prompt": "a zebra runs"}, []),
            ("video", {"prompt": "a horse \x07runs"}, []),
            ("video", {"prompt": "   "}, []),
            ("video", {"prompt": "x" * 2100}, []),
            ("animate", {}, [gif]),
            ("animate", {}, [mislabelled]),
            ("animate", {}, [big]),
            ("animate", {}, [empty]),
            ("animate", {"prompt": "a zebra runs"}, [png]),
        ]
        for command, options, files in refusals:
            reply = await private(
                await fake.invoke_slash(
                    guild,
                    channel,
                    world.alice,
                    command,
                    options,
                    attachments=files,
                    locale=PSEUDO_LOCALE,
                )
            )
            leaks += _leaks(f"/{command} {options or files}", reply)

        bare = fake.post_user_message(channel, world.bob, "no image here")
        reply = await private(
            await fake.invoke_message_command(
                guild, channel, world.alice, MENU, bare, locale=PSEUDO_LOCALE
            )
        )
        leaks += _leaks("menu on a message without an image", reply)
        only_gif = fake.post_user_message(channel, world.bob, "gif", attachments=[gif])
        reply = await private(
            await fake.invoke_message_command(
                guild, channel, world.alice, MENU, only_gif, locale=PSEUDO_LOCALE
            )
        )
        leaks += _leaks("menu on a GIF", reply)

        target = fake.post_user_message(channel, world.bob, "look", attachments=[png])
        menu = await fake.invoke_message_command(
            guild, channel, world.alice, MENU, target, locale=PSEUDO_LOCALE
        )
        assert await menu.wait_for_ack() == 9 and menu.modal is not None
        [field] = modal_inputs(menu.modal)
        for text in (menu.modal["title"], field["label"], field.get("placeholder") or ""):
            if english_left(text):
                leaks.append(f"the Animate image form: {text!r}")
        submit = await fake.submit_modal(menu, {field["custom_id"]: "a zebra gallops"})
        leaks += _leaks("the Animate image form's refusal", await private(submit))

        await private(
            await fake.invoke_slash(
                guild, channel, mod, "quotas set", {"user": world.bob, "credits": 0}
            )
        )
        reply = await private(
            await fake.invoke_slash(
                guild,
                channel,
                world.bob,
                "video",
                {"prompt": "a horse runs"},
                locale=PSEUDO_LOCALE,
            )
        )
        assert reply["content"].startswith("⟦")
        leaks += _leaks("/video without credits", reply)

        closed = fake.add_text_channel(
            guild,
            "closed",
            bot_permissions=perms.ALL_TEXT & ~perms.SEND_MESSAGES & ~perms.EMBED_LINKS,
        )
        for command, options in (("video", {"prompt": "a horse"}), ("animate", {"image": png})):
            reply = await private(
                await fake.invoke_slash(
                    guild, closed, world.alice, command, options, locale=PSEUDO_LOCALE
                )
            )
            leaks += _leaks(f"/{command} where the bot may not post", reply)
        ja = await private(
            await fake.invoke_slash(
                guild, closed, world.alice, "video", {"prompt": "a horse"}, locale="ja"
            )
        )
        assert "ここでメッセージを送信、埋め込みリンクの権限が必要です" in ja["content"]
    assert leaks == []


async def test_the_native_dialects_commands_are_localised_too(world: World, tmp_path: Path) -> None:
    """The live service's /video and /animate (3-15 s, last_frame) carry the same
    localisations, the duration's range said in each locale."""
    async with native_bot(world, tmp_path) as running:
        animate = synced_options(running, "animate")
        video = synced_options(running, "video")
    duration = video["duration"]["description_localizations"]
    assert duration["de"] == "Länge des Clips, 3 bis 15 s (je länger, desto teurer)"
    assert duration["ja"] == "クリップの長さ、3〜15秒（長いほどコストが上がります）"
    last_frame = animate["last_frame"]
    assert last_frame["name_localizations"]["pl"] == "ostatnia_klatka"
    assert set(last_frame["description_localizations"]) >= LOCALISED
    for option in (*animate.values(), *video.values()):
        assert set(option.get("name_localizations") or {}) >= LOCALISED, option["name"]
        assert all(_name_ok(name) for name in option["name_localizations"].values())
