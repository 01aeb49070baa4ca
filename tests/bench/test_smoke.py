"""`python -m bench --quick` runs every scenario end to end, so the bench cannot rot.

Only the shape of the output is checked: a quick run's figures are not measurements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = {"name", "value", "unit", "baseline", "ratio", "target", "met"}


@pytest.mark.timeout(400)
def test_quick_bench_runs_every_scenario_and_writes_the_figures(tmp_path: Path) -> None:
    """Every scenario runs without error; --json holds one object per figure."""
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out), "--keep", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert len(figures) >= 9
    assert len({f["name"] for f in figures}) == len(figures)
    for figure in figures:
        assert figure.keys() >= KEYS
        assert isinstance(figure["met"], bool)
        # A figure may lack a value only when it says why (the scale-out figures without
        # PostgreSQL installed).
        assert figure["value"] is not None or figure["note"].startswith("skipped"), figure
    assert "Time scale x" in done.stdout
    for figure in figures:
        assert figure["name"] in done.stdout
