"""The short fault schedule of the chaos test (tests/chaos/chaos.py; `make
chaos` runs the long one): workers killed, stopped past their lease,
terminated and added, Redis Cluster nodes paused for 2 s and 7 s (past the
client's 5 s timeout) and one killed and restarted, while a producer
feeds the job. Every partition's input, output and state must match one
process's, with no duplicate, gap, hang or traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).resolve().parents[1] / "chaos" / "chaos.py"


def test_short_fault_schedule(tmp_path: Path) -> None:
    report = tmp_path / "figures.json"
    r = subprocess.run(
        [sys.executable, str(CHAOS), "--schedule", "short", "--workdir", str(tmp_path / "run"),
         "--json", str(report)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert report.exists(), r.stdout[-4000:] + r.stderr[-6000:]
    figures = json.loads(report.read_text())
    print(json.dumps(figures, indent=2))
    assert figures["duplicates"] == 0 and figures["gaps"] == 0, figures
    assert figures["input_entries"] == figures["events"], figures
    assert figures["alerts_match"] and figures["state_match"], figures
    assert figures["hangs"] == [] and figures["tracebacks"] == 0, figures
    assert figures["never_retrieved"] == 0, figures
    assert figures["partition_moves"] > 0, figures
    assert figures["faults_total"] == 8, figures
    assert r.returncode == 0 and figures["ok"], r.stderr[-4000:]
