"""Exactly-once under kill -9: a weir.stream job (stream_worker.py) in a
subprocess is killed with SIGKILL at random points and restarted until it
finishes; its final state and its sink output must equal, byte for byte,
those of an uninterrupted run. Once with a JSON-lines file source and
file sinks, once with a Redis Stream source (consumer group) and Redis
Stream sinks."""

from __future__ import annotations

import json
import pathlib
import pickle
import random
import signal
import subprocess
import sys
import time
from typing import Any

WORKER = pathlib.Path(__file__).with_name("stream_worker.py")
N_EVENTS = 40_000
USERS = 300


def make_events(seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(N_EVENTS):
        # Timestamps advance with i but arrive up to 8 units out of order,
        # so some events are late (inside and beyond the allowed lateness).
        ts = i // 20 + rng.randint(-8, 0)
        out.append(
            {
                "i": i,
                "user": f"u{rng.randrange(USERS)}",
                "amount": rng.randint(1, 9999) / 100,
                "ts": ts,
            }
        )
    return out


def run_worker(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(WORKER), *args], env=env, check=True, timeout=120)


def kill_loop(args: list[str], env: dict[str, str], kills: int, rng: random.Random) -> int:
    """Start, kill at a random point, repeat; then run to the end. Returns
    how many kills landed on a running worker."""
    landed = 0
    while landed < kills:
        proc = subprocess.Popen([sys.executable, str(WORKER), *args], env=env)
        time.sleep(rng.uniform(0.35, 0.9))
        if proc.poll() is not None:
            assert proc.returncode == 0, f"worker failed with exit code {proc.returncode}"
            return landed  # it finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed += 1
    run_worker(args, env)
    return landed


async def state_dump(path: pathlib.Path) -> bytes:
    from weir.codecs import DefaultValueCodec
    from weir.stores import StoreBackendConfig, create_backend

    # What Pipeline(state_dir=...) opens: the default codec (msgpack).
    codec = DefaultValueCodec(legacy="pickle")
    store = create_backend(StoreBackendConfig(path=path, options={"value_codec": codec}))
    await store.start()
    try:
        items = sorted(await store.items("crashjob:s:"))
        meta = await store.get("crashjob:meta")
    finally:
        await store.stop()
    assert meta is not None and meta["finished"]
    return pickle.dumps(items, protocol=4)


async def test_exactly_once_under_kill_9_file_source(
    tmp_path: pathlib.Path, child_env: dict[str, str]
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in make_events()))
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    ref.mkdir()
    crashed.mkdir()
    base = ["--kind", "file", "--input", str(src)]
    run_worker([*base, "--dir", str(ref)], child_env)
    landed = kill_loop([*base, "--dir", str(crashed)], child_env, 5, random.Random(1))
    assert landed >= 3, f"only {landed} kills landed on a running worker"
    for name in ("out.jsonl", "windows.jsonl"):
        want = (ref / name).read_bytes()
        assert want.count(b"\n") > 100
        assert (crashed / name).read_bytes() == want, name
    assert await state_dump(crashed / "state") == await state_dump(ref / "state")


async def test_exactly_once_under_kill_9_redis_source(
    tmp_path: pathlib.Path, child_env: dict[str, str], redis_url: str
) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url, decode_responses=True)
    stream = f"events-{tmp_path.name}"
    try:
        pipe = r.pipeline(transaction=False)
        for e in make_events():
            pipe.xadd(stream, {"e": json.dumps(e)})
        await pipe.execute()
        ref, crashed = tmp_path / "ref", tmp_path / "crashed"
        ref.mkdir()
        crashed.mkdir()

        def args(d: pathlib.Path, tag: str) -> list[str]:
            return [
                "--kind",
                "redis",
                "--input",
                stream,
                "--redis-url",
                redis_url,
                "--dir",
                str(d),
                "--group",
                tag,
                "--output",
                f"{stream}-{tag}",
            ]

        run_worker(args(ref, "ref"), child_env)
        landed = kill_loop(args(crashed, "crashed"), child_env, 4, random.Random(2))
        assert landed >= 2, f"only {landed} kills landed on a running worker"
        for kind in ("out", "windows"):
            want = [(f["n"], f["data"]) for _, f in await r.xrange(f"{stream}-ref:{kind}")]
            got = [(f["n"], f["data"]) for _, f in await r.xrange(f"{stream}-crashed:{kind}")]
            assert len(want) > 100
            assert got == want, kind
        assert await state_dump(crashed / "state") == await state_dump(ref / "state")
        groups = {g["name"]: g for g in await r.xinfo_groups(stream)}
        assert groups["crashed"]["pending"] == 0
    finally:
        await r.aclose()
