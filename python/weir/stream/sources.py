"""Sources: where a pipeline's events come from, each with a resumable offset.

A source hands the runtime micro-batches (:class:`SourceBatch`): the events,
the offset just after the last of them, and the records it could not parse
(which go to the dead-letter sink with the reason). The runtime stores the
offset of the last batch processed in each checkpoint and, on restart,
opens the source at it, so every event is processed exactly once into the
checkpointed state.

Offsets are JSON-able values the source defines: an event count for
iterables, a byte position for JSON lines, a row number for CSV, Parquet
and Arrow IPC files, an entry id for Redis Streams.
"""

from __future__ import annotations

import abc
import asyncio
import csv
import io
import json
import json.scanner
import os
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

__all__ = [
    "ArrowIpcSource",
    "AsyncIterableSource",
    "CsvSource",
    "FunctionSource",
    "IterableSource",
    "JsonLinesSource",
    "ParquetSource",
    "RedisStreamSource",
    "Source",
    "SourceBatch",
    "SourceError",
]


class SourceError(Exception):
    """A source cannot be read or resumed (missing file, offset past its end...)."""


@dataclass
class SourceBatch:
    """Events read in one go, the offset after them, and unparseable records
    as ``(raw record, reason)`` pairs."""

    events: list[Any]
    offset: Any
    errors: list[tuple[Any, str]] = field(default_factory=list)


class Source(abc.ABC):
    """Base class of sources. Subclasses implement :meth:`open`,
    :meth:`read` and optionally :meth:`committed` and :meth:`close`."""

    #: identifies the source's offset in checkpoints; unique per pipeline
    name: str = "source"

    @abc.abstractmethod
    async def open(self, offset: Any | None) -> None:
        """Position at ``offset`` (None: the beginning)."""

    @abc.abstractmethod
    async def read(self, max_events: int) -> SourceBatch | None:
        """Up to ``max_events`` events; an empty batch if none are ready yet;
        None at the end of the input."""

    async def committed(self, offset: Any) -> None:  # noqa: B027 - optional hook
        """A checkpoint holding ``offset`` is durable (Redis acks here)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""

    def remaining(self) -> int | None:
        """Events known to be left (the lag), if the source can tell."""
        return None


def _check_count_offset(offset: Any, what: str) -> int:
    if offset is None:
        return 0
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise SourceError(f"{what}: offset must be a non-negative int, not {offset!r}")
    return offset


class IterableSource(Source):
    """Events from a Python iterable, or from a function returning a fresh
    iterable (needed to resume: the events before the offset are skipped,
    so the iterable must yield the same events each time)."""

    def __init__(
        self, events: Iterable[Any] | Callable[[], Iterable[Any]], *, name: str = "iterable"
    ) -> None:
        self.name = name
        self._events = events
        self._it: Iterator[Any] | None = None
        self._pos = 0
        self._len = len(events) if isinstance(events, Sequence) else None

    async def open(self, offset: Any | None) -> None:
        start = _check_count_offset(offset, self.name)
        events = self._events() if callable(self._events) else self._events
        self._it = iter(events)
        if start:
            skipped = sum(1 for _ in islice(self._it, start))
            if skipped < start:
                raise SourceError(
                    f"{self.name}: checkpoint offset {start} is past the end ({skipped} events)"
                )
        self._pos = start

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._it is None:
            raise SourceError(f"{self.name}: read before open")
        events = list(islice(self._it, max_events))
        if not events:
            return None
        self._pos += len(events)
        return SourceBatch(events, self._pos)

    def remaining(self) -> int | None:
        return None if self._len is None else self._len - self._pos


class FunctionSource(Source):
    """``total`` events made by ``make(start, count) -> list`` (which must
    return the same events for the same range): a generated stream that can
    resume anywhere without replaying the prefix."""

    def __init__(
        self, make: Callable[[int, int], list[Any]], total: int, *, name: str = "generated"
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, not {total}")
        self.name = name
        self._make = make
        self._total = total
        self._pos = 0

    async def open(self, offset: Any | None) -> None:
        start = _check_count_offset(offset, self.name)
        if start > self._total:
            raise SourceError(f"{self.name}: offset {start} is past the end ({self._total})")
        self._pos = start

    async def read(self, max_events: int) -> SourceBatch | None:
        n = min(max_events, self._total - self._pos)
        if n <= 0:
            return None
        events = self._make(self._pos, n)
        self._pos += n
        return SourceBatch(events, self._pos)

    def remaining(self) -> int | None:
        return self._total - self._pos


class AsyncIterableSource(Source):
    """Events from an async iterable, or a function returning a fresh one
    (resuming skips the events before the offset)."""

    def __init__(
        self,
        events: AsyncIterable[Any] | Callable[[], AsyncIterable[Any]],
        *,
        name: str = "async-iterable",
    ) -> None:
        self.name = name
        self._events = events
        self._it: Any = None
        self._pos = 0

    async def open(self, offset: Any | None) -> None:
        start = _check_count_offset(offset, self.name)
        events = self._events() if callable(self._events) else self._events
        self._it = aiter(events)
        for i in range(start):
            try:
                await anext(self._it)
            except StopAsyncIteration:
                raise SourceError(
                    f"{self.name}: checkpoint offset {start} is past the end ({i} events)"
                ) from None
        self._pos = start

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._it is None:
            raise SourceError(f"{self.name}: read before open")
        events: list[Any] = []
        try:
            events.append(await anext(self._it))
            # Take what is ready without waiting for a full batch.
            while len(events) < max_events:
                task = asyncio.ensure_future(anext(self._it))
                if not task.done():
                    await asyncio.sleep(0)
                if not task.done():
                    # Not ready: wait for this one, then hand over the batch.
                    events.append(await task)
                    break
                events.append(task.result())
        except StopAsyncIteration:
            if not events:
                return None
        self._pos += len(events)
        return SourceBatch(events, self._pos)


#: The C scanner behind json.loads, with json.loads's default settings:
#: scan(text, index) -> (value, end), StopIteration when no value starts at
#: index. Calling it directly skips json.loads's per-call Python layers.
#: (typeshed types make_scanner's argument as a scanner; it takes the
#: decoder whose settings it copies, as json.decoder itself passes.)
_scan_json_value = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _scan_json_line(raw: bytes) -> Any:
    """A line that is one JSON value followed only by its line end, read by
    json's scanner (the path without msgspec); ValueError or StopIteration
    for anything else."""
    text = raw.decode()
    value, end = _scan_json_value(text, 0)
    if end == len(text) or text[end:] in ("\n", "\r\n"):
        return value
    raise ValueError("not one JSON value alone on its line")


try:
    import msgspec
except ImportError:  # tests/python/test_codecs_libraries.py runs this path
    _decode_json_line: Any = _scan_json_line
else:
    # msgspec reads a line (JSON whitespace around the value allowed) to the
    # value json.loads gives, about 3x faster; what it refuses (NaN, a BOM,
    # blank lines, invalid JSON...) goes to json.loads, as below.
    _decode_json_line = msgspec.json.Decoder().decode


class JsonLinesSource(Source):
    """One JSON value per line; the offset is the byte position of the next
    line. A line that is not valid JSON goes to the dead-letter sink with
    its line number. Blank lines are skipped."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = os.fspath(path)
        self.name = name or f"jsonl:{os.path.basename(self.path)}"
        self._f: io.BufferedReader | None = None
        self._line = 0
        self._size = 0

    async def open(self, offset: Any | None) -> None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise SourceError(f"{self.name}: cannot open {self.path}: {e}") from e
        self._size = os.fstat(f.fileno()).st_size
        pos, line = 0, 0
        if offset is not None:
            if not (isinstance(offset, list) and len(offset) == 2):
                f.close()
                raise SourceError(f"{self.name}: bad offset {offset!r}")
            pos, line = int(offset[0]), int(offset[1])
            if pos > self._size:
                f.close()
                raise SourceError(
                    f"{self.name}: checkpoint offset {pos} is past the end of {self.path} "
                    f"({self._size} bytes); was the file replaced?"
                )
        f.seek(pos)
        self._f = f
        self._line = line

    async def read(self, max_events: int) -> SourceBatch | None:
        f = self._f
        if f is None:
            raise SourceError(f"{self.name}: read before open")
        lines = f.readlines(max_events * 64) if max_events > 1 else [f.readline()]
        if not lines or lines == [b""]:
            return None
        if not lines[-1].endswith(b"\n"):
            # A partial last line (a writer is still appending): leave it.
            tail = lines.pop()
            f.seek(-len(tail), io.SEEK_CUR)
            if not lines:
                return SourceBatch([], [f.tell(), self._line])
        events: list[Any] = []
        errors: list[tuple[Any, str]] = []
        append = events.append
        decode = _decode_json_line
        n = self._line
        for raw in lines:
            n += 1
            # Fast path: msgspec (or json's scanner without it) reads a line
            # that holds one JSON value. Anything else (blank lines, a BOM,
            # NaN, bad UTF-8, extra data, invalid JSON) goes to json.loads,
            # which decides exactly as it always has and words the error.
            try:
                append(decode(raw))
                continue
            except (ValueError, StopIteration, RecursionError):
                pass
            if not raw.strip():
                continue
            try:
                append(json.loads(raw))
            except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
                errors.append(
                    (
                        raw.decode("utf-8", "replace").rstrip("\n"),
                        f"{self.path} line {n}: invalid JSON: {e}",
                    )
                )
        self._line = n
        return SourceBatch(events, [f.tell(), n], errors)

    def remaining(self) -> int | None:
        return None

    async def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class CsvSource(Source):
    """CSV with a header row; each record is a dict of the header's columns
    (values are str, or converted by ``types``: column -> callable). The
    offset is the number of records read. A row with the wrong number of
    fields, or a value its converter rejects, goes to the dead-letter sink
    naming the line and column."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        types: dict[str, Callable[[str], Any]] | None = None,
        name: str | None = None,
        **csv_options: Any,
    ) -> None:
        self.path = os.fspath(path)
        self.name = name or f"csv:{os.path.basename(self.path)}"
        self._types = dict(types or {})
        self._options = csv_options
        self._f: io.TextIOWrapper | None = None
        self._reader: Any = None
        self._header: list[str] = []
        self._pos = 0

    async def open(self, offset: Any | None) -> None:
        start = _check_count_offset(offset, self.name)
        try:
            f = open(self.path, newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise SourceError(f"{self.name}: cannot open {self.path}: {e}") from e
        self._f = f
        self._reader = csv.reader(f, **self._options)
        try:
            self._header = next(self._reader)
        except StopIteration:
            self._header = []
        unknown = set(self._types) - set(self._header)
        if unknown:
            raise SourceError(f"{self.name}: typed columns {sorted(unknown)} are not in the header")
        skipped = sum(1 for _ in islice(self._reader, start))
        if skipped < start:
            raise SourceError(
                f"{self.name}: checkpoint offset {start} is past the end ({skipped} rows)"
            )
        self._pos = start

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._reader is None:
            raise SourceError(f"{self.name}: read before open")
        header = self._header
        width = len(header)
        types = self._types
        events: list[Any] = []
        errors: list[tuple[Any, str]] = []
        got = 0
        for row in islice(self._reader, max_events):
            got += 1
            line = self._reader.line_num
            if len(row) != width:
                errors.append(
                    (row, f"{self.path} line {line}: {len(row)} fields, expected {width}")
                )
                continue
            rec = dict(zip(header, row, strict=True))
            bad = None
            for col, conv in types.items():
                try:
                    rec[col] = conv(rec[col])
                except (ValueError, TypeError) as e:
                    bad = f"{self.path} line {line}: column {col!r}: {e}"
                    break
            if bad is None:
                events.append(rec)
            else:
                errors.append((row, bad))
        if not got:
            return None
        self._pos += got
        return SourceBatch(events, self._pos, errors)

    async def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            self._reader = None


class _ArrowRowsSource(Source):
    """Rows of Arrow record batches as dicts; the offset is the row number."""

    def __init__(self, path: str | os.PathLike[str], name: str) -> None:
        self.path = os.fspath(path)
        self.name = name
        self._rows: Iterator[dict[str, Any]] | None = None
        self._pos = 0
        self._total = 0

    @abc.abstractmethod
    def _batches(self) -> tuple[int, Iterator[Any]]:
        """The file's row count and its record batches, in order."""

    async def open(self, offset: Any | None) -> None:
        start = _check_count_offset(offset, self.name)
        try:
            total, batches = self._batches()
        except OSError as e:
            raise SourceError(f"{self.name}: cannot open {self.path}: {e}") from e
        except Exception as e:  # pyarrow's ArrowInvalid and friends
            raise SourceError(f"{self.name}: {self.path} is not readable: {e}") from e
        if start > total:
            raise SourceError(
                f"{self.name}: checkpoint offset {start} is past the end ({total} rows)"
            )
        self._total = total

        def rows() -> Iterator[dict[str, Any]]:
            skip = start
            for batch in batches:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                if skip:
                    batch = batch.slice(skip)
                    skip = 0
                yield from batch.to_pylist()

        self._rows = rows()
        self._pos = start

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._rows is None:
            raise SourceError(f"{self.name}: read before open")
        events = list(islice(self._rows, max_events))
        if not events:
            return None
        self._pos += len(events)
        return SourceBatch(events, self._pos)

    def remaining(self) -> int | None:
        return self._total - self._pos


class ParquetSource(_ArrowRowsSource):
    """Rows of a Parquet file as dicts (pyarrow); resumes at a row number,
    skipping whole row groups without decoding them."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        super().__init__(path, name or f"parquet:{os.path.basename(os.fspath(path))}")

    def _batches(self) -> tuple[int, Iterator[Any]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        return pf.metadata.num_rows, pf.iter_batches(batch_size=8192)


class ArrowIpcSource(_ArrowRowsSource):
    """Rows of an Arrow IPC file (the random-access "Feather v2" format) as
    dicts; resumes at a row number."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        super().__init__(path, name or f"arrow:{os.path.basename(os.fspath(path))}")

    def _batches(self) -> tuple[int, Iterator[Any]]:
        import pyarrow as pa

        reader = pa.ipc.open_file(self.path)
        counts = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        return sum(counts), (reader.get_batch(i) for i in range(reader.num_record_batches))


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamSource(Source):
    """Entries of a Redis Stream read through a consumer group.

    Each event is the entry's field dict (str -> str), or ``decode(fields)``.
    The offset is the id of the last entry processed. Entries are
    acknowledged (XACK) only once a checkpoint holding them is durable; on
    restart the consumer's pending entries after the checkpoint's id are
    processed again and those up to it are acknowledged, so a crash between
    checkpoint and ack neither loses nor repeats an entry.

    Redis Streams have no end: the source ends after ``idle_timeout``
    seconds without a new entry (None: never).
    """

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        group: str = "weir",
        consumer: str = "weir-1",
        decode: Callable[[dict[str, str]], Any] | None = None,
        idle_timeout: float | None = 1.0,
        block_ms: int = 100,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.name = name or f"redis:{stream}"
        self._decode = decode
        self._idle_timeout = idle_timeout
        self._block_ms = block_ms
        self._client: Any = None
        self._after: str = "0-0"
        self._pending_phase = True
        self._idle_since: float | None = None

    async def open(self, offset: Any | None) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError, ResponseError

        if offset is not None and not isinstance(offset, str):
            raise SourceError(f"{self.name}: bad offset {offset!r}")
        self._client = aioredis.from_url(self.url, decode_responses=True)
        try:
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise SourceError(f"{self.name}: cannot create group {self.group}: {e}") from e
        except RedisError as e:
            raise SourceError(f"{self.name}: cannot reach Redis at {self.url}: {e}") from e
        self._after = offset or "0-0"
        self._pending_phase = True
        # Pending entries up to the checkpoint were processed: acknowledge them.
        if offset is not None:
            await self._ack_through(offset)

    async def _ack_through(self, offset: str) -> None:
        limit = _id_tuple(offset)
        while True:
            pending = await self._client.xpending_range(
                self.stream, self.group, min="-", max=offset, count=1000, consumername=self.consumer
            )
            ids = [p["message_id"] for p in pending if _id_tuple(p["message_id"]) <= limit]
            if not ids:
                return
            await self._client.xack(self.stream, self.group, *ids)

    async def read(self, max_events: int) -> SourceBatch | None:
        client = self._client
        if client is None:
            raise SourceError(f"{self.name}: read before open")
        loop = asyncio.get_running_loop()
        if self._pending_phase:
            # This consumer's own pending entries first (delivered before a crash).
            reply = await client.xreadgroup(
                self.group, self.consumer, {self.stream: self._after}, count=max_events
            )
            entries = reply[0][1] if reply else []
            if not entries:
                self._pending_phase = False
                return SourceBatch([], self._after_or_none())
        else:
            reply = await client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max_events,
                block=self._block_ms,
            )
            entries = reply[0][1] if reply else []
            if not entries:
                now = loop.time()
                if self._idle_since is None:
                    self._idle_since = now
                elif (
                    self._idle_timeout is not None and now - self._idle_since >= self._idle_timeout
                ):
                    return None
                return SourceBatch([], self._after_or_none())
        self._idle_since = None
        decode = self._decode
        events: list[Any] = []
        errors: list[tuple[Any, str]] = []
        for entry_id, fields in entries:
            if decode is None:
                events.append(fields)
                continue
            try:
                events.append(decode(fields))
            except Exception as e:
                errors.append((fields, f"{self.stream} entry {entry_id}: {type(e).__name__}: {e}"))
        self._after = entries[-1][0]
        return SourceBatch(events, self._after, errors)

    def _after_or_none(self) -> Any:
        return None if self._after == "0-0" else self._after

    async def committed(self, offset: Any) -> None:
        if offset is not None and self._client is not None:
            await self._ack_through(offset)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
