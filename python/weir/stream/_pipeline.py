"""The pipeline: its topology (streams and operators) and its runtime.

The runtime moves micro-batches: a reader task fills a bounded queue from
the source, the main loop runs each batch through the operators with plain
synchronous Python (one ``await`` per stateful operator per batch, to
fetch state the cache lacks), and each sink drains a bounded queue of its
own in a task. A slow sink therefore fills its queue, which stops the main
loop, which stops taking from the source queue, which stops the reader:
memory stays bounded by the queue sizes.

Checkpoints (every ``checkpoint_every`` events and/or ``checkpoint_interval``
seconds) write, in one atomic store write, the dirty state, the source
offset, every sink's position and the operators' metadata (watermarks).
See :mod:`weir.stream._state` for how the state is snapshotted without
stopping the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ._state import ABSENT, StateHandle, ValueState
from .sinks import Sink
from .sources import Source, SourceBatch

__all__ = ["KeyedStream", "Pipeline", "PipelineError", "Stream"]

_META = "meta"

#: ``commit_hook(puts, deletes, meta)``: see :class:`Pipeline`.
CommitHook = Callable[[list[tuple[bytes, bytes]], list[bytes], dict[str, Any]], Awaitable[None]]


class PipelineError(Exception):
    """A pipeline is built or configured wrongly, or an operator failed with
    no dead-letter sink to take the record."""


class _DeadLetters:
    """Records that could not be processed, with why, for the current batch."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, stage: str, record: Any, reason: str) -> None:
        self.items.append({"stage": stage, "reason": reason, "record": record})


# ---- topology ---------------------------------------------------------------------------


class _Node:
    """One operator; ``run`` maps a batch to the batch its children get."""

    stateful = False

    def __init__(self, pipeline: Pipeline, label: str) -> None:
        self.pipeline = pipeline
        self.label = label
        self.children: list[_Node] = []
        self.sinks: list[_SinkRunner] = []

    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        return batch

    # stateful operators override these
    async def prefetch(self, batch: list[Any]) -> None:
        return None

    def handles(self) -> list[StateHandle]:
        return []

    def checkpoint_meta(self) -> Any:
        return None

    async def restore(self, meta: Any) -> None:
        return None


class _Map(_Node):
    def __init__(self, p: Pipeline, label: str, fn: Callable[[Any], Any], keyed: bool) -> None:
        super().__init__(p, label)
        self.fn = fn
        self.keyed = keyed

    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        fn = self.fn
        out: list[Any] = []
        append = out.append
        if self.keyed:
            for k, v in batch:
                try:
                    append((k, fn(v)))
                except Exception as e:
                    dead.add(self.label, v, f"{type(e).__name__}: {e}")
        else:
            for v in batch:
                try:
                    append(fn(v))
                except Exception as e:
                    dead.add(self.label, v, f"{type(e).__name__}: {e}")
        return out


class _Filter(_Map):
    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        fn = self.fn
        out: list[Any] = []
        append = out.append
        for rec in batch:
            try:
                if fn(rec[1] if self.keyed else rec):
                    append(rec)
            except Exception as e:
                dead.add(self.label, rec, f"{type(e).__name__}: {e}")
        return out


class _FlatMap(_Map):
    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        fn = self.fn
        out: list[Any] = []
        extend = out.extend
        for rec in batch:
            try:
                if self.keyed:
                    k = rec[0]
                    extend([(k, x) for x in fn(rec[1])])
                else:
                    extend(fn(rec))
            except Exception as e:
                dead.add(self.label, rec, f"{type(e).__name__}: {e}")
        return out


class _KeyBy(_Node):
    def __init__(self, p: Pipeline, label: str, key: str | Callable[[Any], Any]) -> None:
        super().__init__(p, label)
        self.key = key

    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        out: list[Any] = []
        append = out.append
        key = self.key
        if isinstance(key, str):
            for v in batch:
                try:
                    k = v[key]
                except (KeyError, TypeError, IndexError):
                    dead.add(self.label, v, f"missing key field {key!r}")
                    continue
                append((k if k.__class__ is str else str(k), v))
        else:
            for v in batch:
                try:
                    k = key(v)
                except Exception as e:
                    dead.add(self.label, v, f"key function failed: {type(e).__name__}: {e}")
                    continue
                append((k if k.__class__ is str else str(k), v))
        return out


class _Process(_Node):
    stateful = True

    def __init__(
        self, p: Pipeline, label: str, fn: Callable[..., Any], states: tuple[StateHandle, ...]
    ) -> None:
        super().__init__(p, label)
        self.fn = fn
        self.states = states

    def handles(self) -> list[StateHandle]:
        return list(self.states)

    async def prefetch(self, batch: list[Any]) -> None:
        if not batch:
            return
        keys = [k for k, _ in batch]
        for h in self.states:
            missing = h.missing(keys)
            if missing:
                await self.pipeline._load(h, missing)

    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        fn = self.fn
        states = self.states
        out: list[Any] = []
        extend = out.extend
        if len(states) == 1:
            (h,) = states
            for k, v in batch:
                h.key = k
                try:
                    r = fn(k, v, h)
                except Exception as e:
                    dead.add(self.label, v, f"{type(e).__name__}: {e}")
                    continue
                if r is not None:
                    extend(r)
        else:
            for k, v in batch:
                for h in states:
                    h.key = k
                try:
                    r = fn(k, v, *states)
                except Exception as e:
                    dead.add(self.label, v, f"{type(e).__name__}: {e}")
                    continue
                if r is not None:
                    extend(r)
        return out


class _Window(_Node):
    """Event-time windows per key, their accumulators in a ValueState.

    The watermark is the largest timestamp seen minus ``max_delay``. A
    window [start, end) fires (emits ``result``) when the watermark reaches
    ``end``; an event for it arriving later, but before ``end +
    allowed_lateness``, updates it and fires it again; at ``end +
    allowed_lateness`` its state is deleted; events after that are late and
    go to the dead-letter sink. Firing is checked after every event, so the
    output does not depend on how the input was batched (which exactly-once
    replay needs).
    """

    stateful = True

    def __init__(
        self,
        p: Pipeline,
        label: str,
        windows: Any,
        timestamp: Callable[[Any], float],
        init: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        result: Callable[[str, Any, Any, Any], Any],
        max_delay: float,
        allowed_lateness: float,
    ) -> None:
        super().__init__(p, label)
        self.windows = windows
        self.timestamp = timestamp
        self.init = init
        self.add = add
        self.result = result
        self.max_delay = max_delay
        self.lateness = allowed_lateness
        self.state: ValueState[Any] = ValueState("window")
        self.watermark = float("-inf")
        #: (time, 0 = fire / 1 = purge, start, key) of every open window
        self.deadlines: list[tuple[Any, int, Any, str]] = []

    def handles(self) -> list[StateHandle]:
        return [self.state]

    def checkpoint_meta(self) -> Any:
        return {"watermark": self.watermark}

    async def restore(self, meta: Any) -> None:
        if meta is not None:
            self.watermark = float(meta["watermark"])
        # Rebuild the deadlines of the windows the checkpoint left open.
        h = self.state
        items = await self.pipeline.store.items(h.prefix)
        plen = len(h.prefix)
        for sk, acc in items:
            wkey = sk[plen:]
            key, _, start_s = wkey.rpartition("@")
            start: Any = (
                float(start_s)
                if ("." in start_s or "e" in start_s or "n" in start_s)
                else int(start_s)
            )
            end = start + self.windows.size
            h._cache[wkey] = acc
            if end > self.watermark:
                self.deadlines.append((end, 0, start, key))
            self.deadlines.append((end + self.lateness, 1, start, key))
        heapq.heapify(self.deadlines)

    async def prefetch(self, batch: list[Any]) -> None:
        assign = self.windows.assign
        ts = self.timestamp
        wkeys: list[str] = []
        for k, v in batch:
            try:
                for start in assign(ts(v)):
                    wkeys.append(f"{k}@{start!r}")
            except Exception:
                continue  # reported by run()
        missing = self.state.missing(wkeys)
        if missing:
            await self.pipeline._load(self.state, missing)

    def _fire_due(self, out: list[Any]) -> None:
        dl = self.deadlines
        wm = self.watermark
        h = self.state
        size = self.windows.size
        while dl and dl[0][0] <= wm:
            _, kind, start, key = heapq.heappop(dl)
            h.key = f"{key}@{start!r}"
            acc = h.value()
            if acc is None:
                continue
            if kind == 0:
                out.append(self.result(key, start, start + size, acc))
            else:
                h.clear()

    def run(self, batch: list[Any], dead: _DeadLetters) -> list[Any]:
        out: list[Any] = []
        h = self.state
        assign = self.windows.assign
        size = self.windows.size
        lateness = self.lateness
        for k, v in batch:
            try:
                t = self.timestamp(v)
                starts = assign(t)
            except Exception as e:
                dead.add(self.label, v, f"bad timestamp: {type(e).__name__}: {e}")
                continue
            wm = self.watermark
            for start in starts:
                end = start + size
                if end + lateness <= wm:
                    dead.add(
                        self.label,
                        v,
                        f"late event: timestamp {t!r} is behind the watermark {wm!r} "
                        f"by more than the allowed lateness for window [{start!r}, {end!r})",
                    )
                    continue
                h.key = f"{k}@{start!r}"
                acc = h.value()
                if acc is None:
                    acc = self.init()
                    if end > wm:
                        heapq.heappush(self.deadlines, (end, 0, start, k))
                    heapq.heappush(self.deadlines, (end + lateness, 1, start, k))
                try:
                    acc = self.add(acc, v)
                except Exception as e:
                    dead.add(self.label, v, f"{type(e).__name__}: {e}")
                    continue
                h.update(acc)
                if end <= wm:
                    # A late event inside the allowed lateness: fire the update.
                    out.append(self.result(k, start, end, acc))
            nwm = t - self.max_delay
            if nwm > wm:
                self.watermark = nwm
                if self.deadlines and self.deadlines[0][0] <= nwm:
                    self._fire_due(out)
        return out

    def flush_all(self) -> list[Any]:
        """At the end of a finite input, the watermark goes to +infinity."""
        out: list[Any] = []
        self.watermark = float("inf")
        self._fire_due(out)
        return out


class Stream:
    """A stream of records; each method adds an operator and returns the
    stream of its output. Functions given to ``map``, ``filter``,
    ``flat_map`` and ``key_by`` must not keep state of their own (state
    belongs in a keyed operator's state handles, which checkpoints cover).
    A function that raises sends its record to the dead-letter sink."""

    _keyed = False

    def __init__(self, pipeline: Pipeline, node: _Node) -> None:
        self._pipeline = pipeline
        self._node = node

    def _then(self, node: _Node, keyed: bool) -> Stream:
        self._node.children.append(node)
        return KeyedStream(self._pipeline, node) if keyed else Stream(self._pipeline, node)

    def _label(self, kind: str, name: str | None) -> str:
        return name or f"{kind}#{self._pipeline._next_id()}"

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Each record becomes ``fn(record)``."""
        return self._then(
            _Map(self._pipeline, self._label("map", name), fn, self._keyed), self._keyed
        )

    def filter(self, fn: Callable[[Any], Any], *, name: str | None = None) -> Stream:
        """Keep the records for which ``fn(record)`` is true."""
        return self._then(
            _Filter(self._pipeline, self._label("filter", name), fn, self._keyed), self._keyed
        )

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None) -> Stream:
        """Each record becomes the records of ``fn(record)`` (zero or more)."""
        return self._then(
            _FlatMap(self._pipeline, self._label("flat_map", name), fn, self._keyed), self._keyed
        )

    def key_by(self, key: str | Callable[[Any], Any], *, name: str | None = None) -> KeyedStream:
        """Key each record by its field ``key`` (a str) or by ``key(record)``.
        Keys are strings (other values are converted with ``str``). A record
        without the field goes to the dead-letter sink."""
        node = _KeyBy(self._pipeline, self._label("key_by", name), key)
        self._node.children.append(node)
        return KeyedStream(self._pipeline, node)

    def sink(self, sink: Sink) -> Stream:
        """Send this stream's records to ``sink`` too; returns this stream."""
        self._node.sinks.append(self._pipeline._sink_runner(sink))
        return self


class KeyedStream(Stream):
    """A stream of ``(key, value)`` pairs: ``map``, ``filter`` and
    ``flat_map`` act on the value and keep the key; ``process`` and
    ``window`` keep state per key."""

    _keyed = True

    def process(
        self,
        fn: Callable[..., Iterable[Any] | None],
        *states: StateHandle,
        name: str | None = None,
    ) -> Stream:
        """A keyed stateful operator: ``fn(key, value, *states)`` is called per
        record with ``states`` set to the record's key; it returns the
        records to emit (an iterable) or None. State handles must have
        names unique within the operator."""
        label = name or f"process#{self._pipeline._next_id()}"
        names = [h.name for h in states]
        if len(set(names)) != len(names):
            raise PipelineError(f"{label}: state names must be unique, got {names}")
        for h in states:
            if not isinstance(h, StateHandle):
                raise PipelineError(f"{label}: {h!r} is not a state handle")
            if h.prefix:
                raise PipelineError(f"{label}: state {h.name!r} already belongs to an operator")
        node = _Process(self._pipeline, label, fn, tuple(states))
        self._pipeline._register_stateful(node)
        return self._then(node, False)

    def window(
        self,
        windows: Any,
        *,
        timestamp: Callable[[Any], float],
        init: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        result: Callable[[str, Any, Any, Any], Any] | None = None,
        max_delay: float = 0.0,
        allowed_lateness: float = 0.0,
        name: str | None = None,
    ) -> Stream:
        """Aggregate each key's records per event-time window (see
        :class:`~weir.stream.TumblingWindows`, :class:`~weir.stream.HoppingWindows`).

        ``timestamp(value)`` is the event time; ``init()`` a new accumulator;
        ``add(acc, value)`` the updated one (return a new object or the same
        one). When a window closes, ``result(key, start, end, acc)`` is
        emitted (default: a dict with those four fields, ``acc`` as
        ``"value"``). ``max_delay`` bounds how out of order events come;
        ``allowed_lateness`` keeps closed windows updatable that long.
        """
        if max_delay < 0 or allowed_lateness < 0:
            raise PipelineError("max_delay and allowed_lateness must be >= 0")
        label = name or f"window#{self._pipeline._next_id()}"
        node = _Window(
            self._pipeline,
            label,
            windows,
            timestamp,
            init,
            add,
            result or (lambda k, s, e, acc: {"key": k, "start": s, "end": e, "value": acc}),
            max_delay,
            allowed_lateness,
        )
        self._pipeline._register_stateful(node)
        return self._then(node, False)


# ---- runtime ----------------------------------------------------------------------------


class _SinkRunner:
    """A sink, its bounded queue and the task draining it."""

    def __init__(self, sink: Sink, queue_batches: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue(queue_batches)
        self.task: asyncio.Task[None] | None = None
        self.written = 0
        self.error: BaseException | None = None

    async def drain(self) -> None:
        q = self.queue
        while True:
            items = await q.get()
            try:
                if self.error is None:
                    await self.sink.write(items)
                    self.written += len(items)
            except Exception as e:
                # Keep draining (so the pipeline cannot block on a full
                # queue) but write nothing more; the main loop raises it.
                self.error = e
            finally:
                q.task_done()


class _Checkpoint:
    """A checkpoint between its barrier and its commit."""

    __slots__ = ("barrier_at", "handles", "meta", "pause", "pause_cpu", "started", "work")

    def __init__(self, meta: dict[str, Any], handles: list[StateHandle]) -> None:
        self.meta = meta
        self.handles = handles
        self.started = time.perf_counter()
        self.barrier_at = self.started
        #: the longest time the pipeline stood still for this checkpoint
        self.pause = 0.0
        #: the same in CPU time of the pipeline's thread (what the pause
        #: would be on an idle machine: wall time includes being preempted)
        self.pause_cpu = 0.0
        #: all the time the main loop spent on it (barrier and encoding slices)
        self.work = 0.0

    def stalled(self, seconds: float, cpu_seconds: float) -> None:
        self.work += seconds
        if seconds > self.pause:
            self.pause = seconds
        if cpu_seconds > self.pause_cpu:
            self.pause_cpu = cpu_seconds


class Pipeline:
    """A streaming job: one source, operators, sinks, keyed state in a store.

    ``store`` is a started-or-not :class:`weir.stores.StoreBackend`; with
    ``state_dir`` instead, the pipeline opens a weir store there (pickle
    values). ``name`` prefixes every key the job writes, so several jobs can
    share a store. Checkpoints come every ``checkpoint_every`` events and/or
    ``checkpoint_interval`` seconds, and at the end of the input.

    ``commit_hook(puts, deletes, meta)``, if given, is awaited inside every
    checkpoint commit with the encoded batch the store is about to write
    (the checkpoint record is its last put) and the checkpoint record; if it
    raises, the checkpoint is not written and the run stops with the error.
    :mod:`weir.cluster` uses it to append the batch to a fenced changelog.

    Build with :meth:`source`, then ``await run()`` (or :meth:`run_sync`);
    :meth:`request_stop` ends a run early at a checkpoint.
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
        self.name = name
        self._store_started_here = False
        if store is None:
            from ..stores import StoreBackendConfig, create_backend

            store = create_backend(
                StoreBackendConfig(path=os.fspath(state_dir), options={"value_codec": "pickle"})  # type: ignore[arg-type]
            )
        self.store: Any = store
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.batch_size = batch_size
        self.queue_batches = queue_batches
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.cache_limit = cache_limit
        self.slice_seconds = slice_seconds
        self.postpone_full_gc = postpone_full_gc
        self.commit_hook = commit_hook
        self._stop_requested = False
        self._runners: list[_SinkRunner] = []
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
        self._ckpt_work: list[float] = []
        self._ckpt_pauses_cpu: list[float] = []
        self._ckpt_keys: list[int] = []
        self._checkpoints = 0
        self._ckpt_durations: list[float] = []
        self._ckpt_pauses: list[float] = []
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

    def _sink_runner(self, sink: Sink) -> _SinkRunner:
        if not isinstance(sink, Sink):
            raise PipelineError(f"{sink!r} is not a weir.stream Sink")
        if any(r.sink.name == sink.name for r in self._runners):
            raise PipelineError(f"two sinks are named {sink.name!r}; give them distinct names")
        runner = _SinkRunner(sink, self.queue_batches)
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
        if not getattr(self.store, "started", False):
            await self.store.start()
            self._store_started_here = True

    async def close_store(self) -> None:
        """Stop the store if the pipeline started it (a store passed in
        already started is left running)."""
        if self._store_started_here and getattr(self.store, "started", False):
            await self.store.stop()
        self._store_started_here = False

    async def last_checkpoint(self) -> dict[str, Any] | None:
        """The committed checkpoint record (None before the first)."""
        meta: dict[str, Any] | None = await self.store.get(self._key(_META))
        return meta

    # ---- running ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask a running pipeline to stop after the batch in hand: it takes
        a checkpoint (not marked finished: open windows stay open in the
        state) and ``run`` returns. Used to hand a partition to another
        worker; a later run resumes where this one stopped."""
        self._stop_requested = True

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
        source = self._source
        runners = self._all_runners()
        reader: asyncio.Task[None] | None = None
        commit: asyncio.Task[None] | None = None
        # The cached state is many long-lived objects. Each full (oldest
        # generation) collection walks all of them at once, 50-80 ms at
        # 100,000 keys, in the middle of a batch; for the run, full
        # collections are left to its end (young ones go on as usual).
        gc_saved = gc.get_threshold()
        if self.postpone_full_gc:
            gc.set_threshold(gc_saved[0], gc_saved[1], 1 << 30)
        await self.open_store()
        try:
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
            pending: _Checkpoint | None = None
            since = 0
            last_ckpt_time = time.monotonic()
            stopped_early = False
            while True:
                if self._stop_requested:
                    stopped_early = True
                    break
                batch = await in_q.get()
                if batch is None:
                    if self._reader_error is not None:
                        raise self._reader_error
                    break
                self._check_sinks()
                if pending is not None:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    left = self._encode_slice(pending, all_of_it=False)
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
                self._encode_slice(pending, all_of_it=True)
                await self._commit(pending)
            elif commit is not None:
                await commit
        finally:
            gc.set_threshold(*gc_saved)
            self._closing = True
            if reader is not None:
                reader.cancel()
            if commit is not None and not commit.done():
                # A commit in flight is a whole checkpoint: let it land.
                with contextlib.suppress(Exception):
                    await commit
            for r in runners:
                if r.task is not None:
                    r.task.cancel()
            await asyncio.gather(
                *([reader] if reader else []),
                *(r.task for r in runners if r.task),
                return_exceptions=True,
            )
            with contextlib.suppress(Exception):
                await source.close()
            for r in runners:
                with contextlib.suppress(Exception):
                    await r.sink.close()
            if self.progress and self._started:
                self._show_progress(True)
            await self.close_store()
        return self.metrics()

    def _check_sinks(self) -> None:
        for r in self._runners:
            if r.error is not None:
                raise r.error

    def _all_runners(self) -> list[_SinkRunner]:
        return list(self._runners)

    def _encoders(self) -> tuple[Callable[[str], bytes], Callable[[str, Any], bytes]]:
        keys = getattr(self.store, "_keys", None)
        values = getattr(self.store, "_values", None)
        if keys is None or values is None:
            raise PipelineError(f"{type(self.store).__name__} is not a weir.stores backend")
        from ..stores._common import TextOrBytesKeys

        encode_key: Callable[[str], bytes] = keys.encode
        if type(keys.codec) is TextOrBytesKeys:
            # State keys are str: UTF-8 is the default codec's whole work.
            encode_key = str.encode
        encode: Callable[[str, Any], bytes] = values.codec.encode
        if getattr(values.codec, "name", None) == "pickle":
            import pickle

            def encode(
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
        pending: _Checkpoint | None,
        commit: asyncio.Task[None] | None,
        *,
        finished: bool,
    ) -> tuple[_Checkpoint | None, asyncio.Task[None] | None]:
        # One checkpoint at a time: finish the previous one first.
        t0, c0 = time.perf_counter(), time.thread_time()
        if pending is not None:
            self._encode_slice(pending, all_of_it=True)
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
        ckpt = _Checkpoint(meta, handles)
        ckpt.started = t0
        ckpt.stalled(time.perf_counter() - t0, time.thread_time() - c0)
        return ckpt, None

    def _encode_slice(self, ckpt: _Checkpoint, *, all_of_it: bool) -> int:
        deadline = time.perf_counter() + self.slice_seconds
        left = 0
        for h in ckpt.handles:
            while True:
                rem = h.encode_some(1_000_000_000 if all_of_it else 512)
                if not rem or (not all_of_it and time.perf_counter() >= deadline):
                    break
            left += rem
        return left

    async def _commit(self, ckpt: _Checkpoint) -> None:
        store = self.store
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        for h in ckpt.handles:
            p, d = h.take_snapshot()
            puts += p
            deletes += d
        self._ckpt_keys.append(len(puts) + len(deletes))
        meta_key = self._key(_META)
        puts.append((store._keys.encode(meta_key), store._values.encode_plain(meta_key, ckpt.meta)))
        if self.commit_hook is not None:
            await self.commit_hook(puts, deletes, ckpt.meta)
        locked_write = getattr(store, "_locked_write", None)
        if locked_write is not None and store._values.ttl_ms is None:
            # An embedded engine: one atomic write batch, in a thread so the
            # pipeline keeps running while the engine writes.
            await asyncio.get_running_loop().run_in_executor(None, locked_write, puts, deletes)
        else:
            # Any other backend: a transaction with writes only commits them
            # atomically (it has no reads to conflict).
            txn = await store.begin_transaction()
            txn.writes.update(puts)
            txn.writes.update(dict.fromkeys(deletes))
            await store.commit_transaction(txn)
        assert self._source is not None
        await self._source.committed(ckpt.meta["offset"])
        self._ckpt_durations.append(time.perf_counter() - ckpt.started)
        self._ckpt_pauses.append(ckpt.pause)
        self._ckpt_pauses_cpu.append(ckpt.pause_cpu)
        self._ckpt_work.append(ckpt.work)
        if self.cache_limit is not None:
            for h in ckpt.handles:
                h.evict_clean(self.cache_limit)
        for node in self._stateful:
            if isinstance(node, _Window):
                h = node.state
                cache = h._cache
                for k in [k for k, v in cache.items() if v is ABSENT and k not in h._dirty]:
                    del cache[k]

    # ---- observability ----------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Figures of the run so far: events, events/s, state size,
        checkpoint durations and pauses, lag."""
        elapsed = max(time.perf_counter() - self._started, 1e-9) if self._started else 0.0
        durs = sorted(self._ckpt_durations)
        pauses = sorted(self._ckpt_pauses)
        work = sorted(self._ckpt_work)
        pcpu = sorted(self._ckpt_pauses_cpu)
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
            "checkpoint_keys_max": max(self._ckpt_keys, default=0),
            "checkpoint_work_ms_median": 1000 * work[len(work) // 2] if work else 0.0,
            "lag": lag,
            "sinks": {r.sink.name: r.written for r in self._runners},
        }

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
