"""The weir backend: the store API over the embedded engine (the default).

Point operations call the C extension directly on the event loop thread
(the extension releases the GIL inside the engine); everything that can
take long runs in the backend's thread pool (see :mod:`._engine`).
Batches are single engine write batches, atomic across a crash; scans are
engine range iterators over one consistent view.

The store features are the engine's own, not emulated above it:
transactions are engine transactions (:class:`~._txn.EngineTransaction`),
``ttl_seconds`` is the database's default TTL (values carry no header),
``clear``, ``delete_range`` and ``delete_prefix`` write one range tombstone,
``backup`` is an engine checkpoint, and ``restore`` hard-links the backup's
table files into the store (copying the rest), so neither costs a copy of the
data on one file system.

Options (``StoreBackendConfig.options``), besides ``key_codec``,
``value_codec`` and ``executor_threads``: ``sync`` (``"flush"``, the
default, survives a process crash; ``"fsync"`` survives power loss;
``"none"`` only a clean close), and the engine's tuning knobs
``write_buffer_size``, ``block_size``, ``bloom_bits_per_key``,
``max_open_files``, ``background_threads``, ``target_file_size``,
``max_bytes_for_level_base``, ``level0_triggers``, ``block_cache_size``,
``create_if_missing`` and ``error_if_exists``. ``config.compression`` picks
the block compression.
"""

from __future__ import annotations

import os
import shutil
import uuid
from itertools import islice
from typing import Any

from .. import DB, InvalidArgumentError
from .. import Transaction as WeirTransaction
from ._common import closed_error, make_error
from ._engine import EngineBackend, dir_size
from ._txn import EngineTransaction
from .base import StoreBackendConfig, Transaction

_DB_OPTIONS = frozenset(
    {
        "sync",
        "write_buffer_size",
        "block_size",
        "bloom_bits_per_key",
        "max_open_files",
        "background_threads",
        "target_file_size",
        "max_bytes_for_level_base",
        "level0_triggers",
        "block_cache_size",
        "create_if_missing",
        "error_if_exists",
    }
)


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link table files (weir never changes one once written, and
    deleting a link leaves the other name intact); copy everything else,
    and tables too across file systems."""
    if src.endswith(".sst"):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return str(shutil.copy2(src, dst))


class _WeirCursor:
    """Chunks of an engine range iterator (which reads one consistent view)."""

    __slots__ = ("_it", "_values")

    def __init__(self, db: DB, lower: bytes | None, upper: bytes | None, values: bool) -> None:
        self._values = values
        self._it: Any = (
            db.items(start=lower, stop=upper) if values else db.keys(start=lower, stop=upper)
        )

    def fetch(self, n: int | None) -> list[tuple[bytes, bytes]]:
        it = self._it
        if it is None:
            return []
        got = list(it) if n is None else list(islice(it, n))
        if not got:
            self.close()
        if self._values:
            return got
        return [(k, b"") for k in got]

    def close(self) -> None:
        it, self._it = self._it, None
        if it is not None:
            it.close()


class WeirBackend(EngineBackend):
    """Store backend over a weir database directory at ``config.path``."""

    backend_type = "weir"
    engine_options = _DB_OPTIONS
    engine_ttl = True

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        if config.path is None:
            raise make_error(
                InvalidArgumentError,
                "the weir backend needs a directory: StoreBackendConfig(path=...) "
                "(or backend_type='memory' for a store that is not kept)",
            )
        self._path = os.path.abspath(os.fspath(config.path))
        self._db: DB | None = None

    # ---- engine hooks --------------------------------------------------------------------

    def _db_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self._engine_opts)
        if self.config.compression is not None:
            kwargs["compression"] = self.config.compression
        if self.config.ttl_seconds is not None:
            # Every store write is a put without its own TTL, so the DB-wide
            # default gives each value ttl_seconds from its last write.
            kwargs["default_ttl"] = self.config.ttl_seconds
        return kwargs

    def _bind(self, db: DB) -> None:
        self._db = db
        self._get = db.get  # type: ignore[method-assign]
        self._get_many = db.get_many  # type: ignore[method-assign]
        self._put = db.put  # type: ignore[method-assign]
        self._delete = db.delete  # type: ignore[method-assign]

    def _open_engine(self) -> None:
        parent = os.path.dirname(self._path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        self._bind(DB(self._path, **self._db_kwargs()))

    def _close_engine(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        db = self._db
        assert db is not None
        if not deletes:
            db.put_many(puts)
            return
        with db.write_batch() as batch:
            for k in deletes:
                batch.delete(k)
            if puts:
                batch.put_many(puts)

    def _delete_range_sync(self, lower: bytes | None, upper: bytes | None) -> None:
        """One range tombstone, however many keys it covers. An open end is
        closed just past the largest key (nothing else of this backend
        writes meanwhile: the gate is up)."""
        db = self._db
        assert db is not None
        begin = b"" if lower is None else lower
        if upper is None:
            with db.keys(start=begin, reverse=True) as it:
                last = next(it, None)
            if last is None:
                return
            upper = last + b"\x00"
        with self._wlock:
            db.delete_range(begin, upper)

    def _cursor(self, lower: bytes | None, upper: bytes | None, values: bool) -> _WeirCursor:
        assert self._db is not None
        return _WeirCursor(self._db, lower, upper, values)

    def _engine_stats(self) -> dict[str, Any]:
        assert self._db is not None
        stats: dict[str, Any] = dict(self._db.stats())
        stats.pop("path", None)
        return stats

    def _bytes_on_disk(self) -> int:
        return dir_size(self._path)

    # ---- backup and restore --------------------------------------------------------------

    def _backup_sync(self, path: str) -> None:
        """An engine checkpoint (hard links to the immutable tables, a copy
        of the rest) taken aside and renamed into place, so ``path`` is a
        complete openable weir database or absent."""
        db = self._db
        assert db is not None
        partial = f"{path}.partial-{uuid.uuid4().hex[:8]}"
        try:
            db.checkpoint(partial)
            os.rename(partial, path)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def _prepare_restore(self, path: str) -> str:
        if not os.path.isdir(path):
            raise make_error(InvalidArgumentError, f"{path!r} is not a weir backup directory")
        staging = f"{self._path}.restore-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(
                path, staging, ignore=shutil.ignore_patterns("LOCK"), copy_function=_link_or_copy
            )
            # Opening checks it is a sound weir database before we swap it in.
            DB(staging, create_if_missing=False).close()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _swap_restore(self, staged: Any) -> None:
        staging = str(staged)
        old = f"{self._path}.old-{uuid.uuid4().hex[:8]}"
        self._close_engine()
        os.rename(self._path, old)
        try:
            os.rename(staging, self._path)
            self._bind(DB(self._path, **self._db_kwargs()))
        except BaseException:
            if os.path.exists(self._path):
                os.rename(self._path, staging)
            os.rename(old, self._path)
            self._bind(DB(self._path, **self._db_kwargs()))
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _discard_restore(self, staged: Any) -> None:
        shutil.rmtree(str(staged), ignore_errors=True)

    # ---- transactions: the engine's own ---------------------------------------------------

    async def _txn_ready(self) -> None:
        if self._gate.barrier is not None or not self._open:
            await self._ready()

    def transaction(self) -> EngineTransaction:  # type: ignore[override]
        """A new engine transaction; ``async with backend.transaction() as
        txn:`` commits it on a clean exit and rolls it back on an exception."""
        if not self._open:
            raise closed_error(self._describe())
        # While a restore swaps the database (the gate's barrier is up) the
        # engine transaction is begun at first use, on the restored data.
        return EngineTransaction(
            self,
            self._keys,
            self._values,
            self._begin_engine_txn,
            self._txn_ready,
            eager=self._gate.barrier is None and self._db is not None,
        )

    def _begin_engine_txn(self) -> WeirTransaction:
        db = self._db
        if db is None:
            raise closed_error(self._describe())
        return db.transaction()

    async def begin_transaction(self) -> EngineTransaction:  # type: ignore[override]
        """Begin an engine transaction at a snapshot of the store."""
        await self._ready()
        return self.transaction()

    def _own_engine(self, txn: Any) -> EngineTransaction:
        if not isinstance(txn, Transaction):
            raise TypeError(f"expected a Transaction, not {type(txn).__name__}")
        if not isinstance(txn, EngineTransaction) or txn.backend is not self:
            raise make_error(InvalidArgumentError, "the transaction belongs to another backend")
        return txn

    async def commit_transaction(self, transaction: Any) -> None:
        """Commit: one atomic engine write, or :class:`TransactionConflictError`
        (nothing written) if another commit changed a key this transaction
        read or wrote after it began."""
        txn = self._own_engine(transaction)
        txn._check_active()
        await self._txn_ready()
        txn.commit_now()

    async def rollback_transaction(self, transaction: Any) -> None:
        """Discard the transaction's writes; a finished one is left as is."""
        self._own_engine(transaction).rollback_now()

    @property
    def db(self) -> DB | None:
        """The underlying :class:`weir.DB` while started (for engine-level use)."""
        return self._db
