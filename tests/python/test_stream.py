"""weir.stream: the seed's fraud scenario on every backend, windows against
hand-computed results, dead letters, back-pressure, sources and sinks,
checkpoint snapshots. (Crash tests: test_stream_crash.py.)"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import pathlib
import sys
from typing import Any

import pytest

from conftest import BACKENDS
from weir.stream import (
    ArrowIpcSource,
    AsyncIterableSource,
    CallbackSink,
    CounterState,
    CsvSource,
    FunctionSource,
    HoppingWindows,
    IterableSource,
    JsonLinesSink,
    JsonLinesSource,
    ListSink,
    MapState,
    ParquetSource,
    Pipeline,
    PipelineError,
    RedisStreamSink,
    RedisStreamSource,
    Sink,
    SinkError,
    SourceError,
    TumblingWindows,
    ValueState,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_fraud_example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fraud_detection", ROOT / "examples" / "fraud_detection.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fraud_detection"] = mod
    spec.loader.exec_module(mod)
    return mod


fd = load_fraud_example()


# ---- the seed's scenario ------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_seed_fraud_scenario_on_every_backend(kind: str, make_backend: Any) -> None:
    store = make_backend(kind, options={"value_codec": "pickle"})
    await store.start()  # started by us, so the run leaves it open (memory keeps its data)
    alerts, verdicts = ListSink("alerts"), ListSink("verdicts")
    job = fd.build_job(
        IterableSource(fd.SEED_TRANSACTIONS, name="seed"),
        alerts,
        store=store,
        verdicts=verdicts,
        progress=False,
    )
    m = await job.run()
    assert m["events"] == 10 and m["dead_letters"] == 0
    assert [a["tx_id"] for a in alerts.items] == ["T006", "T010"]
    assert [a["reason"] for a in alerts.items] == [
        "Large transaction: $8000.00 exceeds threshold",
        "Large transaction: $12000.00 exceeds threshold",
    ]
    assert len(verdicts.items) == 10
    assert 100 * len(alerts.items) / len(verdicts.items) == 20.0
    assert store.started
    users = {k: fd.describe(v) for k, v in await job.state_items(fd.OPERATOR, fd.STATE)}
    assert {u: (s["txn_count"], s["total_amount"], s["max_amount"]) for u, s in users.items()} == {
        "U001": (5, 5225.0, 5000.0),
        "U002": (2, 8025.0, 8000.0),
        "U003": (3, 12350.0, 12000.0),
    }
    assert f"{users['U003']['avg_amount']:.2f}" == "4116.67"
    assert users["U001"]["recent"] == [50.0, 45.0, 5000.0, 80.0, 50.0]
    meta = await job.last_checkpoint()
    assert meta is not None and meta["offset"] == 10 and meta["finished"]


async def test_seed_job_resumes_instead_of_double_counting(tmp_path: pathlib.Path) -> None:
    """Running the finished job again processes nothing: the checkpoint
    already holds the source's end."""
    for _ in range(2):
        alerts = JsonLinesSink(tmp_path / "alerts.jsonl", name="alerts")
        job = fd.build_job(
            IterableSource(fd.SEED_TRANSACTIONS),
            alerts,
            state_dir=tmp_path / "state",
            progress=False,
        )
        await job.run()
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x)["tx_id"] for x in lines] == ["T006", "T010"]
    job = fd.build_job(
        IterableSource(fd.SEED_TRANSACTIONS),
        ListSink(),
        state_dir=tmp_path / "state",
        progress=False,
    )
    await job.open_store()
    users = dict(await job.state_items(fd.OPERATOR, fd.STATE))
    await job.close_store()
    assert users["U001"][0] == 5


# ---- windows ------------------------------------------------------------------------------

EVENTS = [  # (key, ts, amount)
    ("a", 1, 10),
    ("b", 2, 1),
    ("a", 4, 5),
    ("a", 11, 7),
    ("b", 12, 2),
    ("a", 13, 1),
    ("b", 25, 4),
    ("a", 29, 3),
    ("a", 31, 100),
]


def window_job(
    tmp_path: pathlib.Path, windows: Any, events: list[Any], **kw: Any
) -> tuple[Pipeline, ListSink, ListSink]:
    out, dead = ListSink("out"), ListSink("dead")
    job = Pipeline(
        "w",
        state_dir=tmp_path / "state",
        dead_letter=dead,
        progress=False,
        batch_size=kw.pop("batch_size", 1024),
        checkpoint_every=kw.pop("checkpoint_every", 3),
    )
    (
        job.source(IterableSource([{"k": k, "ts": t, "v": v} for k, t, v in events]))
        .key_by("k")
        .window(
            windows,
            timestamp=lambda e: e["ts"],
            init=lambda: 0,
            add=lambda acc, e: acc + e["v"],
            name="win",
            **kw,
        )
        .sink(out)
    )
    return job, out, dead


@pytest.mark.parametrize("batch_size", [1, 4, 1024])
async def test_tumbling_windows_match_hand_computed(
    tmp_path: pathlib.Path, batch_size: int
) -> None:
    job, out, dead = window_job(tmp_path, TumblingWindows(10), EVENTS, batch_size=batch_size)
    await job.run()
    # Watermark = max ts (no delay). [0,10) closes at ts 11 (a: 10+5, b: 1);
    # [10,20) at ts 25 (a: 7+1, b: 2); [20,30) at ts 31 (b: 4, a: 3);
    # [30,40) at the end of input (a: 100). Within one deadline, by key.
    assert out.items == [
        {"key": "a", "start": 0, "end": 10, "value": 15},
        {"key": "b", "start": 0, "end": 10, "value": 1},
        {"key": "a", "start": 10, "end": 20, "value": 8},
        {"key": "b", "start": 10, "end": 20, "value": 2},
        {"key": "a", "start": 20, "end": 30, "value": 3},
        {"key": "b", "start": 20, "end": 30, "value": 4},
        {"key": "a", "start": 30, "end": 40, "value": 100},
    ]
    assert dead.items == []
    await job.open_store()
    assert await job.state_items("win", "window") == []  # every window purged
    await job.close_store()


async def test_hopping_windows_match_hand_computed(tmp_path: pathlib.Path) -> None:
    events = [("a", 1, 1), ("a", 6, 2), ("a", 12, 4), ("a", 30, 8)]
    job, out, _ = window_job(tmp_path, HoppingWindows(size=10, hop=5), events)
    await job.run()
    # Windows of 10 every 5: ts 1 -> [-5,5) [0,10); 6 -> [0,10) [5,15);
    # 12 -> [5,15) [10,20); 30 -> [25,35) [30,40).
    got = [(o["start"], o["end"], o["value"]) for o in out.items]
    assert got == [(-5, 5, 1), (0, 10, 3), (5, 15, 6), (10, 20, 4), (25, 35, 8), (30, 40, 8)]


async def test_window_watermark_delay_and_allowed_lateness(tmp_path: pathlib.Path) -> None:
    events = [
        ("a", 5, 1),
        ("a", 14, 1),  # watermark 14 - 2 = 12: [0,10) fires with 1
        ("a", 8, 10),  # late but within lateness 5 (12 < 10 + 5): re-fires 11
        ("a", 20, 1),  # watermark 18: [0,10) purged (10 + 5 <= 18)
        ("a", 9, 100),  # too late: dead letter
        ("a", 15, 2),  # on time for [10,20)
    ]
    job, out, dead = window_job(
        tmp_path, TumblingWindows(10), events, max_delay=2, allowed_lateness=5
    )
    await job.run()
    got = [(o["start"], o["value"]) for o in out.items]
    assert got == [(0, 1), (0, 11), (10, 3), (20, 1)]
    assert len(dead.items) == 1
    assert dead.items[0]["record"]["v"] == 100
    assert dead.items[0]["reason"].startswith("late event: timestamp 9")


async def test_window_state_survives_restart(tmp_path: pathlib.Path) -> None:
    """Half the input, stop, the rest in a new pipeline: same output as one run."""
    first = [{"k": k, "ts": t, "v": v} for k, t, v in EVENTS]

    def job_over(events: list[Any], out: Any, n_total: int) -> Pipeline:
        job = Pipeline("w", state_dir=tmp_path / "state", progress=False, checkpoint_every=2)
        (
            job.source(FunctionSource(lambda s, c: events[s : s + c], n_total))
            .key_by("k")
            .window(
                TumblingWindows(10),
                timestamp=lambda e: e["ts"],
                init=lambda: 0,
                add=lambda a, e: a + e["v"],
                name="win",
            )
            .sink(out)
        )
        return job

    out1 = ListSink("out")
    # A source that stops after 5 events without ending the windows: a job
    # killed there would resume from the checkpoint; simulate by building a
    # pipeline whose source ends early but whose store keeps the state.
    job = job_over(first, out1, 5)
    job._end_of_input = _no_flush  # type: ignore[method-assign]
    await job.run()
    assert out1.items and len(out1.items) < 7
    out2 = ListSink("out")
    await out2.open(None)
    out2.items[:0] = out1.items
    job2 = job_over(first, out2, len(first))
    await job2.run()
    ref_out = ListSink("out")
    ref = Pipeline("w", state_dir=tmp_path / "ref2", progress=False)
    (
        ref.source(IterableSource(first))
        .key_by("k")
        .window(
            TumblingWindows(10),
            timestamp=lambda e: e["ts"],
            init=lambda: 0,
            add=lambda a, e: a + e["v"],
            name="win",
        )
        .sink(ref_out)
    )
    await ref.run()
    assert out2.items == ref_out.items


async def _no_flush() -> None:
    return None


# ---- dead letters -------------------------------------------------------------------------


async def test_bad_input_goes_to_dead_letter_and_job_keeps_running(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "tx.jsonl"
    src.write_text(
        '{"tx_id": "T1", "user_id": "U1", "amount": 10.0}\n'
        '{"tx_id": "T2", "user_id": "U1", "amount": \n'  # malformed JSON
        '{"tx_id": "T3", "amount": 6000.0}\n'  # no key field
        '{"tx_id": "T4", "user_id": "U1", "amount": "lots"}\n'  # operator fails
        '{"tx_id": "T5", "user_id": "U1", "amount": 9000.0}\n'
    )
    dead_path = tmp_path / "dead.jsonl"
    alerts = ListSink("alerts")
    job = fd.build_job(
        JsonLinesSource(src),
        alerts,
        state_dir=tmp_path / "state",
        dead_letter=JsonLinesSink(dead_path, name="dead"),
        progress=False,
    )
    m = await job.run()
    assert [a["tx_id"] for a in alerts.items] == ["T5"]
    dead = [json.loads(x) for x in dead_path.read_text().splitlines()]
    assert m["dead_letters"] == 3 and len(dead) == 3
    reasons = sorted(d["reason"] for d in dead)
    assert any(r.startswith(f"{src} line 2: invalid JSON") for r in reasons)
    assert "missing key field 'user_id'" in reasons
    assert any("TypeError" in r for r in reasons)
    bad_record = next(d for d in dead if d["reason"] == "missing key field 'user_id'")
    assert bad_record["record"] == {"tx_id": "T3", "amount": 6000.0}


async def test_bad_input_without_dead_letter_sink_stops_with_clear_error(
    tmp_path: pathlib.Path,
) -> None:
    job = fd.build_job(
        IterableSource([{"tx_id": "T1", "amount": 1.0}]),
        ListSink(),
        state_dir=tmp_path / "state",
        progress=False,
    )
    with pytest.raises(PipelineError, match=r"missing key field 'user_id'.*dead_letter"):
        await job.run()


# ---- back-pressure ------------------------------------------------------------------------


class SlowSink(Sink):
    def __init__(self, produced: list[int]) -> None:
        self.name = "slow"
        self.produced = produced
        self.consumed = 0
        self.max_in_flight = 0

    async def open(self, position: Any) -> None:
        return None

    async def write(self, items: list[Any]) -> None:
        await asyncio.sleep(0.002)
        self.consumed += len(items)
        self.max_in_flight = max(self.max_in_flight, self.produced[0] - self.consumed)

    async def flush(self) -> Any:
        return self.consumed


async def test_backpressure_bounds_memory_under_a_slow_sink(tmp_path: pathlib.Path) -> None:
    produced = [0]
    total = 40_000

    def make(start: int, count: int) -> list[dict[str, Any]]:
        produced[0] = start + count
        return [{"k": str(i % 100), "i": i} for i in range(start, start + count)]

    sink = SlowSink(produced)
    job = Pipeline(
        "bp",
        state_dir=tmp_path / "s",
        batch_size=100,
        queue_batches=4,
        checkpoint_every=None,
        progress=False,
    )
    job.source(FunctionSource(make, total)).map(lambda e: e).sink(sink)
    await job.run()
    assert sink.consumed == total
    # In flight at most: the source queue, the batch being processed, the
    # sink queue and the batch being written (plus the one being read).
    bound = (4 + 1 + 4 + 1 + 1) * 100
    assert 0 < sink.max_in_flight <= bound, sink.max_in_flight


# ---- sources and sinks --------------------------------------------------------------------


async def run_collect(source: Any, tmp_path: pathlib.Path, **kw: Any) -> tuple[list[Any], ListSink]:
    out, dead = ListSink("out"), ListSink("dead")
    job = Pipeline("src", state_dir=tmp_path / "state", dead_letter=dead, progress=False, **kw)
    job.source(source).sink(out)
    await job.run()
    return out.items, dead


async def test_csv_source_types_and_bad_rows(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "t.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["user", "amount"], ["u1", "1.5"], ["u2", "x"], ["u3"], ["u4", "4"]])
    items, dead = await run_collect(CsvSource(p, types={"amount": float}), tmp_path)
    assert items == [{"user": "u1", "amount": 1.5}, {"user": "u4", "amount": 4.0}]
    reasons = [d["reason"] for d in dead.items]
    assert reasons[0].startswith(f"{p} line 3: column 'amount'")
    assert reasons[1] == f"{p} line 4: 1 fields, expected 2"


async def test_csv_source_unknown_typed_column(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"typed columns \['c'\]"):
        await CsvSource(p, types={"c": int}).open(None)


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
async def test_arrow_sources_read_and_resume(tmp_path: pathlib.Path, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"i": list(range(25_000)), "s": [f"v{i}" for i in range(25_000)]})
    path = tmp_path / f"t.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=4000)
        make: Any = ParquetSource
    else:
        with pa.ipc.new_file(path, table.schema) as w:
            for b in table.to_batches(max_chunksize=3000):
                w.write_batch(b)
        make = ArrowIpcSource
    src = make(path)
    await src.open(12_345)
    got = []
    while (b := await src.read(5000)) is not None:
        got.extend(e["i"] for e in b.events)
        last = b.offset
    assert got == list(range(12_345, 25_000)) and last == 25_000
    await src.close()
    with pytest.raises(SourceError, match="past the end"):
        await make(path).open(25_001)
    bad = tmp_path / "bad"
    bad.write_bytes(b"not arrow")
    with pytest.raises(SourceError, match="not readable"):
        await make(bad).open(None)


async def test_jsonl_source_resumes_at_its_offset(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(100)))
    src = JsonLinesSource(p)
    await src.open(None)
    b = await src.read(10)
    assert b is not None and [e["i"] for e in b.events][:3] == [0, 1, 2]
    offset = b.offset
    n = len(b.events)
    await src.close()
    src2 = JsonLinesSource(p)
    await src2.open(offset)
    b2 = await src2.read(1000)
    assert b2 is not None and b2.events[0]["i"] == n
    await src2.close()
    with pytest.raises(SourceError, match="past the end"):
        await JsonLinesSource(p).open([10**9, 0])
    with pytest.raises(SourceError, match="cannot open"):
        await JsonLinesSource(tmp_path / "missing.jsonl").open(None)


async def test_jsonl_source_accepts_and_rejects_exactly_what_json_loads_does(
    tmp_path: pathlib.Path,
) -> None:
    # The source parses lines with json's C scanner directly and falls back
    # to json.loads for anything unusual; the split must never change which
    # lines are events, which are errors, or what the events are.
    lines = [
        b'{"a": 1, "b": [1, 2.5, null, true], "c": {"d": "x\\u00e9"}}\n',
        b"\n",
        b"   \n",
        b'  {"indented": 1}\n',
        b'{"trailing": 1}   \n',
        b'{"crlf": 1}\r\n',
        b"1 2\n",
        b'{"ff": 1}\x0c\n',
        b'{"nbsp": 1}\xc2\xa0\n',
        b"\xef\xbb\xbf" + b'{"bom": 1}\n',
        b'{"bad utf8": "\xff"}\n',
        b'"a string"\n',
        b"NaN\n",
        b"-0.0\n",
        b"[1, 2\n",
        b"{}{}\n",
        b'{"dup": 1, "dup": 2}\n',
        b"12345678901234567890123\n",
        b'{"last": 1}\n',
    ]
    p = tmp_path / "edge.jsonl"
    p.write_bytes(b"".join(lines))
    want_events, want_errors = [], []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            want_events.append(json.loads(raw))
        except ValueError:
            want_errors.append(n)
    src = JsonLinesSource(p)
    await src.open(None)
    events, errors = [], []
    while (b := await src.read(4)) is not None and (b.events or b.errors):
        events += b.events
        errors += b.errors
    await src.close()
    # NaN != NaN, so compare the JSON texts.
    assert json.dumps(events) == json.dumps(want_events)
    assert [int(msg.split(" line ")[1].split(":")[0]) for _raw, msg in errors] == want_errors
    assert all("invalid JSON" in msg for _raw, msg in errors)


async def test_async_iterable_source(tmp_path: pathlib.Path) -> None:
    async def gen() -> Any:
        for i in range(50):
            if i % 10 == 0:
                await asyncio.sleep(0)
            yield {"i": i}

    items, _ = await run_collect(AsyncIterableSource(gen), tmp_path, batch_size=7)
    assert [e["i"] for e in items] == list(range(50))
    src = AsyncIterableSource(gen)
    await src.open(45)
    b = await src.read(100)
    assert b is not None and [e["i"] for e in b.events] == [45, 46, 47, 48, 49]


async def test_map_filter_flat_map_and_fan_out(tmp_path: pathlib.Path) -> None:
    evens, squares = ListSink("evens"), ListSink("squares")
    job = Pipeline("ops", state_dir=tmp_path / "s", progress=False)
    s = job.source(IterableSource(range(10))).filter(lambda x: x % 2 == 0)
    s.sink(evens)
    s.flat_map(lambda x: [x, x]).map(lambda x: x * x).sink(squares)
    await job.run()
    assert evens.items == [0, 2, 4, 6, 8]
    assert squares.items == [0, 0, 4, 4, 16, 16, 36, 36, 64, 64]


async def test_map_state_and_counter_state(tmp_path: pathlib.Path) -> None:
    out = ListSink("out")

    def seen(key: str, e: dict[str, Any], merchants: MapState[int], n: CounterState) -> Any:
        merchants.put(e["m"], (merchants.get(e["m"]) or 0) + 1)
        total = n.add()
        return [(key, total, sorted(merchants.items()))]

    job = Pipeline("ms", state_dir=tmp_path / "s", progress=False, checkpoint_every=2)
    (
        job.source(
            IterableSource(
                [
                    {"u": "x", "m": "a"},
                    {"u": "x", "m": "b"},
                    {"u": "y", "m": "a"},
                    {"u": "x", "m": "a"},
                ]
            )
        )
        .key_by("u")
        .process(seen, MapState("merchants"), CounterState("n"), name="p")
        .sink(out)
    )
    await job.run()
    assert out.items[-1] == ("x", 3, [("a", 2), ("b", 1)])
    await job.open_store()
    assert dict(await job.state_items("p", "n")) == {"x": 3, "y": 1}
    await job.close_store()


async def test_checkpoint_snapshot_is_taken_at_the_barrier() -> None:
    """Values mutated in place after the barrier are committed as they were
    at the barrier (copy-on-write before the first touch)."""
    import pickle

    h: ValueState[list[int]] = ValueState("v")
    h.bind("p:", str.encode, lambda k, v: pickle.dumps(v))
    for i in range(100):
        h.key = str(i)
        h.update([i])
    h.begin_checkpoint()
    assert h.encode_some(10) == 90
    for i in range(100):  # mutate every value in place, after the barrier
        h.key = str(i)
        lst = h.value()
        assert lst is not None
        lst.append(-1)
        h.update(lst)
    assert h.encode_some(1000) == 0
    puts, deletes = h.take_snapshot()
    assert deletes == []
    assert sorted(pickle.loads(v) for _, v in puts) == sorted([i] for i in range(100))
    assert h.dirty_keys == 100  # the in-place changes go into the next checkpoint


async def test_checkpoint_by_time(tmp_path: pathlib.Path) -> None:
    async def slow() -> Any:
        for i in range(12):
            await asyncio.sleep(0.02)
            yield {"k": "a", "i": i}

    job = Pipeline(
        "t",
        state_dir=tmp_path / "s",
        checkpoint_every=None,
        checkpoint_interval=0.05,
        batch_size=1,
        progress=False,
    )
    job.source(AsyncIterableSource(slow)).key_by("k").process(
        lambda k, e, c: c.add() and None, CounterState("c"), name="p"
    )
    m = await job.run()
    assert m["checkpoints"] >= 3  # by time during the run, plus the final one


async def test_redis_source_and_sink(tmp_path: pathlib.Path, redis_url: str) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url, decode_responses=True)
    stream = f"in-{tmp_path.name}"
    try:
        for i in range(30):
            await r.xadd(stream, {"e": json.dumps({"i": i, "k": f"k{i % 3}"})})
        out = RedisStreamSink(redis_url, f"out-{tmp_path.name}")
        dead = ListSink("dead")
        job = Pipeline(
            "rs", state_dir=tmp_path / "s", dead_letter=dead, progress=False, batch_size=8
        )
        (
            job.source(
                RedisStreamSource(
                    redis_url, stream, decode=lambda f: json.loads(f["e"]), idle_timeout=0.2
                )
            )
            .key_by("k")
            .process(lambda k, e, c: [{"k": k, "n": c.add()}], CounterState("c"), name="p")
            .sink(out)
        )
        await job.run()
        entries = await r.xrange(f"out-{tmp_path.name}")
        assert [int(f["n"]) for _, f in entries] == list(range(1, 31))
        assert json.loads(entries[-1][1]["data"]) == {"k": "k2", "n": 10}
        info = await r.xinfo_groups(stream)
        assert info[0]["pending"] == 0  # acknowledged after the checkpoint
        # The de-duplication: writing items 1..3 again from position 0 adds nothing.
        again = RedisStreamSink(redis_url, f"out-{tmp_path.name}")
        await again.open(0)
        await again.write([{"x": 1}, {"x": 2}, {"x": 3}])
        await again.close()
        assert await r.xlen(f"out-{tmp_path.name}") == 30
    finally:
        await r.aclose()


async def test_jsonl_sink_truncates_to_committed_position(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "o.jsonl"
    s = JsonLinesSink(p)
    await s.open(None)
    await s.write([{"a": 1}, {"a": 2}])
    pos = await s.flush()
    await s.write([{"a": 3}])
    await s.close()
    s2 = JsonLinesSink(p)
    await s2.open(pos)
    await s2.close()
    assert p.read_text() == '{"a":1}\n{"a":2}\n'
    with pytest.raises(SinkError, match="truncated or replaced"):
        await JsonLinesSink(p).open(pos + 100)


async def test_pipeline_configuration_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(PipelineError, match="exactly one of store"):
        Pipeline("x")
    with pytest.raises(PipelineError, match="checkpoint_every"):
        Pipeline("x", state_dir=tmp_path, checkpoint_every=0)
    job = Pipeline("x", state_dir=tmp_path / "s")
    job.source(IterableSource([1]))
    with pytest.raises(PipelineError, match="one source"):
        job.source(IterableSource([2]))
    job2 = Pipeline("y", state_dir=tmp_path / "s2")
    st = ValueState("v")
    k = job2.source(IterableSource([1])).key_by(lambda x: x)
    with pytest.raises(PipelineError, match="unique"):
        k.process(lambda *a: None, st, ValueState("v"))
    with pytest.raises(ValueError, match="window size"):
        TumblingWindows(0)
    with pytest.raises(ValueError, match="larger than size"):
        HoppingWindows(size=5, hop=10)
    cb: list[Any] = []
    job3 = Pipeline("z", state_dir=tmp_path / "s3", progress=False)
    job3.source(IterableSource([1, 2])).sink(CallbackSink(cb.append))
    await job3.run()
    assert cb == [1, 2]
    with pytest.raises(PipelineError, match="runs once"):
        await job3.run()


class FailingSource(FunctionSource):
    """Fails once it reaches event ``fail_at``."""

    def __init__(self, total: int, fail_at: int | None) -> None:
        super().__init__(
            lambda s, c: [{"k": "a", "i": i} for i in range(s, s + c)], total, name="failing"
        )
        self.fail_at = fail_at

    async def read(self, max_events: int) -> Any:
        b = await super().read(max_events)
        if b is not None and self.fail_at is not None and b.offset > self.fail_at:
            raise OSError("disk on fire")
        return b


async def test_source_failure_is_not_taken_for_the_end_of_input(tmp_path: pathlib.Path) -> None:
    def job_with(src: Any, out: Any) -> Pipeline:
        job = Pipeline(
            "f", state_dir=tmp_path / "s", batch_size=10, checkpoint_every=20, progress=False
        )
        job.source(src).key_by("k").process(
            lambda k, e, c: [(e["i"], c.add())], CounterState("c"), name="p"
        ).sink(out)
        return job

    out_path = tmp_path / "out.jsonl"
    with pytest.raises(OSError, match="disk on fire"):
        await job_with(FailingSource(100, 55), JsonLinesSink(out_path, name="out")).run()
    job = job_with(FailingSource(100, None), ListSink("x"))
    await job.open_store()
    meta = await job.last_checkpoint()
    await job.close_store()
    assert meta is not None and not meta["finished"] and meta["offset"] <= 55
    await job_with(FailingSource(100, None), JsonLinesSink(out_path, name="out")).run()
    rows = [json.loads(x) for x in out_path.read_text().splitlines()]
    assert rows == [[i, i + 1] for i in range(100)]  # each event counted once


class BrokenSink(Sink):
    name = "broken"

    async def open(self, position: Any) -> None:
        return None

    async def write(self, items: list[Any]) -> None:
        raise ConnectionError("sink went away")

    async def flush(self) -> Any:
        return 0


async def test_sink_failure_stops_the_job(tmp_path: pathlib.Path) -> None:
    job = Pipeline("b", state_dir=tmp_path / "s", batch_size=10, queue_batches=2, progress=False)
    job.source(IterableSource(range(1000))).sink(BrokenSink())
    with pytest.raises(ConnectionError, match="sink went away"):
        await asyncio.wait_for(job.run(), 30)


# ---- request_stop and commit_hook (what weir.cluster builds on) -----------------------------


async def test_request_stop_checkpoints_unfinished_and_a_rerun_resumes(
    tmp_path: pathlib.Path,
) -> None:
    total = 50_000
    events = [{"k": f"u{i % 37}", "v": 1} for i in range(total)]

    def count(key: str, e: dict[str, Any], n: ValueState[int]) -> Any:
        n.update((n.value() or 0) + 1)
        return None

    def build(sink: ListSink, hook: Any = None) -> Pipeline:
        job = Pipeline(
            "stop",
            state_dir=tmp_path / "s",
            checkpoint_every=None,
            batch_size=100,
            progress=False,
            commit_hook=hook,
        )
        job.source(FunctionSource(lambda s, c: events[s : s + c], total)).key_by("k").process(
            count, ValueState("n"), name="count"
        ).sink(sink)
        return job

    first = build(ListSink())

    async def stop_soon() -> None:
        while first.metrics()["events"] < 1000:
            await asyncio.sleep(0)
        first.request_stop()

    stopper = asyncio.create_task(stop_soon())
    m = await first.run()
    await stopper
    assert 1000 <= m["events"] < total
    await first.open_store()
    meta = await first.last_checkpoint()
    await first.close_store()
    assert meta is not None and meta["finished"] is False and meta["offset"] == m["events"]

    seen: list[dict[str, Any]] = []

    async def hook(puts: list[tuple[bytes, bytes]], deletes: list[bytes], meta: Any) -> None:
        seen.append(meta)
        assert puts and puts[-1][0].endswith(b"meta")

    second = build(ListSink(), hook)
    m2 = await second.run()
    assert m["events"] + m2["events"] == total
    assert seen and seen[-1]["finished"] is True and seen[-1]["events"] == total
    await second.open_store()
    counts = dict(await second.state_items("count", "n"))
    await second.close_store()
    assert sum(counts.values()) == total


async def test_a_failing_commit_hook_stops_the_run_without_a_checkpoint(
    tmp_path: pathlib.Path,
) -> None:
    async def refuse(puts: Any, deletes: Any, meta: Any) -> None:
        raise RuntimeError("lease lost")

    job = Pipeline("hook", state_dir=tmp_path / "s", progress=False, commit_hook=refuse)
    job.source(IterableSource([{"k": "a"}] * 10)).key_by("k").process(
        lambda k, e, n: n.update(1), ValueState("n"), name="p"
    ).sink(ListSink())
    with pytest.raises(RuntimeError, match="lease lost"):
        await job.run()
    await job.open_store()
    assert await job.last_checkpoint() is None
    await job.close_store()


async def test_state_written_with_the_old_pickle_default_still_opens(
    tmp_path: pathlib.Path,
) -> None:
    """Pipeline(state_dir=...) pickled its state before the one default
    codec (msgpack): a job stopped under the old format resumes under the
    new one, with every count carried over."""
    from weir.stores import StoreBackendConfig, create_backend

    events = [{"k": f"u{i % 5}", "v": i} for i in range(100)]

    def count(key: str, event: dict[str, Any], seen: ValueState[int]) -> list[Any]:
        n = (seen.value() or 0) + 1
        seen.update(n)
        return [(key, n)]

    state = tmp_path / "state"
    old_store = create_backend(StoreBackendConfig(path=state, options={"value_codec": "pickle"}))
    old = Pipeline("legacy", store=old_store, checkpoint_every=10, progress=False)
    (
        old.source(IterableSource(events[:50]))
        .key_by("k")
        .process(count, ValueState("seen"), name="count")
    )
    await old.run()
    old_store2 = create_backend(StoreBackendConfig(path=state, options={"value_codec": "pickle"}))
    await old_store2.start()
    meta = await old_store2.get("legacy:meta")
    await old_store2.stop()
    assert meta["offset"] == 50  # the old run's record, pickled

    out = ListSink("out")
    new = Pipeline("legacy", state_dir=state, checkpoint_every=10, progress=False)
    (
        new.source(IterableSource(events))
        .key_by("k")
        .process(count, ValueState("seen"), name="count")
        .sink(out)
    )
    await new.run()
    assert out.items == [(f"u{i % 5}", i // 5 + 1) for i in range(50, 100)]
    await new.open_store()
    try:
        assert await new.state_items("count", "seen") == [(f"u{i}", 20) for i in range(5)]
    finally:
        await new.close_store()
