#!/usr/bin/env python3
"""The fraud job of examples/fraud_detection.py written for bytewax, for
bench/python/stream.py (run in the peers' own venv; prints one JSON line).

Same input (a JSON-lines file), same rules, same per-user state tuple; state
snapshots go to bytewax's SQLite recovery store every ``--epoch-seconds``
(its counterpart of a checkpoint), one worker.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.files import FileSink, FileSource
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

RECENT = 5


def detect(state: Any, tx: dict[str, Any]) -> tuple[Any, Any]:
    amount = tx["amount"]
    if state is None:
        count, total, largest, recent = 1, amount, amount, (amount,)
    else:
        count = state[0] + 1
        total = state[1] + amount
        largest = state[2] if state[2] >= amount else amount
        recent = (*state[3][1 - RECENT :], amount)
    avg = total / count
    new = (count, total, largest, recent)
    if count > 1 and amount > 10.0 * avg:
        reason = f"Unusual amount: ${amount:.2f} is over 10x the average ${avg:.2f}"
    elif amount > 5000.0:
        reason = f"Large transaction: ${amount:.2f} exceeds threshold"
    else:
        return new, None
    return new, {
        "tx_id": tx["tx_id"],
        "user_id": tx["user_id"],
        "amount": amount,
        "merchant": tx.get("merchant", ""),
        "reason": reason,
    }


def build(inp: Path, out: Path) -> Dataflow:
    flow = Dataflow("fraud")
    lines = op.input("inp", flow, FileSource(inp, batch_size=1024))
    txs = op.map("parse", lines, json.loads)
    keyed = op.key_on("key", txs, lambda tx: tx["user_id"])
    scored = op.stateful_map("fraud", keyed, detect)
    alerts = op.filter_map("alerts", scored, lambda kv: None if kv[1] is None else kv[1])
    # FileSink routes by key: one key, one file.
    encoded = op.map("json", alerts, lambda a: ("alerts", json.dumps(a, separators=(",", ":"))))
    op.output("out", encoded, FileSink(out))
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
