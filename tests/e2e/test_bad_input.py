"""A bad-input corpus through the real bot, against the Discord fake and the real sandbox.

Every refusal case is one row of data: what is invoked, by whom, with which options and
files, and the words the answer must contain (what was wrong and what to do). Each is
answered within Discord's 3 s deadline with an ephemeral message, posts nothing in the
channel, charges nothing, creates no job and never reaches the video API. Values Discord's
own client would block are sent with ``validate=False``, as a misbehaving client could.

A second, smaller table holds odd input that is valid and must be accepted: limits
exactly met, emoji, and mention floods that must ping nobody but the requester.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pytest

from storage.models import Balance
from tests.e2e.conftest import PNG_1x1, Running, StartBot, World
from tests.fake_discord.commands import modal_inputs
from tests.fake_discord.driver import FakeChannel, FakeDiscord, InteractionRecord
from tests.fake_discord.models import DM, FakeAttachment, FakeRole, FakeUser

MIB = 1024 * 1024
IMAGE_CAP = 10 * MIB  # BotSettings.max_image_bytes, the default the e2e bot runs with
EPHEMERAL = 64
BLOCKED = "unicorn"
ZW = "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space, non-joiner, joiner, word joiner, BOM
RLO, LRO, PDF = "\u202e", "\u202d", "\u202c"


# -- the corpus as data ------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An option value that is a world object: "alice", "bob", "mod", "channel", "other"."""

    name: str


@dataclass(frozen=True)
class File:
    """A file on the fake CDN: `size` real bytes (PNG-headed), or only a declared size."""

    filename: str
    content_type: str | None
    size: int = len(PNG_1x1)
    declared_size: int | None = None


@dataclass(frozen=True)
class Case:
    """One bad input: `command` is a slash path, or "menu:"/"modal:" plus a context menu.

    For "menu:" the `files` are attached to a member's message the menu is used on; for
    "modal:" that message holds a good PNG and `options` fill the modal. `blocked`,
    `allowance` and `allow_only_other` set the guild up first; `where="dm"` invokes in a DM.
    """

    id: str
    command: str
    options: Mapping[str, Any]
    expect: tuple[str, ...]
    files: tuple[File, ...] = ()
    who: str = "alice"
    validate: bool = True
    where: str = "guild"
    blocked: tuple[str, ...] = ()
    allowance: int | None = None
    allow_only_other: bool = False


GOOD_PNG = File("horse.png", "image/png")
EMPTY = ("Your prompt is empty", "Describe the scene")
NOT_IMAGE = ("is not an image I can animate", "Attach a PNG, JPEG or WEBP image")
CONTROL = ("control character", "Remove it and try again")
TOO_LONG = ("the limit is 2000", "Shorten it")
BLOCKED_WORD = ("word this server does not allow", "Rephrase it")
MANAGE = ("Manage Server permission",)
CREDIT_RANGE = ("Credits must be between 0 and 1,000,000",)


def long_prompt(n: int) -> str:
    """A prompt of exactly `n` characters that normalisation leaves as it is."""
    return ("a horse gallops in the rain " * (n // 28 + 1))[: n - 1] + "x"


REFUSALS: list[Case] = [
    # prompt length, after normalisation
    Case("whitespace-only", "video", {"prompt": "  \t \n  "}, EMPTY),
    Case("zero-width-only", "video", {"prompt": ZW * 20}, EMPTY),
    Case("bidi-overrides-only", "video", {"prompt": f"{RLO}{LRO}{PDF} {RLO}"}, EMPTY),
    Case("empty-string-bypass", "video", {"prompt": ""}, EMPTY, validate=False),
    Case(
        "prompt-option-missing-bypass",
        "video",
        {},
        ("out of date", "try again"),
        validate=False,
    ),
    Case("limit-plus-one", "video", {"prompt": long_prompt(2001)}, ("2001 characters", *TOO_LONG)),
    Case("six-thousand", "video", {"prompt": long_prompt(6000)}, ("6000 characters", *TOO_LONG)),
    Case(
        "over-discord-max-bypass",
        "video",
        {"prompt": long_prompt(6001)},
        ("6001 characters", *TOO_LONG),
        validate=False,
    ),
    Case(
        "hundred-thousand-bypass",
        "video",
        {"prompt": long_prompt(100_000)},
        ("100000 characters", *TOO_LONG),
        validate=False,
    ),
    Case(
        "combining-flood",
        "video",
        {"prompt": "a" + "\u0301" * 2500},
        ("2500 characters", *TOO_LONG),
    ),
    Case(
        "zero-width-padding-over-limit",
        "video",
        {"prompt": "\u200b".join("h" * 2001)},
        ("2001 characters", *TOO_LONG),
    ),
    Case(
        "role-mention-flood-100x",
        "video",
        {"prompt": "<@&{role}> " * 100},
        ("characters long", *TOO_LONG),
    ),
    Case(
        "user-mention-flood-100x",
        "video",
        {"prompt": "<@{bob}> " * 100},
        ("characters long", *TOO_LONG),
    ),
    # characters
    Case("control-nul", "video", {"prompt": "a horse\x00 in the rain"}, ("U+0000", *CONTROL)),
    Case("control-bel", "video", {"prompt": "a horse \x07\x07\x07"}, ("U+0007", *CONTROL)),
    Case("control-ansi-escape", "video", {"prompt": "\x1b[31ma red horse"}, ("U+001B", *CONTROL)),
    Case("control-del", "video", {"prompt": "a horse\x7f"}, ("U+007F", *CONTROL)),
    Case(
        "control-in-animate-prompt",
        "animate",
        {"prompt": "the horse\x00 runs"},
        ("U+0000", *CONTROL),
        files=(GOOD_PNG,),
    ),
    # blocked words (the guild blocks "unicorn" and the phrase "pink pony")
    Case(
        "blocked-upper",
        "video",
        {"prompt": "a UNICORN at dawn"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-mixed-case",
        "video",
        {"prompt": "UniCoRn!"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-zero-width-inside",
        "video",
        {"prompt": "a uni\u200bco\u200drn runs"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-zwj-around",
        "video",
        {"prompt": "a \u200d\u200dunicorn\u200d runs"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-rtl-override-inside",
        "video",
        {"prompt": f"a uni{RLO}corn{PDF} runs"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-fullwidth",
        "video",
        {"prompt": "a \uff35\uff2e\uff29\uff23\uff2f\uff32\uff2e runs"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    Case(
        "blocked-phrase-spacing",
        "video",
        {"prompt": "a PINK \n\t  pony"},
        BLOCKED_WORD,
        blocked=("pink pony",),
    ),
    Case(
        "blocked-in-animate-prompt",
        "animate",
        {"prompt": "a Unicorn appears"},
        BLOCKED_WORD,
        files=(GOOD_PNG,),
        blocked=(BLOCKED,),
    ),
    # invalid choices and values Discord's client would not send
    Case(
        "aspect-ratio-4-3-bypass",
        "video",
        {"prompt": "a horse", "aspect_ratio": "4:3"},
        ("aspect_ratio", "16:9", "9:16", "1:1"),
        validate=False,
    ),
    Case(
        "duration-7-bypass",
        "video",
        {"prompt": "a horse", "duration": 7},
        ("duration", "5 or 10 seconds"),
        validate=False,
    ),
    Case(
        "quality-ultra-bypass",
        "video",
        {"prompt": "a horse", "quality": "ultra"},
        ("quality", "std", "pro"),
        validate=False,
    ),
    Case(
        "animate-aspect-21-9-bypass",
        "animate",
        {"aspect_ratio": "21:9"},
        ("aspect_ratio", "16:9"),
        files=(GOOD_PNG,),
        validate=False,
    ),
    # /animate attachments of every wrong kind and size
    Case(
        "text-plain", "animate", {}, (*NOT_IMAGE, "text/plain"), (File("notes.txt", "text/plain"),)
    ),
    Case(
        "pdf", "animate", {}, (*NOT_IMAGE, "application/pdf"), (File("doc.pdf", "application/pdf"),)
    ),
    Case("mp4", "animate", {}, (*NOT_IMAGE, "video/mp4"), (File("clip.mp4", "video/mp4"),)),
    Case("gif", "animate", {}, (*NOT_IMAGE, "image/gif"), (File("anim.gif", "image/gif"),)),
    Case("svg", "animate", {}, (*NOT_IMAGE, "image/svg+xml"), (File("logo.svg", "image/svg+xml"),)),
    Case(
        "png-name-jpeg-type",
        "animate",
        {},
        ("photo.png", ".png", "image/jpeg", "matching", "PNG, JPEG or WEBP"),
        (File("photo.png", "image/jpeg"),),
    ),
    Case(
        "exe-name-png-type",
        "animate",
        {},
        ("payload.exe", ".exe", "image/png", "PNG, JPEG or WEBP"),
        (File("payload.exe", "image/png"),),
    ),
    Case(
        "no-type-no-extension",
        "animate",
        {},
        (*NOT_IMAGE, "unknown"),
        (File("image", None),),
    ),
    Case(
        "zero-bytes",
        "animate",
        {},
        ("empty.png", "is empty", "Attach a PNG, JPEG or WEBP image"),
        (File("empty.png", "image/png", size=0),),
    ),
    Case(
        "one-byte-over-cap",
        "animate",
        {},
        ("big.png", "10.1 MiB", "at most 10.0 MiB", "smaller image"),
        (File("big.png", "image/png", size=IMAGE_CAP + 1),),
    ),
    Case(
        "huge-declared-size",
        "animate",
        {},
        ("huge.jpg", "at most 10.0 MiB", "smaller image"),
        (File("huge.jpg", "image/jpeg", declared_size=2**40),),
    ),
    # the Animate image context menu and its modal
    Case(
        "menu-no-attachment",
        "menu:Animate image",
        {},
        ("has no image attached", "PNG, JPEG or WEBP"),
    ),
    Case(
        "menu-text-attachment",
        "menu:Animate image",
        {},
        (*NOT_IMAGE, "text/plain"),
        (File("notes.txt", "text/plain"),),
    ),
    Case(
        "menu-gif-attachment",
        "menu:Animate image",
        {},
        (*NOT_IMAGE, "image/gif"),
        (File("anim.gif", "image/gif"),),
    ),
    Case(
        "menu-oversized-image",
        "menu:Animate image",
        {},
        ("at most 10.0 MiB", "smaller image"),
        (File("big.webp", "image/webp", declared_size=50 * MIB),),
    ),
    Case(
        "modal-control-char", "modal:Animate image", {"prompt": "go\x1b now"}, ("U+001B", *CONTROL)
    ),
    Case(
        "modal-too-long",
        "modal:Animate image",
        {"prompt": long_prompt(3000)},
        ("3000 characters", *TOO_LONG),
    ),
    Case(
        "modal-blocked-word",
        "modal:Animate image",
        {"prompt": "a uni\u200bcorn"},
        BLOCKED_WORD,
        blocked=(BLOCKED,),
    ),
    # moderators with out-of-range credits (Discord's client enforces 0..1,000,000)
    Case(
        "set-negative-bypass",
        "quotas set",
        {"user": Ref("bob"), "credits": -1},
        CREDIT_RANGE,
        who="mod",
        validate=False,
    ),
    Case(
        "set-million-and-one-bypass",
        "quotas set",
        {"user": Ref("bob"), "credits": 1_000_001},
        CREDIT_RANGE,
        who="mod",
        validate=False,
    ),
    Case(
        "set-ten-to-twelve-bypass",
        "quotas set",
        {"user": Ref("bob"), "credits": 10**12},
        CREDIT_RANGE,
        who="mod",
        validate=False,
    ),
    Case(
        "default-negative-bypass",
        "quotas default",
        {"credits": -1},
        CREDIT_RANGE,
        who="mod",
        validate=False,
    ),
    Case(
        "default-ten-to-twelve-bypass",
        "quotas default",
        {"credits": 10**12},
        CREDIT_RANGE,
        who="mod",
        validate=False,
    ),
    # members calling moderator commands (Discord shows them, if admins override defaults)
    Case("member-quotas-set", "quotas set", {"user": Ref("bob"), "credits": 50}, MANAGE),
    Case("member-quotas-default", "quotas default", {"credits": 50}, MANAGE),
    Case("member-quotas-reset", "quotas reset", {"user": Ref("alice")}, MANAGE),
    Case("member-quotas-show", "quotas show", {"user": Ref("bob")}, MANAGE),
    Case("member-config-show", "config show", {}, MANAGE),
    Case("member-config-allow", "config allow-channel", {"channel": Ref("channel")}, MANAGE),
    Case("member-config-remove", "config remove-channel", {"channel": Ref("channel")}, MANAGE),
    Case("member-config-block", "config block-word", {"word": "horse"}, MANAGE),
    Case("member-config-unblock", "config unblock-word", {"word": "horse"}, MANAGE),
    Case(
        "member-quota-of-someone-else",
        "quota",
        {"user": Ref("bob")},
        ("another member's credits", "Manage Server"),
    ),
    # where and how much
    Case(
        "channel-not-allowed",
        "video",
        {"prompt": "a horse"},
        ("can't be made in this channel", "Use one of"),
        allow_only_other=True,
    ),
    Case(
        "channel-not-allowed-animate",
        "animate",
        {},
        ("can't be made in this channel", "Use one of"),
        files=(GOOD_PNG,),
        allow_only_other=True,
    ),
    Case(
        "no-credits-left",
        "video",
        {"prompt": "a horse"},
        ("costs 1", "you have 0 of 0 left", "reset <t:", "ask a moderator"),
        allowance=0,
    ),
    Case(
        "ten-second-pro-too-dear",
        "video",
        {"prompt": "a horse", "duration": 10, "quality": "pro"},
        ("costs 4", "you have 3 of 3 left", "reset <t:", "5 s std"),
        allowance=3,
    ),
    # DMs (the commands are guild-only; a lax client or an independent fake may still send)
    Case("dm-video", "video", {"prompt": "a horse"}, ("server channel", "not in DMs"), where="dm"),
    Case(
        "dm-animate",
        "animate",
        {},
        ("server channel", "not in DMs"),
        files=(GOOD_PNG,),
        where="dm",
    ),
    Case(
        "dm-menu",
        "menu:Animate image",
        {},
        ("server channel", "not in DMs"),
        files=(GOOD_PNG,),
        where="dm",
    ),
    Case("dm-quota", "quota", {}, ("only works in a server",), where="dm"),
    Case("dm-jobs", "jobs", {}, ("only works in a server",), where="dm"),
    Case(
        "dm-quotas-show",
        "quotas show",
        {"user": Ref("bob")},
        ("only works in a server",),
        where="dm",
    ),
]


# -- running one case ----------------------------------------------------------------------


def _resolve(value: Any, world: World, other: FakeChannel, role: FakeRole) -> Any:
    if isinstance(value, str):
        return value.replace("{bob}", str(world.bob.user.id)).replace("{role}", str(role.id))
    if not isinstance(value, Ref):
        return value
    people = {"alice": world.alice, "bob": world.bob, "mod": world.mod}
    if value.name in people:
        return people[value.name]
    return {"channel": world.channel, "other": other}[value.name]


@dataclass(eq=False)
class DeclaredSizeAttachment(FakeAttachment):
    """An attachment whose payload claims `declared_size` bytes (no such bytes stored)."""

    declared_size: int = 0

    @property
    def size(self) -> int:
        """The claimed size."""
        return self.declared_size


def _upload(fake: FakeDiscord, spec: File) -> FakeAttachment:
    data = (PNG_1x1 + bytes(max(0, spec.size - len(PNG_1x1))))[: spec.size]
    attachment = fake.attachment(spec.filename, data, spec.content_type, width=1, height=1)
    if spec.declared_size is None:
        return attachment
    values = {f.name: getattr(attachment, f.name) for f in fields(attachment)}
    claimed = DeclaredSizeAttachment(**values, declared_size=spec.declared_size)
    fake.state.attachments[attachment.id] = claimed
    return claimed


def _open_dm(fake: FakeDiscord, user: FakeUser) -> FakeChannel:
    """The DM channel between the bot and `user`, made as POST /users/@me/channels does."""
    channel = fake.state.dm_channels.get(user.id)
    if channel is None:
        channel = FakeChannel(fake.state.new_id(), DM, "", recipient=user)
        fake.state.dm_channels[user.id] = channel
        fake.state.channels[channel.id] = channel
    return channel


async def _invoke(
    case: Case, world: World, other: FakeChannel, role: FakeRole
) -> InteractionRecord:
    fake = world.fake
    person = {"alice": world.alice, "bob": world.bob, "mod": world.mod}[case.who]
    options = {k: _resolve(v, world, other, role) for k, v in case.options.items()}
    files = [_upload(fake, spec) for spec in case.files]
    if case.where == "dm":
        dm = _open_dm(fake, person.user)
        if case.command.startswith("menu:"):
            target = fake.post_user_message(dm, person, "look", attachments=files)
            name = case.command.removeprefix("menu:")
            return await fake.invoke_message_command(None, dm, person, name, target)
        return await fake.invoke_slash(
            None, dm, person.user, case.command, options, attachments=files, validate=case.validate
        )
    if case.command.startswith("menu:"):
        target = fake.post_user_message(world.channel, world.bob, "look", attachments=files)
        name = case.command.removeprefix("menu:")
        return await fake.invoke_message_command(world.guild, world.channel, person, name, target)
    if case.command.startswith("modal:"):
        target = fake.post_user_message(
            world.channel, world.bob, "look", attachments=[_upload(fake, GOOD_PNG)]
        )
        name = case.command.removeprefix("modal:")
        menu = await fake.invoke_message_command(world.guild, world.channel, person, name, target)
        assert await menu.wait_for_ack() == 9, "the context menu should open its modal"
        assert menu.modal is not None
        [field_] = modal_inputs(menu.modal)
        return await fake.submit_modal(menu, {field_["custom_id"]: options["prompt"]})
    return await fake.invoke_slash(
        world.guild,
        world.channel,
        person,
        case.command,
        options,
        attachments=files,
        validate=case.validate,
    )


async def private_answer(inter: InteractionRecord) -> str:
    """The text of an ephemeral answer, in time; fails if any part of it is public."""
    ack = await inter.wait_for_ack()  # raises AckTimeout after Discord's 3 s
    if ack == 4:
        assert inter.initial_response is not None
        assert inter.initial_response["flags"] & EPHEMERAL, "the refusal must be ephemeral"
        message = inter.initial_response
    else:
        assert ack == 5 and inter.ephemeral_response, f"answered with type {ack}, not privately"
        message = await inter.wait_for_followup()
        assert message["flags"] & EPHEMERAL
    parts = [message.get("content") or ""]
    parts += [e.get("description") or "" for e in message.get("embeds", [])]
    return "\n".join(parts)


def _key(balance: Balance) -> tuple[object, ...]:
    return (balance.allowance, balance.used, balance.remaining, balance.source)


async def _snapshot(running: Running, world: World) -> dict[str, Any]:
    guild_id = world.guild.id
    store = running.store
    people = (world.alice, world.bob, world.mod)
    return {
        "balances": [_key(await store.credits.balance(guild_id, p.user.id)) for p in people],
        "jobs": [await store.jobs.recent_jobs(guild_id, p.user.id) for p in people],
        "audit": await store.credits.list_audit(guild_id, limit=100),
        "settings": await store.guilds.get(guild_id),
    }


def _bot_posts(fake: FakeDiscord, channel: FakeChannel) -> list[dict[str, Any]]:
    bot_id = str(fake.bot_user.id)
    return [m for m in fake.channel_messages(channel) if m["author"]["id"] == bot_id]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in REFUSALS])
async def test_bad_input_is_refused_privately_and_costs_nothing(
    case: Case, start_bot: StartBot, world: World
) -> None:
    """Bad input gets a fast, specific, ephemeral answer; nothing is charged or created."""
    fake = world.fake
    other = fake.add_text_channel(world.guild, "elsewhere")
    role = fake.add_role(world.guild, "riders")
    overrides = {"dev_guild_id": None} if case.where == "dm" else {}
    async with start_bot(**overrides) as running:
        store, guild_id, mod_id = running.store, world.guild.id, world.mod.user.id
        for word in case.blocked:
            await store.guilds.add_blocked_word(guild_id, word, mod_id)
        if case.allow_only_other:
            await store.guilds.add_allowed_channel(guild_id, other.id, mod_id)
        if case.allowance is not None:
            await store.credits.set_user_allowance(
                guild_id, world.alice.user.id, case.allowance, mod_id
            )
        before = await _snapshot(running, world)

        inter = await _invoke(case, world, other, role)
        text = await private_answer(inter)

        for needle in case.expect:
            assert needle.lower() in text.lower(), f"{needle!r} not in the answer {text!r}"
        assert "went wrong" not in text, f"a bug answered as a generic failure: {text!r}"
        assert len(text) <= 2000
        assert _bot_posts(fake, world.channel) == [], "nothing may be posted publicly"
        assert await _snapshot(running, world) == before, "nothing may change or be charged"
        assert running.sandbox.state.request_counts["generate"] == 0
        assert not fake.unhandled_requests


# -- odd but valid input: accepted, and pinging nobody -----------------------------------


@dataclass(frozen=True)
class Accepted:
    """Valid input the bot must accept; `prompt` may name {bob} and {role}; `sent` is the
    prompt the API must receive (None: the same as typed)."""

    id: str
    prompt: str
    sent: str | None = None


EMOJI = "\U0001f434\U0001f327\ufe0f\U0001f308\u2728"
ACCEPTED: list[Accepted] = [
    Accepted("exactly-the-limit", long_prompt(2000)),
    Accepted(
        "limit-after-removing-zero-width",
        "\u200b".join(long_prompt(2000)),
        sent=long_prompt(2000),
    ),
    Accepted("decomposed-accents-compose-to-the-limit", "e\u0301" * 2000, sent="\u00e9" * 2000),
    Accepted("emoji-only", EMOJI),
    Accepted("bidi-override-dropped", f"a horse {RLO}in the rain{PDF}", sent="a horse in the rain"),
    Accepted("moderate-combining-marks", "h\u0336o\u0336r\u0336s\u0336e\u0336 " * 50),
    Accepted("everyone-flood", "@everyone " * 100),
    Accepted("here-flood", "@here " * 100),
    Accepted("role-flood", "<@&{role}> " * 80),
    Accepted("user-flood", "<@{bob}> " * 80),
    Accepted("mixed-flood", "@everyone <@&{role}> @here <@{bob}> " * 30),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in ACCEPTED])
async def test_odd_but_valid_input_is_accepted_and_pings_only_the_requester(
    case: Accepted, start_bot: StartBot, world: World
) -> None:
    """Valid edge input is accepted as normalised, charged once, and pings nobody else."""
    fake = world.fake
    role = fake.add_role(world.guild, "riders")
    prompt = case.prompt.replace("{role}", str(role.id)).replace("{bob}", str(world.bob.user.id))
    expected = prompt.strip() if case.sent is None else case.sent
    async with start_bot() as running:
        inter = await fake.invoke_slash(
            world.guild, world.channel, world.alice, "video", {"prompt": prompt}
        )
        assert await inter.wait_for_ack() == 5
        clip = await fake.wait_for_message(
            world.channel, lambda m: bool(m["attachments"]), timeout=10
        )
        [job] = await running.store.jobs.recent_jobs(world.guild.id, world.alice.user.id)
        assert job.prompt == " ".join(expected.split())
        [task] = running.sandbox.state.tasks.values()
        assert task.prompt == job.prompt
        balance = await running.store.credits.balance(world.guild.id, world.alice.user.id)
        assert balance.used == 1

        alice = str(world.alice.user.id)
        for message in [*_bot_posts(fake, world.channel), clip]:
            assert message["mention_everyone"] is False
            assert message["mention_roles"] == []
            assert {u["id"] for u in message["mentions"]} <= {alice}
        assert [u["id"] for u in clip["mentions"]] == [alice]
        sent = [
            r
            for r in fake.requests
            if r.method in ("POST", "PATCH") and isinstance(r.json, dict) and "content" in r.json
        ]
        assert sent, "the bot sent no message at all"
        for request in sent:
            mentions = request.json.get("allowed_mentions")
            assert mentions is not None, f"{request.method} {request.path} has no allowed_mentions"
            assert mentions["parse"] == [], f"{request.path} lets Discord parse {mentions}"
            assert not mentions.get("roles")
            assert [str(u) for u in mentions.get("users", [])] in ([], [alice])


async def test_context_menu_skips_an_unusable_image_for_a_usable_one(
    start_bot: StartBot, world: World
) -> None:
    """Animate image on a message with a GIF and then a PNG animates the PNG."""
    fake = world.fake
    async with start_bot() as running:
        gif = _upload(fake, File("anim.gif", "image/gif"))
        png = _upload(fake, GOOD_PNG)
        target = fake.post_user_message(world.channel, world.bob, "two", attachments=[gif, png])
        menu = await fake.invoke_message_command(
            world.guild, world.channel, world.alice, "Animate image", target
        )
        assert await menu.wait_for_ack() == 9
        assert menu.modal is not None
        [field_] = modal_inputs(menu.modal)
        submit = await fake.submit_modal(menu, {field_["custom_id"]: "the horse gallops"})
        assert await submit.wait_for_ack() == 5
        await fake.wait_for_message(world.channel, lambda m: bool(m["attachments"]), timeout=10)
        [job] = await running.store.jobs.recent_jobs(world.guild.id, world.alice.user.id)
        assert job.image_url is not None and "/horse.png" in job.image_url
