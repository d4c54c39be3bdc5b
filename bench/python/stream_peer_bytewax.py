#!/usr/bin/env python3
"""The fraud job of examples/fraud_detection.py written for bytewax, for
bench/python/stream.py (run in the peers' own venv; prints one JSON line).

Same input (a JSON-lines file), same rules, same per-user state tuple; state
snapshots go to bytewax's SQLite recovery store every ``--epoch-seconds``
(its counterpart of a checkpoint), one worker.

Configured as bytewax's own guidance would have it, not as a first try:

* one ``map`` parses each line and keys it (a ``key_on`` step after a
  ``map`` costs a second pass of Python per event);
* ``stateful_batch``, not ``stateful_map``: each user's logic object gets
  all of its events of a batch in one ``on_batch`` call, and its
  ``snapshot`` returns the immutable state tuple as it is
  (``stateful_map`` deep-copies every touched key's state at every epoch);
* alerts are encoded to JSON in that same step, so no further step runs
  per alert, and go straight to the ``FileSink`` (which writes a keyed
  stream's values);
* ``FileSource(batch_size=10000)``: ten times bytewax's default of lines
  per batch, fewer trips through its Rust runtime;
* full (oldest-generation) garbage collections postponed for the run, as
  weir.stream's ``postpone_full_gc`` does by default.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.files import FileSink, FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

RECENT = 5
BATCH_LINES = 10_000

UserState = tuple[int, float, float, tuple[float, ...]]


def parse_and_key(line: str) -> tuple[str, dict[str, Any]]:
    tx: dict[str, Any] = json.loads(line)
    return tx["user_id"], tx


_encode = json.JSONEncoder(separators=(",", ":")).encode


class Fraud(StatefulBatchLogic[dict[str, Any], str, UserState]):  # type: ignore[misc]
    """One user's state and rules; emits each alert as a JSON line."""

    def __init__(self, state: UserState | None) -> None:
        self.state = state

    def on_batch(self, values: list[dict[str, Any]]) -> tuple[list[str], bool]:
        alerts: list[str] = []
        s = self.state
        for tx in values:
            amount = tx["amount"]
            if s is None:
                s = (1, amount, amount, (amount,))
            else:
                s = (
                    s[0] + 1,
                    s[1] + amount,
                    s[2] if s[2] >= amount else amount,
                    (*s[3][1 - RECENT :], amount),
                )
            count, total = s[0], s[1]
            avg = total / count
            if count > 1 and amount > 10.0 * avg:
                reason = f"Unusual amount: ${amount:.2f} is over 10x the average ${avg:.2f}"
            elif amount > 5000.0:
                reason = f"Large transaction: ${amount:.2f} exceeds threshold"
            else:
                continue
            alerts.append(
                _encode(
                    {
                        "tx_id": tx["tx_id"],
                        "user_id": tx["user_id"],
                        "amount": amount,
                        "merchant": tx.get("merchant", ""),
                        "reason": reason,
                    }
                )
            )
        self.state = s
        return alerts, StatefulBatchLogic.RETAIN

    def snapshot(self) -> UserState | None:
        # A tuple of numbers and a tuple: immutable, so no copy.
        return self.state


def build(inp: Path, out: Path) -> Dataflow:
    flow = Dataflow("fraud")
    lines = op.input("inp", flow, FileSource(inp, batch_size=BATCH_LINES))
    keyed = op.map("parse_and_key", lines, parse_and_key)
    alerts = op.stateful_batch("fraud", keyed, Fraud)
    op.output("out", alerts, FileSink(out))
    return flow


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--epoch-seconds", type=float, default=1.0)
    args = ap.parse_args()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    init_db_dir(args.state_dir, 1)
    flow = build(args.input, args.output)
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)
    t0, c0 = time.perf_counter(), time.process_time()
    run_main(
        flow,
        epoch_interval=timedelta(seconds=args.epoch_seconds),
        recovery_config=RecoveryConfig(str(args.state_dir)),
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with open(args.input, "rb") as f:
        events = sum(1 for _ in f)
    with open(args.output, "rb") as f:
        alerts = sum(1 for _ in f)
    print(
        json.dumps(
            {
                "engine": "bytewax",
                "events": events,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "alerts": alerts,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
