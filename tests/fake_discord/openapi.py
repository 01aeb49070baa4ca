"""Every REST request the fake receives, checked against Discord's published OpenAPI spec.

The spec (``spec/openapi.json``, provenance in ``spec/SOURCE.md``) is OpenAPI 3.1, so its
schemas are JSON Schema 2020-12: unions are ``type`` lists and ``oneOf``/``anyOf`` (there is
no OpenAPI 3.0 ``nullable``), and ``$ref`` points into the one document. A request is
matched to an operation by method and path template (a literal segment such as ``@me`` or
``@original`` wins over a template, as OpenAPI requires), then its path parameters, the query
parameters the operation defines, and its JSON body (or a multipart upload's
``payload_json``) are validated against the operation's schemas. Anything Discord would
refuse becomes a :class:`SpecViolation`: the server answers it as Discord does (400
``Invalid Form Body``, code 50035, with the error tree; 404/405 for a route Discord lacks)
and records it so that the ``fake_discord`` fixture fails the test.

Validation is jsonschema-rs (a maintained, conformance-tested JSON Schema implementation);
each operation's validators are compiled on first use and cached for the process, and the
spec is parsed once per process.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs

SPEC_PATH = Path(__file__).with_name("spec") / "openapi.json"
SPEC_URI = "urn:discord-api-spec"

JSON = dict[str, Any]

_KIND = jsonschema_rs.ValidationErrorKind
_UNIONS = (_KIND.OneOfNotValid, _KIND.AnyOf)

#: Discord's error codes for the rule broken, where its docs or answers name one; otherwise
#: ``SCHEMA_<keyword>``. The message is always the validator's, which names the limit.
_CODES = {
    "maximum": "NUMBER_TYPE_MAX",
    "exclusiveMaximum": "NUMBER_TYPE_MAX",
    "minimum": "NUMBER_TYPE_MIN",
    "exclusiveMinimum": "NUMBER_TYPE_MIN",
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "maxProperties": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "minProperties": "BASE_TYPE_MIN_LENGTH",
    "required": "BASE_TYPE_REQUIRED",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "pattern": "BASE_TYPE_INVALID",
    "type": "BASE_TYPE_INVALID",
}


@dataclass(frozen=True)
class SchemaError:
    """One rule a request broke: where (a path into the checked value) and why."""

    location: tuple[str | int, ...]
    keyword: str
    message: str

    @property
    def code(self) -> str:
        """Discord's error code for this rule (see ``_CODES``)."""
        return _CODES.get(self.keyword, f"SCHEMA_{self.keyword.upper()}")

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.location) or "(body)"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class SpecViolation:
    """A request Discord's spec does not allow, as the fake answered and recorded it."""

    method: str
    path: str
    #: The spec's ``operationId``, or None when no operation has this method and path.
    operation: str | None
    errors: tuple[SchemaError, ...]
    #: The HTTP status Discord answers it with (400, or 404/405 for an unknown route).
    status: int = 400

    def body(self) -> JSON:
        """The JSON body Discord answers with."""
        if self.status == 404:
            return {"message": "404: Not Found", "code": 0}
        if self.status == 405:
            return {"message": "405: Method Not Allowed", "code": 0}
        return {"code": 50035, "message": "Invalid Form Body", "errors": self.error_tree()}

    def error_tree(self) -> JSON:
        """Discord's nested ``errors`` object: a key per field or index, ``_errors`` leaves."""
        tree: JSON = {}
        for error in self.errors:
            node = tree
            for part in error.location:
                node = node.setdefault(str(part), {})
            node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
        return tree

    def __str__(self) -> str:
        operation = self.operation or "no such operation in Discord's spec"
        details = "; ".join(str(error) for error in self.errors)
        return f"{self.method} {self.path} ({operation}) -> {self.status}: {details}"


_Methods = dict[str, "Operation"]


@dataclass
class _Parameter:
    name: str
    location: str
    required: bool
    pointer: str
    schema: JSON


@dataclass
class Operation:
    """One operation of the spec: method, path template, parameters and body schemas."""

    spec: OpenAPISpec
    method: str
    template: str
    operation_id: str
    pointer: str
    parameters: list[_Parameter]
    body_required: bool
    body_types: tuple[str, ...]
    _validators: dict[str, jsonschema_rs.Validator] = field(default_factory=dict, repr=False)

    def validator(self, pointer: str) -> jsonschema_rs.Validator:
        """The compiled validator for the schema at ``pointer`` (compiled once, then cached)."""
        compiled = self._validators.get(pointer)
        if compiled is None:
            compiled = self.spec.compile(pointer)
            self._validators[pointer] = compiled
        return compiled

    def check(
        self,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        content_type: str | None,
        body: Any,
        has_body: bool,
    ) -> list[SchemaError]:
        """Every rule the request breaks: path and query parameters, then the body."""
        errors: list[SchemaError] = []
        for parameter in self.parameters:
            if parameter.location == "path":
                value: Any = path_params.get(parameter.name)
            elif parameter.location == "query":
                if parameter.name not in query:
                    if parameter.required:
                        errors.append(
                            SchemaError((parameter.name,), "required", "This field is required")
                        )
                    continue
                value = self.spec.coerce_query(query[parameter.name], parameter.schema)
            else:
                continue
            errors.extend(
                _explain(self.validator(parameter.pointer), value, prefix=(parameter.name,))
            )
        if not self.body_types:
            return errors
        if not has_body:
            if self.body_required:
                errors.append(SchemaError((), "required", "A request body is required"))
            return errors
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in self.body_types:
            errors.append(
                SchemaError(
                    (),
                    "contentType",
                    f"{media or 'no content type'} is not one of {', '.join(self.body_types)}",
                )
            )
            return errors
        pointer = f"{self.pointer}/requestBody/content/{_escape(media)}/schema"
        errors.extend(_explain(self.validator(pointer), body))
        return errors


class OpenAPISpec:
    """Discord's OpenAPI document: operations by method and path, compiled lazily."""

    def __init__(self, document: JSON) -> None:
        self.document = document
        self.registry = jsonschema_rs.Registry([(SPEC_URI, document)])
        #: Path templates by (segment count, first segment): a request is tried only
        #: against the few templates that could match it, not all of them.
        self._paths: dict[tuple[int, str], list[tuple[re.Pattern[str], int, _Methods]]] = {}
        for template, item in document["paths"].items():
            by_method: dict[str, Operation] = {}
            shared = item.get("parameters", [])
            item_pointer = f"/paths/{_escape(template)}"
            for method, raw in item.items():
                if method == "parameters" or not isinstance(raw, dict):
                    continue
                op_pointer = f"{item_pointer}/{method}"
                parameters = {
                    (p["name"], p["in"]): _Parameter(
                        p["name"],
                        p["in"],
                        bool(p.get("required")),
                        f"{base}/{i}/schema",
                        p.get("schema", {}),
                    )
                    for base, params in (
                        (f"{item_pointer}/parameters", shared),
                        (f"{op_pointer}/parameters", raw.get("parameters", [])),
                    )
                    for i, p in enumerate(params)
                }
                request_body = raw.get("requestBody") or {}
                by_method[method.upper()] = Operation(
                    spec=self,
                    method=method.upper(),
                    template=template,
                    operation_id=raw.get("operationId", f"{method} {template}"),
                    pointer=op_pointer,
                    parameters=list(parameters.values()),
                    body_required=bool(request_body.get("required")),
                    body_types=tuple(request_body.get("content", {})),
                )
            regex = re.compile(
                "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            )
            literals = sum(1 for part in template.split("/") if part and "{" not in part)
            segments = template.strip("/").split("/")
            if "{" in segments[0]:
                raise ValueError(f"path {template} starts with a parameter; index it otherwise")
            self._paths.setdefault((len(segments), segments[0]), []).append(
                (regex, literals, by_method)
            )
        # A concrete path (``/users/@me``) must win over a templated one (``/users/{id}``).
        for candidates in self._paths.values():
            candidates.sort(key=lambda entry: -entry[1])

    def compile(self, pointer: str) -> jsonschema_rs.Validator:
        """A Draft 2020-12 validator for the schema at ``pointer`` in the spec."""
        ref = f"{SPEC_URI}#{quote(pointer, safe='/~')}"
        return jsonschema_rs.Draft202012Validator({"$ref": ref}, registry=self.registry)

    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """The operation for ``method`` and ``path``, its path parameters, and whether the
        path exists at all (for 405 versus 404)."""
        known_path = False
        segments = path.strip("/").split("/")
        for regex, _, by_method in self._paths.get((len(segments), segments[0]), []):
            found = regex.match(path)
            if found is None:
                continue
            known_path = True
            operation = by_method.get(method.upper())
            if operation is not None:
                return operation, found.groupdict(), True
        return None, {}, known_path

    def coerce_query(self, raw: str, schema: JSON) -> Any:
        """A query string value as the JSON value the schema describes.

        Discord reads booleans as ``true``/``false`` or ``1``/``0`` (discord.py sends
        ``wait=1``, ``with_response=1``) and numbers from their digits; anything else stays a
        string, so the schema judges it.
        """
        types = self._types(schema)
        if "boolean" in types and raw.lower() in ("true", "false", "1", "0"):
            return raw.lower() in ("true", "1")
        if "integer" in types and re.fullmatch(r"-?\d+", raw):
            return int(raw)
        if "number" in types:
            try:
                return float(raw)
            except ValueError:
                return raw
        return raw

    def _types(self, schema: JSON, depth: int = 0) -> set[str]:
        if depth > 8:
            return set()
        if "$ref" in schema:
            return self._types(self._resolve(schema["$ref"]), depth + 1)
        kinds = schema.get("type", [])
        found = {kinds} if isinstance(kinds, str) else set(kinds)
        for key in ("oneOf", "anyOf", "allOf"):
            for branch in schema.get(key, []):
                found |= self._types(branch, depth + 1)
        return found

    def _resolve(self, ref: str) -> JSON:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        assert isinstance(node, dict)
        return node

    def check_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        content_type: str | None,
        body: Any,
        *,
        has_body: bool,
    ) -> SpecViolation | None:
        """The violation this request commits, or None if Discord's spec allows it."""
        operation, path_params, known_path = self.match(method, path)
        if operation is None:
            status = 405 if known_path else 404
            reason = "method not allowed on this path" if known_path else "no such route"
            error = SchemaError((), "route", f"{reason} in Discord's API")
            return SpecViolation(method, path, None, (error,), status=status)
        errors = operation.check(path_params, query, content_type, body, has_body)
        if not errors:
            return None
        return SpecViolation(method, path, operation.operation_id, tuple(errors))


@functools.cache
def load_spec() -> OpenAPISpec:
    """The stored spec with the allowances below, parsed once per process."""
    document = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    allow_what_discord_accepts(document)
    return OpenAPISpec(document)


def allow_what_discord_accepts(document: JSON) -> None:
    """Relax the spec, in memory, only where it is stricter than Discord itself.

    Each allowance is a case where discord.py sends something the spec's schema refuses
    and real Discord accepts; none hides a request Discord would refuse.

    - Snowflakes as JSON integers. The spec types every snowflake (``SnowflakeType``) as a
      decimal string, but Discord's API parses an integer snowflake too, and discord.py 2.7
      relies on that: ``recipient_id`` of ``POST /users/@me/channels`` and the
      ``attachments[].id`` of a new upload (the index of its ``files[n]`` part) are ints.
      Allowed for snowflakes only, as a non-negative integer below 2**64.
    """
    schemas = document["components"]["schemas"]
    schemas["SnowflakeType"] = {
        "anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}]
    }


def _escape(segment: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return segment.replace("~", "~0").replace("/", "~1")


def _explain(
    validator: jsonschema_rs.Validator, instance: Any, prefix: tuple[str, ...] = ()
) -> list[SchemaError]:
    return [
        SchemaError(prefix + location, keyword, _shorten(message))
        for error in validator.iter_errors(instance)
        for location, keyword, message in _leaves(error)
    ]


def _shorten(message: str, keep: int = 150) -> str:
    """The validator quotes the whole value; keep its start and the rule at the end."""
    if len(message) <= 2 * keep:
        return message
    return f"{message[:keep]}…{message[-keep:]}"


def _leaves(error: jsonschema_rs.ValidationError) -> Iterable[tuple[tuple[Any, ...], str, str]]:
    """The errors that say what is wrong, descending into the union branch that was meant.

    A ``oneOf``/``anyOf`` failure lists every branch's errors. The branch the sender meant is
    the one whose discriminator matched: branches that fail on the value's own type (the
    ``null`` branch of a nullable field) or on an ``enum``/``const`` of a direct property
    (``"type": 4`` against the string option's ``[3]``) are not it. If exactly one branch
    remains its errors are reported (recursively); otherwise the union error itself.
    """
    kind = error.kind
    location = tuple(error.instance_path)
    if isinstance(kind, _UNIONS):
        meant = [
            branch
            for branch in kind.context
            if not any(_is_discriminator_miss(e, location) for e in branch)
        ]
        if len(meant) == 1:
            for inner in meant[0]:
                yield from _leaves(inner)
            return
    keyword = kind.name
    if isinstance(kind, _KIND.Required):
        location = (*location, kind.property)
    yield location, keyword, error.message


def _is_discriminator_miss(error: jsonschema_rs.ValidationError, union_at: tuple[Any, ...]) -> bool:
    path = tuple(error.instance_path)
    kind = error.kind
    if path == union_at and isinstance(kind, _KIND.Type):
        return True
    return (
        len(path) == len(union_at) + 1
        and path[: len(union_at)] == union_at
        and isinstance(kind, _KIND.Enum | _KIND.Constant)
    )
