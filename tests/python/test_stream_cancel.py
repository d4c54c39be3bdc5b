"""Cancellation that cannot be lost, bounded waits, a loop that other
tasks get a turn in, and the metrics endpoint of weir.stream.

The first test shows the problem with the real client and server: redis-py
(on Python 3.11) swallows a cancellation that arrives while a command's
reply does, so a task that loops over Redis commands can ignore a plain
``task.cancel()`` forever. The others check that weir.stream's own tasks
end anyway, within a bound, and say where they are stuck when they do not.
"""

from __future__ import annotations

import asyncio
import gc
import pathlib
import sys
import time
import urllib.request
from typing import Any

import pytest

from weir.stream import (
    AsyncIterableSource,
    CounterState,
    IterableSource,
    ListSink,
    Pipeline,
    RedisStreamSink,
)
from weir.stream.tasks import TaskTimeoutError, cancel_and_wait, wait_bounded


class _Flag:
    closing = False


async def _redis_loop(client: Any, key: str, flag: _Flag) -> None:
    while not flag.closing:
        await client.set(key, "v" * 100)


async def test_redis_py_swallows_cancellations_so_loops_also_check_a_flag(
    redis_url: str,
) -> None:
    import redis
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    lost = lost_again = 0
    tries = 15
    try:
        for i in range(tries):
            flag = _Flag()
            task = asyncio.create_task(_redis_loop(client, f"swallow-{i}", flag))
            await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.wait({task}, timeout=0.3)
            if task.done():
                continue
            lost += 1
            # Cancelling again does not help a loop that only awaits Redis:
            # each new cancellation lands in a command and is lost too.
            try:
                await cancel_and_wait(task, timeout=0.5, what="a loop of SETs")
            except TaskTimeoutError:
                lost_again += 1
            # The flag does: the loop ends at its next turn.
            flag.closing = True
            await cancel_and_wait(task, timeout=5, what="a loop of SETs with its flag set")
            assert task.done()
    finally:
        await client.aclose()
    print(
        f"redis-py {redis.__version__}: {lost} of {tries} cancellations lost; "
        f"{lost_again} of those tasks still running after 0.5 s of cancelling every 0.1 s",
        file=sys.stderr,
    )
    if sys.version_info < (3, 12):
        # Python 3.11's asyncio.wait_for returns the reply and drops the
        # cancellation; seen 38 of 50 and 41-49 of 50 on this machine.
        assert lost > 0, "redis-py lost no cancellation: the workaround's reason is gone"


async def test_a_stuck_task_is_named_with_where_it_waits() -> None:
    stop = False

    async def stubborn() -> None:
        while not stop:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # swallows every cancellation

    task = asyncio.create_task(stubborn(), name="stubborn one")
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError, match=r"shutting down: .*'stubborn one' at .*stubborn"):
        await cancel_and_wait(task, timeout=0.5, what="shutting down")
    assert time.monotonic() - started < 3
    with pytest.raises(TaskTimeoutError, match=r"waiting for it: not done after 0.2 s"):
        await wait_bounded(task, timeout=0.2, what="waiting for it")
    stop = True
    await cancel_and_wait(task, timeout=2, what="the end of the test")


async def test_cancelling_a_run_that_writes_to_redis_always_returns(
    tmp_path: pathlib.Path, redis_url: str
) -> None:
    # Seen before: cancelling Pipeline.run() while a RedisStreamSink was
    # writing made run() never return (3 times of 3): the sink task had
    # swallowed its cancellation and sat at its queue.
    for attempt in range(3):
        out = RedisStreamSink(redis_url, f"cancel-{tmp_path.name}-{attempt}")
        p = Pipeline("cancel", state_dir=tmp_path / f"s{attempt}", progress=False, batch_size=64)
        events = ({"k": f"k{i % 50}", "i": i} for i in range(10_000_000))
        (
            p.source(IterableSource(events))
            .key_by("k")
            .process(lambda k, e, c: [{"k": k, "n": c.add()}], CounterState("c"), name="p")
            .sink(out)
        )
        run = asyncio.create_task(p.run())
        await asyncio.sleep(0.5)
        run.cancel()
        done, _ = await asyncio.wait({run}, timeout=20)
        assert done, f"attempt {attempt}: run() did not return 20 s after cancel()"
        assert run.cancelled() or isinstance(run.exception(), asyncio.CancelledError)


async def test_pipeline_cancel_stops_at_once_without_a_checkpoint(tmp_path: pathlib.Path) -> None:
    out = ListSink("out")
    p = Pipeline("pc", state_dir=tmp_path / "s", progress=False, checkpoint_every=1_000_000)

    async def slow() -> Any:
        for i in range(1_000_000):
            yield {"k": "a", "i": i}
            await asyncio.sleep(0)

    p.source(AsyncIterableSource(slow)).key_by("k").process(
        lambda k, e, c: [c.add()], CounterState("c"), name="p"
    ).sink(out)
    run = asyncio.create_task(p.run())
    await asyncio.sleep(0.3)
    p.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 10)
    await p.open_store()
    try:
        assert await p.last_checkpoint() is None
    finally:
        await p.close_store()


async def test_a_failed_background_commit_is_never_an_unretrieved_exception(
    tmp_path: pathlib.Path,
) -> None:
    # A fenced commit (weir.cluster) fails in the background commit task;
    # the run is then cancelled before the next barrier looks at it. That
    # left "Task exception was never retrieved" tracebacks in worker logs.
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(str(ctx.get("message"))))
    hook_failed = asyncio.Event()

    async def hook(puts: Any, deletes: Any, meta: Any) -> None:
        hook_failed.set()
        raise RuntimeError("WEIRFENCED checkpoint refused (test)")

    async def slow() -> Any:
        for i in range(1_000_000):
            yield {"k": f"k{i % 7}", "i": i}
            if i % 10 == 0:
                await asyncio.sleep(0.01)  # the next barrier is 0.2 s away

    try:
        p = Pipeline(
            "bg", state_dir=tmp_path / "s", progress=False, checkpoint_every=200, commit_hook=hook
        )
        p.source(AsyncIterableSource(slow)).key_by("k").process(
            lambda k, e, c: [c.add()], CounterState("c"), name="p"
        ).sink(ListSink("o"))
        run = asyncio.create_task(p.run())
        await asyncio.wait_for(hook_failed.wait(), 10)
        await asyncio.sleep(0.02)
        if not run.done():
            run.cancel()
        await asyncio.wait({run}, timeout=10)
        assert run.done()
        if not run.cancelled():
            run.exception()
        del run, p
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not [m for m in seen if "never retrieved" in m], seen


async def test_metrics_endpoint_serves_a_running_pipeline(tmp_path: pathlib.Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    scraped: dict[str, Any] = {}
    release = asyncio.Event()

    async def events() -> Any:
        for i in range(5000):
            yield {"k": f"u{i % 40}", "i": i}
        await release.wait()  # hold the run open while it is scraped

    p = Pipeline(
        "prom",
        state_dir=tmp_path / "s",
        progress=False,
        checkpoint_every=1000,
        batch_size=500,
        metrics_port=0,
    )
    p.source(AsyncIterableSource(events)).key_by("k").process(
        lambda k, e, c: [c.add()], CounterState("c"), name="p"
    ).sink(ListSink("o"))
    run = asyncio.create_task(p.run())
    # The port is chosen by the OS; wait for the server and the events.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        url = p.metrics_url
        if url is not None and p.metrics()["events"] == 5000 and p.metrics()["checkpoints"]:
            break
    assert url is not None, "no metrics server"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=10) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    # A second run on the same port: a clear error, the first one untouched.
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    other = Pipeline("prom2", state_dir=tmp_path / "s2", progress=False, metrics_port=port)
    other.source(IterableSource([{"k": 1}])).sink(ListSink("o"))
    with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        await other.run()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            scraped[s.name + str(sorted(s.labels.items()))] = s.value
    release.set()
    await asyncio.wait_for(run, 20)
    lab = "[('pipeline', 'prom')]"
    assert scraped["weir_stream_events_total" + lab] == 5000
    # (the fifth checkpoint's commit waits for a batch that never comes)
    assert scraped["weir_stream_checkpoints_total" + lab] >= 4
    assert scraped["weir_stream_state_keys" + lab] == 40
    assert scraped["weir_stream_checkpoint_duration_seconds_count" + lab] >= 4
    assert "weir_stream_checkpoint_pause_seconds_bucket[('le', '+Inf'), ('pipeline', 'prom')]" in (
        scraped
    )
    assert scraped["weir_stream_sink_items_total[('pipeline', 'prom'), ('sink', 'o')]"] == 5000
    assert scraped["weir_store_keys" + lab] >= 40
    assert scraped["weir_store_engine_writes_total" + lab] >= 1
    assert "weir_store_level_files[('level', '0'), ('pipeline', 'prom')]" in scraped
    # The endpoint goes away with the run.
    with pytest.raises(OSError):
        await asyncio.to_thread(scrape)
