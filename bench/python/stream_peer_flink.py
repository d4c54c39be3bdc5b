#!/usr/bin/env python3
"""The fraud job of examples/fraud_detection.py written for PyFlink, for
bench/python/stream.py (run in the peers' own venv; prints one JSON line).

Same input (a JSON-lines file), same rules, same per-user state tuple
(pickled in a ValueState); a local mini-cluster (parallelism 1), a
checkpoint every ``--checkpoint-seconds``.

Configured as PyFlink's own guidance would have it, not as a first try:

* ``python.execution-mode: thread``: the Python functions run inside the
  JVM through pemja. In the default ``process`` mode they run in a separate
  Python worker, and every ``ValueState.value()`` of a key that worker's
  small state cache lacks (nearly every one, with 100,000 users) is a
  blocking request to the JVM and back: that, not records crossing between
  the two, is where process mode spends its time (about 850 events/s on
  this job against about 17,500 in thread mode). Thread mode needs the
  venv's site-packages on ``PYTHONPATH`` (the embedded interpreter does not
  read the venv's ``sys.path``; without it: "No module named 'pemja'"),
  which this script sets before it starts the JVM.
* one ``map`` parses each line and returns ``(user_id, transaction)``; the
  key selector only picks the first field;
* the ``hashmap`` state backend (state as objects on the JVM heap, which
  100,000 small states fit in) instead of RocksDB.
"""

from __future__ import annotations

import argparse
import json
import os
import site
import sys
import time
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

RECENT = 5


def parse_and_key(line: str) -> tuple[str, dict[str, Any]]:
    tx: dict[str, Any] = json.loads(line)
    return tx["user_id"], tx


class Fraud(KeyedProcessFunction):  # type: ignore[misc]
    def open(self, ctx: RuntimeContext) -> None:
        self.user = ctx.get_state(ValueStateDescriptor("user", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, keyed: Any, ctx: Any) -> Any:
        user_id, tx = keyed
        amount = tx["amount"]
        s = self.user.value()
        if s is None:
            count, total, largest, recent = 1, amount, amount, (amount,)
        else:
            count = s[0] + 1
            total = s[1] + amount
            largest = s[2] if s[2] >= amount else amount
            recent = (*s[3][1 - RECENT :], amount)
        self.user.update((count, total, largest, recent))
        avg = total / count
        if count > 1 and amount > 10.0 * avg:
            reason = f"Unusual amount: ${amount:.2f} is over 10x the average ${avg:.2f}"
        elif amount > 5000.0:
            reason = f"Large transaction: ${amount:.2f} exceeds threshold"
        else:
            return
        yield json.dumps(
            {
                "tx_id": tx["tx_id"],
                "user_id": user_id,
                "amount": amount,
                "merchant": tx.get("merchant", ""),
                "reason": reason,
            },
            separators=(",", ":"),
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--checkpoint-seconds", type=float, default=1.0)
    args = ap.parse_args()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    # Thread mode's interpreter runs inside the JVM and finds pemja and
    # pyflink only through PYTHONPATH; the JVM inherits this environment.
    paths = [*site.getsitepackages(), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    conf = Configuration()
    conf.set_string("state.backend.type", "hashmap")
    conf.set_string("execution.checkpointing.dir", args.state_dir.resolve().as_uri())
    conf.set_string("execution.checkpointing.interval", f"{int(args.checkpoint_seconds * 1000)}ms")
    conf.set_string("python.execution-mode", "thread")
    # The Python workers must be this venv's interpreter (PATH may have another).
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    # Fail instead of restarting forever, so a broken setup is reported.
    conf.set_string("restart-strategy.type", "none")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(args.input.resolve())
    ).build()
    alerts = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "transactions")
        .map(parse_and_key, output_type=Types.PICKLED_BYTE_ARRAY())
        .key_by(lambda keyed: keyed[0], key_type=Types.STRING())
        .process(Fraud(), output_type=Types.STRING())
    )
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with alerts.execute_and_collect("fraud") as results, open(args.output, "w") as out:
        for line in results:
            out.write(line + "\n")
            n += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with open(args.input, "rb") as f:
        events = sum(1 for _ in f)
    # cpu_seconds covers this client process only: the JVM and the Python
    # workers are other processes (see bench/python/stream.py for totals).
    print(
        json.dumps(
            {
                "engine": "pyflink",
                "events": events,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "alerts": n,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
