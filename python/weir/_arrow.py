"""``DB.put_batch`` and ``DB.get_batch``: whole record batches as Arrow IPC;
and the progress bar ``DB.put_arrow(..., progress=True)`` draws.

The C extension's ``DB.put_batch`` / ``DB.get_batch`` call these. pyarrow
does the IPC encoding (the C code links no Arrow library); it is imported
only when one of them is first used.

A stored batch is one Arrow IPC *stream* (schema message, one record batch
message, end-of-stream marker), so any Arrow implementation reads it. On
the way back the value leaves the engine in one copy (into a ``bytes``);
``pyarrow.py_buffer`` wraps that without copying and the IPC reader slices
the batch's buffers out of it, so the batch's columns point into that one
buffer rather than being copied again.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ._weir import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa

    from ._weir import DB, Snapshot

__all__ = ["LoadProgressBar", "get_batch", "put_batch", "terminal_progress"]


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - pyarrow is a test dependency
        raise ImportError("DB.put_batch / DB.get_batch need pyarrow (pip install pyarrow)") from e
    return pyarrow


def _as_record_batch(pa: Any, batch: Any) -> pa.RecordBatch:
    if isinstance(batch, pa.RecordBatch):
        return batch
    if isinstance(batch, pa.Table):
        table = batch
    elif hasattr(batch, "__arrow_c_array__"):
        return pa.record_batch(batch)
    elif hasattr(batch, "__arrow_c_stream__"):
        table = pa.table(batch)
    else:
        raise TypeError(
            "put_batch needs a record batch (pyarrow.RecordBatch, or an object with "
            f"__arrow_c_array__ or __arrow_c_stream__), not {type(batch).__name__}"
        )
    # A table's chunks become one batch: the stored value is one record batch.
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def put_batch(db: DB, key: Any, batch: Any, *, sync: str | None = None) -> None:
    """Store ``batch`` (a record batch, or a table, combined into one) under ``key``."""
    pa = _pyarrow()
    rb = _as_record_batch(pa, batch)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rb.schema) as writer:
        writer.write_batch(rb)
    # A pyarrow Buffer exports the buffer protocol: put reads it in place.
    db.put(key, sink.getvalue(), sync=sync)  # type: ignore[arg-type]


def get_batch(db: DB, key: Any, *, snapshot: Snapshot | None = None) -> pa.RecordBatch | None:
    """The record batch stored under ``key`` by ``put_batch``, or None if absent."""
    raw = db.get(key, snapshot=snapshot)
    if raw is None:
        return None
    pa = _pyarrow()
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(raw))
        batch = reader.read_next_batch()
    except (pa.ArrowInvalid, StopIteration, OSError) as e:
        err = InvalidArgumentError(
            f"the value of key {bytes(key)!r} is not an Arrow IPC record batch "
            f"(was it stored with put_batch?): {e}"
        )
        err.status = "WEIR_INVALID"  # as the engine's own InvalidArgumentErrors carry
        raise err from None
    return batch


def _is_terminal(stream: Any) -> bool:
    """True if ``stream`` is an interactive terminal (not a file, a pipe, or
    TERM=dumb): only then is a redrawn progress line worth drawing."""
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LoadProgressBar:
    """The progress line of ``DB.put_arrow(..., progress=True)`` on ``stream``.

    It is a ``progress(stage, rows_done, rows_total)`` callback. "encode"
    and "write" redraw a bar (at most ten times a second, and always when a
    stage starts or reaches its total; a count alone when the total is not
    known): first the rows encoded, then the rows the engine has applied of
    the one atomic write. "done" prints the rows
    written and the time taken, then a newline. A bar's total stays fixed
    while it is drawn.
    """

    WIDTH = 30
    #: Seconds between redraws of the same stage's line.
    INTERVAL = 0.1

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_stage = ""

    def line(self, stage: str, rows_done: int, rows_total: int | None) -> str:
        """The text for one call (no control characters)."""
        if stage == "done":
            secs = time.monotonic() - self.start
            return f"put_arrow: {rows_done:,} rows written in {secs:.1f} s"
        verb = "written" if stage == "write" else "encoded"
        if rows_total is None:
            return f"put_arrow: {rows_done:,} rows {verb}"
        done = min(max(rows_done, 0), rows_total)
        frac = done / rows_total if rows_total else 1.0
        filled = int(frac * self.WIDTH)
        return (
            f"put_arrow: [{'#' * filled:<{self.WIDTH}}] {100 * frac:5.1f}% "
            f"{done:,}/{rows_total:,} rows {verb}"
        )

    def __call__(self, stage: str, rows_done: int, rows_total: int | None) -> None:
        now = time.monotonic()
        finished = rows_total is not None and rows_done >= rows_total
        if stage == self.last_stage and not finished and now - self.last_draw < self.INTERVAL:
            return
        self.last_draw = now
        self.last_stage = stage
        end = "\n" if stage == "done" else ""
        self.stream.write("\r" + self.line(stage, rows_done, rows_total) + "\x1b[K" + end)
        self.stream.flush()


def terminal_progress() -> LoadProgressBar | None:
    """What ``progress=True`` reports to: a bar on stderr when stderr is a
    terminal, else None (nothing is drawn into files, pipes or logs)."""
    return LoadProgressBar(sys.stderr) if _is_terminal(sys.stderr) else None
