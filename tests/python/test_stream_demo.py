"""`make demo`'s script, examples/fraud_detection.py, end to end: the seed's
report, a generated run and a short kill -9 crash test."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "fraud_detection.py"


def run(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_fraud_demo_seed_generated_and_crash_test(child_env: dict[str, str]) -> None:
    args = "--events 20000 --users 2000 --checkpoint-every 5000 --crash-test 3"
    args += " --crash-events 60000 --crash-checkpoint-every 5000"
    out = run(args.split(), child_env)
    for line in [
        "🚨 FRAUD | T006 | User U002 | $ 8000.00 | Electronics",
        "      └─ Reason: Large transaction: $8000.00 exceeds threshold",
        "🚨 FRAUD | T010 | User U003 | $12000.00 | Car Dealer",
        "✅ OK | T003 | User U001 | $ 5000.00 | Jewelry Store",
        "Total transactions: 10",
        "Fraud alerts: 2",
        "Fraud rate: 20.0%",
        "User U001:\n  Transactions: 5\n  Total amount: $5225.00",
        "User U002:\n  Transactions: 2\n  Total amount: $8025.00",
        "User U003:\n  Transactions: 3\n  Total amount: $12350.00\n  Average: $4116.67",
        "Generated stream: 20,000 transactions over 2,000 users on the weir backend",
        "checkpoints:         4 (every 5,000 events)",
        "3 kills, 4 runs; final state identical: True",
        "alert output identical: True",
        "crash test PASSED",
    ]:
        assert line in out, line


@pytest.mark.parametrize("backend", ["memory", "rocksdb", "redis"])
def test_fraud_demo_other_backends(backend: str, child_env: dict[str, str]) -> None:
    out = run(["--events", "5000", "--users", "500", "--backend", backend], child_env)
    assert "Fraud alerts: 2" in out and "Fraud rate: 20.0%" in out
    assert f"on the {backend} backend" in out


def test_fraud_demo_rejects_bad_arguments(child_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", "memory", "--crash-test", "1"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "keeps nothing across a crash" in proc.stderr
