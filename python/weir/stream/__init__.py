"""weir.stream: stateful stream processing with exactly-once checkpoints.

A small asyncio pipeline API in the spirit of Faust and Kafka Streams::

    from weir.stream import JsonLinesSink, JsonLinesSource, Pipeline, ValueState

    def count(key, event, seen):
        n = (seen.value() or 0) + 1
        seen.update(n)
        return [{"user": key, "count": n}] if n % 100 == 0 else None

    p = Pipeline("counts", state_dir="state/")
    (p.source(JsonLinesSource("events.jsonl"))
       .key_by("user_id")
       .process(count, ValueState("seen"))
       .sink(JsonLinesSink("out.jsonl")))
    p.run_sync()

State lives in a :mod:`weir.stores` backend (weir by default) and is cached
in the operator; a checkpoint writes the changed state, the source offset
and the sink positions in one atomic write, and a restarted job resumes from
the last one. See docs/STREAM.md.
"""

from __future__ import annotations

from ._graph import KeyedStream, PipelineError, Stream
from ._runtime import Pipeline
from ._state import CounterState, MapState, StateHandle, ValueState
from .sinks import CallbackSink, JsonLinesSink, ListSink, RedisStreamSink, Sink, SinkError
from .sources import (
    ArrowIpcSource,
    AsyncIterableSource,
    CsvSource,
    FunctionSource,
    IterableSource,
    JsonLinesSource,
    ParquetSource,
    RedisStreamSource,
    Source,
    SourceBatch,
    SourceError,
)
from .windows import HoppingWindows, TumblingWindows

__all__ = [
    "ArrowIpcSource",
    "AsyncIterableSource",
    "CallbackSink",
    "CounterState",
    "CsvSource",
    "FunctionSource",
    "HoppingWindows",
    "IterableSource",
    "JsonLinesSink",
    "JsonLinesSource",
    "KeyedStream",
    "ListSink",
    "MapState",
    "ParquetSource",
    "Pipeline",
    "PipelineError",
    "RedisStreamSink",
    "RedisStreamSource",
    "Sink",
    "SinkError",
    "Source",
    "SourceBatch",
    "SourceError",
    "StateHandle",
    "Stream",
    "TumblingWindows",
    "ValueState",
]
