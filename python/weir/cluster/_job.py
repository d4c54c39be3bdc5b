"""A scaled-out job's definition, its producer, and the source and sink a
partition's pipeline reads from and writes to."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from ..stream import Sink, SinkError, Source, SourceBatch, SourceError, Stream
from ..stream.sinks import XADD_ONCE_SCRIPT
from ._redis import (
    ClusterError,
    PartitionKeys,
    check_job_name,
    connect,
    partition_of,
    raise_if_fenced,
)

__all__ = ["Job", "Producer", "load_job"]


@dataclass(frozen=True)
class Job:
    """A streaming job run by many workers, one pipeline per partition.

    ``build(stream, out)`` attaches the job's operators to ``stream`` (the
    partition's records, decoded from JSON) and ends in ``out`` (the
    partition's output stream); it is called once per partition a worker
    takes, so it must build the same thing every time. ``key`` routes
    records to partitions (a field name or a function of the record); keyed
    state must be keyed by the same thing, or a key's state would be split
    across partitions.

    ``checkpoint_interval`` (seconds) and ``checkpoint_every`` (records)
    say when a partition checkpoints; every ``snapshot_every`` checkpoints
    its state is also copied, as a weir checkpoint, under the worker's
    snapshot directory, and the changelog behind it is trimmed.
    """

    name: str
    partitions: int
    key: str | Callable[[Any], Any]
    build: Callable[[Stream, Sink], None]
    checkpoint_interval: float | None = 1.0
    checkpoint_every: int | None = 50_000
    snapshot_every: int = 20

    def __post_init__(self) -> None:
        check_job_name(self.name)
        if not isinstance(self.partitions, int) or not 0 < self.partitions <= 4096:
            raise ClusterError(f"partitions must be 1..4096, not {self.partitions!r}")
        if self.snapshot_every <= 0:
            raise ClusterError(f"snapshot_every must be positive, not {self.snapshot_every}")
        if not callable(self.build):
            raise ClusterError("build must be a function (stream, out) -> None")

    def key_of(self, record: Any) -> Any:
        """The routing key of ``record``."""
        if callable(self.key):
            return self.key(record)
        try:
            return record[self.key]
        except (KeyError, TypeError, IndexError) as e:
            raise ClusterError(f"record {record!r} has no key field {self.key!r}") from e

    def partition(self, record: Any) -> int:
        """The partition ``record`` goes to."""
        return partition_of(self.key_of(record), self.partitions)


def load_job(spec: str) -> Job:
    """The :class:`Job` named by ``spec``: ``path/to/file.py``,
    ``package.module`` or either with ``:ATTRIBUTE`` (default ``JOB``)."""
    target, _, attr = spec.partition(":")
    attr = attr or "JOB"
    try:
        if target.endswith(".py"):
            path = os.path.abspath(target)
            if not os.path.isfile(path):
                raise ClusterError(f"job module {target!r} does not exist")
            # Its own directory on the path, so it can import its neighbours.
            sys.path.insert(0, os.path.dirname(path))
            mod_name = "weir_job_" + os.path.splitext(os.path.basename(path))[0]
            mspec = importlib.util.spec_from_file_location(mod_name, path)
            if mspec is None or mspec.loader is None:
                raise ClusterError(f"cannot load {target!r} as a Python module")
            module = importlib.util.module_from_spec(mspec)
            sys.modules[mod_name] = module
            mspec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ClusterError:
        raise
    except Exception as e:
        raise ClusterError(f"cannot import job module {target!r}: {type(e).__name__}: {e}") from e
    job = getattr(module, attr, None)
    if not isinstance(job, Job):
        raise ClusterError(f"{target!r} has no weir.cluster.Job named {attr!r}")
    return job


_END = b"end"


class Producer:
    """Appends records to a job's partition streams, routed by the job's
    key (JSON-encoded, one stream entry each); :meth:`end` marks the end of
    every partition's input, which lets a job finish."""

    def __init__(self, url: str, job: Job, *, maxlen: int | None = None) -> None:
        self.url = url
        self.job = job
        self.maxlen = maxlen
        self._client: Any = None
        self._keys = [PartitionKeys(job.name, p) for p in range(job.partitions)]
        self.sent = 0

    async def __aenter__(self) -> Producer:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._client is None:
            self._client = await connect(self.url)

    async def send(self, records: Iterable[Any]) -> int:
        """Append ``records`` (each to its partition, in order); returns
        how many."""
        if self._client is None:
            raise ClusterError("producer: send before open")
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        pipe = self._client.pipeline(transaction=False)
        n = 0
        for record in records:
            keys = self._keys[self.job.partition(record)]
            pipe.xadd(keys.input, {"data": dumps(record)}, maxlen=self.maxlen, approximate=True)
            n += 1
        try:
            await pipe.execute()
        except RedisError as e:
            raise ClusterError(f"producer: cannot append to {self.url}: {e}") from e
        self.sent += n
        return n

    async def end(self) -> None:
        """Append the end-of-input marker to every partition."""
        if self._client is None:
            raise ClusterError("producer: end before open")
        pipe = self._client.pipeline(transaction=False)
        for keys in self._keys:
            pipe.xadd(keys.input, {_END: b"1"})
        await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class PartitionSource(Source):
    """One partition's input stream, read by entry id from the checkpointed
    offset (``{"id": last entry id, "n": entries read}``).

    Plain XREAD, not a consumer group: a group's delivery cursor is shared
    and no script can fence it, so a paused ex-owner waking up could move
    it past entries the new owner has not read. The offset lives in the
    fenced checkpoint instead, as Kafka Streams keeps its offsets in its
    transactions.
    """

    def __init__(self, client: Any, keys: PartitionKeys, name: str, block_ms: int = 200) -> None:
        self.name = name
        self._client = client
        self._keys = keys
        self._block_ms = block_ms
        self._after = "0-0"
        self._n = 0
        self._ended = False
        self._loads = json.loads

    async def open(self, offset: Any | None) -> None:
        if offset is None:
            self._after, self._n = "0-0", 0
        elif isinstance(offset, dict) and isinstance(offset.get("id"), str):
            self._after, self._n = offset["id"], int(offset.get("n", 0))
        else:
            raise SourceError(f"{self.name}: bad offset {offset!r}")
        self._ended = False

    def _offset(self) -> Any:
        return None if self._n == 0 else {"id": self._after, "n": self._n}

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._ended:
            return None
        try:
            reply = await self._client.xread(
                {self._keys.input: self._after}, count=max_events, block=self._block_ms
            )
        except RedisError as e:
            raise SourceError(f"{self.name}: cannot read {self._keys.input}: {e}") from e
        if not reply:
            return SourceBatch([], self._offset())
        entries = reply[0][1]
        events: list[Any] = []
        errors: list[tuple[Any, str]] = []
        loads = self._loads
        for entry_id, fields in entries:
            if _END in fields:
                # The offset stays before the marker: a pipeline stopped for
                # a hand-over before it saw the end must leave the marker
                # for the next owner, or that one would wait forever.
                self._ended = True
                break
            self._after = entry_id.decode()
            self._n += 1
            try:
                events.append(loads(fields[b"data"]))
            except (KeyError, ValueError) as e:
                errors.append((fields, f"{self._keys.input} entry {self._after}: {e!r}"))
        return SourceBatch(events, self._offset(), errors)


class FencedStreamSink(Sink):
    """A partition's output stream: items as JSON (field ``data``), each
    numbered (field ``n``) so a replay after a move writes nothing twice,
    and every write refused once the worker's fencing token is stale."""

    def __init__(self, client: Any, keys: PartitionKeys, token: int, name: str = "out") -> None:
        self.name = name
        self._client = client
        self._keys = keys
        self._token = str(token)
        self._script = client.register_script(XADD_ONCE_SCRIPT)
        self._count = 0
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    async def open(self, position: Any | None) -> None:
        self._count = int(position or 0)

    async def write(self, items: list[Any]) -> None:
        if not items:
            return
        enc = self._encode
        keys = self._keys
        try:
            await self._script(
                keys=[keys.out, keys.out_last, keys.fence],
                args=[self._token, self._count + 1, *[enc(x) for x in items]],
            )
        except ResponseError as e:
            raise_if_fenced(e, f"{self.name} of {keys.out}")
            raise SinkError(f"{self.name}: cannot write {keys.out}: {e}") from e
        except RedisError as e:
            raise SinkError(f"{self.name}: cannot write {keys.out}: {e}") from e
        self._count += len(items)

    async def flush(self) -> Any:
        # Each write returned after the server applied it.
        return self._count
