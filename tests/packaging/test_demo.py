"""`make demo`: its own minimal venv (no test extras), and the demo's
progress bar, which keeps its total for the whole run and draws only on a
terminal."""

from __future__ import annotations

import importlib.util
import io
import os
import pathlib
import pty
import re
import subprocess
import sys
from types import ModuleType

import pytest

from conftest import PYTHON, ROOT, run

SCRIPT = ROOT / "examples" / "fraud_detection.py"
BAR = re.compile(r"fraud: \[[# ]+\]\s+([0-9.]+)% ([0-9,]+)/([0-9,]+)")


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fraud_detection_pkgtest", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_total_is_fixed_and_clamped(demo: ModuleType) -> None:
    out = FakeTerminal()
    bar = demo.ProgressBar("fraud", 1000, out, enabled=True)
    for done in (0, 10, 500, 999, 1000, 1200):  # 1200: never past the total
        bar.draw(done, 5.0)
    bar.finish(1000, 5.0)
    lines = [m.groups() for m in BAR.finditer(out.getvalue())]
    assert len(lines) == 7
    assert {total for _, _, total in lines} == {"1,000"}
    assert [done for _, done, _ in lines] == ["0", "10", "500", "999", "1,000", "1,000", "1,000"]
    assert out.getvalue().endswith("\n")


def test_bar_stays_silent_off_a_terminal(demo: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()  # isatty() is False
    bar = demo.ProgressBar("fraud", 10, pipe)
    assert not bar.enabled
    bar.draw(5, 1.0)
    bar.finish(10, 1.0)
    assert pipe.getvalue() == ""
    monkeypatch.setenv("TERM", "dumb")
    assert not demo.is_terminal(FakeTerminal(), FakeTerminal())
    monkeypatch.setenv("TERM", "xterm")
    assert demo.is_terminal(FakeTerminal(), FakeTerminal())
    assert not demo.is_terminal(FakeTerminal(), io.StringIO())
    with pytest.raises(ValueError):
        demo.ProgressBar("fraud", -1, pipe)


ARGS = ["--skip-seed", "--events", "60000", "--users", "500", "--checkpoint-every", "5000"]


def test_demo_piped_output_has_no_bar() -> None:
    proc = run([PYTHON, str(SCRIPT), *ARGS], cwd=ROOT)
    assert "Generated stream: 60,000 transactions" in proc.stdout
    assert "\r" not in proc.stdout + proc.stderr
    assert not BAR.search(proc.stdout + proc.stderr)


def test_demo_on_a_terminal_draws_a_bar_with_one_total() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [PYTHON, str(SCRIPT), *ARGS],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=dict(os.environ, TERM="xterm"),
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = b"".join(chunks).decode(errors="replace")
    bars = [m.groups() for m in BAR.finditer(text)]
    assert bars, text[-2000:]
    assert {total for _, _, total in bars} == {"60,000"}, "the bar's total changed during the run"
    done = [int(d.replace(",", "")) for _, d, _ in bars]
    assert done == sorted(done), "the bar went backwards"
    assert bars[-1][:2] == ("100.0", "60,000")


def test_make_demo_uses_a_minimal_venv(tmp_path: pathlib.Path) -> None:
    venv = tmp_path / "demo-venv"
    proc = run(
        [
            "make",
            "--no-print-directory",
            "demo",
            f"DEMO_VENV={venv}",
            "DEMO_ARGS=--events 2000 --users 50",
        ],
        cwd=ROOT,
    )
    assert "Generated stream: 2,000 transactions" in proc.stdout
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"]).stdout
    names = {line.split("==")[0].lower() for line in installed.split()}
    assert "weirdb" in names and "msgpack" in names
    extras = names & {
        "pytest",
        "pyarrow",
        "polars",
        "duckdb",
        "pandas",
        "hypothesis",
        "rocksdict",
        "redis",
        "mypy",
        "ruff",
    }
    assert not extras, f"the demo venv has test extras: {sorted(extras)}"
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 150 * 2**20, f"demo venv is {size / 2**20:.0f} MiB"
    # Picking the Redis backend brings in exactly its extra.
    dry = run(["make", "-n", "demo", f"DEMO_VENV={venv}", "DEMO_ARGS=--backend redis"], cwd=ROOT)
    assert "'.[cluster]'" in dry.stdout and "[test]" not in dry.stdout
