"""Checkpoints: the barrier, the encoding spread over micro-batches, and
the one atomic store write that commits them.

At the barrier every sink is drained and flushed (its position recorded),
every stateful operator's handles freeze their dirty keys
(:meth:`StateHandle.begin_checkpoint`) and the checkpoint record is made:
id, source offset, sink positions, operator metadata (watermarks), event
count and whether the input is finished. The frozen values are then
encoded a slice at a time between micro-batches (so a checkpoint never
stops the pipeline for long), and the commit writes the state's puts and
deletes and the record in one :meth:`StoreBackend.apply
<weir.stores.StoreBackend.apply>`, in a worker thread on the embedded
backends, so the pipeline keeps running meanwhile. A restarted pipeline
resumes from the last record that landed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._state import StateHandle

if TYPE_CHECKING:
    from ..stores import StoreBackend
    from .sources import Source

__all__ = ["META", "Checkpoint", "CheckpointStats", "CommitHook", "commit", "encode_slice"]

#: The name (after the pipeline's) of the key holding the checkpoint record.
META = "meta"

#: ``commit_hook(puts, deletes, meta)``: see :class:`~weir.stream.Pipeline`.
CommitHook = Callable[[list[tuple[bytes, bytes]], list[bytes], dict[str, Any]], Awaitable[None]]


class Checkpoint:
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


class CheckpointStats:
    """Figures of the checkpoints of one run, for ``Pipeline.metrics``."""

    __slots__ = ("durations", "keys", "pauses", "pauses_cpu", "work")

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.pauses: list[float] = []
        self.pauses_cpu: list[float] = []
        self.work: list[float] = []
        self.keys: list[int] = []

    def record(self, ckpt: Checkpoint, keys: int) -> None:
        self.durations.append(time.perf_counter() - ckpt.started)
        self.pauses.append(ckpt.pause)
        self.pauses_cpu.append(ckpt.pause_cpu)
        self.work.append(ckpt.work)
        self.keys.append(keys)


def encode_slice(ckpt: Checkpoint, slice_seconds: float, *, all_of_it: bool) -> int:
    """Encode frozen state for about ``slice_seconds`` (or all of it);
    returns how many frozen keys are left."""
    deadline = time.perf_counter() + slice_seconds
    left = 0
    for h in ckpt.handles:
        while True:
            rem = h.encode_some(1_000_000_000 if all_of_it else 512)
            if not rem or (not all_of_it and time.perf_counter() >= deadline):
                break
        left += rem
    return left


async def commit(
    store: StoreBackend,
    meta_key: str,
    ckpt: Checkpoint,
    source: Source,
    commit_hook: CommitHook | None,
    stats: CheckpointStats,
) -> None:
    """Write a fully encoded checkpoint: its state and its record in one
    atomic store write (after ``commit_hook``, which may refuse it), then
    tell the source the offset is committed."""
    puts: list[tuple[bytes, bytes]] = []
    deletes: list[bytes] = []
    for h in ckpt.handles:
        p, d = h.take_snapshot()
        puts += p
        deletes += d
    keys = len(puts) + len(deletes)
    puts.append((store.encode_key(meta_key), store.encode_value(meta_key, ckpt.meta)))
    if commit_hook is not None:
        await commit_hook(puts, deletes, ckpt.meta)
    await store.apply(puts, deletes)
    await source.committed(ckpt.meta["offset"])
    stats.record(ckpt, keys)
