"""A weir.stream job run as a subprocess by test_stream_crash.py, which kills
it with SIGKILL at random points and restarts it.

The job: events {"i", "user", "amount", "ts"} keyed by user; a process
operator keeps a running count (CounterState) and total (ValueState) and
emits every 7th event of a user; a tumbling-window operator sums amounts
per user per 50 time units. A map sleeps briefly now and then so that the
kills land mid-run. Input is a JSON-lines file or a Redis Stream; output
is JSON-lines files or Redis Streams.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from weir.stream import (
    CounterState,
    JsonLinesSink,
    JsonLinesSource,
    Pipeline,
    RedisStreamSink,
    RedisStreamSource,
    TumblingWindows,
    ValueState,
)


def slow(event: dict[str, Any]) -> dict[str, Any]:
    if event["i"] % 100 == 0:
        time.sleep(0.005)
    return event


def running(key: str, event: dict[str, Any], count: CounterState, total: ValueState[float]) -> Any:
    n = count.add(1)
    t = (total.value() or 0.0) + event["amount"]
    total.update(t)
    if n % 7 == 0:
        return ({"user": key, "n": n, "total": round(t, 2), "at": event["i"]},)
    return None


def build(args: argparse.Namespace) -> Pipeline:
    job = Pipeline(
        "crashjob",
        state_dir=f"{args.dir}/state",
        checkpoint_every=args.checkpoint_every,
        batch_size=args.batch_size,
        progress=False,
    )
    if args.kind == "file":
        src: Any = JsonLinesSource(args.input, name="events")
        out: Any = JsonLinesSink(f"{args.dir}/out.jsonl", name="out")
        wout: Any = JsonLinesSink(f"{args.dir}/windows.jsonl", name="windows")
    else:
        src = RedisStreamSource(
            args.redis_url,
            args.input,
            group=args.group,
            consumer="worker",
            decode=lambda f: json.loads(f["e"]),
            idle_timeout=0.5,
            name="events",
        )
        out = RedisStreamSink(args.redis_url, f"{args.output}:out", name="out")
        wout = RedisStreamSink(args.redis_url, f"{args.output}:windows", name="windows")
    keyed = job.source(src).map(slow).key_by("user")
    keyed.process(running, CounterState("count"), ValueState("total"), name="running").sink(out)
    keyed.window(
        TumblingWindows(50),
        timestamp=lambda e: e["ts"],
        init=lambda: 0.0,
        add=lambda acc, e: round(acc + e["amount"], 2),
        max_delay=5,
        allowed_lateness=10,
        name="sums",
    ).sink(wout)
    return job


def main() -> int:
    ap = argparse.ArgumentParser(description="weir.stream crash-test worker")
    ap.add_argument("--kind", choices=["file", "redis"], required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--input", required=True, help="JSON-lines file or Redis Stream name")
    ap.add_argument("--output", default="", help="Redis output stream prefix")
    ap.add_argument("--group", default="weir")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--checkpoint-every", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    build(args).run_sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
