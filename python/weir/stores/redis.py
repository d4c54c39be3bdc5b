"""The Redis backend, through redis-py's asyncio client.

Each store is a namespace on the server: its values are Redis strings under
``{namespace}:d:<key>`` and a sorted set ``{namespace}:i`` indexes the keys
(every member with score 0, so the set is ordered by the key bytes, which
is what makes range and prefix scans real range reads: ``ZRANGEBYLEX``).
The braces are a cluster hash tag: a namespace lives in one slot.

Every write that touches a value and the index is one Lua script, so the
two never disagree and batches are atomic. So the index also counts: the
count of a :class:`~weir.stores.CountedRange` is a ``ZLEXCOUNT`` of the
index (O(log n), exact whatever wrote the keys; no counter key is kept),
except under ``ttl_seconds``, where the range's live keys are counted. TTLs are Redis expiries
(``PX``); an expired key's index entry is dropped the next time a scan or
count passes it. Scans read a page at a time (each page atomic), so a long
scan is not a snapshot; ``clear``, ``backup`` and ``restore`` are single
atomic scripts, so they hold the server for a time proportional to the
namespace's size.

Options, besides ``key_codec`` and ``value_codec``: ``url``
(``redis://host:port/db``; also taken from ``config.path`` as
``host:port/db``), ``namespace`` (default ``"weir"``), ``client`` (an
existing ``redis.asyncio.Redis``, which ``stop`` then leaves open),
``max_connections`` and ``socket_timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

from .. import Error, InvalidArgumentError, StorageIOError
from ._common import (
    Gate,
    KeyEncoding,
    ValueEncoding,
    check_encoded_range,
    check_encoded_writes,
    check_limit,
    check_prefix,
    closed_error,
    iter_pairs,
    make_error,
    now_ms,
    prefix_bounds,
    range_bounds,
    read_dump_file,
    short_repr,
    write_dump_file,
)
from ._txn import StoreTransaction
from .base import (
    CountedRange,
    CountedWrite,
    EncodedPairs,
    EncodedRange,
    PathLike,
    ScanResult,
    StoreBackend,
    StoreBackendConfig,
    Transaction,
    TransactionConflictError,
    check_counted_writes,
)

__all__ = ["RedisBackend"]

log = logging.getLogger("weir.stores")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_OPTIONS = frozenset(
    {
        "key_codec",
        "value_codec",
        "executor_threads",
        "url",
        "namespace",
        "client",
        "max_connections",
        "socket_timeout",
    }
)
_PAGE = 1024

# KEYS[1] index, KEYS[2..n+1] value keys; ARGV[1] px (0: none), ARGV[2..n+1]
# members, ARGV[n+2..2n+1] values.
_SET_MANY = """
local px = tonumber(ARGV[1])
local n = #KEYS - 1
for i = 1, n do
  if px > 0 then
    redis.call('SET', KEYS[i + 1], ARGV[1 + n + i], 'PX', px)
  else
    redis.call('SET', KEYS[i + 1], ARGV[1 + n + i])
  end
  redis.call('ZADD', KEYS[1], 0, ARGV[1 + i])
end
return n
"""

# KEYS[1] index, KEYS[2..] value keys; ARGV members. Returns how many existed.
_DEL_MANY = """
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[i - 1])
end
return n
"""

# One page of a range: KEYS[1] index; ARGV[1] value-key prefix, ARGV[2] low,
# ARGV[3] high (ZRANGEBYLEX syntax), ARGV[4] page size, ARGV[5] "1" for
# values, "0" for existence only. Returns {members scanned, last member,
# m1, v1, m2, v2, ...} for the live ones; dead index entries are dropped.
_PAGE_SCRIPT = """
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {#ms, ms[#ms] or ''}
local values = ARGV[5] == '1'
for i = 1, #ms do
  local k = ARGV[1] .. ms[i]
  if values then
    local v = redis.call('GET', k)
    if v then
      out[#out + 1] = ms[i]
      out[#out + 1] = v
    else
      redis.call('ZREM', KEYS[1], ms[i])
    end
  elseif redis.call('EXISTS', k) == 1 then
    out[#out + 1] = ms[i]
    out[#out + 1] = ''
  else
    redis.call('ZREM', KEYS[1], ms[i])
  end
end
return out
"""

# Delete a key range: KEYS[1] index; ARGV[1] value-key prefix, ARGV[2] low,
# ARGV[3] high (ZRANGEBYLEX syntax). Returns how many index entries it held.
_DEL_RANGE = """
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3])
for i = 1, #ms do redis.call('DEL', ARGV[1] .. ms[i]) end
if #ms > 0 then redis.call('ZREMRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3]) end
return #ms
"""

_CLEAR = """
local ms = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #ms do redis.call('DEL', ARGV[1] .. ms[i]) end
redis.call('DEL', KEYS[1])
return #ms
"""

# Every live key with its value and remaining milliseconds (-1: no expiry).
_DUMP_ALL = """
local ms = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i = 1, #ms do
  local k = ARGV[1] .. ms[i]
  local v = redis.call('GET', k)
  if v then
    out[#out + 1] = ms[i]
    out[#out + 1] = v
    out[#out + 1] = redis.call('PTTL', k)
  end
end
return out
"""

# Replace the namespace: ARGV[1] value-key prefix, then (member, value, px) triples.
_RESTORE_ALL = """
local ms = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #ms do redis.call('DEL', ARGV[1] .. ms[i]) end
redis.call('DEL', KEYS[1])
local i = 2
while i + 2 <= #ARGV do
  local k = ARGV[1] .. ARGV[i]
  local px = tonumber(ARGV[i + 2])
  if px > 0 then
    redis.call('SET', k, ARGV[i + 1], 'PX', px)
  else
    redis.call('SET', k, ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
  i = i + 3
end
return (#ARGV - 1) / 3
"""


# One atomic write of encoded data: KEYS[1] index; ARGV[1] value-key prefix,
# ARGV[2] px (0: none), ARGV[3] "1" to clear [ARGV[4], ARGV[5]) (ZRANGEBYLEX
# syntax), ARGV[6] number of deletes, then the deleted members, then
# (member, value) pairs to set.
_APPLY = """
local dp = ARGV[1]
local px = tonumber(ARGV[2])
if ARGV[3] == '1' then
  local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[4], ARGV[5])
  for i = 1, #ms do redis.call('DEL', dp .. ms[i]) end
  if #ms > 0 then redis.call('ZREMRANGEBYLEX', KEYS[1], ARGV[4], ARGV[5]) end
end
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  redis.call('DEL', dp .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
  i = i + 1
end
while i + 1 <= #ARGV do
  if px > 0 then
    redis.call('SET', dp .. ARGV[i], ARGV[i + 1], 'PX', px)
  else
    redis.call('SET', dp .. ARGV[i], ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], 0, ARGV[i])
  i = i + 2
end
return 1
"""

# Every live (member, value) of a range, read in one atomic script: KEYS[1]
# index; ARGV[1] value-key prefix, ARGV[2] low, ARGV[3] high.
_RANGE_ALL = """
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3])
local out = {}
for i = 1, #ms do
  local v = redis.call('GET', ARGV[1] .. ms[i])
  if v then
    out[#out + 1] = ms[i]
    out[#out + 1] = v
  end
end
return out
"""


# Counted writes: KEYS[1] index; ARGV[1] value-key prefix, ARGV[2] px (0:
# none), then (member, "1" put / "0" delete, value) triples, applied in
# order. Returns, per write, whether the key existed before it.
_WRITE_COUNTED = """
local dp = ARGV[1]
local px = tonumber(ARGV[2])
local out = {}
local i = 3
while i + 2 <= #ARGV do
  local k = dp .. ARGV[i]
  out[#out + 1] = redis.call('EXISTS', k)
  if ARGV[i + 1] == '1' then
    if px > 0 then
      redis.call('SET', k, ARGV[i + 2], 'PX', px)
    else
      redis.call('SET', k, ARGV[i + 2])
    end
    redis.call('ZADD', KEYS[1], 0, ARGV[i])
  else
    redis.call('DEL', k)
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
  i = i + 3
end
return out
"""


def _lex_bounds(lower: bytes | None, upper: bytes | None) -> tuple[bytes, bytes]:
    """``[lower, upper)`` in ZRANGEBYLEX syntax."""
    return (b"-" if lower is None else b"[" + lower, b"+" if upper is None else b"(" + upper)


def _redis() -> Any:
    try:
        import redis.asyncio
    except ImportError as e:  # pragma: no cover - redis is a test dependency
        raise ImportError("the redis backend needs redis-py: pip install redis") from e
    return redis


def _translate(exc: BaseException, where: str) -> BaseException:
    redis = _redis()
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, redis.exceptions.WatchError):
        return make_error(
            TransactionConflictError,
            f"transaction conflict on {where}: a key it read changed; nothing was written",
            "WEIR_CONFLICT",
        )
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return make_error(StorageIOError, f"Redis at {where}: {exc}")
    if isinstance(exc, redis.exceptions.RedisError):
        return make_error(Error, f"Redis at {where}: {type(exc).__name__}: {exc}", "WEIR_IO_ERROR")
    return exc


def _redis_op(fn: F) -> F:
    """Count the call in the backend's gate (so ``stop`` waits for it) and
    raise weir exceptions for redis-py's. Decorated methods must not call
    each other: a nested call could wait at a barrier its caller holds up."""

    @functools.wraps(fn)
    async def wrapper(self: RedisBackend, *args: Any, **kwargs: Any) -> Any:
        gate = self._gate
        if gate.barrier is not None:
            await gate.wait_open()
        gate.enter_open()
        try:
            return await fn(self, *args, **kwargs)
        except Error:
            raise
        except Exception as e:
            new = _translate(e, self._where)
            if new is e:
                raise
            raise new from e
        finally:
            gate.leave()

    return wrapper  # type: ignore[return-value]


class RedisBackend(StoreBackend):
    """Store backend on a Redis server, one namespace per store."""

    backend_type = "redis"

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        opts = dict(config.options or {})
        unknown = sorted(set(opts) - _OPTIONS)
        if unknown:
            raise make_error(
                InvalidArgumentError,
                f"unknown option(s) {', '.join(map(repr, unknown))} for the redis backend; "
                f"it accepts {', '.join(sorted(_OPTIONS))}",
            )
        self._keys = KeyEncoding(opts.get("key_codec"))
        # Redis expires keys itself: values carry no expiry header.
        self._values = ValueEncoding(opts.get("value_codec"), None)
        self._px = 0 if config.ttl_seconds is None else max(1, round(config.ttl_seconds * 1000))
        url = opts.get("url")
        if url is None:
            path = config.path
            url = f"redis://{os.fspath(path)}" if path else "redis://127.0.0.1:6379/0"
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise make_error(InvalidArgumentError, f"bad Redis URL {url!r}")
        self._url = url
        ns = opts.get("namespace", "weir")
        if isinstance(ns, str):
            ns = ns.encode("utf-8")
        if not isinstance(ns, bytes) or not ns or b"{" in ns or b"}" in ns:
            raise make_error(
                InvalidArgumentError,
                f"namespace must be a non-empty str without braces, not {ns!r}",
            )
        self.namespace = ns
        self._dprefix = b"{" + ns + b"}:d:"
        self._index = b"{" + ns + b"}:i"
        self._client_opt = opts.get("client")
        self._pool_kwargs: dict[str, Any] = {}
        for name in ("max_connections", "socket_timeout"):
            if name in opts:
                self._pool_kwargs[name] = opts[name]
        self._r: Any = None
        self._owns_client = False
        self._scripts: dict[str, Any] = {}
        self._where = f"{url} namespace {ns.decode('utf-8', 'replace')!r}"
        self._gate = Gate()

    # ---- lifecycle --------------------------------------------------------------------------

    @_redis_op
    async def start(self) -> None:
        """Connect and check the server answers (StorageIOError if it does not)."""
        if self._r is not None:
            return
        redis = _redis()
        if self.config.max_size is not None:
            log.warning("redis backend ignores max_size=%s", self.config.max_size)
        if self._client_opt is not None:
            client = self._client_opt
            owns = False
        else:
            client = redis.asyncio.Redis.from_url(
                self._url, decode_responses=False, **self._pool_kwargs
            )
            owns = True
        try:
            await client.ping()
        except BaseException:
            if owns:
                await client.aclose()
            raise
        self._scripts = {
            name: client.register_script(src)
            for name, src in (
                ("set_many", _SET_MANY),
                ("del_many", _DEL_MANY),
                ("page", _PAGE_SCRIPT),
                ("clear", _CLEAR),
                ("del_range", _DEL_RANGE),
                ("dump_all", _DUMP_ALL),
                ("restore_all", _RESTORE_ALL),
                ("apply", _APPLY),
                ("range_all", _RANGE_ALL),
                ("write_counted", _WRITE_COUNTED),
            )
        }
        self._r = client
        self._owns_client = owns

    async def stop(self) -> None:
        """Wait for the operations in flight, then disconnect (the data stays
        on the server). Idempotent."""
        if self._r is None:
            return
        await self._gate.close()
        try:
            client, self._r = self._r, None
            if client is not None and self._owns_client:
                await client.aclose()
        finally:
            self._gate.open()

    @property
    def started(self) -> bool:
        return self._r is not None

    def _client(self) -> Any:
        r = self._r
        if r is None:
            raise closed_error(f"redis store {self._where}")
        return r

    # ---- point operations -----------------------------------------------------------------

    @_redis_op
    async def get(self, key: Any) -> Any:
        """The value of ``key``, or None."""
        r = self._client()
        raw = await r.get(self._dprefix + self._keys.encode(key))
        return None if raw is None else self._values.decode_payload(key, raw)

    @_redis_op
    async def batch_get(self, keys: Iterable[Any]) -> list[Any]:
        """The values of ``keys`` (None for absent ones), in one MGET."""
        r = self._client()
        keys = list(keys) if not isinstance(keys, list) else keys
        eks = self._keys.encode_many(keys)
        if not eks:
            return []
        raws = await r.mget([self._dprefix + k for k in eks])
        dec = self._values.decode_payload
        return [None if v is None else dec(k, v) for k, v in zip(keys, raws, strict=True)]

    @_redis_op
    async def set(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` (value and index in one script)."""
        r = self._client()
        ek = self._keys.encode(key)
        ev = self._values.encode_plain(key, value)
        await self._scripts["set_many"](
            keys=[self._index, self._dprefix + ek], args=[self._px, ek, ev], client=r
        )

    @_redis_op
    async def delete(self, key: Any) -> bool:
        """Remove ``key``; True if it was present."""
        r = self._client()
        ek = self._keys.encode(key)
        n = await self._scripts["del_many"](
            keys=[self._index, self._dprefix + ek], args=[ek], client=r
        )
        return bool(n)

    @_redis_op
    async def exists(self, key: Any) -> bool:
        """True if ``key`` is present."""
        r = self._client()
        return bool(await r.exists(self._dprefix + self._keys.encode(key)))

    # ---- batches ------------------------------------------------------------------------------

    @_redis_op
    async def batch_set(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        """Store every pair in one atomic script; nothing is written if any
        key or value cannot be encoded."""
        r = self._client()
        enc_k = self._keys.encode
        enc_v = self._values.encode_plain
        members: list[bytes] = []
        vals: list[bytes] = []
        for k, v in iter_pairs(items):
            members.append(enc_k(k))
            vals.append(enc_v(k, v))
        if not members:
            return
        dp = self._dprefix
        await self._scripts["set_many"](
            keys=[self._index, *(dp + m for m in members)],
            args=[self._px, *members, *vals],
            client=r,
        )

    @_redis_op
    async def batch_delete(self, keys: Iterable[Any]) -> int:
        """Remove ``keys`` in one atomic script; returns how many were present."""
        r = self._client()
        eks = list(dict.fromkeys(self._keys.encode_many(keys)))
        if not eks:
            return 0
        dp = self._dprefix
        n = await self._scripts["del_many"](
            keys=[self._index, *(dp + k for k in eks)], args=eks, client=r
        )
        return int(n)

    # ---- scans -----------------------------------------------------------------------------------

    async def _pages(
        self, lower: bytes | None, upper: bytes | None, values: bool
    ) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
        page = self._scripts["page"]
        lo = b"-" if lower is None else b"[" + lower
        hi = b"+" if upper is None else b"(" + upper
        while True:
            r = self._client()  # each page: a stop() in between ends the scan
            out = await page(
                keys=[self._index],
                args=[self._dprefix, lo, hi, _PAGE, b"1" if values else b"0"],
                client=r,
            )
            scanned, last = int(out[0]), out[1]
            pairs = [(out[i], out[i + 1]) for i in range(2, len(out), 2)]
            if pairs:
                yield pairs
            if scanned < _PAGE:
                return
            lo = b"(" + last

    @_redis_op
    async def _collect(
        self,
        lower: bytes | None,
        upper: bytes | None,
        limit: int | None,
        mode: str,
        empty: bool,
    ) -> list[Any]:
        self._client()
        out: list[Any] = []
        if empty or limit == 0:
            return out
        dk = self._keys.decode
        dv = self._values.decode_payload
        async for pairs in self._pages(lower, upper, mode != "keys"):
            for k, v in pairs:
                key = dk(k)
                if mode == "keys":
                    out.append(key)
                elif mode == "values":
                    out.append(dv(key, v))
                else:
                    out.append((key, dv(key, v)))
                if limit is not None and len(out) >= limit:
                    return out
        return out

    async def _stream(
        self, lower: bytes | None, upper: bytes | None, limit: int | None, empty: bool
    ) -> AsyncIterator[tuple[Any, Any]]:
        self._client()
        if empty or limit == 0:
            return
        dk = self._keys.decode
        dv = self._values.decode_payload
        produced = 0
        pages = self._pages(lower, upper, True)
        gate = self._gate
        try:
            while True:
                # Each page counts in the gate while it is fetched (not while
                # the consumer holds the stream), so stop() waits for it.
                if gate.barrier is not None:
                    await gate.wait_open()
                gate.enter_open()
                try:
                    pairs = await pages.__anext__()
                except StopAsyncIteration:
                    return
                except Error:
                    raise
                except Exception as e:
                    raise _translate(e, self._where) from e
                finally:
                    gate.leave()
                for k, v in pairs:
                    key = dk(k)
                    yield key, dv(key, v)
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
        finally:
            await pages.aclose()

    def scan(
        self,
        start_key: Any = None,
        end_key: Any = None,
        prefix: Any = None,
        limit: int | None = None,
    ) -> ScanResult:
        """Pairs with ``start_key <= key < end_key`` under ``prefix``, in key
        order, at most ``limit``: a ``ZRANGEBYLEX`` range read, a page at a time."""
        limit = check_limit(limit)
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(start_key, end_key, prefix)
        return ScanResult(
            lambda: self._collect(lower, upper, limit, "items", empty),
            lambda: self._stream(lower, upper, limit, empty),
        )

    async def keys(self, prefix: Any = None) -> list[Any]:
        """Every key (under ``prefix``), in key order."""
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(None, None, prefix)
        return await self._collect(lower, upper, None, "keys", empty)

    async def values(self) -> list[Any]:
        """Every value, in key order."""
        return await self._collect(None, None, None, "values", False)

    async def items(self, prefix: Any = None) -> list[tuple[Any, Any]]:
        """Every ``(key, value)`` pair (under ``prefix``), in key order."""
        check_prefix(prefix)
        lower, upper, empty = self._keys.bounds(None, None, prefix)
        return await self._collect(lower, upper, None, "items", empty)

    @_redis_op
    async def size(self) -> int:
        """The number of live keys (``ZCARD``, or a count of the live ones
        when values expire)."""
        return await self._size()

    async def _size(self) -> int:
        r = self._client()
        if not self._px:
            return int(await r.zcard(self._index))
        n = 0
        async for pairs in self._pages(None, None, False):
            n += len(pairs)
        return n

    @_redis_op
    async def clear(self) -> None:
        """Remove every key of the namespace, in one atomic script."""
        r = self._client()
        await self._scripts["clear"](keys=[self._index], args=[self._dprefix], client=r)

    async def _del_range(self, lower: bytes | None, upper: bytes | None) -> None:
        if lower is not None and upper is not None and lower >= upper:
            return
        lo = b"-" if lower is None else b"[" + lower
        hi = b"+" if upper is None else b"(" + upper
        r = self._client()
        await self._scripts["del_range"](keys=[self._index], args=[self._dprefix, lo, hi], client=r)

    @_redis_op
    async def delete_range(self, start_key: Any = None, end_key: Any = None) -> None:
        """Remove every key with ``start_key <= key < end_key`` (None:
        unbounded), in one atomic script; ``start_key > end_key`` raises
        :class:`weir.InvalidArgumentError`."""
        lower, upper = range_bounds(self._keys, start_key, end_key)
        self._client()
        await self._del_range(lower, upper)

    @_redis_op
    async def delete_prefix(self, prefix: Any) -> None:
        """Remove every key that starts with ``prefix``, in one atomic script."""
        lower, upper = prefix_bounds(self._keys, prefix)
        self._client()
        await self._del_range(lower, upper)

    # ---- the byte-level interface ---------------------------------------------------------

    @_redis_op
    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        """One atomic write of encoded data, in one Lua script (see
        :meth:`StoreBackend.apply`)."""
        r = self._client()
        puts, deletes = check_encoded_writes(list(puts), list(deletes))
        clear = b"0"
        lo = hi = b""
        if clear_range is not None:
            lower, upper = check_encoded_range(clear_range)
            if lower is None or upper is None or lower < upper:
                clear = b"1"
                lo, hi = _lex_bounds(lower, upper)
        if clear == b"0" and not puts and not deletes:
            return
        args: list[Any] = [self._dprefix, self._px, clear, lo, hi, len(deletes), *deletes]
        for k, v in puts:
            args += (k, v)
        await self._scripts["apply"](keys=[self._index], args=args, client=r)

    @_redis_op
    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Every live ``(encoded key, payload)`` in ``[lower, upper)``, read
        in one atomic script (it holds the server for a time proportional to
        the range)."""
        lower, upper = check_encoded_range((lower, upper))
        r = self._client()
        if lower is not None and upper is not None and lower >= upper:
            return []
        lo, hi = _lex_bounds(lower, upper)
        flat = await self._scripts["range_all"](
            keys=[self._index], args=[self._dprefix, lo, hi], client=r
        )
        return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    # ---- point reads, scans and counted writes of encoded data -----------------------------

    @_redis_op
    async def read(self, key: bytes) -> bytes | None:
        """The payload under the encoded ``key`` (one ``GET``)."""
        if type(key) is not bytes:
            raise TypeError(f"a key must be bytes (an encoded key), not {type(key).__name__}")
        raw: bytes | None = await self._client().get(self._dprefix + key)
        return raw

    @_redis_op
    async def contains(self, key: bytes) -> bool:
        """True if the encoded ``key`` is present (one ``EXISTS``)."""
        if type(key) is not bytes:
            raise TypeError(f"a key must be bytes (an encoded key), not {type(key).__name__}")
        return bool(await self._client().exists(self._dprefix + key))

    async def scan_range(
        self, lower: bytes | None = None, upper: bytes | None = None, *, values: bool = True
    ) -> AsyncGenerator[list[tuple[bytes, bytes]], None]:
        """``(encoded key, payload)`` chunks of ``[lower, upper)``, one
        ``ZRANGEBYLEX`` page (an atomic script) at a time."""
        lower, upper = check_encoded_range((lower, upper))
        self._client()
        if lower is not None and upper is not None and lower >= upper:
            return
        pages = self._pages(lower, upper, values)
        gate = self._gate
        try:
            while True:
                if gate.barrier is not None:
                    await gate.wait_open()
                gate.enter_open()
                try:
                    pairs = await pages.__anext__()
                except StopAsyncIteration:
                    return
                except Error:
                    raise
                except Exception as e:
                    raise _translate(e, self._where) from e
                finally:
                    gate.leave()
                yield pairs
        finally:
            await pages.aclose()

    @_redis_op
    async def write_counted(self, writes: Iterable[CountedWrite]) -> list[bool]:
        """One atomic counted write, in one Lua script that checks each
        key's presence as it writes it (the index keeps the counts)."""
        r = self._client()
        checked = check_counted_writes(writes)
        if not checked:
            return []
        args: list[Any] = [self._dprefix, self._px]
        for key, payload, _rng in checked:
            args += (key, b"0", b"") if payload is None else (key, b"1", payload)
        existed = await self._scripts["write_counted"](keys=[self._index], args=args, client=r)
        return [bool(int(e)) for e in existed]

    async def _count(self, lower: bytes | None, upper: bytes | None) -> int:
        r = self._client()
        if not self._px:
            lo, hi = _lex_bounds(lower, upper)
            return int(await r.zlexcount(self._index, lo, hi))
        n = 0
        async for pairs in self._pages(lower, upper, False):
            n += len(pairs)
        return n

    @_redis_op
    async def count_range(self, rng: CountedRange) -> int:
        """The keys of ``rng``: a ``ZLEXCOUNT`` of the index (O(log n)),
        or, under ``ttl_seconds``, a count of the live ones."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        return await self._count(rng.lower, rng.upper)

    @_redis_op
    async def recount_range(self, rng: CountedRange) -> int:
        """The count of ``rng`` (Redis keeps no counter to rebuild)."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        return await self._count(rng.lower, rng.upper)

    @_redis_op
    async def clear_range(self, rng: CountedRange) -> None:
        """Remove every key of ``rng``, in one atomic script."""
        if not isinstance(rng, CountedRange):
            raise TypeError(f"expected a CountedRange, not {type(rng).__name__}")
        self._client()
        await self._del_range(rng.lower, rng.upper)

    # ---- stats, backup, restore -----------------------------------------------------------

    @_redis_op
    async def get_stats(self) -> dict[str, Any]:
        """``backend_type``, ``keys`` (exact), ``bytes_on_disk`` (None: the
        server owns persistence), the namespace, and server counters under
        ``engine`` (from ``INFO``)."""
        r = self._client()
        keys = await self._size()
        info = await r.info()
        wanted = (
            "redis_version",
            "used_memory",
            "connected_clients",
            "total_commands_processed",
            "instantaneous_ops_per_sec",
            "keyspace_hits",
            "keyspace_misses",
            "expired_keys",
            "evicted_keys",
            "aof_enabled",
            "rdb_changes_since_last_save",
        )
        return {
            "backend_type": self.backend_type,
            "keys": keys,
            "keys_exact": True,
            "bytes_on_disk": None,
            "url": self._url,
            "namespace": self.namespace.decode("utf-8", "replace"),
            "key_codec": self._keys.name,
            "value_codec": self._values.name,
            "ttl_seconds": self.config.ttl_seconds,
            "max_size": self.config.max_size,
            "compression": self.config.compression,
            "engine": {k: info[k] for k in wanted if k in info},
        }

    @_redis_op
    async def backup(self, path: PathLike) -> None:
        """Write every key of the namespace, read in one atomic script, with
        its value and expiry, to the dump file ``path`` (must not exist)."""
        r = self._client()
        target = os.fspath(path)
        if os.path.lexists(target):
            raise FileExistsError(f"backup target {target!r} already exists")
        flat = await self._scripts["dump_all"](keys=[self._index], args=[self._dprefix], client=r)
        now = now_ms()
        records = [
            (flat[i], flat[i + 1], -1 if int(flat[i + 2]) < 0 else now + int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        await asyncio.get_running_loop().run_in_executor(None, write_dump_file, target, records)

    @_redis_op
    async def restore(self, path: PathLike) -> None:
        """Replace the namespace with the dump at ``path``, in one atomic script."""
        r = self._client()
        source = os.fspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"no backup at {source!r}")
        records = await asyncio.get_running_loop().run_in_executor(
            None, read_dump_file, source, "redis"
        )
        now = now_ms()
        args: list[Any] = [self._dprefix]
        for k, v, expires in records:
            if expires < 0:
                px = self._px
            else:
                px = expires - now
                if px <= 0:
                    continue  # expired while in the backup
            args += (k, v, px)
        await self._scripts["restore_all"](keys=[self._index], args=args, client=r)

    # ---- transactions -------------------------------------------------------------------------

    def transaction(self) -> StoreTransaction:
        """A new transaction; ``async with backend.transaction() as txn:``."""
        self._client()
        return StoreTransaction(self, self._keys, self._values, self._txn_read)

    @_redis_op
    async def _txn_read(self, ek: bytes) -> bytes | None:
        raw: bytes | None = await self._client().get(self._dprefix + ek)
        return raw

    async def begin_transaction(self) -> StoreTransaction:
        """Start an optimistic transaction, checked with WATCH at commit."""
        return self.transaction()

    def _own(self, txn: Any) -> StoreTransaction:
        if not isinstance(txn, Transaction):
            raise TypeError(f"expected a Transaction, not {type(txn).__name__}")
        if not isinstance(txn, StoreTransaction) or txn.backend is not self:
            raise make_error(InvalidArgumentError, "the transaction belongs to another backend")
        return txn

    @_redis_op
    async def commit_transaction(self, transaction: Any) -> None:
        """WATCH the keys read, check they still hold what was read, and
        apply the writes in MULTI/EXEC; a change by anyone in between raises
        :class:`TransactionConflictError` and writes nothing."""
        txn = self._own(transaction)
        txn._check_active()
        r = self._client()
        dp = self._dprefix
        read_keys = list(txn.reads)
        if not txn.writes:
            # Read-only: one MGET (atomic on the server) checks that every
            # value read was current at one moment.
            if read_keys:
                current = await r.mget([dp + k for k in read_keys])
                self._check_reads(txn, read_keys, current)
            txn.state = "committed"
            return
        redis = _redis()
        try:
            async with r.pipeline(transaction=True) as pipe:
                if read_keys:
                    await pipe.watch(*(dp + k for k in read_keys))
                    current = await pipe.mget([dp + k for k in read_keys])
                    self._check_reads(txn, read_keys, current)
                pipe.multi()
                for k, payload in txn.writes.items():
                    if payload is None:
                        pipe.delete(dp + k)
                        pipe.zrem(self._index, k)
                    else:
                        if self._px:
                            pipe.set(dp + k, payload, px=self._px)
                        else:
                            pipe.set(dp + k, payload)
                        pipe.zadd(self._index, {k: 0})
                await pipe.execute()
        except redis.exceptions.WatchError:
            txn.state = "rolled back"
            raise
        txn.state = "committed"

    def _check_reads(
        self, txn: StoreTransaction, read_keys: list[bytes], current: list[bytes | None]
    ) -> None:
        for k, now_v in zip(read_keys, current, strict=True):
            if now_v != txn.reads[k]:
                txn.state = "rolled back"
                raise make_error(
                    TransactionConflictError,
                    f"transaction conflict: key {short_repr(self._keys.decode(k))} "
                    "changed after the transaction read it; nothing was written",
                    "WEIR_CONFLICT",
                )

    async def rollback_transaction(self, transaction: Any) -> None:
        """Discard the transaction's writes; a finished one is left as is."""
        txn = self._own(transaction)
        if txn.state == "active":
            txn.writes.clear()
            txn.state = "rolled back"

    def __repr__(self) -> str:
        return f"<RedisBackend {self._where}>"
