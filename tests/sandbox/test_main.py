"""`python -m happyhorse.sandbox` as a real process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from happyhorse.sandbox.__main__ import main


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_process_prints_url_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    """It prints its loopback URL, answers /healthz and exits 0 on Ctrl-C or SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "happyhorse.sandbox", "--port", "0", "--dialect", "native"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "native dialect" in line
        url = line.rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
            assert json.load(r) == {"status": "ok", "dialect": "native"}
        proc.send_signal(stop_signal)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "Traceback" not in err
        assert "sandbox stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A port that cannot be bound is reported with exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert "cannot serve on 127.0.0.1" in capsys.readouterr().err


def test_bad_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An impossible combination of options is reported, not raised."""
    assert main(["--processing-after", "5", "--complete-after", "1"]) == 2
    assert "processing_after" in capsys.readouterr().err
