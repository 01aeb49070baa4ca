"""The bot speaks the member's language, through the Discord fake.

* The synced commands carry name and description localisations that obey Discord's limits
  (the fake refuses a payload Discord would refuse, so a bad catalog fails the start-up).
* Private replies follow the member's Discord locale (``ja``, ``de``); public text (/stats)
  follows the server: `/config language`, else its Discord language, else English.
* The pseudo-locale run finds no English left in the converted commands' replies.
"""

from __future__ import annotations

import re
from typing import Any

from core.i18n import PSEUDO_CLOSE, PSEUDO_LOCALE, PSEUDO_OPEN, catalog_folders, discord_code
from storage.models import AuditAction
from tests.e2e.conftest import Running, StartBot, World
from tests.fake_discord.interactions import InteractionRecord

EPHEMERAL = 64
CONVERTED = ("quota", "quotas", "config", "jobs", "stats", "job", "privacy")
# Every Discord locale our catalogs answer for, es-419 through its language's catalog.
LOCALISED = {discord_code(folder) for folder in catalog_folders()} | {"es-419"}


async def private(inter: InteractionRecord) -> dict[str, Any]:
    """The interaction's ephemeral answer: the reply, or the follow-up after a defer."""
    kind = await inter.wait_for_ack()
    assert inter.ack_data is not None and inter.ack_data.get("flags", 0) & EPHEMERAL
    if kind == 5:
        followup: dict[str, Any] = await inter.wait_for_followup(timeout=10)
        return followup
    assert kind == 4
    return inter.ack_data


def texts(message: dict[str, Any]) -> list[str]:
    """Every human-readable string of a message: content, titles, fields, descriptions."""
    found = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        found += [embed.get("title") or "", embed.get("description") or ""]
        for field in embed.get("fields") or []:
            found += [field["name"], field["value"]]
    return [text for text in found if text]


def _walk(command: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    items = [(path, command)]
    for option in command.get("options") or []:
        items += _walk(option, f"{path} {option['name']}")
    return items


def _name_ok(name: str) -> bool:
    return (
        1 <= len(name) <= 32
        and name == name.lower()
        and re.fullmatch(r"[-_\w]+", name) is not None
        and "\u0020" not in name
    )


async def test_synced_commands_carry_valid_localisations_for_every_locale(
    start_bot: StartBot, world: World
) -> None:
    """Every converted command, subcommand and option has a name and a description in each
    of our locales (and es-419), within Discord's limits; siblings never share a name;
    the English names stay the canonical ones."""
    async with start_bot():
        commands = {c["name"]: c for c in world.fake.commands(world.guild)}
    assert set(CONVERTED) <= set(commands), "English names stay canonical"
    problems: list[str] = []
    for name in CONVERTED:
        for path, item in _walk(commands[name], name):
            names = item.get("name_localizations") or {}
            descriptions = item.get("description_localizations") or {}
            missing = LOCALISED - set(names)
            if missing:
                problems.append(f"{path}: no name in {sorted(missing)}")
            if item.get("description") and LOCALISED - set(descriptions):
                problems.append(
                    f"{path}: no description in {sorted(LOCALISED - set(descriptions))}"
                )
            problems += [
                f"{path}: bad name {v!r} ({k})" for k, v in names.items() if not _name_ok(v)
            ]
            problems += [
                f"{path}: description {k} is {len(v)} long"
                for k, v in descriptions.items()
                if not 1 <= len(v) <= 100
            ]
            for choice in item.get("choices") or []:
                problems += [
                    f"{path}: choice {k}"
                    for k, v in (choice.get("name_localizations") or {}).items()
                    if not 1 <= len(v) <= 100
                ]
            siblings = item.get("options") or []
            for locale in LOCALISED:
                localised = [
                    (o.get("name_localizations") or {}).get(locale, o["name"]) for o in siblings
                ]
                if len(set(localised)) != len(localised):
                    problems.append(f"{path}: two options share a {locale} name: {localised}")
    for locale in LOCALISED:
        top = [(c.get("name_localizations") or {}).get(locale, n) for n, c in commands.items()]
        if len(set(top)) != len(top):
            problems.append(f"two commands share a {locale} name")
    assert problems == []
    assert commands["quota"]["name_localizations"]["de"] == "kontingent"
    assert commands["quota"]["description_localizations"]["ja"].startswith("自分の動画クレジット")
    assert commands["quota"]["name_localizations"]["es-419"] == "cuota"


async def test_a_ja_member_and_a_de_member_get_quota_and_refusals_in_their_language(
    start_bot: StartBot, world: World
) -> None:
    """/quota and the refusal to peek at another member follow each member's own locale."""
    fake, guild, channel = world.fake, world.guild, world.channel
    async with start_bot():
        ja = await private(
            await fake.invoke_slash(guild, channel, world.alice, "quota", locale="ja")
        )
        [embed] = ja["embeds"]
        assert embed["title"] == "aliceさんのクレジット"
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["残り"] == "**10** / 10"
        assert "5秒 std：1クレジット" in fields["料金"]
        assert fields["付与量"] == "ボットのデフォルト"

        de = await private(await fake.invoke_slash(guild, channel, world.bob, "quota", locale="de"))
        [embed] = de["embeds"]
        assert embed["title"] == "Credits von bob"
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields["Übrig"] == "**10** von 10"
        assert "10 s pro: 4 Credits" in fields["Preise"]

        refusal = await private(
            await fake.invoke_slash(
                guild, channel, world.alice, "quota", {"user": world.bob}, locale="ja"
            )
        )
        assert refusal["content"] == (
            "ほかのメンバーのクレジットを見るには、サーバー管理の権限が必要です。"
        )
        refusal = await private(
            await fake.invoke_slash(
                guild, channel, world.bob, "quotas show", {"user": world.alice}, locale="de"
            )
        )
        assert refusal["content"] == (
            "Für diesen Befehl brauchst du die Berechtigung „Server verwalten“."
        )


async def stats_as(running: Running, world: World, locale: str) -> dict[str, Any]:
    """/stats as the moderator with the given Discord locale: its embed."""
    inter = await world.fake.invoke_slash(
        world.guild, world.channel, world.mod, "stats", locale=locale
    )
    [embed] = (await private(inter))["embeds"]
    result: dict[str, Any] = embed
    return result


async def test_a_server_set_to_french_gets_french_public_text_while_replies_stay_japanese(
    start_bot: StartBot, world: World
) -> None:
    """/config language fr (audited): /stats is French for everyone; a ja moderator's own
    private replies stay Japanese; with no option it shows the current language."""
    fake, guild, channel, mod = world.fake, world.guild, world.channel, world.mod
    async with start_bot() as running:
        before = await stats_as(running, world, "ja")
        assert before["title"] == "Video stats: the last 7 days", "an en-US server: English"

        answer = await private(
            await fake.invoke_slash(
                guild, channel, mod, "config language", {"language": "fr"}, locale="ja"
            )
        )
        assert answer["content"].startswith("これからはカード、投稿、お知らせ")
        assert "Français（モデレーターが選択）" in answer["content"]
        [entry] = await running.store.credits.list_audit(guild.id, 1)
        assert entry.action is AuditAction.SET_LANGUAGE and entry.new_value == "fr"
        assert entry.moderator_id == mod.id

        after = await stats_as(running, world, "ja")
        assert after["title"] == "Stats vidéo : les 7 derniers jours"
        fields = {f["name"]: f["value"] for f in after["fields"]}
        assert fields["Vidéos"] == "0 faites · 0 échecs · 0 en cours"

        mine = await private(await fake.invoke_slash(guild, channel, mod, "quota", locale="ja"))
        assert mine["embeds"][0]["title"] == "modさんのクレジット", "private stays Japanese"

        shown = await private(
            await fake.invoke_slash(guild, channel, mod, "config language", locale="de")
        )
        assert "Français (von einem Moderator gewählt)" in shown["content"]

        await private(
            await fake.invoke_slash(guild, channel, mod, "config language", {"language": "auto"})
        )
        assert (await stats_as(running, world, "ja"))["title"].startswith("Video stats")


async def test_the_servers_discord_language_is_remembered_for_later_public_text(
    start_bot: StartBot, world: World
) -> None:
    """Without /config language, the server's Discord language (guild_locale) is used, and
    stored when seen, so work done later without an interaction knows it."""
    world.guild.preferred_locale = "pt-BR"
    async with start_bot() as running:
        embed = await stats_as(running, world, "en-US")
        assert embed["title"] == "Estatísticas de vídeo: últimos 7 dias"
        settings = await running.store.guilds.get(world.guild.id)
        assert settings.discord_locale == "pt-BR" and settings.language is None
        tr = await running.bot.languages.tr(world.guild.id)  # no interaction at hand
        assert tr.locale == "pt-BR"


def english_left(text: str) -> str:
    """What remains of a reply once catalog text (⟦…⟧), mentions, timestamps, code, links
    and numbers are taken out: user-facing English that escaped the catalogs."""
    text = re.sub(rf"{PSEUDO_OPEN}[^{PSEUDO_CLOSE}]*{PSEUDO_CLOSE}", "", text)
    text = re.sub(r"<[^<>]*>|`[^`]*`|https?://\S+|\b(std|pro)\b", "", text)
    return "".join(char for char in text if char.isascii() and char.isalpha())


async def test_pseudo_locale_finds_no_english_outside_the_catalogs(
    start_bot: StartBot, world: World
) -> None:
    """Every converted command's private replies, in the pseudo-locale: nothing is left
    in plain English (names of people and values the member typed aside)."""
    fake, guild, channel, mod = world.fake, world.guild, world.channel, world.mod
    calls: list[tuple[Any, str, dict[str, Any]]] = [
        (world.alice, "quota", {}),
        (world.alice, "quota", {"user": world.bob}),
        (world.alice, "jobs", {}),
        (world.alice, "config show", {}),
        (mod, "quotas set", {"user": world.bob, "credits": 5}),
        (mod, "quotas default", {"credits": 7}),
        (mod, "quotas reset", {"user": world.bob}),
        (mod, "quotas role-set", {"role": guild.roles[guild.id], "credits": 3}),
        (mod, "quotas role-remove", {"role": guild.roles[guild.id]}),
        (mod, "config show", {}),
        (mod, "config limits", {}),
        (mod, "config limits", {"cooldown_seconds": 90}),
        (mod, "config allow-channel", {"channel": channel}),
        (mod, "config remove-channel", {"channel": channel}),
        (mod, "config block-word", {"word": "zebra"}),
        (mod, "config unblock-word", {"word": "zebra"}),
        (mod, "config log-channel", {}),
        (mod, "config language", {}),
    ]
    async with start_bot() as running:
        leaks: list[str] = []
        for who, command, options in calls:
            reply = await private(
                await fake.invoke_slash(guild, channel, who, command, options, locale=PSEUDO_LOCALE)
            )
            for text in texts(reply):
                cleaned = text
                for value in ("alice", "bob", "mod", "zebra", "Horse Club", "everyone"):
                    cleaned = cleaned.replace(value, "")
                if english_left(cleaned):
                    leaks.append(f"/{command}: {text!r}")
        quotas_show = await private(
            await fake.invoke_slash(
                guild, channel, mod, "quotas show", {"user": world.bob}, locale=PSEUDO_LOCALE
            )
        )
        for text in texts(quotas_show):
            # The audit rows' values are data (numbers, mentions); their words are catalog text.
            if english_left(text.replace("bob", "")):
                leaks.append(f"/quotas show: {text!r}")
        assert running.bot.is_ready()
    assert leaks == []


async def test_config_language_needs_manage_server(start_bot: StartBot, world: World) -> None:
    """A member without Manage Server can neither see nor change the server's language."""
    fake = world.fake
    async with start_bot() as running:
        for options in ({}, {"language": "de"}):
            inter = await fake.invoke_slash(
                world.guild, world.channel, world.alice, "config language", options, locale="fr"
            )
            reply = await private(inter)
            assert reply["content"] == (
                "Il te faut la permission Gérer le serveur pour utiliser cette commande."
            )
        assert (await running.store.guilds.get(world.guild.id)).language is None
