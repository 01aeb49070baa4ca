"""The ``happyhorse`` command line: generate a clip, look up a task's status, or re-encode
a clip to fit an upload limit (``fit``, the bot's own re-encode, offline).

Settings come from the environment (and a ``.env`` file in the working directory, whose
values never override real environment variables) through
``ClientSettings.from_env``. Without ``HAPPYHORSE_API_KEY`` the command starts the
sandbox in-process and talks to it, so it works offline and costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from dotenv import dotenv_values

from happyhorse import media
from happyhorse.client import HappyHorseClient
from happyhorse.dialects import get_dialect
from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    DownloadTooLargeError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from happyhorse.models import (
    NATIVE_DURATIONS,
    AspectRatio,
    GenerationRequest,
    Mode,
    Quality,
    TaskState,
    TaskStatus,
)
from happyhorse.sandbox import SandboxConfig, SandboxServer
from happyhorse.settings import ClientSettings

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CREDITS = 4
EXIT_RATE_LIMITED = 5
EXIT_SERVER = 6
EXIT_TIMEOUT = 7
EXIT_TASK_FAILED = 8
EXIT_DOWNLOAD = 9
EXIT_INVALID_RESPONSE = 10
EXIT_API_OTHER = 11
EXIT_MEDIA = 12
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_UNEXPECTED, "unexpected internal error"),
    (EXIT_USAGE, "usage, configuration or validation error (including an API 400)"),
    (EXIT_AUTH, "API key missing or rejected (401)"),
    (EXIT_CREDITS, "out of credits (402)"),
    (EXIT_RATE_LIMITED, "rate limited (429), still after retries"),
    (EXIT_SERVER, "server error (5xx), still after retries"),
    (EXIT_TIMEOUT, "timed out, or could not connect"),
    (EXIT_TASK_FAILED, "the generation task failed"),
    (EXIT_DOWNLOAD, "download failed, or the clip is too large"),
    (EXIT_INVALID_RESPONSE, "the API's answer could not be read"),
    (EXIT_API_OTHER, "any other API error status (e.g. 404 unknown task)"),
    (EXIT_MEDIA, "fit: the clip cannot be decoded, or cannot fit even at 360p"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)

SANDBOX_PROCESSING_AFTER = 0.3
SANDBOX_COMPLETE_AFTER = 1.5
SANDBOX_POLL_INTERVAL = 0.25
DEFAULT_POLL_INTERVAL = 3.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_BYTES = 200 * 1024 * 1024


class CommandError(Exception):
    """A failure with its message and exit code already decided."""

    def __init__(self, code: int, message: str) -> None:
        """Record the exit ``code`` and the message shown to the user."""
        super().__init__(message)
        self.code = code
        self.message = message


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and a one-line explanation for an error from the client or settings."""
    if isinstance(exc, CommandError):
        return exc.code, exc.message
    if isinstance(exc, ValidationError):
        return EXIT_USAGE, f"invalid request: {exc.message}"
    if isinstance(exc, BadRequestError):
        return EXIT_USAGE, f"the API rejected the request (400): {exc.message}"
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH, (
            f"the API rejected the API key (401): {exc.message}; check HAPPYHORSE_API_KEY"
        )
    if isinstance(exc, InsufficientCreditsError):
        return EXIT_CREDITS, f"out of credits (402): {exc.message}"
    if isinstance(exc, RateLimitError):
        hint = f"; retry after {exc.retry_after:g} s" if exc.retry_after else ""
        return EXIT_RATE_LIMITED, f"rate limited (429) even after retrying: {exc.message}{hint}"
    if isinstance(exc, ServerError):
        return EXIT_SERVER, f"the HappyHorse server failed ({exc.status}): {exc.message}"
    if isinstance(exc, APIStatusError):
        return EXIT_API_OTHER, f"the API answered with an error ({exc.status}): {exc.message}"
    if isinstance(exc, APITimeoutError):
        return EXIT_TIMEOUT, f"timed out waiting for the API: {exc.message}"
    if isinstance(exc, APIConnectionError):
        return EXIT_TIMEOUT, f"could not reach the API: {exc.message}"
    if isinstance(exc, DownloadTooLargeError):
        return EXIT_DOWNLOAD, f"the clip is too large: {exc.message}"
    if isinstance(exc, DownloadError):
        return EXIT_DOWNLOAD, f"download failed: {exc.message}"
    if isinstance(exc, InvalidResponseError):
        return EXIT_INVALID_RESPONSE, f"the API sent an answer that could not be read: {exc}"
    if isinstance(exc, HappyHorseError):
        return EXIT_UNEXPECTED, str(exc)
    if isinstance(exc, media.MediaError):
        return EXIT_MEDIA, str(exc)
    return EXIT_UNEXPECTED, f"unexpected error: {type(exc).__name__}: {exc}"


class Progress:
    """A live progress display: one rewritten line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        """Write to ``stream``; ``tty`` overrides detection (``stream.isatty()``)."""
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self._last_state: TaskState | None = None
        self._width = 0

    def update(self, task_id: str, state: TaskState, message: str | None = None) -> None:
        """Show ``state`` and the elapsed time (plain mode: only when the state changes)."""
        elapsed = time.monotonic() - self.started
        line = f"[{elapsed:6.1f}s] {task_id}: {state.value}"
        if message:
            line += f" - {message}"
        if self.tty:
            padded = line.ljust(self._width)
            self._width = len(line)
            self.stream.write("\r" + padded)
            self.stream.flush()
        elif state is not self._last_state:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_state = state

    def finish(self) -> None:
        """End the rewritten line so later output starts on a fresh one."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def load_environment(cwd: Path | None = None) -> dict[str, str]:
    """The process environment over the values of a ``.env`` file in ``cwd`` (if any)."""
    values: dict[str, str] = {}
    dotenv_file = (cwd or Path.cwd()) / ".env"
    if dotenv_file.is_file():
        values = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
    values.update(os.environ)
    return values


def build_parser() -> argparse.ArgumentParser:
    """The ``happyhorse`` argument parser with its two subcommands."""
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)
    epilog = (
        "environment: HAPPYHORSE_API_KEY (unset: run the built-in sandbox), "
        "HAPPYHORSE_BASE_URL, HAPPYHORSE_API_DIALECT, HAPPYHORSE_TIMEOUT_SECONDS, ...\n"
        "A .env file in the working directory is read too.\n\n"
        f"exit codes:\n{codes}"
    )
    parser = argparse.ArgumentParser(
        prog="happyhorse",
        description="Generate short videos with the HappyHorse API.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser(
        "generate",
        help="submit a prompt, wait for the clip and download it",
        description="Submit a generation task, follow it, download the clip and print its path.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("prompt", help="what the clip should show")
    gen.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=None,
        help="default: image-to-video with --image, text-to-video without",
    )
    gen.add_argument(
        "--duration",
        type=int,
        choices=NATIVE_DURATIONS,
        default=5,
        metavar="S",
        help="seconds: 3-15 with the native API, 5 or 10 with the seed contract (5)",
    )
    gen.add_argument(
        "--aspect-ratio", choices=[a.value for a in AspectRatio], default="16:9", help="(16:9)"
    )
    gen.add_argument("--quality", choices=[q.value for q in Quality], default="std", help="(std)")
    gen.add_argument(
        "--sound", action=argparse.BooleanOptionalAction, default=False, help="add sound (off)"
    )
    gen.add_argument("--image", metavar="URL", default=None, help="starting image (http/https)")
    gen.add_argument(
        "--out", type=Path, default=None, help="where to save the clip (default: TASK_ID.mp4)"
    )
    gen.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="give up if the clip is not ready after S seconds (%(default)g)",
    )
    gen.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds between status checks ({DEFAULT_POLL_INTERVAL:g}; sandbox: "
        f"{SANDBOX_POLL_INTERVAL:g})",
    )
    gen.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help="refuse clips larger than N bytes (%(default)d)",
    )

    stat = commands.add_parser(
        "status",
        help="show one task's status",
        description="Show a task's state, message and result URLs (exit 0 whatever the state).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stat.add_argument("task_id", help="the id returned when the task was submitted")
    stat.add_argument("--json", action="store_true", help="print the status as JSON")

    fit = commands.add_parser(
        "fit",
        help="re-encode a clip so it fits an upload limit",
        description=(
            "Re-encode IN to OUT (H.264 + AAC MP4, +faststart) so OUT is at most N bytes, "
            "stepping down to 720p, 540p or 360p only when the bitrate needs it; the bot "
            "does the same for results over a server's upload limit. A clip that already "
            "fits is copied unchanged. Works offline; no API key needed."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("input", type=Path, metavar="IN", help="the clip to re-encode")
    fit.add_argument("output", type=Path, metavar="OUT", help="where to write the result")
    fit.add_argument(
        "--max-bytes",
        type=int,
        required=True,
        metavar="N",
        help="the largest OUT may be, in bytes (Discord: 10485760 without boosts)",
    )
    return parser


class RunInfo:
    """What one command run has learnt, for messages after an error or an interrupt."""

    def __init__(self) -> None:
        """Nothing submitted yet."""
        self.task_id: str | None = None
        self.sandbox = False


@asynccontextmanager
async def open_client(
    settings: ClientSettings, stderr: TextIO, info: RunInfo
) -> AsyncIterator[HappyHorseClient]:
    """A client for ``settings``; with no API key, one wired to an in-process sandbox."""
    if settings.api_key is not None:
        async with HappyHorseClient(settings) as client:
            yield client
        return
    config = SandboxConfig(
        dialect=settings.dialect or "seed",
        processing_after=SANDBOX_PROCESSING_AFTER,
        complete_after=SANDBOX_COMPLETE_AFTER,
        image_field=settings.image_field,
    )
    async with SandboxServer(config) as server:
        info.sandbox = True
        stderr.write(
            f"HAPPYHORSE_API_KEY is not set: using the built-in sandbox at {server.base_url} "
            "(no real video is generated)\n"
        )
        sandboxed = dataclasses.replace(
            settings,
            api_key=f"sandbox-{secrets.token_hex(8)}",
            base_url=server.base_url,
            dialect=config.dialect,
        )
        async with HappyHorseClient(sandboxed) as client:
            yield client


async def generate_command(
    args: argparse.Namespace,
    settings: ClientSettings,
    stdout: TextIO,
    stderr: TextIO,
    info: RunInfo,
) -> int:
    """Submit, follow and download one clip; print its path on stdout."""
    mode = (
        Mode(args.mode)
        if args.mode
        else (Mode.IMAGE_TO_VIDEO if args.image else Mode.TEXT_TO_VIDEO)
    )
    request = GenerationRequest(
        prompt=args.prompt,
        mode=mode,
        duration=args.duration,
        aspect_ratio=AspectRatio(args.aspect_ratio),
        quality=Quality(args.quality),
        sound=args.sound,
        image_url=args.image,
    )
    # The sandbox speaks the seed contract unless told otherwise; the client checks again
    # against the dialect it actually uses.
    dialect = get_dialect(
        settings.resolved_dialect if settings.api_key is not None else settings.dialect or "seed"
    )
    request.validate(max_prompt_length=settings.max_prompt_length, durations=dialect.durations)
    if args.timeout <= 0:
        raise CommandError(EXIT_USAGE, "--timeout must be positive")
    if args.max_bytes <= 0:
        raise CommandError(EXIT_USAGE, "--max-bytes must be positive")
    if args.poll_interval is not None and args.poll_interval < 0:
        raise CommandError(EXIT_USAGE, "--poll-interval must not be negative")
    dest: Path | None = args.out
    if dest is not None and await asyncio.to_thread(_exists_not_regular, dest):
        raise CommandError(EXIT_USAGE, f"--out {dest} exists and is not a regular file")
    async with open_client(settings, stderr, info) as client:
        interval = args.poll_interval
        if interval is None:
            interval = SANDBOX_POLL_INTERVAL if info.sandbox else DEFAULT_POLL_INTERVAL
        progress = Progress(stderr)
        try:
            async with asyncio.timeout(args.timeout):
                task = await client.generate(request)
                info.task_id = task.task_id
                progress.update(task.task_id, task.state, task.message)
                status = await _follow(client, task.task_id, interval, progress)
        except TimeoutError:
            raise CommandError(
                EXIT_TIMEOUT, f"the clip was not ready within {args.timeout:g} s"
            ) from None
        finally:
            progress.finish()
        if status.state is TaskState.FAILED:
            reason = status.message or "no reason given"
            raise CommandError(EXIT_TASK_FAILED, f"task {status.task_id} failed: {reason}")
        url = status.video_url
        if url is None:
            raise CommandError(
                EXIT_INVALID_RESPONSE,
                f"task {status.task_id} completed but the API gave no result URL",
            )
        if dest is None:
            dest = Path(f"{status.task_id}.mp4")
        size = await client.download(url, dest, max_bytes=args.max_bytes)
    stderr.write(f"saved {size} bytes to {dest}\n")
    stdout.write(f"{dest}\n")
    stdout.flush()
    return EXIT_OK


def _exists_not_regular(path: Path) -> bool:
    """Whether ``path`` exists as something a download must not replace (device, folder)."""
    return path.exists() and not path.is_file()


async def _follow(
    client: HappyHorseClient, task_id: str, interval: float, progress: Progress
) -> TaskStatus:
    """Poll ``task_id`` every ``interval`` seconds until it completes or fails."""
    while True:
        await asyncio.sleep(interval)
        status = await client.status(task_id)
        progress.update(task_id, status.state, status.message)
        if status.state.is_terminal:
            return status


async def status_command(
    args: argparse.Namespace,
    settings: ClientSettings,
    stdout: TextIO,
    stderr: TextIO,
    info: RunInfo,
) -> int:
    """Print one status of ``args.task_id``, as text or JSON."""
    async with open_client(settings, stderr, info) as client:
        if info.sandbox:
            stderr.write("note: the built-in sandbox starts empty and knows no earlier tasks\n")
        status = await client.status(args.task_id)
    if args.json:
        payload = {
            "task_id": status.task_id,
            "state": status.state.value,
            "message": status.message,
            "result_urls": list(status.result_urls),
            "video_url": status.video_url,
        }
        stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        lines = [f"task:    {status.task_id}", f"state:   {status.state.value}"]
        if status.message:
            lines.append(f"message: {status.message}")
        lines.extend(f"url:     {url}" for url in status.result_urls)
        stdout.write("\n".join(lines) + "\n")
    stdout.flush()
    return EXIT_OK


async def fit_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Re-encode ``args.input`` into ``args.output`` within ``args.max_bytes``."""
    if args.max_bytes <= 0:
        raise CommandError(EXIT_USAGE, "--max-bytes must be positive")
    if not await asyncio.to_thread(args.input.is_file):
        raise CommandError(EXIT_USAGE, f"{args.input} is not a file")
    if await asyncio.to_thread(_exists_not_regular, args.output):
        raise CommandError(EXIT_USAGE, f"{args.output} exists and is not a regular file")
    result = await asyncio.to_thread(media.fit_to_limit, args.input, args.output, args.max_bytes)
    if result.reencoded:
        out = result.output
        stderr.write(
            f"re-encoded to {media.format_mib(out.size)} ({out.size} bytes, {out.width}x"
            f"{out.height}, {out.duration:.1f} s) to fit {media.format_mib(args.max_bytes)}: "
            f"{media.describe_fit(result)}\n"
        )
    else:
        stderr.write(
            f"already fits ({result.source.size} bytes <= {args.max_bytes}): copied unchanged\n"
        )
    stdout.write(f"{args.output}\n")
    stdout.flush()
    return EXIT_OK


async def run_async(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    run_info: RunInfo | None = None,
) -> int:
    """Run the command line inside a running event loop; return the exit code.

    ``env`` defaults to the process environment plus ``.env``. Every error becomes a
    message on ``stderr`` and its exit code (see ``EXIT_CODES``); nothing is raised
    except cancellation.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    info = run_info or RunInfo()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if env is None:
            env = await asyncio.to_thread(load_environment)
        settings = ClientSettings.from_env(env)
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    try:
        if args.command == "fit":
            return await fit_command(args, out, err)
        if args.command == "generate":
            return await generate_command(args, settings, out, err, info)
        return await status_command(args, settings, out, err, info)
    except Exception as exc:  # every failure becomes a message and an exit code
        code, message = describe_error(exc)
        err.write(f"error: {message}\n")
        if code != EXIT_TASK_FAILED:
            _hint_submitted(info, err)
        return code


def _hint_submitted(info: RunInfo, err: TextIO) -> None:
    """Tell the user how to follow a real task this run submitted but did not finish."""
    if info.task_id is not None and not info.sandbox:
        err.write(
            f"task {info.task_id} was submitted; check it with: happyhorse status {info.task_id}\n"
        )


def run(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line in a fresh event loop; return the exit code (130 on Ctrl-C)."""
    err = stderr or sys.stderr
    info = RunInfo()
    try:
        return asyncio.run(run_async(argv, env=env, stdout=stdout, stderr=err, run_info=info))
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        _hint_submitted(info, err)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: ``happyhorse generate|status|fit ...``."""
    return run(argv)
