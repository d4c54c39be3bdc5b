"""The graph of a pipeline: streams and the operators they chain.

``Stream`` and ``KeyedStream`` are what user code builds a job with; each
method adds an operator node (``_Map``, ``_Filter``, ``_FlatMap``,
``_KeyBy``, ``_Process``, ``_Window``) whose ``run`` maps a micro-batch to
the batch its children get. The stateful ones also say which state
handles they own, what metadata a checkpoint keeps for them, and how to
restore it. Nothing here runs anything: :mod:`._runtime` does.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._state import StateHandle, ValueState
from .sinks import Sink

if TYPE_CHECKING:
    from ._runtime import Pipeline, SinkRunner

__all__ = ["KeyedStream", "PipelineError", "Stream"]


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


class _Node:
    """One operator; ``run`` maps a batch to the batch its children get."""

    stateful = False

    def __init__(self, pipeline: Pipeline, label: str) -> None:
        self.pipeline = pipeline
        self.label = label
        self.children: list[_Node] = []
        self.sinks: list[SinkRunner] = []

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
            h.preload(wkey, acc)
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
