"""The runtime of a pipeline: it moves micro-batches through the graph.

A reader task fills a bounded queue from the source, the main loop runs
each batch through the operators with plain synchronous Python (one
``await`` per stateful operator per batch, to fetch state the cache
lacks), and each sink drains a bounded queue of its own in a task. A slow
sink therefore fills its queue, which stops the main loop, which stops
taking from the source queue, which stops the reader: memory stays bounded
by the queue sizes.

Checkpoints (every ``checkpoint_every`` events and/or
``checkpoint_interval`` seconds, and at the end of the input) are taken by
:mod:`._checkpoint`; see :mod:`._state` for how the state is snapshotted
without stopping the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ..codecs import DefaultValueCodec
from ..stores import StoreBackend, TextOrBytesKeys
from ._checkpoint import META, Checkpoint, CheckpointStats, CommitHook, encode_slice
from ._checkpoint import commit as commit_checkpoint
from ._graph import PipelineError, Stream, _DeadLetters, _Node, _Window
from ._state import StateHandle
from .sinks import Sink
from .sources import Source, SourceBatch
from .tasks import TaskTimeoutError, cancel_and_wait, finish_despite_cancel, wait_bounded

__all__ = ["Pipeline", "SinkRunner"]


class SinkRunner:
    """A sink, its bounded queue and the task draining it."""

    def __init__(self, sink: Sink, queue_batches: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue(queue_batches)
        self.task: asyncio.Task[None] | None = None
        self.written = 0
        self.error: BaseException | None = None
        #: set before the task is cancelled: a sink whose client swallowed
        #: the cancellation (see :mod:`weir.stream.tasks`) still stops
        self.closing = False

    async def drain(self) -> None:
        q = self.queue
        while not self.closing:
            items = await q.get()
            try:
                if self.error is None and not self.closing:
                    await self.sink.write(items)
                    self.written += len(items)
            except Exception as e:
                # Keep draining (so the pipeline cannot block on a full
                # queue) but write nothing more; the main loop raises it.
                self.error = e
            finally:
                q.task_done()


class Pipeline:
    """A streaming job: one source, operators, sinks, keyed state in a store.

    ``store`` is a started-or-not :class:`weir.stores.StoreBackend`; with
    ``state_dir`` instead, the pipeline opens a weir store there, with the
    default value codec (msgpack, :class:`weir.codecs.DefaultValueCodec`;
    it also reads the pickled state weir.stream kept there before).
    ``name`` prefixes every key the job writes, so several jobs can share a
    store. Checkpoints come every ``checkpoint_every`` events and/or
    ``checkpoint_interval`` seconds, and at the end of the input.

    ``stop_timeout`` bounds each wait of a run's ending (an in-flight
    commit, the source and sink tasks after they are cancelled): past it
    the run raises :class:`weir.stream.tasks.TaskTimeoutError` naming what
    it waited for instead of hanging. ``metrics_port`` serves the run's
    figures for Prometheus on that port (see :mod:`weir.stream.metrics`).

    ``commit_hook(puts, deletes, meta)``, if given, is awaited inside every
    checkpoint commit with the encoded batch the store is about to write
    (the checkpoint record is its last put) and the checkpoint record; if it
    raises, the checkpoint is not written and the run stops with the error.
    :mod:`weir.cluster` uses it to append the batch to a fenced changelog.

    Build with :meth:`source`, then ``await run()`` (or :meth:`run_sync`);
    :meth:`request_stop` ends a run early at a checkpoint, :meth:`cancel`
    at once without one.
    """

    def __init__(
        self,
        name: str = "job",
        *,
        store: Any = None,
        state_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = 100_000,
        checkpoint_interval: float | None = None,
        batch_size: int = 1024,
        queue_batches: int = 8,
        dead_letter: Sink | None = None,
        progress: bool | None = None,
        cache_limit: int | None = None,
        slice_seconds: float = 0.005,
        postpone_full_gc: bool = True,
        commit_hook: CommitHook | None = None,
        stop_timeout: float = 10.0,
        metrics_port: int | None = None,
        metrics_addr: str = "127.0.0.1",
    ) -> None:
        if not name or ":" in name:
            raise PipelineError(f"pipeline name must be non-empty without ':', not {name!r}")
        if (store is None) == (state_dir is None):
            raise PipelineError("give exactly one of store= (a weir.stores backend) or state_dir=")
        if checkpoint_every is not None and checkpoint_every <= 0:
            raise PipelineError(f"checkpoint_every must be positive, not {checkpoint_every}")
        if checkpoint_interval is not None and checkpoint_interval <= 0:
            raise PipelineError(f"checkpoint_interval must be positive, not {checkpoint_interval}")
        if batch_size <= 0 or queue_batches <= 0:
            raise PipelineError("batch_size and queue_batches must be positive")
        if not stop_timeout > 0:
            raise PipelineError(f"stop_timeout must be positive, not {stop_timeout}")
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise PipelineError(f"metrics_port must be 0..65535, not {metrics_port}")
        self.name = name
        self._store_started_here = False
        if store is None:
            from ..stores import StoreBackendConfig, create_backend

            store = create_backend(
                StoreBackendConfig(
                    path=os.fspath(state_dir),  # type: ignore[arg-type]
                    options={"value_codec": DefaultValueCodec(legacy="pickle")},
                )
            )
        if not isinstance(store, StoreBackend):
            raise PipelineError(f"{type(store).__name__} is not a weir.stores backend")
        self.store: StoreBackend = store
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.batch_size = batch_size
        self.queue_batches = queue_batches
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.cache_limit = cache_limit
        self.slice_seconds = slice_seconds
        self.postpone_full_gc = postpone_full_gc
        self.commit_hook = commit_hook
        self.stop_timeout = stop_timeout
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        self._stop_requested = False
        self._cancel_requested = False
        self._run_task: asyncio.Task[Any] | None = None
        self._exporter: Any = None
        self._runners: list[SinkRunner] = []
        self._dead_runner = self._sink_runner(dead_letter) if dead_letter is not None else None
        self._source: Source | None = None
        self._root: _Node | None = None
        self._stateful: list[_Node] = []
        self._ids = 0
        self._ran = False
        # metrics
        self._events = 0
        self._dead = 0
        self._started = 0.0
        self._started_cpu = 0.0
        self._checkpoints = 0
        self._ckpt_stats = CheckpointStats()
        self._last_progress = 0.0
        self._offset: Any = None
        self._restored_events = 0
        self._reader_error: BaseException | None = None
        self._closing = False

    # ---- building ---------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def source(self, source: Source) -> Stream:
        """The pipeline's input (one per pipeline)."""
        if self._source is not None:
            raise PipelineError(
                "a pipeline has one source; this one already has " + self._source.name
            )
        if not isinstance(source, Source):
            raise PipelineError(f"{source!r} is not a weir.stream Source")
        self._source = source
        self._root = _Node(self, source.name)
        return Stream(self, self._root)

    def _sink_runner(self, sink: Sink) -> SinkRunner:
        if not isinstance(sink, Sink):
            raise PipelineError(f"{sink!r} is not a weir.stream Sink")
        if any(r.sink.name == sink.name for r in self._runners):
            raise PipelineError(f"two sinks are named {sink.name!r}; give them distinct names")
        runner = SinkRunner(sink, self.queue_batches)
        self._runners.append(runner)
        return runner

    def _register_stateful(self, node: _Node) -> None:
        if any(n.label == node.label for n in self._stateful):
            raise PipelineError(f"two stateful operators are named {node.label!r}")
        self._stateful.append(node)

    # ---- store ------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.name, *parts))

    def state_prefix(self, operator: str, state: str) -> str:
        """The store key prefix of one state of one operator."""
        return self._key("s", operator, state, "")

    async def _load(self, h: StateHandle, keys: list[str]) -> None:
        prefix = h.prefix
        values = await self.store.batch_get([prefix + k for k in keys])
        h.fill(keys, values)

    async def state_items(self, operator: str, state: str) -> list[tuple[str, Any]]:
        """Every committed (key, value) of one state, sorted by key (the
        store must be started: use within ``run`` callbacks or after
        :meth:`open_store`)."""
        prefix = self.state_prefix(operator, state)
        items = await self.store.items(prefix)
        return sorted((k[len(prefix) :], v) for k, v in items)

    async def open_store(self) -> None:
        """Start the store if it is not started (also for inspection after
        a run); :meth:`close_store` then stops it."""
        if not self.store.started:
            await self.store.start()
            self._store_started_here = True

    async def close_store(self) -> None:
        """Stop the store if the pipeline started it (a store passed in
        already started is left running)."""
        if self._store_started_here and self.store.started:
            await self.store.stop()
        self._store_started_here = False

    async def last_checkpoint(self) -> dict[str, Any] | None:
        """The committed checkpoint record (None before the first)."""
        meta: dict[str, Any] | None = await self.store.get(self._key(META))
        return meta

    # ---- running ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask a running pipeline to stop after the batch in hand: it takes
        a checkpoint (not marked finished: open windows stay open in the
        state) and ``run`` returns. Used to hand a partition to another
        worker; a later run resumes where this one stopped."""
        self._stop_requested = True

    def cancel(self) -> None:
        """End a running pipeline at once, without a checkpoint (``run``
        raises :class:`asyncio.CancelledError`; the last committed
        checkpoint stands). Unlike a plain ``task.cancel()`` it cannot be
        lost to a client library that swallows cancellations: the main
        loop, the reader and the sinks also check a flag."""
        self._cancel_requested = True
        self._closing = True
        for r in self._runners:
            r.closing = True
        if self._run_task is not None and not self._run_task.done():
            self._run_task.cancel()

    def run_sync(self) -> dict[str, Any]:
        """``asyncio.run(self.run())``."""
        return asyncio.run(self.run())

    async def run(self) -> dict[str, Any]:
        """Run until the source ends (resuming from the last checkpoint, if
        any); returns :meth:`metrics`. A failing source, sink or store stops
        the run with its exception; the last committed checkpoint stands."""
        if self._source is None or self._root is None:
            raise PipelineError("the pipeline has no source")
        if self._ran:
            raise PipelineError("a pipeline runs once; build a new one to run again")
        self._ran = True
        self._run_task = asyncio.current_task()
        source = self._source
        runners = self._all_runners()
        reader: asyncio.Task[None] | None = None
        commit: asyncio.Task[None] | None = None
        exporter: Any = None
        # The cached state is many long-lived objects. Each full (oldest
        # generation) collection walks all of them at once, 50-80 ms at
        # 100,000 keys, in the middle of a batch; for the run, full
        # collections are left to its end (young ones go on as usual).
        gc_saved = gc.get_threshold()
        if self.postpone_full_gc:
            gc.set_threshold(gc_saved[0], gc_saved[1], 1 << 30)
        await self.open_store()
        try:
            if self.metrics_port is not None:
                from .metrics import MetricsServer

                exporter = MetricsServer(self.metrics_port, self.metrics_addr)
                exporter.add(self, {"pipeline": self.name})
                self._exporter = exporter
            encode_key, encode = self._encoders()
            for node in self._stateful:
                for h in node.handles():
                    h.bind(self.state_prefix(node.label, h.name), encode_key, encode)
            meta = await self.last_checkpoint()
            positions = (meta or {}).get("sinks", {})
            ops = (meta or {}).get("operators", {})
            self._checkpoints = int((meta or {}).get("id", 0))
            self._restored_events = int((meta or {}).get("events", 0))
            self._offset = (meta or {}).get("offset")
            for node in self._stateful:
                await node.restore(ops.get(node.label))
            await source.open(self._offset)
            for r in runners:
                await r.sink.open(positions.get(r.sink.name))
                r.task = asyncio.create_task(r.drain(), name=f"sink {r.sink.name}")
            in_q: asyncio.Queue[SourceBatch | None] = asyncio.Queue(self.queue_batches)
            reader = asyncio.create_task(self._read(source, in_q), name=f"source {source.name}")
            self._started = time.perf_counter()
            self._started_cpu = time.process_time()
            self._last_progress = 0.0
            pending: Checkpoint | None = None
            since = 0
            last_ckpt_time = time.monotonic()
            stopped_early = False
            while True:
                if self._cancel_requested:
                    raise asyncio.CancelledError
                if self._stop_requested:
                    stopped_early = True
                    break
                # Let the loop's other tasks run once per batch: a queue
                # that never runs empty would otherwise keep them (a
                # worker's lease renewals, other partitions) waiting.
                await asyncio.sleep(0)
                batch = await in_q.get()
                if batch is None:
                    if self._reader_error is not None:
                        raise self._reader_error
                    break
                self._check_sinks()
                if pending is not None:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    left = encode_slice(pending, self.slice_seconds, all_of_it=False)
                    pending.stalled(time.perf_counter() - t0, time.thread_time() - c0)
                    if not left:
                        commit = asyncio.create_task(self._commit(pending))
                        pending = None
                await self._process(batch)
                n = len(batch.events)
                since += n
                self._events += n
                if (self.checkpoint_every is not None and since >= self.checkpoint_every) or (
                    self.checkpoint_interval is not None
                    and time.monotonic() - last_ckpt_time >= self.checkpoint_interval
                ):
                    pending, commit = await self._barrier(pending, commit, finished=False)
                    since = 0
                    last_ckpt_time = time.monotonic()
                if self.progress:
                    self._show_progress(False)
            # End of input: close every window, then the final checkpoint.
            # A requested stop keeps the windows open (in the checkpoint).
            if not stopped_early:
                await self._end_of_input()
            pending, commit = await self._barrier(pending, commit, finished=not stopped_early)
            if pending is not None:
                encode_slice(pending, self.slice_seconds, all_of_it=True)
                await self._commit(pending)
            elif commit is not None:
                await commit
        finally:
            gc.set_threshold(*gc_saved)
            self._closing = True
            for r in runners:
                r.closing = True
            # The ending runs to its end even if this task is cancelled
            # (again) meanwhile; each of its waits is bounded.
            await finish_despite_cancel(
                self._close_run(source, runners, reader, commit, exporter),
                timeout=4 * self.stop_timeout + 5,
                what=f"pipeline {self.name}: ending the run",
            )
        return self.metrics()

    async def _close_run(
        self,
        source: Source,
        runners: list[SinkRunner],
        reader: asyncio.Task[None] | None,
        commit: asyncio.Task[None] | None,
        exporter: Any,
    ) -> None:
        bound = self.stop_timeout
        stuck: TaskTimeoutError | None = None
        if commit is not None:
            if not commit.done():
                # A commit in flight is a whole checkpoint: let it land.
                try:
                    await wait_bounded(
                        commit, timeout=bound, what=f"pipeline {self.name}: in-flight checkpoint"
                    )
                except TaskTimeoutError:
                    with contextlib.suppress(TaskTimeoutError):
                        await cancel_and_wait(commit, timeout=bound, what="checkpoint commit")
                except BaseException:
                    pass  # its error is the run's (raised at the barrier) or moot now
            if not commit.cancelled():
                commit.exception()  # never "Task exception was never retrieved"
        tasks = [t for t in [reader, *(r.task for r in runners)] if t is not None]
        try:
            await cancel_and_wait(
                tasks, timeout=bound, what=f"pipeline {self.name}: stopping its source and sinks"
            )
        except TaskTimeoutError as e:
            stuck = e
        with contextlib.suppress(Exception):
            await asyncio.wait_for(source.close(), bound)
        for r in runners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r.sink.close(), bound)
        if self.progress and self._started:
            self._show_progress(True)
        if exporter is not None:
            exporter.close()
            self._exporter = None
        await self.close_store()
        if stuck is not None:
            raise stuck

    def _check_sinks(self) -> None:
        for r in self._runners:
            if r.error is not None:
                raise r.error

    def _all_runners(self) -> list[SinkRunner]:
        return list(self._runners)

    def _encoders(self) -> tuple[Callable[[str], bytes], Callable[[str, Any], bytes]]:
        store = self.store
        encode_key: Callable[[str], bytes] = store.encode_key
        if type(store.key_codec) is TextOrBytesKeys:
            # State keys are str: UTF-8 is the default codec's whole work.
            encode_key = str.encode
        codec = store.value_codec

        def encode(key: str, value: Any, codec_encode: Any = codec.encode) -> bytes:
            # Codecs take (value, key); state handles give (key, value).
            return codec_encode(value, key)  # type: ignore[no-any-return]

        if getattr(codec, "name", None) == "pickle":
            import pickle

            def encode(  # type: ignore[misc]
                _key: str,
                value: Any,
                dumps: Any = pickle.dumps,
                proto: int = pickle.HIGHEST_PROTOCOL,
            ) -> bytes:
                return dumps(value, proto)  # type: ignore[no-any-return]

        return encode_key, encode

    async def _read(self, source: Source, q: asyncio.Queue[SourceBatch | None]) -> None:
        size = self.batch_size
        try:
            # The closing flag, not only cancellation, ends the loop: a
            # client library that swallows the CancelledError delivered in
            # the middle of its read (redis-py's cluster client can) would
            # otherwise leave this task blocked on a full queue forever.
            while not self._closing:
                batch = await source.read(size)
                if batch is None or self._closing:
                    break
                await q.put(batch)
        except Exception as e:
            # Handed to the main loop, which must not take this for the end
            # of the input (that would commit a "finished" checkpoint).
            self._reader_error = e
        finally:
            if self._closing:
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)
            else:
                await q.put(None)

    async def _process(self, batch: SourceBatch) -> None:
        dead = _DeadLetters()
        if batch.errors:
            label = self._source.name if self._source else "source"
            for raw, reason in batch.errors:
                dead.add(label, raw, reason)
        assert self._root is not None
        await self._run_node(self._root, batch.events, dead)
        if batch.offset is not None:
            self._offset = batch.offset
        if dead.items:
            self._dead += len(dead.items)
            if self._dead_runner is None:
                first = dead.items[0]
                raise PipelineError(
                    f"{first['stage']}: {first['reason']} (record {first['record']!r}); "
                    "give the pipeline a dead_letter= sink to keep running past bad records"
                )
            await self._dead_runner.queue.put(dead.items)

    async def _run_node(self, node: _Node, batch: list[Any], dead: _DeadLetters) -> None:
        if node.stateful:
            await node.prefetch(batch)
        out = node.run(batch, dead)
        if not out:
            return
        for r in node.sinks:
            await r.queue.put(out)
        for child in node.children:
            await self._run_node(child, out, dead)

    async def _end_of_input(self) -> None:
        dead = _DeadLetters()
        for node in self._stateful:
            if isinstance(node, _Window):
                out = node.flush_all()
                if out:
                    for r in node.sinks:
                        await r.queue.put(out)
                    for child in node.children:
                        await self._run_node(child, out, dead)
        if dead.items and self._dead_runner is not None:
            self._dead += len(dead.items)
            await self._dead_runner.queue.put(dead.items)

    # ---- checkpoints ------------------------------------------------------------------

    async def _barrier(
        self,
        pending: Checkpoint | None,
        commit: asyncio.Task[None] | None,
        *,
        finished: bool,
    ) -> tuple[Checkpoint | None, asyncio.Task[None] | None]:
        # One checkpoint at a time: finish the previous one first.
        t0, c0 = time.perf_counter(), time.thread_time()
        if pending is not None:
            encode_slice(pending, self.slice_seconds, all_of_it=True)
            if not finished:
                # Mid-run this holds up the next batch; at the end of the
                # input nothing is waiting, so it is no pause.
                pending.stalled(time.perf_counter() - t0, time.thread_time() - c0)
            await self._commit(pending)
            pending = None
        if commit is not None:
            await commit
            commit = None
        t0, c0 = time.perf_counter(), time.thread_time()
        positions: dict[str, Any] = {}
        for r in self._all_runners():
            await r.queue.join()
        self._check_sinks()
        for r in self._all_runners():
            positions[r.sink.name] = await r.sink.flush()
        handles = [h for node in self._stateful for h in node.handles()]
        for h in handles:
            h.begin_checkpoint()
        self._checkpoints += 1
        meta = {
            "id": self._checkpoints,
            "offset": self._offset,
            "sinks": positions,
            "operators": {n.label: n.checkpoint_meta() for n in self._stateful},
            "events": self._restored_events + self._events,
            "finished": finished,
        }
        ckpt = Checkpoint(meta, handles)
        ckpt.started = t0
        ckpt.stalled(time.perf_counter() - t0, time.thread_time() - c0)
        return ckpt, None

    async def _commit(self, ckpt: Checkpoint) -> None:
        assert self._source is not None
        await commit_checkpoint(
            self.store, self._key(META), ckpt, self._source, self.commit_hook, self._ckpt_stats
        )
        if self.cache_limit is not None:
            for h in ckpt.handles:
                h.evict_clean(self.cache_limit)
        for node in self._stateful:
            if isinstance(node, _Window):
                # Known-absent windows are not worth keeping once committed.
                node.state.forget_absent()

    # ---- observability ----------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Figures of the run so far: events, events/s, state size,
        checkpoint durations and pauses, lag."""
        elapsed = max(time.perf_counter() - self._started, 1e-9) if self._started else 0.0
        stats = self._ckpt_stats
        durs = sorted(stats.durations)
        pauses = sorted(stats.pauses)
        work = sorted(stats.work)
        pcpu = sorted(stats.pauses_cpu)
        cpu = time.process_time() - self._started_cpu if self._started else 0.0
        state_keys = sum(h.cached_keys for n in self._stateful for h in n.handles())
        lag = self._source.remaining() if self._source is not None else None
        return {
            "events": self._events,
            "events_total": self._restored_events + self._events,
            "seconds": elapsed,
            "events_per_s": self._events / elapsed if elapsed else 0.0,
            "cpu_seconds": cpu,
            "events_per_cpu_s": self._events / cpu if cpu > 0 else 0.0,
            "dead_letters": self._dead,
            "state_keys": state_keys,
            "checkpoints": len(durs),
            "checkpoint_id": self._checkpoints,
            "checkpoint_ms_median": 1000 * durs[len(durs) // 2] if durs else 0.0,
            "checkpoint_ms_max": 1000 * durs[-1] if durs else 0.0,
            "checkpoint_pause_ms_median": 1000 * pauses[len(pauses) // 2] if pauses else 0.0,
            "checkpoint_pause_ms_max": 1000 * pauses[-1] if pauses else 0.0,
            "checkpoint_pause_cpu_ms_median": 1000 * pcpu[len(pcpu) // 2] if pcpu else 0.0,
            "checkpoint_pause_cpu_ms_max": 1000 * pcpu[-1] if pcpu else 0.0,
            "checkpoint_keys_max": max(stats.keys, default=0),
            "checkpoint_work_ms_median": 1000 * work[len(work) // 2] if work else 0.0,
            "lag": lag,
            "sinks": {r.sink.name: r.written for r in self._runners},
        }

    @property
    def metrics_url(self) -> str | None:
        """Where the run's metrics are served (``metrics_port``), while it
        runs; None otherwise."""
        return None if self._exporter is None else str(self._exporter.url)

    def checkpoint_history(self) -> dict[str, list[float]]:
        """Every checkpoint of the run so far: ``durations`` (barrier to
        commit) and ``pauses`` (longest stand-still), in seconds."""
        stats = self._ckpt_stats
        return {"durations": list(stats.durations), "pauses": list(stats.pauses)}

    def _show_progress(self, final: bool) -> None:
        now = time.perf_counter()
        if not final and now - self._last_progress < 0.2:
            return
        self._last_progress = now
        m = self.metrics()
        done = m["events_total"]
        lag = m["lag"]
        if lag is not None and done + lag > 0:
            frac = done / (done + lag)
            bar = "#" * int(frac * 24)
            head = f"[{bar:<24}] {100 * frac:5.1f}% {done:,}/{done + lag:,}"
        else:
            head = f"{done:,} events"
        line = (
            f"\r{self.name}: {head} | {m['events_per_s']:,.0f} ev/s"
            f" | state {m['state_keys']:,} keys"
            f" | ckpt {m['checkpoint_id']} (pause {m['checkpoint_pause_ms_max']:.1f} ms max)"
        )
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()
