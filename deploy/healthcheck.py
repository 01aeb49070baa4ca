"""Exit 0 if the bot's /healthz answers 200, else 1: the container's HEALTHCHECK.

Reads METRICS_PORT (the health endpoint's port, see cogs/health.py) from the environment
and asks 127.0.0.1, so it works whatever METRICS_HOST the bot binds. Standard library
only, and a short timeout, so a hung bot is reported unhealthy rather than hanging the
check. Usage: `python deploy/healthcheck.py [PORT]`.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def main(argv: list[str]) -> int:
    """Probe /healthz once; print why it failed, if it did."""
    port = argv[1] if len(argv) > 1 else os.environ.get("METRICS_PORT", "").strip()
    if not port.isdigit():
        print("healthcheck: METRICS_PORT is not set, so /healthz is off", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        body = exc.read(2000).decode("utf-8", "replace")
        print(f"healthcheck: {url} answered {exc.code}: {body}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url} unreachable: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
