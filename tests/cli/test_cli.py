"""The `happyhorse` command line, in process against a real sandbox and as a subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from happyhorse import cli
from happyhorse.models import TaskState
from happyhorse.sandbox import SandboxConfig, SandboxServer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("happyhorse")
KEY = "cli-test-key"


def _probe(path: Path) -> tuple[int, int, float]:
    """Width, height and duration (seconds) of a video file, read with PyAV."""
    with av.open(str(path), "r") as container:
        video = container.streams.video[0]
        assert container.duration is not None
        return video.width, video.height, container.duration / 1_000_000


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    """A fast sandbox that only accepts KEY."""
    config = SandboxConfig(api_key=KEY, processing_after=0.05, complete_after=0.2)
    async with SandboxServer(config) as running:
        yield running


def _env(server: SandboxServer | None, **extra: str) -> dict[str, str]:
    """Settings for the CLI: the test sandbox, quick retries."""
    env = {"HAPPYHORSE_MAX_RETRIES": "1", "HAPPYHORSE_BACKOFF_BASE_SECONDS": "0"}
    if server is not None:
        env |= {"HAPPYHORSE_API_KEY": KEY, "HAPPYHORSE_BASE_URL": server.base_url}
    env.update(extra)
    return env


async def _cli(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI in this event loop; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run_async(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_console_script_writes_portrait_mp4_with_builtin_sandbox(tmp_path: Path) -> None:
    """With no API key, `happyhorse generate --aspect-ratio 9:16` writes a 5 s portrait MP4."""
    out = tmp_path / "clip.mp4"
    env = {**os.environ, "HAPPYHORSE_API_KEY": ""}
    done = subprocess.run(
        [
            str(SCRIPT),
            "generate",
            "a horse in the rain",
            "--aspect-ratio",
            "9:16",
            "--out",
            str(out),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert "built-in sandbox" in done.stderr
    assert "completed" in done.stderr
    width, height, duration = _probe(out)
    assert height > width
    assert (width, height) == (180, 320)
    assert duration == pytest.approx(5.0, abs=0.1)


def test_python_m_happyhorse_help_lists_exit_codes() -> None:
    """`python -m happyhorse --help` works and documents every exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "happyhorse", "generate", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.returncode == 0
    for code, meaning in cli.EXIT_CODES:
        assert f"{code:>3}  {meaning}" in done.stdout


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    """SIGINT while following a task prints 'interrupted' and exits 130, no traceback."""
    env = {**os.environ, "HAPPYHORSE_API_KEY": ""}
    proc = subprocess.Popen(
        [str(SCRIPT), "generate", "a horse", "--poll-interval", "0.05"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        while "queued" not in proc.stderr.readline():
            assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no partial clip left behind


async def test_generate_square_with_sound_against_server(
    server: SandboxServer, tmp_path: Path
) -> None:
    """Against a keyed server: 1:1, 10 s, sound; plain progress lines on a non-TTY."""
    out = tmp_path / "sub" / "square.mp4"
    code, stdout, stderr = await _cli(
        [
            "generate",
            "a horse",
            "--aspect-ratio",
            "1:1",
            "--duration",
            "10",
            "--sound",
            "--quality",
            "pro",
            "--out",
            str(out),
            "--poll-interval",
            "0.05",
        ],
        _env(server),
    )
    assert code == 0, stderr
    assert stdout == f"{out}\n"
    assert (_probe(out)[:2], round(_probe(out)[2])) == ((240, 240), 10)
    lines = [line for line in stderr.splitlines() if line.startswith("[")]
    assert [line.split(": ", 1)[1].split(" - ")[0] for line in lines] == [
        "queued",
        "processing",
        "completed",
    ]
    assert "\r" not in stderr
    (task,) = server.state.tasks.values()
    assert (task.quality, task.sound, task.duration) == ("pro", True, 10)


async def test_default_out_is_task_id(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --out the clip is saved as TASK_ID.mp4 in the working directory."""
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = await _cli(["generate", "a horse", "--poll-interval", "0"], _env(server))
    assert code == 0
    (task_id,) = server.state.tasks
    assert stdout.strip() == f"{task_id}.mp4"
    assert (tmp_path / f"{task_id}.mp4").stat().st_size > 0


async def test_status_text_and_json(server: SandboxServer, tmp_path: Path) -> None:
    """`status` prints state, message and URL; --json prints the same as JSON."""
    code, stdout, _ = await _cli(
        ["generate", "a horse", "--poll-interval", "0", "--out", str(tmp_path / "c.mp4")],
        _env(server),
    )
    assert code == 0
    (task_id,) = server.state.tasks
    code, stdout, _ = await _cli(["status", task_id], _env(server))
    assert code == 0
    url = f"{server.base_url}/files/{task_id}.mp4"
    assert f"task:    {task_id}" in stdout
    assert "state:   completed" in stdout
    assert f"url:     {url}" in stdout
    code, stdout, _ = await _cli(["status", task_id, "--json"], _env(server))
    assert code == 0
    assert json.loads(stdout) == {
        "task_id": task_id,
        "state": "completed",
        "message": "Video generation completed.",
        "result_urls": [url],
        "video_url": url,
    }


def _fail(server: SandboxServer, **fault: Any) -> None:
    """Queue one fault on the sandbox."""
    endpoint = fault.pop("endpoint")
    server.state.faults.add(endpoint, **fault)


@pytest.mark.parametrize(
    ("setup", "argv", "env_extra", "code", "words"),
    [
        (None, ["generate", "x", "--duration", "16"], {}, 2, "invalid choice"),
        (None, ["generate", "x", "--duration", "7"], {}, 2, "duration: must be 5 or 10 seconds"),
        (None, ["generate", "  "], {}, 2, "invalid request: prompt"),
        (None, ["generate", "a", "--timeout", "0"], {}, 2, "--timeout must be positive"),
        (
            None,
            ["generate", "x" * 2100],
            {"HAPPYHORSE_MAX_PROMPT_LENGTH": "3000"},
            2,
            "the API rejected the request (400): prompt is 2100 characters long",
        ),
        (None, ["generate", "a"], {"HAPPYHORSE_API_KEY": "wrong"}, 3, "401"),
        (
            {"endpoint": "generate", "status": 402, "body": {"error": {"message": "no credits"}}},
            ["generate", "a"],
            {},
            4,
            "out of credits (402): no credits",
        ),
        (
            {"endpoint": "generate", "status": 429, "count": -1, "retry_after": "0"},
            ["generate", "a"],
            {},
            5,
            "rate limited (429)",
        ),
        ({"endpoint": "generate", "status": 503}, ["generate", "a"], {}, 6, "server failed (503)"),
        (
            {"endpoint": "status", "status": 500, "count": -1},
            ["status", "hh_task_x"],
            {},
            6,
            "server failed (500)",
        ),
        (
            {"endpoint": "generate", "delay": 2.0},
            ["generate", "a"],
            {"HAPPYHORSE_TIMEOUT_SECONDS": "0.3"},
            7,
            "timed out",
        ),
        (
            None,
            ["generate", "FAIL this", "--poll-interval", "0.05"],
            {},
            8,
            "failed: Video generation failed: the prompt contains the sandbox fail word",
        ),
        (
            None,
            ["generate", "a", "--max-bytes", "1000", "--poll-interval", "0.05"],
            {},
            9,
            "the clip is too large",
        ),
        (
            {"endpoint": "download", "truncate": True},
            ["generate", "a", "--poll-interval", "0.05"],
            {},
            9,
            "download failed",
        ),
        (
            {"endpoint": "generate", "body": "<html>oops</html>"},
            ["generate", "a"],
            {},
            10,
            "could not be read",
        ),
        (
            {"endpoint": "status", "body": {"task_id": "x", "status": "completed"}},
            ["generate", "a", "--poll-interval", "0"],
            {},
            10,
            "no result URL",
        ),
        (None, ["status", "hh_task_nope"], {}, 11, "(404): Task 'hh_task_nope' not found"),
        (
            None,
            ["generate", "a"],
            {"HAPPYHORSE_TIMEOUT_SECONDS": "soon"},
            2,
            "HAPPYHORSE_TIMEOUT_SECONDS",
        ),
    ],
)
async def test_each_error_has_its_exit_code_and_message(
    server: SandboxServer,
    tmp_path: Path,
    setup: dict[str, Any] | None,
    argv: list[str],
    env_extra: dict[str, str],
    code: int,
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each failure maps to its documented exit code with a clear message."""
    if setup is not None:
        _fail(server, **setup)
    if argv[0] == "generate" and "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "clip.mp4")]
    got, _, stderr = await _cli(argv, _env(server, **env_extra))
    stderr += capsys.readouterr().err  # argparse writes its usage errors to sys.stderr
    assert got == code, stderr
    assert words in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "clip.mp4").exists()


async def test_task_deadline_exits_7_and_names_task(tmp_path: Path) -> None:
    """--timeout bounds submit+poll; the message says so and how to follow the task."""
    config = SandboxConfig(api_key=KEY, processing_after=5, complete_after=10)
    async with SandboxServer(config) as slow:
        code, _, stderr = await _cli(
            ["generate", "a", "--timeout", "0.3", "--poll-interval", "0.05"], _env(slow)
        )
    assert code == 7
    assert "not ready within 0.3 s" in stderr
    (task_id,) = slow.state.tasks
    assert f"happyhorse status {task_id}" in stderr


async def test_connection_refused_exits_7(tmp_path: Path) -> None:
    """Nothing listening at the base URL is a connection error, exit 7."""
    config = SandboxConfig(api_key=KEY)
    async with SandboxServer(config) as gone:
        url = gone.base_url
    code, _, stderr = await _cli(
        ["generate", "a"], _env(None, HAPPYHORSE_API_KEY=KEY, HAPPYHORSE_BASE_URL=url)
    )
    assert code == 7
    assert "could not reach the API" in stderr


async def test_no_key_uses_builtin_sandbox_native_dialect(tmp_path: Path) -> None:
    """With no key the CLI runs its own sandbox, in the dialect asked for."""
    out = tmp_path / "n.mp4"
    code, _, stderr = await _cli(
        ["generate", "a horse", "--out", str(out), "--poll-interval", "0.05"],
        _env(None, HAPPYHORSE_API_DIALECT="native"),
    )
    assert code == 0, stderr
    assert "built-in sandbox" in stderr
    assert _probe(out)[:2] == (320, 180)


def test_progress_rewrites_one_line_on_a_tty() -> None:
    """On a terminal the progress is one line rewritten with \\r, ended by finish()."""
    stream = io.StringIO()
    progress = cli.Progress(stream, tty=True)
    progress.update("t1", TaskState.QUEUED, "waiting in line")
    progress.update("t1", TaskState.PROCESSING)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2
    assert "\n" not in text[:-1]
    assert text.endswith("\n")
    last = text.rsplit("\r", 1)[1]
    assert "t1: processing" in last
    assert len(last.rstrip("\n")) >= len("t1: queued - waiting in line")


def test_dotenv_is_read_but_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .env in the working directory fills gaps; real environment variables win."""
    (tmp_path / ".env").write_text("HAPPYHORSE_MODEL=from-dotenv\nHAPPYHORSE_STATUS_RATE=9\n")
    monkeypatch.setenv("HAPPYHORSE_STATUS_RATE", "3")
    env = cli.load_environment(tmp_path)
    assert env["HAPPYHORSE_MODEL"] == "from-dotenv"
    assert env["HAPPYHORSE_STATUS_RATE"] == "3"
    assert cli.load_environment(tmp_path / "missing")["HAPPYHORSE_STATUS_RATE"] == "3"


async def test_out_must_not_be_a_device(server: SandboxServer) -> None:
    """--out naming something other than a regular file is refused before submitting."""
    code, _, stderr = await _cli(["generate", "a", "--out", os.devnull], _env(server))
    assert code == 2
    assert "not a regular file" in stderr
    assert server.state.tasks == {}
    assert Path(os.devnull).is_char_device()


def test_exit_codes_are_distinct() -> None:
    """Every documented exit code is different."""
    codes = [code for code, _ in cli.EXIT_CODES]
    assert len(codes) == len(set(codes))


async def test_native_dialect_generates_a_7_second_clip(tmp_path: Path) -> None:
    """--duration accepts 3-15 s for the native dialect; the clip has that length."""
    config = SandboxConfig(
        api_key=KEY, processing_after=0.05, complete_after=0.2, dialect="native"
    )
    async with SandboxServer(config) as native:
        out = tmp_path / "seven.mp4"
        code, _, stderr = await _cli(
            ["generate", "a horse", "--duration", "7", "--out", str(out), "--poll-interval", "0"],
            _env(native, HAPPYHORSE_API_DIALECT="native"),
        )
        assert code == 0, stderr
        assert round(_probe(out)[2]) == 7
        (task,) = native.state.tasks.values()
        assert task.duration == 7


async def test_fit_reencodes_under_the_limit(tmp_path: Path) -> None:
    """`happyhorse fit IN OUT --max-bytes N` writes an H.264 clip of at most N bytes."""
    from happyhorse.sandbox.video import write_detailed_clip

    src = tmp_path / "big.mp4"
    write_detailed_clip(src, width=640, height=360, seconds=2, fps=24, bitrate=3_000_000)
    limit = src.stat().st_size // 3
    out = tmp_path / "small.mp4"
    code, stdout, stderr = await _cli(["fit", str(src), str(out), "--max-bytes", str(limit)], {})
    assert code == 0, stderr
    assert stdout == f"{out}\n"
    assert "re-encoded to" in stderr
    assert 0 < out.stat().st_size <= limit
    code, _, stderr = await _cli(
        ["fit", str(src), str(tmp_path / "x.mp4"), "--max-bytes", "1000"], {}
    )
    assert code == cli.EXIT_MEDIA
    assert "cannot fit" in stderr


async def test_fit_refuses_an_undecodable_file(tmp_path: Path) -> None:
    """Junk in: exit 12 with the reason, nothing written."""
    src = tmp_path / "junk.mp4"
    src.write_bytes(b"junk" * 1000)
    code, _, stderr = await _cli(
        ["fit", str(src), str(tmp_path / "out.mp4"), "--max-bytes", "100"], {}
    )
    assert code == cli.EXIT_MEDIA
    assert "cannot re-encode" in stderr
    assert not (tmp_path / "out.mp4").exists()
