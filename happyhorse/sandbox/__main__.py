"""Run the sandbox as a process: ``python -m happyhorse.sandbox [options]``.

It binds loopback by default, prints its base URL on stdout and stops cleanly on Ctrl-C
or SIGTERM. Point a client at it with ``HAPPYHORSE_BASE_URL=<printed URL>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from happyhorse.sandbox.app import SandboxServer
from happyhorse.sandbox.state import SandboxConfig


def build_parser() -> argparse.ArgumentParser:
    """The command-line options, one per ``SandboxConfig`` field."""
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m happyhorse.sandbox",
        description="Run a local HappyHorse API sandbox that serves real MP4 results.",
        epilog=(
            "Test control plane (no auth): POST/GET/DELETE /_sandbox/faults, "
            "GET /_sandbox/tasks, POST /_sandbox/tasks/{id}/complete|fail."
        ),
    )
    parser.add_argument("--host", default=defaults.host, help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=8088, help="port to bind (%(default)s)")
    parser.add_argument(
        "--api-key", default=None, help="accept only this bearer token (default: any)"
    )
    parser.add_argument(
        "--dialect",
        choices=("seed", "native"),
        default=defaults.dialect,
        help="wire dialect to speak (%(default)s)",
    )
    parser.add_argument(
        "--processing-after",
        type=float,
        default=defaults.processing_after,
        metavar="S",
        help="seconds a task stays queued (%(default)s)",
    )
    parser.add_argument(
        "--complete-after",
        type=float,
        default=defaults.complete_after,
        metavar="S",
        help="seconds until a task finishes (%(default)s)",
    )
    parser.add_argument(
        "--credits",
        type=int,
        default=None,
        metavar="N",
        help="credit balance; each 5 s costs 1, pro doubles (default: unlimited)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="API requests allowed per window (default: no limit)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=defaults.rate_window,
        metavar="S",
        help="rate-limit window in seconds (%(default)s)",
    )
    parser.add_argument(
        "--fail-word",
        default=defaults.fail_word,
        metavar="W",
        help="a prompt containing this word fails (%(default)s; '' disables)",
    )
    parser.add_argument(
        "--big-word",
        default=defaults.big_word,
        metavar="W",
        help="a prompt containing this word gets a large (~13 MiB per 5 s), busy clip, "
        "to exercise re-encoding (%(default)s; '' disables)",
    )
    parser.add_argument(
        "--image-field",
        default=defaults.image_field,
        metavar="NAME",
        help="seed-dialect image input field (%(default)s)",
    )
    return parser


async def serve(config: SandboxConfig, *, stop: asyncio.Event | None = None) -> None:
    """Serve ``config`` until ``stop`` is set, SIGTERM arrives or the task is cancelled."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with SandboxServer(config) as server:
        print(
            f"HappyHorse sandbox ({config.dialect} dialect) listening on {server.base_url}",
            flush=True,
        )
        print(f"  export HAPPYHORSE_BASE_URL={server.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the sandbox, and return the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = SandboxConfig(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            dialect=args.dialect,
            processing_after=args.processing_after,
            complete_after=args.complete_after,
            fail_word=args.fail_word or None,
            big_word=args.big_word or None,
            credits=args.credits,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
            image_field=args.image_field,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    print("sandbox stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
