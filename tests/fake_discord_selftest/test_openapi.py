"""The fake checks every request against Discord's OpenAPI spec, and refuses as Discord does."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

import discord
import pytest

from tests.fake_discord.fixtures import spec_violation_report
from tests.fake_discord.openapi import SPEC_PATH, SpecViolation, load_spec

from .conftest import World
from .selftest_bot import SelfTestBot

GUILD_COMMANDS = "/applications/1/guilds/2/commands"


def job_command(**option: Any) -> dict[str, Any]:
    """The shape of the bot's ``/job id`` command, with the ``id`` option's fields replaced."""
    id_option = {
        "type": 4,
        "name": "id",
        "description": "The job's number",
        "required": True,
        "min_value": 1,
        "max_value": 2**53 - 1,
        **option,
    }
    return {"name": "job", "description": "Look up a job", "type": 1, "options": [id_option]}


def check_sync(*commands: dict[str, Any]) -> SpecViolation | None:
    return load_spec().check_request(
        "PUT", GUILD_COMMANDS, {}, "application/json", list(commands), has_body=True
    )


def test_stored_spec_is_the_recorded_commit() -> None:
    """The spec file is byte for byte the one SOURCE.md names (its SHA-256)."""
    source = SPEC_PATH.with_name("SOURCE.md").read_text(encoding="utf-8")
    [recorded] = re.findall(r"SHA-256:\s+([0-9a-f]{64})", source)
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == recorded


def test_old_job_id_bound_is_refused() -> None:
    """max_value 2**53 (the old /job id bound) is refused; 2**53 - 1 is accepted."""
    violation = check_sync(job_command(max_value=2**53))
    assert violation is not None
    assert violation.operation == "bulk_set_guild_application_commands"
    leaf = violation.body()["errors"]["0"]["options"]["0"]["max_value"]["_errors"]
    assert leaf == [
        {
            "code": "NUMBER_TYPE_MAX",
            "message": "9007199254740992 is greater than the maximum of 9007199254740991",
        }
    ]
    assert check_sync(job_command()) is None


def test_unknown_option_type_is_refused() -> None:
    """An option type Discord does not have (99) matches none of the spec's option kinds."""
    violation = check_sync(job_command(type=99))
    assert violation is not None
    [error] = violation.errors
    assert error.location == (0, "options", 0) and error.keyword == "oneOf"


def test_too_long_name_is_refused() -> None:
    """Command names are 1-32 characters."""
    violation = check_sync(dict(job_command(), name="j" * 33))
    assert violation is not None
    [error] = violation.errors
    assert (error.location, error.code) == ((0, "name"), "BASE_TYPE_MAX_LENGTH")
    assert check_sync(dict(job_command(), name="j" * 32)) is None


def test_union_errors_name_the_branch_meant() -> None:
    """An integer option's error is reported inside it, not as 'no oneOf branch matched'."""
    violation = check_sync(job_command(description=""))
    assert violation is not None
    assert [(e.location, e.keyword) for e in violation.errors] == [
        ((0, "options", 0, "description"), "minLength")
    ]


@pytest.mark.parametrize(
    ("method", "path", "query", "status"),
    [
        ("GET", "/channels/123/messages", {"limit": "101"}, 400),
        ("GET", "/channels/not-a-snowflake", {}, 400),
        ("POST", "/users/@me", {}, 405),
        ("GET", "/no/such/route", {}, 404),
    ],
)
def test_query_path_and_route_are_checked(
    method: str, path: str, query: dict[str, str], status: int
) -> None:
    """Query parameters the operation defines, path parameters and the route itself."""
    violation = load_spec().check_request(method, path, query, None, None, has_body=False)
    assert violation is not None and violation.status == status


def test_discord_py_query_booleans_are_read_as_discord_reads_them() -> None:
    """discord.py sends ``wait=1``; Discord reads 1/0 and true/false as booleans."""
    spec = load_spec()
    for wait in ("1", "0", "true", "False"):
        assert (
            spec.check_request(
                "POST",
                "/webhooks/1/token",
                {"wait": wait},
                "application/json",
                {"content": "hi"},
                has_body=True,
            )
            is None
        )
    assert (
        spec.check_request(
            "POST",
            "/webhooks/1/token",
            {"wait": "maybe"},
            "application/json",
            {"content": "hi"},
            has_body=True,
        )
        is not None
    )


async def test_refused_like_discord_and_recorded(world: World, bot: SelfTestBot) -> None:
    """A bad sync from real discord.py gets 400/50035 with the error tree, and is recorded
    with method, path, operation and schema error for the fixture's teardown check."""
    fake = world.fake
    assert bot.application_id is not None
    bad = job_command(max_value=2**53)
    with (
        fake.expect_spec_violations() as caught,
        pytest.raises(discord.HTTPException) as raised,
    ):
        await bot.http.bulk_upsert_guild_commands(bot.application_id, world.guild.id, payload=[bad])
    assert (raised.value.status, raised.value.code) == (400, 50035)
    assert "max_value" in str(raised.value)
    [violation] = caught
    assert fake.spec_violations == []
    [request] = fake.find_requests("PUT", r"/commands$", status=400)
    assert request.violation == violation
    assert request.response == violation.body()
    report = spec_violation_report(caught)
    assert f"PUT /applications/{bot.application_id}/guilds/{world.guild.id}/commands" in report
    assert "bulk_set_guild_application_commands" in report
    assert "0.options.0.max_value: 9007199254740992 is greater than the maximum" in report
    # The fake did not store the refused commands: the earlier sync still stands.
    assert "render" in {c["name"] for c in fake.commands(world.guild)}


async def test_multipart_payload_json_is_checked(world: World, bot: SelfTestBot) -> None:
    """An upload's payload_json is validated too (four stickers; Discord allows three)."""
    fake = world.fake
    channel = bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with (
        fake.expect_spec_violations() as caught,
        pytest.raises(discord.HTTPException) as raised,
    ):
        await channel.send(
            "clip",
            file=discord.File(io.BytesIO(b"0" * 16), filename="clip.mp4"),
            stickers=[discord.Object(id=n) for n in range(1, 5)],
        )
    assert (raised.value.status, raised.value.code) == (400, 50035)
    [violation] = caught
    assert violation.operation == "create_message"
    assert [(e.location, e.code) for e in violation.errors] == [
        (("sticker_ids",), "BASE_TYPE_MAX_LENGTH")
    ]
    [request] = fake.find_requests("POST", r"^/channels/\d+/messages$", status=400)
    assert request.file_summary == [("clip.mp4", 16)]
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert fake.channel_messages(world.channel) == []


async def test_bad_query_from_discord_py_is_refused(world: World, bot: SelfTestBot) -> None:
    """A query parameter outside the spec's bounds (limit=500 on a message list) is refused."""
    with (
        world.fake.expect_spec_violations() as caught,
        pytest.raises(discord.HTTPException) as raised,
    ):
        await bot.http.logs_from(world.channel.id, limit=500)
    assert (raised.value.status, raised.value.code) == (400, 50035)
    [violation] = caught
    assert [(e.location, e.keyword) for e in violation.errors] == [(("limit",), "maximum")]
