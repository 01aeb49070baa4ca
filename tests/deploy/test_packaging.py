"""The container, compose and systemd files: what can be checked without a container runtime.

No Docker daemon or registry is reachable here, so these tests check what would break a
build or a start: the Dockerfile installs exactly as README's first command does, every
file the Dockerfile, compose.yaml and the Grafana provisioning name exists, compose.yaml
parses and wires the services as README says, and the systemd unit passes
`systemd-analyze verify` (where systemd is installed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def readme_install_command() -> str:
    """README's first command, up to its install step (the part before `&& cp`)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.+?)\n```", readme, flags=re.DOTALL)
    assert block is not None, "README.md has a bash block"
    first = block[1].splitlines()[0]
    install, sep, _ = first.partition(" && cp ")
    assert sep, f"README's first command copies .env.example after installing: {first!r}"
    return install.strip()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    result = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_dockerfile_installs_as_readme_says() -> None:
    """The image's install step is README's first command's install, word for word."""
    install = readme_install_command()
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    assert any(args == install or args.startswith(install + " && ") for args in runs), (
        install,
        runs,
    )


def test_dockerfile_runs_as_non_root_with_health_check_and_exec_form_cmd() -> None:
    """Slim base, a non-root USER, HEALTHCHECK on /healthz, exec-form CMD (SIGTERM to bot.py)."""
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    base = next(args for k, args in instructions if k == "FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base
    users = [args for k, args in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert keywords.index("USER") < keywords.index("CMD")
    health = next(args for k, args in instructions if k == "HEALTHCHECK")
    assert "deploy/healthcheck.py" in health
    cmd = next(args for k, args in instructions if k == "CMD")
    assert cmd.startswith("["), "exec form: the bot itself is PID 1 and gets SIGTERM"
    assert cmd == '[".venv/bin/python", "bot.py"]'


def test_every_file_the_dockerfile_and_compose_name_exists() -> None:
    """COPY sources, the health check script, compose's build context, bind mounts, env file."""
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), source
    assert (REPO / "deploy" / "healthcheck.py").is_file()
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for needed in ("bot.py", "pyproject.toml", "README.md", "deploy", "storage", "core", "cogs"):
        assert needed not in ignored and needed + "/" not in ignored, needed
    assert ".env" in ignored, "the image never contains the secrets file"

    services = compose()["services"]
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (REPO / context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    # compose reads .env, which README's first command copies from .env.example.
    assert services["bot"]["env_file"] == ".env"
    assert (REPO / ".env.example").is_file()


def test_compose_wires_bot_and_postgres() -> None:
    """postgres:16 with pg_isready, named volumes, restart policy, bot waits for healthy."""
    data = compose()
    services = data["services"]
    bot, postgres = services["bot"], services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in (bot, postgres):
        assert service["restart"] == "unless-stopped"
    named = set(data["volumes"])
    assert postgres["volumes"][0].split(":")[0] in named
    assert bot["volumes"][0].split(":")[0] in named
    url = bot["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    assert bot["environment"]["METRICS_PORT"] == "9108"


def test_monitoring_profile_provisions_prometheus_and_grafana() -> None:
    """The optional profile mounts the rules, the scrape config and the dashboard."""
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    for name in ("bot", "postgres"):
        assert "profiles" not in services[name], "the default services need no profile"
    mounts = {v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert {"./deploy/prometheus/prometheus.yml", "./deploy/prometheus/alerts.yml"} <= mounts
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["bot:9108"]
    grafana = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/happyhorse.yml").read_text()
    )
    folder = provider["providers"][0]["options"]["path"]
    assert grafana["./deploy/grafana/happyhorse.json"] == f"{folder}/happyhorse.json"
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["uid"] == "prometheus"


def test_systemd_unit_verifies() -> None:
    """`systemd-analyze verify` accepts the unit (paths pointed at this checkout)."""
    unit = (REPO / "deploy" / "happyhorse-bot.service").read_text(encoding="utf-8")
    for line in (
        "EnvironmentFile=/opt/happyhorse-bot/.env",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=happyhorse-bot",
        "ReadWritePaths=/var/lib/happyhorse-bot",
        "WorkingDirectory=/var/lib/happyhorse-bot",
    ):
        assert line in unit.splitlines(), line
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (no systemd here)")
    # verify checks that ExecStart exists: point the unit at this checkout and interpreter.
    local = unit.replace("/opt/happyhorse-bot/.venv/bin/python", sys.executable).replace(
        "/opt/happyhorse-bot", str(REPO)
    )
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"unit-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / "happyhorse-bot.service"
    path.write_text(local, encoding="utf-8")
    try:
        done = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # Unknown or misspelt keys are only warnings (exit 0): any output fails the test too.
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
