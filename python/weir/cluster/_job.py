"""A scaled-out job's definition, its producer, and the source and sink a
partition's pipeline reads from and writes to."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import random
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from ..stream import Sink, SinkError, Source, SourceBatch, SourceError, Stream
from ..stream.sinks import XADD_ONCE_SCRIPT
from ._redis import (
    PRODUCE,
    ClusterError,
    PartitionKeys,
    check_job_name,
    connect,
    partition_of,
    raise_if_fenced,
    retrying,
    transient,
)

__all__ = ["Job", "Producer", "ProducerError", "load_job"]

#: A deadline for :func:`retrying`: a :func:`time.monotonic` time.
Deadline = Callable[[], float]


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
_PRODUCER_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
#: Records per script call: bounds a call's run time on the server.
_CHUNK = 500


class ProducerError(ClusterError):
    """:meth:`Producer.send` could not confirm every record within
    ``retry_for`` seconds. ``acknowledged`` records of the call are known
    to be in Redis; the ``unconfirmed`` others may or may not be. Calling
    ``send`` again is safe, with the same records or with new ones: the
    producer first sends the unconfirmed ones again under their sequence
    numbers, and Redis keeps each record once."""

    def __init__(self, message: str, acknowledged: int, unconfirmed: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.unconfirmed = unconfirmed


class _Chunk:
    """Consecutive records of one partition: their sequence numbers are
    ``first .. first + len(payloads) - 1``."""

    __slots__ = ("end", "first", "keys", "partition", "payloads")

    def __init__(
        self, partition: int, keys: PartitionKeys, first: int, payloads: list[bytes], end: bool
    ) -> None:
        self.partition = partition
        self.keys = keys
        self.first = first
        self.payloads = payloads
        self.end = end


class Producer:
    """Appends records to a job's partition streams, routed by the job's
    key (JSON-encoded, one stream entry each); :meth:`end` marks the end of
    every partition's input, which lets a job finish.

    Idempotent, as Kafka's producer is with its producer id and sequence
    numbers: every entry carries the producer's id (field ``p``) and its
    sequence number in that partition (field ``s``), and a server-side
    script appends a record only if its number follows the last one
    stored. A stall, a reply lost to the client's timeout, a retry or a
    Redis failover therefore never writes a record twice. :meth:`send`
    retries transient errors for up to ``retry_for`` seconds, then raises
    :class:`ProducerError` saying how many records are confirmed; calling
    ``send`` again is safe either way.

    ``producer_id`` names the sequence (letters, digits, ``_.-``); by
    default a new one per producer, forgotten by Redis at :meth:`close`.
    A producer opened with an id used before continues its numbering.
    """

    def __init__(
        self,
        url: str,
        job: Job,
        *,
        maxlen: int | None = None,
        producer_id: str | None = None,
        retry_for: float = 60.0,
    ) -> None:
        if producer_id is not None and not _PRODUCER_ID.match(producer_id):
            raise ClusterError(
                f"producer_id must be letters, digits, '_', '.' or '-', not {producer_id!r}"
            )
        if not retry_for >= 0:
            raise ClusterError(f"retry_for must be >= 0 seconds, not {retry_for}")
        self.url = url
        self.job = job
        self.maxlen = maxlen
        self._chosen_id = producer_id is not None
        self.producer_id = producer_id or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}".replace(" ", "_")
        )
        self.retry_for = retry_for
        self._client: Any = None
        self._keys = [PartitionKeys(job.name, p) for p in range(job.partitions)]
        #: the last sequence number given out per partition
        self._seq = [0] * job.partitions
        #: chunks sent but not confirmed, and the payloads of the call
        #: they came from (a retry of that same call sends nothing new)
        self._unconfirmed: list[_Chunk] = []
        self._failed_call: list[tuple[int, bytes]] | None = None
        #: records confirmed in Redis
        self.sent = 0
        #: transient errors retried so far
        self.retries = 0

    async def __aenter__(self) -> Producer:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect; a producer id used before continues its numbering."""
        if self._client is not None:
            return
        self._client = await connect(self.url)
        if self._chosen_id:
            try:
                for p, k in enumerate(self._keys):
                    last = await self._client.hget(k.producers, self.producer_id)
                    self._seq[p] = int(last or 0)
            except RedisError as e:
                await self.close()
                raise ClusterError(f"producer: cannot read its sequence numbers: {e}") from e

    def _encode(self, records: Iterable[Any]) -> list[tuple[int, bytes]]:
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        out = []
        for record in records:
            try:
                payload = dumps(record).encode()
            except (TypeError, ValueError) as e:
                raise ClusterError(f"producer: record {record!r} is not JSON: {e}") from e
            out.append((self.job.partition(record), payload))
        return out

    def _chunks(self, routed: list[tuple[int, bytes]], *, end: bool) -> list[_Chunk]:
        per: dict[int, list[bytes]] = {}
        for p, payload in routed:
            per.setdefault(p, []).append(payload)
        chunks = []
        for p, payloads in per.items():
            for i in range(0, len(payloads), _CHUNK):
                part = payloads[i : i + _CHUNK]
                chunks.append(_Chunk(p, self._keys[p], self._seq[p] + 1, part, end))
                self._seq[p] += len(part)
        return chunks

    async def send(self, records: Iterable[Any]) -> int:
        """Append ``records`` (each to its partition, in order); returns
        how many. Raises :class:`ProducerError` if some could not be
        confirmed within ``retry_for`` seconds (then call again: see
        there), :class:`ClusterError` for a record without the job's key
        or not JSON-serialisable (nothing of the call is sent then)."""
        if self._client is None:
            raise ClusterError("producer: send before open")
        routed = self._encode(records)
        if self._failed_call is not None and routed == self._failed_call:
            # The same call again: only what was not confirmed is re-sent.
            await self._deliver([], routed)
        else:
            await self._deliver(self._chunks(routed, end=False), routed)
        return len(routed)

    async def end(self) -> None:
        """Append the end-of-input marker to every partition (once each,
        whatever the retries)."""
        if self._client is None:
            raise ClusterError("producer: end before open")
        routed = [(p, b"1") for p in range(self.job.partitions)]
        await self._deliver(self._chunks(routed, end=True), None)

    async def _deliver(self, chunks: list[_Chunk], routed: list[tuple[int, bytes]] | None) -> None:
        # Unconfirmed chunks of an earlier call go first: the server
        # refuses a partition's later numbers until they have landed.
        earlier = self._unconfirmed if chunks else []
        pending = self._unconfirmed + chunks
        self._unconfirmed = []
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        last_error: BaseException | None = None
        while pending:
            pipe = self._client.pipeline(transaction=False)
            for c in pending:
                k = c.keys
                pipe.eval(
                    PRODUCE,
                    2,
                    k.input,
                    k.producers,
                    self.producer_id,
                    c.first,
                    "" if self.maxlen is None else self.maxlen,
                    "1" if c.end else "0",
                    *c.payloads,
                )
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as e:
                if not transient(e):
                    self._unconfirmed = pending
                    raise ClusterError(f"producer: cannot append to {self.url}: {e}") from e
                replies = [e] * len(pending)
            still: list[_Chunk] = []
            refused: BaseException | None = None
            for c, reply in zip(pending, replies, strict=True):
                if not isinstance(reply, BaseException):
                    if not c.end:
                        self.sent += len(c.payloads)
                    continue
                still.append(c)
                last_error = reply
                if not (transient(reply) or "WEIRGAP" in str(reply)):
                    refused = reply
            pending = still
            if refused is not None:
                self._unconfirmed = pending
                self._failed_call = routed
                raise ClusterError(f"producer: Redis refused an append: {refused}") from refused
            if not pending:
                break
            self.retries += 1
            pause = delay * (0.5 + random.random())
            if time.monotonic() + pause >= deadline:
                self._unconfirmed = pending
                self._failed_call = routed
                mine = sum(len(c.payloads) for c in pending if c not in earlier)
                theirs = sum(len(c.payloads) for c in pending if c in earlier)
                n = len(routed) if routed is not None else self.job.partitions
                raise ProducerError(
                    f"producer {self.producer_id}: {n - mine} of {n} records confirmed, "
                    f"{mine + theirs} not confirmed within {self.retry_for:g} s"
                    + (f" ({theirs} of them from an earlier call)" if theirs else "")
                    + f" (last error: {type(last_error).__name__}: {last_error}); calling "
                    "send() again is safe: the unconfirmed records are sent first, under their "
                    "sequence numbers, and Redis keeps each once",
                    n - mine,
                    mine + theirs,
                )
            await asyncio.sleep(pause)
            delay = min(1.0, delay * 2)
        self._failed_call = None

    async def close(self) -> None:
        """Disconnect. A producer with a generated id also removes its
        sequence numbers from Redis (nothing will be sent under it again);
        unconfirmed records are dropped."""
        if self._client is None:
            return
        if not self._chosen_id and not self._unconfirmed:
            try:
                for k in self._keys:
                    await self._client.hdel(k.producers, self.producer_id)
            except RedisError:
                pass  # a few bytes left in Redis; nothing is wrong
        await self._client.aclose()
        self._client = None


async def input_progress(client: Any, keys: PartitionKeys) -> tuple[int, int]:
    """(entries ever appended to a partition's input, end markers among
    them): their difference less the records read is the partition's lag."""
    try:
        info = await client.xinfo_stream(keys.input)
        added = int(info.get("entries-added", info.get("length", 0)))
    except ResponseError:
        added = 0  # no input yet
    ends = int(await client.hget(keys.producers, ":ends") or 0)
    return added, ends


class PartitionSource(Source):
    """One partition's input stream, read by entry id from the checkpointed
    offset (``{"id": last entry id, "n": entries read}``).

    Plain XREAD, not a consumer group: a group's delivery cursor is shared
    and no script can fence it, so a paused ex-owner waking up could move
    it past entries the new owner has not read. The offset lives in the
    fenced checkpoint instead, as Kafka Streams keeps its offsets in its
    transactions.

    With ``deadline`` (a :func:`time.monotonic` time, asked before each
    try: the owner's lease), a read that fails on a transient Redis error
    is tried again with back-off until then. :meth:`remaining` is the
    partition's lag (records appended but not read), refreshed about once
    a second.
    """

    def __init__(
        self,
        client: Any,
        keys: PartitionKeys,
        name: str,
        block_ms: int = 200,
        *,
        deadline: Deadline | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._keys = keys
        self._block_ms = block_ms
        self._deadline = deadline
        self._log = log
        self._after = "0-0"
        self._n = 0
        self._ended = False
        self._loads = json.loads
        self._lag: int | None = None
        self._lag_at = 0.0

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

    def remaining(self) -> int | None:
        return self._lag

    async def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < 1.0:
            return
        self._lag_at = now
        try:
            added, ends = await input_progress(self._client, self._keys)
        except Exception:
            return  # a figure for metrics: the next read tries again
        self._lag = max(0, added - ends - self._n)

    async def read(self, max_events: int) -> SourceBatch | None:
        if self._ended:
            return None

        def xread() -> Any:
            return self._client.xread(
                {self._keys.input: self._after}, count=max_events, block=self._block_ms
            )

        try:
            if self._deadline is None:
                reply = await xread()
            else:
                reply = await retrying(
                    xread, what=f"{self.name}: read", deadline=self._deadline, on_retry=self._log
                )
        except RedisError as e:
            raise SourceError(f"{self.name}: cannot read {self._keys.input}: {e}") from e
        except (TimeoutError, OSError) as e:
            raise SourceError(f"{self.name}: cannot read {self._keys.input}: {e!r}") from e
        await self._refresh_lag()
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

    def __init__(
        self,
        client: Any,
        keys: PartitionKeys,
        token: int,
        name: str = "out",
        *,
        deadline: Deadline | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._keys = keys
        self._token = str(token)
        self._deadline = deadline
        self._log = log
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
        args = [self._token, self._count + 1, *[enc(x) for x in items]]

        def write() -> Any:
            # Numbered items: a retry after a lost reply appends nothing twice.
            return self._script(keys=[keys.out, keys.out_last, keys.fence], args=args)

        try:
            if self._deadline is None:
                await write()
            else:
                await retrying(
                    write, what=f"{self.name}: write", deadline=self._deadline, on_retry=self._log
                )
        except ResponseError as e:
            raise_if_fenced(e, f"{self.name} of {keys.out}")
            raise SinkError(f"{self.name}: cannot write {keys.out}: {e}") from e
        except RedisError as e:
            raise SinkError(f"{self.name}: cannot write {keys.out}: {e}") from e
        except (TimeoutError, OSError) as e:
            raise SinkError(f"{self.name}: cannot write {keys.out}: {e!r}") from e
        self._count += len(items)

    async def flush(self) -> Any:
        # Each write returned after the server applied it.
        return self._count
