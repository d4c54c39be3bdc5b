"""Sabot's state store manager: named tables over store backends, with
isolation levels, metrics, health checks and coordinated checkpoints.

A :class:`StateTable` is a :class:`weir.table.Table` (its own key space in
a store, so tables sharing a backend never see each other's keys) with
Sabot's async method names, ``increment``, metrics and a health check.
:class:`StateStoreManager` makes the backends (one shared by every table,
one per table, or one per name prefix: :class:`StateIsolation`), the
tables, and one :class:`~weir.sabot.checkpoint.CheckpointManager` over all
of its backends; a checkpoint waits for the table operations in flight and
holds new ones, so it is a cut of every table at one moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ... import ClosedError, InvalidArgumentError
from ...stores import StoreBackend
from ...table import Table
from .._keys import SABOT_KEYS
from ..checkpoint import CheckpointConfig, CheckpointManager
from .base import ScanItems, StoreBackendConfig, create_backend

__all__ = [
    "BackendType",
    "StateIsolation",
    "StateMetrics",
    "StateStoreConfig",
    "StateStoreManager",
    "StateTable",
]

log = logging.getLogger("weir.sabot.stores")


class BackendType(Enum):
    """The backends a :class:`StateStoreManager` can use (Sabot's values;
    ``WEIR`` and ``ARROW_FILES`` are weir's additions). MarbleDB, Tonbo and
    weir are all the weir engine; ``KAFKA`` has no weir counterpart and is
    refused by ``start()``."""

    MARBLEDB = "marbledb"
    TONBO = "tonbo"
    KAFKA = "kafka"
    MEMORY = "memory"
    ROCKSDB = "rocksdb"
    REDIS = "redis"
    WEIR = "weir"
    ARROW_FILES = "arrow_files"


class StateIsolation(Enum):
    """How tables map to backends: all in one (``SHARED``), one backend per
    table (``TABLE``), or one per name prefix before the first ``_``
    (``NAMESPACE``: ``user_profiles`` and ``user_sessions`` share one)."""

    SHARED = "shared"
    TABLE = "table"
    NAMESPACE = "namespace"


def _default(kind: str) -> Any:
    return lambda: StoreBackendConfig(backend_type=kind, path=Path(f"./sabot_state/{kind}"))


@dataclass
class StateStoreConfig:
    """Configuration of a :class:`StateStoreManager` (Sabot's fields and defaults).

    The ``*_config`` of the chosen ``backend_type`` is used; with ``TABLE``
    or ``NAMESPACE`` isolation each backend gets a subdirectory (or, on
    Redis, a sub-namespace) named after its table or prefix.
    """

    backend_type: BackendType = BackendType.MARBLEDB
    isolation_level: StateIsolation = StateIsolation.SHARED
    memory_config: StoreBackendConfig = field(
        default_factory=lambda: StoreBackendConfig(backend_type="memory")
    )
    rocksdb_config: StoreBackendConfig = field(default_factory=_default("rocksdb"))
    redis_config: StoreBackendConfig = field(
        default_factory=lambda: StoreBackendConfig(
            backend_type="redis",
            options={"host": "localhost", "port": 6379, "namespace": "sabot", "serializer": "json"},
        )
    )
    marbledb_config: StoreBackendConfig = field(default_factory=_default("marbledb"))
    tonbo_config: StoreBackendConfig = field(default_factory=_default("tonbo"))
    weir_config: StoreBackendConfig = field(default_factory=_default("weir"))
    arrow_files_config: StoreBackendConfig = field(default_factory=_default("arrow_files"))
    checkpoint_config: CheckpointConfig = field(
        default_factory=lambda: CheckpointConfig(
            enabled=True, interval_seconds=300.0, max_checkpoints=10
        )
    )
    enable_metrics: bool = True
    enable_monitoring: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.backend_type, BackendType):
            try:
                self.backend_type = BackendType(self.backend_type)
            except ValueError:
                raise InvalidArgumentError(
                    f"backend_type must be a BackendType, not {self.backend_type!r}"
                ) from None
        if not isinstance(self.isolation_level, StateIsolation):
            try:
                self.isolation_level = StateIsolation(self.isolation_level)
            except ValueError:
                raise InvalidArgumentError(
                    f"isolation_level must be a StateIsolation, not {self.isolation_level!r}"
                ) from None

    def backend_config(self) -> StoreBackendConfig:
        """The ``*_config`` of :attr:`backend_type`."""
        return getattr(self, f"{self.backend_type.value}_config")  # type: ignore[no-any-return]


@dataclass
class StateMetrics:
    """Counters of a table's operations (Sabot's fields)."""

    operations_total: int = 0
    operations_by_type: dict[str, int] = field(default_factory=dict)
    latency_by_type: dict[str, float] = field(default_factory=dict)
    errors_total: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    cache_hit_ratio: float = 0.0
    memory_usage_bytes: int = 0
    last_operation_time: float = 0.0

    def record(self, operation: str, seconds: float, ok: bool) -> None:
        """Count one operation; latencies are an exponential moving average."""
        self.operations_total += 1
        self.operations_by_type[operation] = self.operations_by_type.get(operation, 0) + 1
        self.last_operation_time = time.time()
        old = self.latency_by_type.get(operation)
        self.latency_by_type[operation] = seconds if old is None else 0.1 * seconds + 0.9 * old
        if not ok:
            self.errors_total += 1
            self.errors_by_type[operation] = self.errors_by_type.get(operation, 0) + 1


def _successor(prefix: bytes) -> bytes | None:
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes((p[-1] + 1,))


class StateTable:
    """A named table of keyed state in a store backend, Sabot's async API.

    The rows live in the table's own key space of ``backend`` (a
    :class:`weir.table.Table`), so tables sharing a backend are isolated.
    Keys are ``str``, bytes, ``int``, ``None`` or tuples; values are what
    the backend's value codec stores (weir.sabot's backends pickle). The
    operations of one table run one at a time (``increment`` is a
    read-modify-write that no other operation of this table interleaves
    with). The backend is started on first use if it is not yet.
    """

    def __init__(self, name: str, backend: StoreBackend, enable_metrics: bool = True) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a table name must be a non-empty str, not {name!r}")
        if not isinstance(backend, StoreBackend):
            raise TypeError(f"backend must be a store backend, not {type(backend).__name__}")
        self.name = name
        self.backend = backend
        self.enable_metrics = enable_metrics
        self.metrics: StateMetrics | None = StateMetrics() if enable_metrics else None
        self._table: Table | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    # ---- plumbing ----------------------------------------------------------------------

    async def _rows(self) -> Table:
        if self._closed:
            raise ClosedError(f"state table {self.name!r} is closed")
        if self._table is None:
            if not getattr(self.backend, "started", True):
                await self.backend.start()
            self._table = Table(self.name, self.backend, key_codec=SABOT_KEYS)
        return self._table

    def _lock_now(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _run(self, operation: str, body: Any) -> Any:
        start = time.perf_counter()
        ok = False
        try:
            async with self._lock_now():
                result = await body()
            ok = True
            return result
        finally:
            if self.metrics is not None:
                self.metrics.record(operation, time.perf_counter() - start, ok)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Wait for the operation in flight and hold new ones while the block
        runs (the manager takes checkpoints so)."""
        async with self._lock_now():
            yield

    # ---- Sabot's operations ------------------------------------------------------------

    async def get(self, key: Any) -> Any | None:
        """The value of ``key``, or None."""

        async def body() -> Any:
            return await (await self._rows()).aget(key)

        return await self._run("get", body)

    async def set(self, key: Any, value: Any) -> None:
        async def body() -> None:
            await (await self._rows()).aset(key, value)

        await self._run("set", body)

    async def delete(self, key: Any) -> bool:
        """Remove ``key``; True if it was there."""

        async def body() -> bool:
            return await (await self._rows()).adelete(key)

        return bool(await self._run("delete", body))

    async def exists(self, key: Any) -> bool:
        async def body() -> bool:
            return await (await self._rows()).acontains(key)

        return bool(await self._run("exists", body))

    async def _pairs(self, prefix: Any) -> list[tuple[Any, Any]]:
        table = await self._rows()
        return [pair async for pair in table.aitems(prefix)]

    async def keys(self, prefix: str | bytes | None = None) -> list[Any]:
        """Every key (those starting with ``prefix``), in key order."""

        async def body() -> list[Any]:
            return [k for k, _ in await self._pairs(prefix)]

        return list(await self._run("keys", body))

    async def values(self) -> list[Any]:
        async def body() -> list[Any]:
            return [v for _, v in await self._pairs(None)]

        return list(await self._run("values", body))

    async def items(self, prefix: str | bytes | None = None) -> list[tuple[Any, Any]]:
        async def body() -> list[tuple[Any, Any]]:
            return await self._pairs(prefix)

        return list(await self._run("items", body))

    async def clear(self) -> None:
        """Remove every row of this table (one write)."""

        async def body() -> None:
            # Through the table, so its row count is zeroed in the same write.
            await (await self._rows()).aclear()

        await self._run("clear", body)

    async def size(self) -> int:
        async def body() -> int:
            return await (await self._rows()).alen()

        return int(await self._run("size", body))

    async def scan(
        self,
        start_key: Any | None = None,
        end_key: Any | None = None,
        prefix: str | bytes | None = None,
        limit: int | None = None,
    ) -> ScanItems:
        """Rows with ``start_key <= key < end_key`` (and the key starting with
        ``prefix``), at most ``limit``, in key order: a list of ``(key,
        value)`` that is also an iterator."""

        async def body() -> ScanItems:
            table = await self._rows()
            rows = table.row_prefix
            lower = rows if start_key is None else rows + SABOT_KEYS.encode(start_key)
            upper = _successor(rows) if end_key is None else rows + SABOT_KEYS.encode(end_key)
            if prefix is not None:
                p = rows + SABOT_KEYS.prefix(prefix)
                lower = max(lower, p)
                succ = _successor(p)
                if succ is not None and (upper is None or succ < upper):
                    upper = succ
            if upper is not None and lower >= upper:
                return ScanItems()
            found = await self.backend.scan(start_key=lower, end_key=upper, limit=limit)
            out = ScanItems()
            for k, v in found:
                raw = k if isinstance(k, bytes) else str(k).encode("utf-8")
                out.append((SABOT_KEYS.decode(raw[len(rows) :]), v))
            return out

        result: ScanItems = await self._run("scan", body)
        return result

    async def increment(self, key: Any, amount: int | float = 1) -> int | float:
        """Add ``amount`` to the number under ``key`` (absent counts as 0) and
        return the new value; TypeError if either is not a number."""
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise TypeError(f"amount must be an int or float, not {type(amount).__name__}")

        async def body() -> int | float:
            table = await self._rows()
            current = await table.aget(key)
            if current is None:
                current = 0
            if isinstance(current, bool) or not isinstance(current, int | float):
                raise TypeError(
                    f"cannot increment {key!r} in table {self.name!r}: it holds a "
                    f"{type(current).__name__}, not a number"
                )
            new = current + amount
            await table.aset(key, new)
            return new

        value: int | float = await self._run("increment", body)
        return value

    def get_metrics(self) -> StateMetrics | None:
        """The table's :class:`StateMetrics` (None when metrics are off)."""
        return self.metrics

    async def health_check(self) -> dict[str, Any]:
        """Write, read back and delete a probe row: ``{"status": "healthy",
        "backend_type", "size"}``, or ``{"status": "error", "message"}``."""
        probe = "__health_check__"
        value = {"timestamp": time.time(), "status": "ok"}
        try:
            await self.set(probe, value)
            back = await self.get(probe)
            await self.delete(probe)
            if back != value:
                return {"status": "error", "message": "the probe row read back differently"}
            return {
                "status": "healthy",
                "backend_type": getattr(self.backend, "backend_type", type(self.backend).__name__),
                "size": await self.size(),
            }
        except Exception as e:
            return {"status": "error", "message": f"{type(e).__name__}: {e}"}

    def close(self) -> None:
        """Detach the table (the backend is left as it is)."""
        self._closed = True
        if self._table is not None:
            self._table.close()

    def __repr__(self) -> str:
        return f"<StateTable {self.name!r} on {type(self.backend).__name__}>"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StateStoreManager:
    """Tables of keyed state over the backends a :class:`StateStoreConfig`
    describes, with coordinated checkpoints (see the module docs)."""

    def __init__(self, config: StateStoreConfig | None = None) -> None:
        if config is None:
            config = StateStoreConfig()
        if not isinstance(config, StateStoreConfig):
            raise TypeError(f"config must be a StateStoreConfig, not {type(config).__name__}")
        self.config = config
        self.backends: dict[str, StoreBackend] = {}
        self.tables: dict[str, StateTable] = {}
        self.shared_backend: StoreBackend | None = None
        self.checkpoints: CheckpointManager | None = None
        self.global_metrics: StateMetrics | None = StateMetrics() if config.enable_metrics else None
        self.is_running = False
        self._auto_task: asyncio.Task[None] | None = None

    @property
    def checkpoint_managers(self) -> dict[str, CheckpointManager]:
        """Sabot's view: ``{"all": manager}`` when checkpointing is on."""
        return {} if self.checkpoints is None else {"all": self.checkpoints}

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Create the shared backend (``SHARED`` isolation) and start
        automatic checkpoints. Idempotent. Each backend, when it is made,
        is recovered from the latest checkpoint that holds it if it starts
        empty and ``auto_recovery`` is on."""
        if self.is_running:
            return
        if self.config.backend_type is BackendType.KAFKA:
            raise InvalidArgumentError(
                "BackendType.KAFKA has no weir counterpart; keep state in MEMORY, WEIR "
                "(or TONBO/MARBLEDB, the same engine), ROCKSDB, REDIS or ARROW_FILES"
            )
        cp_config = self.config.checkpoint_config
        if cp_config.enabled:
            self.checkpoints = CheckpointManager({}, cp_config)
        try:
            if self.config.isolation_level is StateIsolation.SHARED:
                self.shared_backend = await self._backend_for("shared")
            if self.checkpoints is not None:
                self._auto_task = asyncio.create_task(
                    self._auto_checkpoints(), name="weir.sabot state checkpoints"
                )
        except BaseException:
            await self._stop_backends()
            raise
        self.is_running = True

    async def stop(self) -> None:
        """Stop automatic checkpoints, detach the tables and stop the backends."""
        if not self.is_running:
            return
        self.is_running = False
        task, self._auto_task = self._auto_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for table in self.tables.values():
            table.close()
        await self._stop_backends()

    async def _stop_backends(self) -> None:
        errors = []
        for name, backend in list(self.backends.items()):
            try:
                await backend.stop()
            except Exception as e:
                errors.append(f"{name}: {e}")
        if errors:
            log.warning("errors stopping state backends: %s", "; ".join(errors))

    async def __aenter__(self) -> StateStoreManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _auto_checkpoints(self) -> None:
        interval = self.config.checkpoint_config.interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.create_checkpoint(force=True)
            except Exception:
                log.exception("automatic state checkpoint failed; retrying in %ss", interval)

    # ---- backends -----------------------------------------------------------------------

    def _backend_key(self, table_name: str) -> str:
        level = self.config.isolation_level
        if level is StateIsolation.SHARED:
            return "shared"
        if level is StateIsolation.NAMESPACE and "_" in table_name:
            return table_name.split("_", 1)[0]
        return table_name

    def _config_for(self, key: str) -> StoreBackendConfig:
        base = self.config.backend_config()
        config = StoreBackendConfig(
            backend_type=self.config.backend_type.value,
            path=base.path,
            max_size=base.max_size,
            ttl_seconds=base.ttl_seconds,
            compression=base.compression,
            options=dict(base.options or {}),
        )
        if key == "shared" and self.config.isolation_level is StateIsolation.SHARED:
            return config
        kind = self.config.backend_type
        if kind is BackendType.REDIS:
            options = dict(config.options or {})
            if "{" in key or "}" in key:
                raise InvalidArgumentError(f"table name {key!r} cannot name a Redis namespace")
            options["namespace"] = f"{options.get('namespace', 'sabot')}:{key}"
            config.options = options
        elif kind is not BackendType.MEMORY:
            if not _SAFE_NAME.match(key):
                raise InvalidArgumentError(
                    f"with {self.config.isolation_level.name} isolation a table's backend is a "
                    f"directory named after it; {key!r} is not a safe directory name "
                    "(letters, digits, '.', '_', '-')"
                )
            if config.path is None:
                raise InvalidArgumentError(
                    f"{kind.value}_config needs a path (the parent of the tables' directories)"
                )
            config.path = Path(config.path) / key
        return config

    async def _backend_for(self, key: str) -> StoreBackend:
        backend = self.backends.get(key)
        if backend is not None:
            return backend
        backend = create_backend(self._config_for(key))
        await backend.start()
        self.backends[key] = backend
        if self.checkpoints is not None:
            self.checkpoints.add_store(key, backend)
            # A store that starts empty (memory after a restart) gets its
            # state back from the latest checkpoint that holds it.
            await self.checkpoints.auto_recover_on_startup([key])
        return backend

    # ---- tables --------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self.is_running:
            raise ClosedError("the state store manager is not running; call start() first")

    async def create_table(self, name: str) -> StateTable:
        """The table ``name`` (made on first call, the same object after)."""
        self._check_running()
        if not isinstance(name, str) or not name:
            raise TypeError(f"a table name must be a non-empty str, not {name!r}")
        table = self.tables.get(name)
        if table is not None:
            return table
        backend = await self._backend_for(self._backend_key(name))
        table = StateTable(name, backend, self.config.enable_metrics)
        self.tables[name] = table
        return table

    async def get_table(self, name: str) -> StateTable | None:
        return self.tables.get(name)

    async def list_tables(self) -> list[str]:
        return list(self.tables)

    async def drop_table(self, name: str) -> bool:
        """Delete the table's rows and forget it; False if there is no such
        table. With ``TABLE`` isolation its backend is stopped too."""
        self._check_running()
        table = self.tables.get(name)
        if table is None:
            return False
        await table.clear()
        table.close()
        del self.tables[name]
        key = self._backend_key(name)
        if self.config.isolation_level is StateIsolation.TABLE and key in self.backends:
            backend = self.backends.pop(key)
            if self.checkpoints is not None:
                self.checkpoints.remove_store(key)
            await backend.stop()
        return True

    # ---- checkpoints ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _all_paused(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(self.tables):
                await stack.enter_async_context(self.tables[name].paused())
            yield

    def _stores_of(self, table_name: str | None) -> list[str] | None:
        if table_name is None:
            return None
        if table_name not in self.tables:
            raise InvalidArgumentError(f"there is no table {table_name!r}")
        return [self._backend_key(table_name)]

    async def create_checkpoint(
        self,
        table_name: str | None = None,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Checkpoint every backend (or only ``table_name``'s) with the tables
        paused; returns the checkpoint id, or None when checkpointing is off
        (or, without ``force``, when the last one is younger than the interval)."""
        self._check_running()
        if self.checkpoints is None:
            return None
        stores = self._stores_of(table_name)
        async with self._all_paused():
            return await self.checkpoints.create_checkpoint(
                force=force, metadata=metadata, stores=stores
            )

    async def restore_checkpoint(
        self, checkpoint_id: str | None = None, table_name: str | None = None
    ) -> bool:
        """Restore every backend of the checkpoint (or only ``table_name``'s),
        the latest one when ``checkpoint_id`` is None, with the tables paused."""
        self._check_running()
        if self.checkpoints is None:
            raise InvalidArgumentError("checkpointing is off in this manager's config")
        stores = self._stores_of(table_name)
        async with self._all_paused():
            return await self.checkpoints.restore_checkpoint(checkpoint_id, stores=stores)

    # ---- monitoring ------------------------------------------------------------------------

    def get_metrics(self) -> dict[str, Any]:
        """Per-table operation and error counts and mean latency, plus the
        backends and settings (empty when metrics are off)."""
        if self.global_metrics is None:
            return {}
        tables = {}
        for name, table in self.tables.items():
            m = table.metrics
            if m is not None:
                lat = m.latency_by_type
                tables[name] = {
                    "operations_total": m.operations_total,
                    "errors_total": m.errors_total,
                    "avg_latency": sum(lat.values()) / len(lat) if lat else 0.0,
                }
        return {
            "tables": tables,
            "backends": list(self.backends),
            "checkpoint_managers": list(self.checkpoint_managers),
            "isolation_level": self.config.isolation_level.value,
            "backend_type": self.config.backend_type.value,
        }

    async def health_check(self) -> dict[str, Any]:
        """Each table's and backend's health and the checkpoints' state;
        ``overall_status`` is ``"healthy"`` or ``"degraded"``."""
        results: dict[str, Any] = {
            "overall_status": "healthy",
            "tables": {},
            "backends": {},
            "checkpoints": {},
        }
        for name, table in self.tables.items():
            health = await table.health_check()
            results["tables"][name] = health
            if health["status"] != "healthy":
                results["overall_status"] = "degraded"
        for name, backend in self.backends.items():
            try:
                results["backends"][name] = {
                    "status": "healthy",
                    "size": await backend.size(),
                    "type": type(backend).__name__,
                }
            except Exception as e:
                results["backends"][name] = {"status": "error", "error": str(e)}
                results["overall_status"] = "degraded"
        if self.checkpoints is not None:
            stats = await self.checkpoints.get_checkpoint_stats()
            results["checkpoints"]["all"] = {
                "status": "healthy" if stats["invalid_checkpoints"] == 0 else "warning",
                "stats": stats,
            }
        return results

    def __repr__(self) -> str:
        return (
            f"<StateStoreManager {self.config.backend_type.value} "
            f"{self.config.isolation_level.value} tables={list(self.tables)}>"
        )
