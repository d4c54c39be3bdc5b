"""Redis plumbing of a scaled-out job: the key layout, the connection (one
server or a Redis Cluster) and the Lua scripts that make leases and fenced
writes atomic.

Every key of one partition carries the hash tag ``{job.p}``, so in a Redis
Cluster they all live in one slot and a script can touch several of them
atomically: the fence check and the write it guards are one operation.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError, ResponseError

T = TypeVar("T")

__all__ = [
    "ClusterError",
    "FencedError",
    "PartitionKeys",
    "connect",
    "job_key",
    "partition_of",
    "retrying",
]


class ClusterError(Exception):
    """A scaled-out job cannot go on: Redis unreachable, a job whose
    configuration disagrees with the one Redis holds, a bad job module."""


class FencedError(ClusterError):
    """A write was refused because this worker no longer holds the
    partition's lease: another worker took the partition over (its fencing
    token is newer). The partition must be dropped, not retried."""


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_job_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ClusterError(
            f"job name must be letters, digits, '_', '.' or '-' (it goes into Redis keys), "
            f"not {name!r}"
        )
    return name


def partition_of(key: Any, partitions: int) -> int:
    """The partition of a record key: CRC-32 of its UTF-8 (or raw) bytes
    modulo ``partitions``, the same on every machine and Python version
    (unlike ``hash()``, which is salted per process)."""
    if isinstance(key, bytes):
        data = key
    elif isinstance(key, str):
        data = key.encode()
    else:
        data = repr(key).encode()
    return zlib.crc32(data) % partitions


def job_key(job: str, what: str) -> str:
    """A job-wide key (membership, configuration)."""
    return f"weir:{{{job}}}:{what}"


class PartitionKeys:
    """The Redis keys of one partition of one job."""

    __slots__ = ("fence", "input", "lease", "log", "out", "out_last", "producers", "snap", "state")

    def __init__(self, job: str, partition: int) -> None:
        tag = f"weir:{{{job}.{partition}}}"
        #: the partition's input stream (the producer appends records here)
        self.input = f"{tag}:in"
        #: a hash: each producer's last sequence number appended here, and
        #: (field ``:ends``) how many end markers the input holds
        self.producers = f"{tag}:in:producers"
        #: the fencing counter: incremented by every new owner
        self.fence = f"{tag}:fence"
        #: "<worker id> <token>" while a worker owns the partition, with a TTL
        self.lease = f"{tag}:lease"
        #: the changelog stream: one entry per checkpoint
        self.log = f"{tag}:log"
        #: a hash: the latest checkpoint record (JSON) and its changelog id
        self.state = f"{tag}:ckpt"
        #: a hash: the latest snapshot's path, changelog id and checkpoint id
        self.snap = f"{tag}:snap"
        #: the output stream and the number of its last item (de-duplication)
        self.out = f"{tag}:out"
        self.out_last = f"{tag}:out:last"


async def connect(url: str) -> Any:
    """A redis-py asyncio client for ``url``: a cluster client when the
    server is a Redis Cluster node, a plain client otherwise. Replies are
    bytes (the changelog carries binary keys and values)."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    probe = aioredis.from_url(url)
    try:
        info = await probe.info("cluster")
    except (RedisError, RedisClusterException, OSError) as e:
        raise ClusterError(f"cannot reach Redis at {url}: {e}") from e
    finally:
        await probe.aclose()
    if info.get("cluster_enabled"):
        client: Any = RedisCluster.from_url(url)
        try:
            await client.initialize()
        except (RedisError, RedisClusterException, OSError) as e:
            await client.aclose()
            raise ClusterError(f"cannot join the Redis Cluster at {url}: {e}") from e
        return client
    return aioredis.from_url(url)


def raise_if_fenced(e: ResponseError, what: str) -> None:
    if "WEIRFENCED" in str(e):
        raise FencedError(f"{what}: {e}") from e


def transient(e: BaseException) -> bool:
    """Whether a Redis error may go away by itself: a connection refused
    or reset, a timeout, a cluster that is down, moving slots or cannot
    reach a node, a server loading its data. A script's refusal (a fence),
    a wrong command or a failed authentication is not."""
    from redis import exceptions as rx

    if isinstance(e, (rx.AuthenticationError, rx.AuthorizationError)):
        return False
    if isinstance(
        e,
        (
            OSError,
            asyncio.TimeoutError,
            rx.ConnectionError,
            rx.TimeoutError,
            rx.ClusterError,  # ClusterDownError, MasterDownError
            rx.TryAgainError,
            rx.AskError,  # and MovedError
            rx.RedisClusterException,  # unreachable cluster, slot not covered (not RedisErrors)
        ),
    ):
        return True
    if isinstance(e, rx.ResponseError):
        return str(e).startswith(("CLUSTERDOWN", "TRYAGAIN", "LOADING", "MOVED", "ASK", "BUSY"))
    return False


async def retrying(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline: Callable[[], float],
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """``await op()``, again after a transient Redis error (:func:`transient`)
    with exponential back-off (50 ms doubling to 1 s, jittered), as long
    as the next try would start before ``deadline()`` (a
    :func:`time.monotonic` time, read before each try: a lease's end moves
    when it is renewed). ``op`` must be safe to repeat: every write weir
    retries is idempotent (sequence numbers, output numbers, checkpoint
    ids). The last error is raised once the deadline would pass."""
    delay = 0.05
    tries = 0
    while True:
        try:
            return await op()
        except Exception as e:
            if not transient(e):
                raise
            tries += 1
            pause = delay * (0.5 + random.random())
            if time.monotonic() + pause >= deadline():
                raise
            if on_retry is not None and tries in (1, 10, 100):
                detail = f": {e}" if str(e) else ""
                on_retry(f"{what}: {type(e).__name__}{detail}; retrying (try {tries})")
            await asyncio.sleep(pause)
            delay = min(1.0, delay * 2)


# ---- scripts --------------------------------------------------------------------------------
# Tokens are compared as strings: GET returns the counter's decimal text and
# the caller passes its token the same way.

#: KEYS lease, fence; ARGV worker id, ttl ms -> the new token, or 0 if taken.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""

#: KEYS lease, fence; ARGV worker id, token, ttl ms -> 1 if still ours.
#: The fence, not the lease key, is the authority: a lease that expired
#: while nobody else took the partition is still ours to renew.
RENEW = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return 1
"""

#: KEYS lease, fence; ARGV token -> 1 if released.
RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

#: KEYS fence, log, state; ARGV token, ops, record, checkpoint id -> the
#: changelog entry id. Idempotent: a retry of a commit that landed (its
#: reply lost to a timeout) finds its own checkpoint id and token in the
#: state hash and returns the entry it wrote, appending nothing.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('WEIRFENCED checkpoint refused: token ' .. ARGV[1] .. ' is stale')
end
local have = redis.call('HMGET', KEYS[3], 'ckpt', 'token', 'log')
if have[1] == ARGV[4] and have[2] == ARGV[1] and have[3] then return have[3] end
local id = redis.call('XADD', KEYS[2], '*', 'ops', ARGV[2], 'ckpt', ARGV[3], 'token', ARGV[1])
redis.call('HSET', KEYS[3], 'record', ARGV[3], 'log', id, 'ckpt', ARGV[4], 'token', ARGV[1])
return id
"""

#: KEYS input, producers; ARGV producer id, first sequence number, maxlen
#: ('' for none), '1' for end markers else '0', then one payload per
#: record -> {records appended, the producer's last sequence number}.
#: Sequence numbers count one producer's records per partition from 1; a
#: record whose number is not above the last one stored was appended
#: before (a retry after a lost reply, a stall, a failover) and is skipped,
#: and a batch that would leave a hole (an earlier batch that has not
#: landed) is refused, so each record is in the stream once and in order.
PRODUCE = """
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local first = tonumber(ARGV[2])
if first > last + 1 then
  return redis.error_reply('WEIRGAP producer ' .. ARGV[1] .. ' sent ' .. first .. ' after ' .. last)
end
local top = last
local added = 0
for i = 5, #ARGV do
  local seq = first + i - 5
  if seq > last then
    if ARGV[4] == '1' then
      redis.call('XADD', KEYS[1], '*', 'end', '1', 'p', ARGV[1], 's', seq)
      redis.call('HINCRBY', KEYS[2], ':ends', 1)
    elseif ARGV[3] ~= '' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
                 'data', ARGV[i], 'p', ARGV[1], 's', seq)
    else
      redis.call('XADD', KEYS[1], '*', 'data', ARGV[i], 'p', ARGV[1], 's', seq)
    end
    top = seq
    added = added + 1
  end
end
if top > last then redis.call('HSET', KEYS[2], ARGV[1], top) end
return {added, top}
"""

#: KEYS fence, snap, log; ARGV token, path, changelog id, checkpoint id.
#: Entries before the snapshot's are trimmed: the snapshot holds them.
SNAPSHOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('WEIRFENCED snapshot refused: token ' .. ARGV[1] .. ' is stale')
end
redis.call('HSET', KEYS[2], 'path', ARGV[2], 'log', ARGV[3], 'ckpt', ARGV[4], 'token', ARGV[1])
return redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])
"""
