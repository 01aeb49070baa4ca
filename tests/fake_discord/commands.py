"""Synced application commands and the options a user may send, checked as Discord checks them.

Discord only lets a user invoke a command the bot registered, with option names it declared,
values of the declared type, within ``choices``/``min_value``/``max_value``/``min_length``/
``max_length``/``channel_types``, and with every required option present. The driver builds
``data`` for INTERACTION_CREATE here and raises :class:`CommandValidationError` for anything
Discord would never send.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from .models import (
    JSON,
    CommandValidationError,
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeState,
    FakeUser,
    form_error,
)

# Command types
CHAT_INPUT = 1
USER = 2
MESSAGE = 3

# Option types
SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
USER_OPTION = 6
CHANNEL = 7
ROLE = 8
MENTIONABLE = 9
NUMBER = 10
ATTACHMENT = 11

_MAX_SAFE_INT = 2**53

_OPTION_TYPE_NAMES = {
    STRING: "string",
    INTEGER: "integer",
    BOOLEAN: "boolean",
    USER_OPTION: "user",
    CHANNEL: "channel",
    ROLE: "role",
    MENTIONABLE: "mentionable",
    NUMBER: "number",
    ATTACHMENT: "attachment",
}


# Discord's locales (developer docs, "Locales"): the keys *_localizations may use.
DISCORD_LOCALES = frozenset(
    {
        "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu",
        "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru",
        "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
    }
)  # fmt: skip


def _valid_name(name: object) -> bool:
    """``^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$``, lower case where the script has
    case (Discord's rule for command and option names, localised ones included)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 32 or name != name.lower():
        return False
    return all(
        char in "-_"
        or unicodedata.category(char)[0] in "LN"
        or "\u0900" <= char <= "\u097f"
        or "\u0e00" <= char <= "\u0e7f"
        for char in name
    )


def _valid_menu_name(name: object) -> bool:
    """A USER or MESSAGE command's name: 1-32 characters, which "may be mixed case and can
    include spaces" (Discord's "Application Command Naming"); otherwise the same letters."""
    if not isinstance(name, str) or not 1 <= len(name) <= 32 or name.strip() != name:
        return False
    return _valid_name("".join(char for char in name.lower() if char != " ") or "-")


def check_localizations(raw: Mapping[str, Any], path: str, *, menu: bool = False) -> None:
    """Refuse localisations Discord refuses: unknown locales, bad names, long descriptions
    (for a command, its options, their options and choices, recursively)."""
    is_choice = "value" in raw  # a choice's name is display text: 1-100 characters
    valid_name = _valid_menu_name if menu else _valid_name
    name_limit = 100 if is_choice else 32
    for field, limit in (("name_localizations", name_limit), ("description_localizations", 100)):
        localized = raw.get(field) or {}
        for locale, text in localized.items():
            where = f"{path}.{field}.{locale}"
            if locale not in DISCORD_LOCALES:
                raise form_error(where, "LOCALE_INVALID", f"Invalid locale {locale!r}")
            if field == "name_localizations" and not is_choice and not valid_name(text):
                raise form_error(where, "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
            if not isinstance(text, str) or not 1 <= len(text) <= limit:
                raise form_error(where, "BASE_TYPE_BAD_LENGTH", f"Must be 1-{limit} long")
    for index, option in enumerate(raw.get("options") or []):
        check_localizations(option, f"{path}.options.{index}")
    for index, choice in enumerate(raw.get("choices") or []):
        check_localizations(choice, f"{path}.choices.{index}")


def store_commands(
    state: FakeState, guild_id: int | None, payload: Any, *, replace: bool
) -> list[JSON]:
    """Validate and store commands (bulk overwrite when ``replace``); return them with ids."""
    if not isinstance(payload, list):
        payload = [payload]
    scope = state.commands.setdefault(guild_id, {})
    stored: list[JSON] = []
    seen: set[tuple[str, int]] = set()
    for index, raw in enumerate(payload):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise form_error(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
        command_type = int(raw.get("type", CHAT_INPUT))
        key = (raw["name"], command_type)
        if key in seen:
            raise form_error(
                f"{index}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate name"
            )
        seen.add(key)
        if command_type == CHAT_INPUT and not raw.get("description"):
            raise form_error(f"{index}.description", "BASE_TYPE_REQUIRED", "Required")
        check_localizations(raw, str(index), menu=command_type in (USER, MESSAGE))
        id_key = (guild_id, raw["name"], command_type)
        command_id = state.command_ids.get(id_key) or state.new_id()
        state.command_ids[id_key] = command_id
        command = copy.deepcopy(raw)
        command.update(
            id=str(command_id),
            application_id=str(state.application_id),
            version=str(state.new_id()),
            type=command_type,
            description=raw.get("description", "") if command_type == CHAT_INPUT else "",
            default_member_permissions=raw.get("default_member_permissions"),
            nsfw=bool(raw.get("nsfw", False)),
        )
        command.setdefault("options", [])
        command.setdefault("contexts", None)
        command.setdefault("integration_types", [0])
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        else:
            command.setdefault("dm_permission", True)
        stored.append(command)
    if replace:
        scope.clear()
    for command in stored:
        scope[int(command["id"])] = command
    state.sync_count += 1
    state.notify()
    return stored


def find_command(
    state: FakeState, guild: FakeGuild | None, name: str, command_type: int
) -> tuple[JSON, int | None]:
    """Find a synced command by name and type: the guild's first, then global ones."""
    scopes: list[int | None] = [guild.id, None] if guild is not None else [None]
    for scope in scopes:
        for command in state.commands.get(scope, {}).values():
            if command["name"] == name and command["type"] == command_type:
                return command, scope
    synced = sorted(
        f"{c['name']} (type {c['type']}, {'global' if s is None else 'guild ' + str(s)})"
        for s, commands in state.commands.items()
        for c in commands.values()
        if s is None or guild is None or s == guild.id
    )
    raise CommandValidationError(
        f"no synced command {name!r} of type {command_type} for "
        f"{'DMs' if guild is None else 'guild ' + guild.name}; synced: {synced or 'nothing'}"
    )


class _Resolved:
    """Collects ``data.resolved`` as options are converted."""

    def __init__(self, state: FakeState, guild: FakeGuild | None) -> None:
        self.state = state
        self.guild = guild
        self.data: dict[str, dict[str, JSON]] = {}

    def add(self, kind: str, key: int, value: JSON) -> None:
        self.data.setdefault(kind, {})[str(key)] = value

    def user(self, user: FakeUser) -> None:
        self.add("users", user.id, user.to_dict())
        member = self.state.member(self.guild, user)
        if member is not None:
            member_data = member.to_dict(with_user=False)
            member_data["permissions"] = str(member.permissions)
            self.add("members", user.id, member_data)

    def channel(self, channel: FakeChannel) -> None:
        data = channel.to_dict(self.state.bot.id)
        keep = {"id", "name", "type", "parent_id", "thread_metadata", "guild_id"}
        data = {k: v for k, v in data.items() if k in keep}
        data["permissions"] = str(channel.bot_permissions)
        self.add("channels", channel.id, data)

    def role(self, role: FakeRole) -> None:
        self.add("roles", role.id, role.to_dict())

    def attachment(self, attachment: FakeAttachment) -> None:
        data = attachment.to_dict()
        data["ephemeral"] = True  # files given to a command option are ephemeral uploads
        self.add("attachments", attachment.id, data)


def _fail(path: str, message: str) -> CommandValidationError:
    return CommandValidationError(f"option {path}: {message}")


def _as_user(value: Any) -> FakeUser | None:
    if isinstance(value, FakeMember):
        return value.user
    if isinstance(value, FakeUser):
        return value
    return None


def _convert(
    option: JSON, value: Any, path: str, resolved: _Resolved, *, validate: bool = True
) -> Any:
    """Check ``value`` against the option definition; return the wire value.

    With ``validate=False`` only the value's type is checked: lengths, ranges and choices
    are not (what a misbehaving client or a lax independent implementation could send).
    """
    kind = option["type"]
    state = resolved.state
    if kind == STRING:
        if not isinstance(value, str):
            raise _fail(path, f"expected str, got {type(value).__name__}")
        if validate and "min_length" in option and len(value) < option["min_length"]:
            raise _fail(path, f"shorter than min_length {option['min_length']}")
        if validate and len(value) > option.get("max_length", 6000):
            raise _fail(path, f"longer than max_length {option.get('max_length', 6000)}")
        wire: Any = value
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"expected int, got {type(value).__name__}")
        if validate and not -_MAX_SAFE_INT < value < _MAX_SAFE_INT:
            raise _fail(path, "outside Discord's integer range")
        wire = value
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, f"expected a number, got {type(value).__name__}")
        wire = value
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(path, f"expected bool, got {type(value).__name__}")
        wire = value
    elif kind in (USER_OPTION, MENTIONABLE):
        user = _as_user(value)
        if user is not None:
            resolved.user(user)
            wire = str(user.id)
        elif kind == MENTIONABLE and isinstance(value, FakeRole):
            resolved.role(value)
            wire = str(value.id)
        else:
            raise _fail(path, f"expected a FakeUser/FakeMember, got {type(value).__name__}")
    elif kind == CHANNEL:
        if not isinstance(value, FakeChannel):
            raise _fail(path, f"expected a FakeChannel, got {type(value).__name__}")
        allowed = option.get("channel_types")
        if validate and allowed and value.type not in allowed:
            raise _fail(path, f"channel type {value.type} not in channel_types {allowed}")
        resolved.channel(value)
        wire = str(value.id)
    elif kind == ROLE:
        if not isinstance(value, FakeRole):
            raise _fail(path, f"expected a FakeRole, got {type(value).__name__}")
        resolved.role(value)
        wire = str(value.id)
    elif kind == ATTACHMENT:
        if not isinstance(value, FakeAttachment):
            raise _fail(path, "expected fake.attachment(...)")
        if value.id not in state.attachments:
            raise _fail(path, "attachment is not stored on this fake")
        resolved.attachment(value)
        wire = str(value.id)
    else:
        raise _fail(path, f"unsupported option type {kind}")
    if validate and kind in (INTEGER, NUMBER):
        if "min_value" in option and wire < option["min_value"]:
            raise _fail(path, f"{wire} is below min_value {option['min_value']}")
        if "max_value" in option and wire > option["max_value"]:
            raise _fail(path, f"{wire} is above max_value {option['max_value']}")
    choices = option.get("choices")
    if validate and choices and not option.get("autocomplete"):
        values = [c["value"] for c in choices]
        if wire not in values:
            raise _fail(path, f"{wire!r} is not one of the choices {values}")
    return wire


def build_chat_input_data(
    state: FakeState,
    guild: FakeGuild | None,
    command_path: str,
    options: Mapping[str, Any],
    attachments: Sequence[FakeAttachment] = (),
    *,
    validate: bool = True,
) -> JSON:
    """Build ``data`` of a CHAT_INPUT interaction for ``"name [group] [sub]"``, validated.

    ``validate=False`` still requires a synced command, known option names and values of the
    declared types, but skips what Discord's client enforces on values: required options,
    min/max length, min/max value and choices.
    """
    parts = command_path.strip().lstrip("/").split()
    if not parts:
        raise CommandValidationError("empty command name")
    command, scope = find_command(state, guild, parts[0], CHAT_INPUT)
    definitions: list[JSON] = command.get("options", [])
    wire_path: list[JSON] = []
    for depth, part in enumerate(parts[1:], start=1):
        nested = [o for o in definitions if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        match = next((o for o in nested if o["name"] == part), None)
        if match is None:
            raise CommandValidationError(
                f"/{' '.join(parts[:depth])} has no subcommand {part!r}; "
                f"it has {[o['name'] for o in nested]}"
            )
        wire_path.append({"name": part, "type": match["type"], "options": []})
        definitions = match.get("options", [])
        if match["type"] == SUB_COMMAND_GROUP and depth == len(parts) - 1:
            raise CommandValidationError(f"/{command_path} is a group: name a subcommand")
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in definitions):
        names = [o["name"] for o in definitions]
        raise CommandValidationError(f"/{command_path} needs a subcommand, one of {names}")

    values = dict(options)
    pending = list(attachments)
    for definition in definitions:
        if definition["type"] == ATTACHMENT and definition["name"] not in values and pending:
            values[definition["name"]] = pending.pop(0)
    if pending:
        raise CommandValidationError(f"/{command_path}: more attachments than attachment options")

    resolved = _Resolved(state, guild)
    known = {o["name"]: o for o in definitions}
    for name in values:
        if name not in known:
            raise CommandValidationError(
                f"/{command_path} has no option {name!r}; it has {sorted(known)}"
            )
    wire_options: list[JSON] = []
    for definition in definitions:
        name = definition["name"]
        if name not in values or values[name] is None:
            if validate and definition.get("required"):
                raise CommandValidationError(f"/{command_path}: required option {name!r} missing")
            continue
        wire = _convert(
            definition, values[name], f"/{command_path} {name}", resolved, validate=validate
        )
        wire_options.append({"name": name, "type": definition["type"], "value": wire})

    leaf = wire_options
    for level in reversed(wire_path):
        level["options"] = leaf
        leaf = [level]
    data: JSON = {
        "id": command["id"],
        "name": command["name"],
        "type": CHAT_INPUT,
    }
    if leaf:
        data["options"] = leaf
    if resolved.data:
        data["resolved"] = resolved.data
    if scope is not None:
        data["guild_id"] = str(scope)
    return data


def build_context_menu_data(
    state: FakeState,
    guild: FakeGuild | None,
    name: str,
    command_type: int,
    target: JSON | FakeUser | FakeMember,
) -> JSON:
    """Build ``data`` of a USER or MESSAGE context-menu interaction, validated."""
    command, scope = find_command(state, guild, name, command_type)
    resolved = _Resolved(state, guild)
    if command_type == MESSAGE:
        if not isinstance(target, dict):
            raise CommandValidationError("a message command needs a message dict as target")
        stored = state.messages.get(int(target["id"]))
        if stored is None or stored.deleted:
            raise CommandValidationError(f"message {target['id']} does not exist on the fake")
        target_id = stored.id
        resolved.add("messages", stored.id, copy.deepcopy(stored.data))
    else:
        user = _as_user(target)
        if user is None:
            raise CommandValidationError("a user command needs a FakeUser/FakeMember target")
        target_id = user.id
        resolved.user(user)
    data: JSON = {
        "id": command["id"],
        "name": command["name"],
        "type": command_type,
        "target_id": str(target_id),
        "resolved": resolved.data,
    }
    if scope is not None:
        data["guild_id"] = str(scope)
    return data


def check_modal(payload: Any) -> JSON:
    """Validate a type 9 modal callback's data like Discord (custom_id, title, 1-5 components)."""
    if not isinstance(payload, dict):
        raise form_error("data", "BASE_TYPE_REQUIRED", "This field is required")
    custom_id = payload.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        raise form_error("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be 1-100 characters")
    title = payload.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        raise form_error("data.title", "BASE_TYPE_BAD_LENGTH", "Must be 1-45 characters")
    components = payload.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= 5:
        raise form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Must be 1-5 components")
    return payload


def modal_inputs(modal: JSON) -> list[JSON]:
    """The text inputs/selects of a modal, whether wrapped in action rows or labels."""
    found: list[JSON] = []

    def walk(component: JSON) -> None:
        if component.get("type") == 1:
            for child in component.get("components", []):
                walk(child)
        elif component.get("type") == 18:
            walk(component["component"])
        elif "custom_id" in component:
            found.append(component)

    for component in modal.get("components", []):
        walk(component)
    return found


def build_modal_submit_components(modal: JSON, values: Mapping[str, Any]) -> list[JSON]:
    """Mirror the modal's layout with submitted values, as Discord's MODAL_SUBMIT does.

    Action rows (type 1) come back as rows of ``{type: 4, custom_id, value}``; labels
    (type 18, the newer layout discord.py 2.6+ emits for ``discord.ui.Label``) come back as
    ``{type: 18, component: {...}}``. Selects return ``values`` (a list).
    """
    inputs = {c["custom_id"]: c for c in modal_inputs(modal)}
    unknown = set(values) - set(inputs)
    if unknown:
        raise CommandValidationError(
            f"modal {modal.get('custom_id')!r} has no inputs {sorted(unknown)}; "
            f"it has {sorted(inputs)}"
        )
    for custom_id, component in inputs.items():
        value = values.get(custom_id)
        label = component.get("label", custom_id)
        if component["type"] == 4:
            text = "" if value is None else value
            if not isinstance(text, str):
                raise CommandValidationError(f"modal input {custom_id!r} takes a str")
            if component.get("required", True) and not text:
                raise CommandValidationError(f"modal input {custom_id!r} ({label}) is required")
            if text and len(text) < component.get("min_length", 0):
                raise CommandValidationError(f"modal input {custom_id!r} is below min_length")
            if len(text) > component.get("max_length", 4000):
                raise CommandValidationError(f"modal input {custom_id!r} is above max_length")

    def answer(component: JSON) -> JSON:
        custom_id = component["custom_id"]
        value = values.get(custom_id)
        out: JSON = {"type": component["type"], "custom_id": custom_id}
        if "id" in component:
            out["id"] = component["id"]
        if component["type"] == 4:
            out["value"] = "" if value is None else value
        else:
            out["values"] = [] if value is None else list(value)
        return out

    def mirror(component: JSON) -> JSON | None:
        if component.get("type") == 1:
            children = [mirror(c) for c in component.get("components", [])]
            return {"type": 1, "components": [c for c in children if c is not None]}
        if component.get("type") == 18:
            inner = mirror(component["component"])
            result: JSON = {"type": 18, "component": inner}
            if "id" in component:
                result["id"] = component["id"]
            return result
        if "custom_id" in component:
            return answer(component)
        return None

    mirrored = [mirror(c) for c in modal.get("components", [])]
    return [c for c in mirrored if c is not None]


def find_component(components: list[JSON], custom_id: str) -> JSON | None:
    """Find a component with ``custom_id`` anywhere in a message's component tree."""
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        for key in ("components", "accessory", "component"):
            child = component.get(key)
            if isinstance(child, list):
                found = find_component(child, custom_id)
            elif isinstance(child, dict):
                found = find_component([child], custom_id)
            else:
                found = None
            if found is not None:
                return found
    return None


__all__ = [
    "ATTACHMENT",
    "CHAT_INPUT",
    "MESSAGE",
    "USER",
    "DiscordAPIError",
    "build_chat_input_data",
    "build_context_menu_data",
    "build_modal_submit_components",
    "check_modal",
    "find_command",
    "find_component",
    "store_commands",
]
