"""Sinks: where a pipeline's results go, each with a committable position.

At a checkpoint barrier the runtime waits for each sink to take what was
sent to it, calls :meth:`Sink.flush` and stores the position it returns in
the checkpoint. On restart :meth:`Sink.open` gets that position back and
removes or skips whatever was written after it, so the output holds every
result exactly once:

* :class:`JsonLinesSink` truncates its file to the committed byte length;
* :class:`RedisStreamSink` numbers its entries (the number is the output's
  ordinal since the job began, which replaying the source from the
  checkpoint's offset reproduces) and a server-side script skips numbers
  the stream already has;
* :class:`ListSink` truncates its list;
* :class:`CallbackSink` cannot take back a call: across a crash it
  delivers at least once.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Callable
from typing import Any

__all__ = ["CallbackSink", "JsonLinesSink", "ListSink", "RedisStreamSink", "Sink", "SinkError"]


class SinkError(Exception):
    """A sink cannot write or cannot be resumed at its committed position."""


class Sink(abc.ABC):
    """Base class of sinks."""

    #: identifies the sink's position in checkpoints; unique per pipeline
    name: str = "sink"

    @abc.abstractmethod
    async def open(self, position: Any | None) -> None:
        """Prepare to write after ``position`` (None: a new job, start empty)."""

    @abc.abstractmethod
    async def write(self, items: list[Any]) -> None:
        """Write ``items`` in order."""

    @abc.abstractmethod
    async def flush(self) -> Any:
        """Make what was written survive a crash of this process; return the
        position to store in the checkpoint."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release files or connections."""


class ListSink(Sink):
    """Collects items in :attr:`items` (tests, small jobs)."""

    def __init__(self, name: str = "list") -> None:
        self.name = name
        self.items: list[Any] = []

    async def open(self, position: Any | None) -> None:
        del self.items[int(position or 0) :]

    async def write(self, items: list[Any]) -> None:
        self.items.extend(items)

    async def flush(self) -> Any:
        return len(self.items)


class CallbackSink(Sink):
    """Calls ``fn(item)`` for each item (at least once across a crash: a
    call made after the last checkpoint is made again on restart)."""

    def __init__(self, fn: Callable[[Any], Any], name: str = "callback") -> None:
        self.name = name
        self._fn = fn
        self._count = 0

    async def open(self, position: Any | None) -> None:
        self._count = int(position or 0)

    async def write(self, items: list[Any]) -> None:
        fn = self._fn
        for item in items:
            fn(item)
        self._count += len(items)

    async def flush(self) -> Any:
        return self._count


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    return repr(obj)


class JsonLinesSink(Sink):
    """One JSON document per line. Its position is the file's length at the
    checkpoint; on restart the file is cut back to it. ``fsync=True`` makes
    each checkpoint survive power loss too (else a process crash)."""

    def __init__(
        self, path: str | os.PathLike[str], *, name: str | None = None, fsync: bool = False
    ) -> None:
        self.path = os.fspath(path)
        self.name = name or f"jsonl:{os.path.basename(self.path)}"
        self._fsync = fsync
        self._f: Any = None
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode

    async def open(self, position: Any | None) -> None:
        keep = int(position or 0)
        try:
            f = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise SinkError(f"{self.name}: cannot open {self.path}: {e}") from e
        size = os.fstat(f.fileno()).st_size
        if size < keep:
            f.close()
            raise SinkError(
                f"{self.name}: {self.path} has {size} bytes but the checkpoint committed {keep}; "
                "the file was truncated or replaced behind the job's back"
            )
        f.truncate(keep)
        f.seek(keep)
        self._f = f

    async def write(self, items: list[Any]) -> None:
        f = self._f
        if f is None:
            raise SinkError(f"{self.name}: write before open")
        enc = self._encode
        f.write("".join([enc(x) + "\n" for x in items]).encode())

    async def flush(self) -> Any:
        f = self._f
        if f is None:
            raise SinkError(f"{self.name}: flush before open")
        f.flush()
        if self._fsync:
            os.fsync(f.fileno())
        return f.tell()

    async def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


#: Appends numbered items to a Redis Stream at most once each.
#: KEYS[1] the stream, KEYS[2] its last written number, and optionally
#: KEYS[3] a fencing counter (weir.cluster); ARGV[1] the writer's fencing
#: token ('' without a fence), ARGV[2] the number of the first item,
#: ARGV[3..] the items' JSON. Items numbered at or below the last written
#: number were written before a crash (or by a partition's previous owner)
#: and are skipped. With a fence, a writer whose token is no longer the
#: counter's value writes nothing and gets a WEIRFENCED error, and every
#: entry records the token that wrote it.
XADD_ONCE_SCRIPT = """
local fenced = #KEYS > 2
if fenced and redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('WEIRFENCED output refused: token ' .. ARGV[1] .. ' is stale')
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = tonumber(ARGV[2])
local top = last
for i = 3, #ARGV do
  local n = first + i - 3
  if n > last then
    if fenced then
      redis.call('XADD', KEYS[1], '*', 'n', n, 'data', ARGV[i], 'token', ARGV[1])
    else
      redis.call('XADD', KEYS[1], '*', 'n', n, 'data', ARGV[i])
    end
    top = n
  end
end
if top > last then redis.call('SET', KEYS[2], top) end
return top
"""


class RedisStreamSink(Sink):
    """Appends each item to a Redis Stream as fields ``n`` (its number,
    1-based, the de-duplication id) and ``data`` (its JSON)."""

    def __init__(self, url: str, stream: str, *, name: str | None = None) -> None:
        self.url = url
        self.stream = stream
        self.name = name or f"redis:{stream}"
        self._client: Any = None
        self._script: Any = None
        self._count = 0
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode

    @property
    def counter_key(self) -> str:
        """The Redis key holding the last number written."""
        return f"{self.stream}:weir-sink-last"

    async def open(self, position: Any | None) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._client = aioredis.from_url(self.url, decode_responses=True)
        try:
            await self._client.ping()
        except RedisError as e:
            raise SinkError(f"{self.name}: cannot reach Redis at {self.url}: {e}") from e
        self._script = self._client.register_script(XADD_ONCE_SCRIPT)
        self._count = int(position or 0)

    async def write(self, items: list[Any]) -> None:
        if self._client is None:
            raise SinkError(f"{self.name}: write before open")
        if not items:
            return
        enc = self._encode
        await self._script(
            keys=[self.stream, self.counter_key],
            args=["", self._count + 1, *[enc(x) for x in items]],
        )
        self._count += len(items)

    async def flush(self) -> Any:
        # Each write returned after the server applied it.
        return self._count

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
