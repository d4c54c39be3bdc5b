"""The worker: leases on partitions, one pipeline per owned partition over a
local weir DB, a fenced changelog and snapshots that let any worker take a
partition over, and rebalancing as workers come and go."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import msgpack
from redis.exceptions import ResponseError

from ..durable import fsync_tree, publish
from ..stores import StoreBackendConfig, create_backend
from ..stream import Pipeline
from ..stream.tasks import TaskTimeoutError, cancel_and_wait, wait_bounded
from ._job import FencedStreamSink, Job, PartitionSource, input_progress
from ._redis import (
    ACQUIRE,
    COMMIT,
    RELEASE,
    RENEW,
    SNAPSHOT,
    ClusterError,
    FencedError,
    PartitionKeys,
    connect,
    job_key,
    raise_if_fenced,
    retrying,
    transient,
)

__all__ = ["Worker", "job_status", "restore_partition"]

_REPLAY_CHUNK = 256


def _open_store(path: Path) -> Any:
    # Pickle values: the pipeline's state is arbitrary Python objects, and
    # the store is private to this partition (never read by anything else).
    return create_backend(StoreBackendConfig(path=str(path), options={"value_codec": "pickle"}))


async def _restore(
    client: Any,
    keys: PartitionKeys,
    path: Path,
    deadline: Callable[[], float] | None = None,
) -> tuple[Any, str | None, int]:
    """Rebuild a partition's state at ``path``: copy the latest snapshot,
    then apply the changelog entries after it, each one checkpoint's atomic
    batch. Returns the started store, the last changelog id applied and the
    number of entries replayed. With ``deadline``, reads that fail on a
    transient Redis error are tried again until then."""
    shutil.rmtree(path, ignore_errors=True)
    until = deadline or (lambda: 0.0)
    snap = await retrying(
        lambda: client.hgetall(keys.snap), what=f"{keys.snap}: read", deadline=until
    )
    log_id: str | None = None
    if snap:
        src = snap[b"path"].decode()
        if not os.path.isdir(src):
            raise ClusterError(
                f"snapshot {src} of {keys.snap} is missing: the snapshot directory must be "
                "shared by every worker (a network or object-store mount)"
            )
        await asyncio.to_thread(
            shutil.copytree, src, path, ignore=shutil.ignore_patterns("LOCK", "SNAPSHOT.json")
        )
        log_id = snap[b"log"].decode()
    store = _open_store(path)
    await store.start()
    replayed = 0
    try:
        while True:
            start = f"({log_id}" if log_id else "-"

            def read_log(start: str = start) -> Any:
                return client.xrange(keys.log, min=start, count=_REPLAY_CHUNK)

            entries = await retrying(read_log, what=f"{keys.log}: read", deadline=until)
            if not entries:
                break
            for entry_id, fields in entries:
                puts, deletes = msgpack.unpackb(fields[b"ops"], use_list=False)
                await store.apply(list(puts), list(deletes))
                log_id = entry_id.decode()
                replayed += 1
    except BaseException:
        await store.stop()
        raise
    return store, log_id, replayed


async def restore_partition(
    url: str, job: str, partition: int, path: str | os.PathLike[str]
) -> Any:
    """A started weir store at ``path`` holding partition ``partition`` of
    ``job`` as of its last checkpoint (snapshot plus changelog), for
    inspection: ``Pipeline(job, store=...).state_items(...)`` reads it.
    Stop it when done."""
    client = await connect(url)
    try:
        store, _log, _n = await _restore(client, PartitionKeys(job, partition), Path(path))
    finally:
        await client.aclose()
    return store


class _Partition:
    """One owned partition: its restore, pipeline, changelog and snapshots.

    ``valid_until`` is the latest time (``time.monotonic``) the lease can
    still be ours by our own clock: the send time of the last renewal that
    succeeded plus the lease. Redis set the expiry when the renewal
    arrived, later than it was sent, so this errs on the safe side. Every
    retry of a Redis write stops at :meth:`safe_until`, a margin before it.
    """

    def __init__(self, worker: Worker, p: int, token: int, acquired_at: float) -> None:
        self.worker = worker
        self.p = p
        self.token = token
        self.keys = PartitionKeys(worker.job.name, p)
        self.dir = worker.work_dir / f"p{p}-t{token}"
        self.pipeline: Pipeline | None = None
        self.store: Any = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.finished = False
        #: why the worker gave it up without a hand-over ("lost", "expired")
        self.abandoned: str | None = None
        self.valid_until = acquired_at + worker.lease_ms / 1000
        self.log_id: str | None = None
        self.since_snapshot = 0
        self.last_events = 0
        self.last_time = time.time()
        self.events = 0
        self._commit = worker.client.register_script(COMMIT)
        self._snapshot = worker.client.register_script(SNAPSHOT)

    def safe_until(self) -> float:
        return self.valid_until - self.worker.lease_margin

    async def run(self) -> None:
        w = self.worker
        t0 = time.perf_counter()
        self.store, self.log_id, replayed = await _restore(
            w.client, self.keys, self.dir, self.safe_until
        )
        try:
            job = w.job
            pipeline = Pipeline(
                job.name,
                store=self.store,
                checkpoint_every=job.checkpoint_every,
                checkpoint_interval=job.checkpoint_interval,
                progress=False,
                commit_hook=self._on_commit,
                stop_timeout=max(1.0, w.lease_ms / 1000),
            )
            self.pipeline = pipeline
            if self.abandoned is not None:
                pipeline.cancel()
            meta = await pipeline.last_checkpoint()
            self.last_events = self.events = int((meta or {}).get("events", 0))
            w.log(
                f"p{self.p}: restored in {1000 * (time.perf_counter() - t0):.0f} ms "
                f"({replayed} changelog entries, checkpoint {(meta or {}).get('id', 0)}, "
                f"{self.events:,} events)"
            )
            if meta is not None and meta.get("finished"):
                self.finished = True
                return
            if self.stopping or self.abandoned is not None:
                return
            name = f"{job.name}.p{self.p}"
            source = PartitionSource(w.client, self.keys, name, deadline=self.safe_until, log=w.log)
            sink = FencedStreamSink(
                w.client, self.keys, self.token, deadline=self.safe_until, log=w.log
            )
            job.build(pipeline.source(source), sink)
            if w.metrics is not None:
                w.metrics.add(pipeline, {"job": job.name, "partition": str(self.p)})
            try:
                m = await pipeline.run()
            finally:
                if w.metrics is not None:
                    w.metrics.remove(pipeline)
            # Finished is what the last checkpoint says: a hand-over asked
            # for just as the input ended still ends the partition.
            meta = await pipeline.last_checkpoint()
            self.finished = bool(meta and meta.get("finished"))
            w.log(
                f"p{self.p}: {'finished' if self.finished else 'handed over'} after "
                f"{m['events']:,} events ({m['events_per_s']:,.0f} ev/s)"
            )
        finally:
            await self.store.stop()

    def request_stop(self) -> None:
        self.stopping = True
        if self.pipeline is not None:
            self.pipeline.request_stop()

    def abandon(self, why: str) -> None:
        """Stop writing at once, without a checkpoint: the lease is lost
        to a newer owner, or could expire before it is renewed."""
        if self.abandoned is None:
            self.abandoned = why
        if self.pipeline is not None:
            self.pipeline.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _on_commit(
        self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], meta: dict[str, Any]
    ) -> None:
        # The local DB holds every checkpoint through self.log_id and nothing
        # after (commits are serialised): a snapshot now is exactly that.
        if self.since_snapshot >= self.worker.job.snapshot_every and self.log_id is not None:
            await self._take_snapshot(int(meta["id"]) - 1)
        now = time.time()
        events = int(meta.get("events", 0))
        rate = (events - self.last_events) / (now - self.last_time) if now > self.last_time else 0.0
        record = json.dumps(
            {
                "id": meta["id"],
                "offset": meta.get("offset"),
                "events": events,
                "finished": bool(meta.get("finished")),
                "owner": self.worker.worker_id,
                "token": self.token,
                "time": now,
                "rate": rate,
            },
            separators=(",", ":"),
        )
        ops = msgpack.packb((puts, deletes), use_bin_type=True)
        k = self.keys
        args = [str(self.token), ops, record, str(meta["id"])]
        try:
            # The script is idempotent per checkpoint id: a retry after a
            # reply lost to a stall appends nothing twice.
            log_id = await retrying(
                lambda: self._commit(keys=[k.fence, k.log, k.state], args=args),
                what=f"p{self.p}: checkpoint {meta['id']}",
                deadline=self.safe_until,
                on_retry=self.worker.log,
            )
        except ResponseError as e:
            raise_if_fenced(e, f"p{self.p}")
            raise
        self.log_id = log_id.decode()
        self.since_snapshot += 1
        self.last_events, self.last_time, self.events = events, now, events

    async def _take_snapshot(self, ckpt_id: int) -> None:
        w = self.worker
        assert self.log_id is not None
        base = w.snapshot_dir / w.job.name / f"p{self.p}"
        name = f"{ckpt_id:012d}-t{self.token}"
        final = base / name
        partial = base / f"{name}.partial-{uuid.uuid4().hex[:8]}"
        local = w.work_dir / f".snap-p{self.p}-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        try:
            await self.store.backup(local)
            base.mkdir(parents=True, exist_ok=True)

            def ship() -> None:
                shutil.copytree(local, partial, ignore=shutil.ignore_patterns("LOCK"))
                (partial / "SNAPSHOT.json").write_text(
                    json.dumps({"log": self.log_id, "checkpoint": ckpt_id, "token": self.token})
                )
                fsync_tree(partial)
                publish(partial, final)

            await asyncio.to_thread(ship)
        finally:
            shutil.rmtree(local, ignore_errors=True)
            shutil.rmtree(partial, ignore_errors=True)
        k = self.keys
        args = [str(self.token), str(final), self.log_id, ckpt_id]
        try:
            # Idempotent: the same record set again, the same trim.
            await retrying(
                lambda: self._snapshot(keys=[k.fence, k.snap, k.log], args=args),
                what=f"p{self.p}: snapshot record",
                deadline=self.safe_until,
                on_retry=w.log,
            )
        except ResponseError as e:
            shutil.rmtree(final, ignore_errors=True)
            raise_if_fenced(e, f"p{self.p} snapshot")
            raise
        self.since_snapshot = 0
        # Older snapshots are garbage now; never touch a newer owner's.
        for d in base.iterdir():
            parts = d.name.split("-t")
            if d == final or len(parts) != 2 or not parts[0].isdigit():
                continue
            tok = parts[1].split(".")[0]
            older = tok.isdigit() and (
                int(tok) < self.token or (int(tok) == self.token and d.name < name)
            )
            if older:
                shutil.rmtree(d, ignore_errors=True)
        w.log(f"p{self.p}: snapshot {name} in {1000 * (time.perf_counter() - t0):.0f} ms")


class Worker:
    """A worker process's engine: takes a fair share of ``job``'s
    partitions through leases, runs a pipeline per partition, hands
    partitions over when workers join and takes them over when one dies.

    ``lease_ms`` is how long a silent worker keeps its partitions; leases
    are renewed every third of it, by a task of their own (a busy balance
    round cannot delay them). ``work_dir`` holds the local weir DBs;
    ``snapshot_dir`` must be shared by every worker of the job (a mount of
    network or object storage; any directory on one machine). With
    ``exit_when_done`` the worker returns once every partition has reached
    the end of its input (see :meth:`Producer.end`).

    Redis outages are ridden out: failed reads, writes and renewals are
    retried with back-off while the lease is safe; a partition whose lease
    could expire before it is renewed stops writing (its pipeline is
    cancelled, without a checkpoint) a margin before that, and is taken
    again once Redis answers. Only a fence (a newer owner) ends a
    partition's run for good, and only :meth:`stop` (SIGTERM, SIGINT) or
    the end of the job ends the worker. ``metrics_port`` serves Prometheus
    metrics (see :mod:`weir.stream.metrics`).
    """

    def __init__(
        self,
        url: str,
        job: Job,
        work_dir: str | os.PathLike[str],
        snapshot_dir: str | os.PathLike[str],
        *,
        worker_id: str | None = None,
        lease_ms: int = 6000,
        exit_when_done: bool = True,
        log: TextIO | None = None,
        metrics_port: int | None = None,
        metrics_addr: str = "127.0.0.1",
        connect_for: float = 60.0,
    ) -> None:
        if lease_ms < 300:
            raise ClusterError(f"lease_ms must be at least 300, not {lease_ms}")
        self.url = url
        self.job = job
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        if " " in self.worker_id or not self.worker_id:
            raise ClusterError(f"worker id must be non-empty without spaces: {self.worker_id!r}")
        self.work_dir = Path(work_dir) / self.worker_id
        self.snapshot_dir = Path(snapshot_dir)
        self.lease_ms = lease_ms
        #: a partition stops writing this long (s) before its lease could expire
        self.lease_margin = min(lease_ms / 4000, 1.0)
        self.exit_when_done = exit_when_done
        self.connect_for = connect_for
        self._log = log if log is not None else sys.stderr
        self.client: Any = None
        self.owned: dict[int, _Partition] = {}
        self._stop = asyncio.Event()
        # Set to run the next round at once instead of after a heartbeat:
        # on stop(), and when a partition finishes or is handed over (with a
        # long lease a heartbeat can be tens of seconds away).
        self._wake = asyncio.Event()
        self._all = [PartitionKeys(job.name, p) for p in range(job.partitions)]
        self.stats = {
            "acquired": 0,
            "lost": 0,
            "released": 0,
            "finished": 0,
            "expired": 0,
            "redis_errors": 0,
        }
        self._metrics_port = metrics_port
        self._metrics_addr = metrics_addr
        self.metrics: Any = None
        self._last_error_log = 0.0
        self._live = 0
        self._moving_until = 0.0

    def log(self, msg: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        self._log.write(f"{stamp} weir-worker {self.worker_id}: {msg}\n")
        self._log.flush()

    def _dump_tasks(self) -> None:
        # kill -USR2: where every task of this worker is waiting (a stuck
        # hand-over or restore shows up here).
        for task in asyncio.all_tasks():
            self._log.write(f"--- task {task.get_name()}\n")
            task.print_stack(file=self._log)
        self._log.flush()

    def stop(self) -> None:
        """Ask :meth:`run` to hand every partition back and return."""
        self._stop.set()
        self._wake.set()

    def _partition_ended(self, task: asyncio.Task[Any]) -> None:
        # A partition that finished or was handed over: settle it and
        # rebalance now. A failed one waits for the heartbeat, so a
        # partition that fails on every start is not retried in a loop.
        if not task.cancelled() and task.exception() is None:
            self._wake.set()

    def _redis_trouble(self, what: str, e: BaseException) -> None:
        self.stats["redis_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            detail = f": {e}" if str(e) else ""
            self.log(f"{what}: {type(e).__name__}{detail}; retrying")

    async def _connect(self) -> None:
        deadline = time.monotonic() + self.connect_for
        delay = 0.2
        while True:
            try:
                self.client = await connect(self.url)
                return
            except ClusterError as e:
                if time.monotonic() + delay > deadline or self._stop.is_set():
                    raise
                self.log(f"{e}; retrying")
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def run(self) -> dict[str, int]:
        """Work until stopped (or, with ``exit_when_done``, until the job
        is done); returns counts of partitions acquired, lost, released."""
        loop = asyncio.get_running_loop()
        # Signal handlers can only be set from the main thread (RuntimeError
        # elsewhere, e.g. a worker embedded in a threaded program); such a
        # worker is stopped through stop() instead.
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGUSR2, self._dump_tasks)
        await self._connect()
        self._acquire = self.client.register_script(ACQUIRE)
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._metrics_port is not None:
            from ..stream.metrics import MetricsServer

            self.metrics = MetricsServer(self._metrics_port, self._metrics_addr)
            self.metrics.add_collector(self._collect)
            self.log(f"metrics on {self.metrics.url}")
        members = job_key(self.job.name, "members")
        renewer: asyncio.Task[None] | None = None
        try:
            try:
                await self._check_config()
            except Exception as e:
                if self._stop.is_set() and transient(e):
                    self.log("stopped before Redis answered")
                    return dict(self.stats)
                raise
            self.log(f"joined job {self.job.name} ({self.job.partitions} partitions)")
            renewer = asyncio.create_task(self._renew_loop(), name="lease renewals")
            beat = self.lease_ms / 3000
            delay = 0.05
            while not self._stop.is_set():
                # Cleared before the round, so a partition that ends during
                # it makes the wait below return at once.
                self._wake.clear()
                try:
                    short = await self._round(members)
                    if short is None:
                        self.log("every partition is finished")
                        break
                    delay = 0.05
                    # Below its fair share, a worker looks again soon: the
                    # partitions another worker is handing over come free
                    # within moments, not a heartbeat.
                    wait = min(beat, 0.25) if short else beat
                except Exception as e:
                    if not transient(e):
                        raise
                    self._redis_trouble("heartbeat", e)
                    wait = min(beat, delay)
                    delay = min(beat, delay * 2)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self._shutdown(members, renewer)
        return dict(self.stats)

    async def _round(self, members: str) -> bool | None:
        """One heartbeat: membership, settle ended partitions, rebalance.
        None when the job is done and the worker should exit, else whether
        the worker is below its fair share."""
        now_ms = await self._now_ms()
        await self.client.zadd(members, {self.worker_id: now_ms + self.lease_ms})
        await self.client.zremrangebyscore(members, "-inf", now_ms)
        await self._tend_owned()
        finished = await self._finished()
        unfinished = [p for p in range(self.job.partitions) if not finished[p]]
        if not unfinished and not self.owned and self.exit_when_done:
            return None
        live = max(1, int(await self.client.zcard(members)))
        if live != self._live:
            # Workers came or went: partitions change hands for a moment.
            self._live = live
            self._moving_until = time.monotonic() + 2 * self.lease_ms / 1000
        share = math.ceil(len(unfinished) / live)
        short = await self._balance(share, unfinished)
        return short and time.monotonic() < self._moving_until

    async def _renew_loop(self) -> None:
        """Renew every owned lease each third of the lease, all at once
        (one stalled Redis node delays only its own partitions); abandon a
        partition whose renewal says it has a newer owner, or whose lease
        could run out before a renewal gets through."""
        beat = self.lease_ms / 3000
        while True:
            started = time.monotonic()
            parts = [
                part
                for part in self.owned.values()
                if part.abandoned is None and part.task is not None and not part.task.done()
            ]
            if parts:
                await asyncio.gather(*(self._renew_one(part) for part in parts))
            now = time.monotonic()
            for part in parts:
                if part.abandoned is None and now >= part.safe_until():
                    self.log(
                        f"p{part.p}: lease not renewed for "
                        f"{now - part.valid_until + self.lease_ms / 1000:.1f} s; stopping its "
                        "writes before the lease could expire (taken again once Redis answers)"
                    )
                    part.abandon("expired")
                    self._wake.set()
            await asyncio.sleep(max(0.0, beat - (time.monotonic() - started)))

    async def _renew_one(self, part: _Partition) -> None:
        sent = time.monotonic()
        try:
            # Bounded by the time left: a renewal that arrives after that
            # is no use (and the loop must go on for the others).
            left = part.safe_until() - sent
            ok = await asyncio.wait_for(
                self._renew(
                    keys=[part.keys.lease, part.keys.fence],
                    args=[self.worker_id, part.token, self.lease_ms],
                ),
                max(0.05, min(left, self.lease_ms / 1000)),
            )
        except Exception as e:
            # Whatever the error, the loop goes on for the other
            # partitions; this one is abandoned if it stays unrenewed.
            self._redis_trouble(f"p{part.p}: lease renewal", e)
            return
        if ok:
            part.valid_until = max(part.valid_until, sent + self.lease_ms / 1000)
        elif part.abandoned is None:
            # Someone else holds a newer token: stop at once, write nothing.
            self.log(f"p{part.p}: lease lost to a newer owner; dropping the partition")
            part.abandon("lost")
            self._wake.set()

    async def _now_ms(self) -> int:
        # Redis's clock, not ours: member expiries compare across machines.
        sec, usec = await self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def _check_config(self) -> None:
        key = job_key(self.job.name, "config")

        async def check() -> int:
            await self.client.hsetnx(key, "partitions", self.job.partitions)
            return int(await self.client.hget(key, "partitions"))

        have = await retrying(
            check,
            what="reading the job's configuration",
            # Until Redis answers, or until the worker is told to stop.
            deadline=lambda: 0.0 if self._stop.is_set() else math.inf,
            on_retry=self.log,
        )
        if have != self.job.partitions:
            raise ClusterError(
                f"job {self.job.name} has {have} partitions in Redis but this job module says "
                f"{self.job.partitions}; repartitioning needs a new job name"
            )

    async def _finished(self) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for k in self._all:
            pipe.hget(k.state, "record")
        out = []
        for rec in await pipe.execute():
            out.append(bool(rec) and bool(json.loads(rec).get("finished")))
        return out

    async def _tend_owned(self) -> None:
        for part in list(self.owned.values()):
            assert part.task is not None
            if part.abandoned is not None and not part.task.done():
                what = f"p{part.p}: its pipeline after the lease was {part.abandoned}"
                await self._end_task(part, what)
            if part.task.done():
                await self._settle(part)

    async def _end_task(self, part: _Partition, what: str) -> None:
        assert part.task is not None
        part.abandon(part.abandoned or "stopped")
        try:
            await cancel_and_wait(part.task, timeout=max(2.0, self.lease_ms / 1000), what=what)
        except TaskTimeoutError as e:
            # Its writes are fenced once the partition moves and its
            # directory is its own: log where it is stuck and go on.
            self.log(f"{e}; leaving it behind")

    async def _settle(self, part: _Partition) -> None:
        assert part.task is not None
        if not part.task.done():
            self._drop(part, lost=part.abandoned == "lost", expired=part.abandoned == "expired")
            return
        err = part.task.exception() if not part.task.cancelled() else None
        if isinstance(err, FencedError) or part.abandoned == "lost":
            if err is not None:
                self.log(f"p{part.p}: {err}; dropping the partition")
            self._drop(part, lost=True)
            return
        if part.abandoned == "expired":
            self._drop(part, expired=True)
            return
        if err is not None:
            self.log(f"p{part.p}: failed: {type(err).__name__}: {err}; releasing it")
        elif part.finished:
            self.stats["finished"] += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._release(keys=[part.keys.lease, part.keys.fence], args=[part.token]),
                self.lease_ms / 1000,
            )
        if not part.finished:
            self.stats["released"] += 1
        self._drop(part)

    def _drop(self, part: _Partition, *, lost: bool = False, expired: bool = False) -> None:
        self.owned.pop(part.p, None)
        if lost:
            self.stats["lost"] += 1
        if expired:
            self.stats["expired"] += 1
        if part.task is not None and part.task.done():
            shutil.rmtree(part.dir, ignore_errors=True)

    async def _balance(self, share: int, unfinished: list[int]) -> bool:
        """Hand over what is above ``share``, take free partitions up to
        it; whether the worker is still below it."""
        # A partition whose last checkpoint says finished is only closing
        # its store: counting it would hand over a running one for it.
        still = set(unfinished)
        active = [
            p
            for p, part in self.owned.items()
            if p in still and not part.stopping and part.task is not None and not part.task.done()
        ]
        if len(active) > share:
            for p in active[share:]:
                self.log(f"p{p}: handing over ({len(active)} owned, fair share {share})")
                self.owned[p].request_stop()
            return False
        want = share - len(active)
        if want <= 0 or self._stop.is_set():
            return False
        # Start at a worker-specific place so joiners do not all race for p0.
        start = sum(self.worker_id.encode()) % len(unfinished)
        for p in unfinished[start:] + unfinished[:start]:
            if want == 0 or self._stop.is_set():
                break
            if p in self.owned:
                continue
            k = self._all[p]
            sent = time.monotonic()
            token = int(
                await self._acquire(keys=[k.lease, k.fence], args=[self.worker_id, self.lease_ms])
            )
            if not token:
                continue
            part = _Partition(self, p, token, sent)
            part.task = asyncio.create_task(part.run(), name=f"partition {p}")
            part.task.add_done_callback(self._partition_ended)
            self.owned[p] = part
            self.stats["acquired"] += 1
            want -= 1
            self.log(f"p{p}: acquired (fencing token {token})")
        return want > 0

    async def _shutdown(self, members: str, renewer: asyncio.Task[None] | None) -> None:
        # Leases go on being renewed while the partitions hand over, so the
        # hand-over may take longer than a lease; a partition whose lease
        # cannot be renewed is cancelled by the renewals meanwhile.
        bound = max(2 * self.lease_ms / 1000, 5.0)
        for part in self.owned.values():
            part.request_stop()
        running = [p.task for p in self.owned.values() if p.task is not None and not p.task.done()]
        if running:
            with contextlib.suppress(TaskTimeoutError):
                await wait_bounded(
                    asyncio.ensure_future(asyncio.wait(running)),
                    timeout=bound,
                    what="handing the partitions over",
                )
        for part in list(self.owned.values()):
            assert part.task is not None
            if not part.task.done():
                self.log(f"p{part.p}: no hand-over within {bound:g} s; stopping it")
                await self._end_task(part, f"p{part.p}: its pipeline at shutdown")
            await self._settle(part)
        if renewer is not None:
            with contextlib.suppress(TaskTimeoutError):
                await cancel_and_wait(renewer, timeout=bound, what="the lease renewals")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.zrem(members, self.worker_id), bound)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.aclose(), bound)
        if self.metrics is not None:
            self.metrics.close()

    def _collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["job", "worker"]
        lv = [self.job.name, self.worker_id]
        owned = GaugeMetricFamily(
            "weir_worker_partitions_owned", "Partitions this worker owns", labels=labels
        )
        owned.add_metric(lv, len(self.owned))
        yield owned
        for key, doc in (
            ("acquired", "Partitions taken"),
            ("finished", "Partitions run to the end of their input"),
            ("released", "Partitions handed over"),
            ("lost", "Partitions lost to a newer owner"),
            ("expired", "Partitions given up because their lease could not be renewed"),
            ("redis_errors", "Transient Redis errors retried by the heartbeat and renewals"),
        ):
            c = CounterMetricFamily(f"weir_worker_partitions_{key}", doc, labels=labels)
            if key == "redis_errors":
                c = CounterMetricFamily("weir_worker_redis_errors", doc, labels=labels)
            c.add_metric(lv, self.stats[key])
            yield c


async def job_status(url: str, job: str) -> dict[str, Any]:
    """What ``weir job status`` shows: per partition its owner, fencing
    token, committed events, lag (input records not yet checkpointed; end
    markers are not records), throughput at the last checkpoint, changelog
    length and snapshot; and the live workers with the time left on their
    membership (milliseconds, by Redis's clock)."""
    client = await connect(url)
    try:
        parts_raw = await client.hget(job_key(job, "config"), "partitions")
        if parts_raw is None:
            raise ClusterError(f"no job {job!r} in Redis at {url} (no worker has started it)")
        n = int(parts_raw)
        sec, usec = await client.time()
        now_ms = int(sec) * 1000 + int(usec) // 1000
        workers = await client.zrangebyscore(
            job_key(job, "members"), now_ms, "+inf", withscores=True
        )
        partitions = []
        for p in range(n):
            k = PartitionKeys(job, p)
            lease = await client.get(k.lease)
            rec_raw = await client.hget(k.state, "record")
            rec = json.loads(rec_raw) if rec_raw else {}
            snap = await client.hgetall(k.snap)
            added, ends = await input_progress(client, k)
            read = int((rec.get("offset") or {}).get("n", 0))
            partitions.append(
                {
                    "partition": p,
                    "owner": lease.decode().split(" ")[0] if lease else None,
                    "token": int(lease.decode().split(" ")[1]) if lease else None,
                    "checkpoint": rec.get("id", 0),
                    "events": rec.get("events", 0),
                    "lag": 0 if rec.get("finished") else max(0, added - ends - read),
                    "rate": rec.get("rate", 0.0) if not rec.get("finished") else 0.0,
                    "finished": bool(rec.get("finished")),
                    "changelog": int(await client.xlen(k.log)),
                    "snapshot": int(snap[b"ckpt"]) if snap else None,
                }
            )
        return {
            "job": job,
            "partitions": partitions,
            "workers": [
                {"id": w.decode(), "expires_in_ms": int(score) - now_ms} for w, score in workers
            ],
        }
    finally:
        await client.aclose()
