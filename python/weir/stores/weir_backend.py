"""The weir backend: the store API over the embedded engine (the default).

Point operations call the C extension directly on the event loop thread
(the extension releases the GIL inside the engine); everything that can
take long runs in the backend's thread pool (see :mod:`._engine`).
Batches are single engine write batches, atomic across a crash; a
``batch_set`` is encoded into its batch by one call of the binding
(:meth:`weir.WriteBatch.put_encoded`), which calls the value codec for each
pair and takes ``str`` keys' UTF-8 without a Python call. Scans are engine
range iterators over one consistent view.

The store features are the engine's own, not emulated above it:
transactions are engine transactions (:class:`~._txn.EngineTransaction`),
``ttl_seconds`` is the database's default TTL (values carry no header),
``clear``, ``delete_range`` and ``delete_prefix`` write one range tombstone,
``backup`` is an engine checkpoint, and ``restore`` hard-links the backup's
table files into a staged copy (copying the rest), so neither costs a copy
of the data on one file system. ``restore`` reads the whole staged copy
first, so a damaged backup raises :class:`weir.CorruptionError` and leaves
the store as it was (see :mod:`._directory`).

Options (``StoreBackendConfig.options``), besides ``key_codec``,
``value_codec`` and ``executor_threads``: ``sync`` (``"flush"``, the
default, survives a process crash; ``"fsync"`` survives power loss;
``"none"`` only a clean close), and the engine's tuning knobs
``write_buffer_size``, ``block_size``, ``bloom_bits_per_key``,
``max_open_files``, ``background_threads``, ``target_file_size``,
``max_bytes_for_level_base``, ``level0_triggers``, ``block_cache_size``,
``read_triggered_compaction``, ``create_if_missing`` and
``error_if_exists``. ``config.compression`` picks the block compression.
"""

from __future__ import annotations

import errno
import shutil
from typing import Any

from .. import DB, InvalidArgumentError, NoSpaceError, WriteBatch
from .. import Transaction as WeirTransaction
from ..durable import partial_name, publish
from ._common import backup_no_space, closed_error, iter_pairs, make_error
from ._directory import ChunkCursor, DirectoryBackend
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
        "read_triggered_compaction",
    }
)


class WeirBackend(DirectoryBackend):
    """Store backend over a weir database directory at ``config.path``."""

    backend_type = "weir"
    engine_name = "weir"
    engine_options = _DB_OPTIONS
    engine_ttl = True
    native_sync_face = True

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
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

    def _open_at(self, path: str, *, create: bool = True) -> DB:
        if create:
            return DB(path, **self._db_kwargs())
        return DB(path, create_if_missing=False)

    def _bind(self, db: Any) -> None:
        self._db = db
        self._get = db.get  # type: ignore[method-assign]
        self._get_many = db.get_many  # type: ignore[method-assign]
        self._put = db.put  # type: ignore[method-assign]
        self._delete = db.delete  # type: ignore[method-assign]
        self._point_hooks_changed()

    def _encode_batch(self, items: Any) -> Any:
        values = self._values
        if not values.plain:
            return super()._encode_batch(items)
        if type(items) is not dict and type(items) is not list:
            items = list(iter_pairs(items))
        keys = self._keys
        batch = WriteBatch()
        try:
            batch.put_encoded(
                items, values.codec_encode, encode_key=None if keys.text_or_bytes else keys.encode
            )
        except (TypeError, ValueError, BufferError):
            # The binding's errors name only a type, and it takes as text
            # only an exact str: encoding in Python raises the store's own
            # error, naming the key, or encodes what the binding left to it
            # (a str subclass, a non-contiguous buffer). The batch is dropped.
            return self._encode_items(items)
        return batch

    def _batch_bytes(self, batch: Any) -> int:
        if isinstance(batch, WriteBatch):
            return batch.nbytes
        return super()._batch_bytes(batch)

    def _write_batch(self, batch: Any) -> None:
        if not isinstance(batch, WriteBatch):
            super()._write_batch(batch)
        elif len(batch):
            db = self._db
            assert db is not None
            db.write(batch)

    def _verify_all(self, db: Any) -> None:
        # Opening verified the manifest, every table's index and filter;
        # reading every entry touches every data block, whose checksum the
        # engine verifies on first touch.
        with db.items() as it:
            for _ in it:
                pass

    def _write(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear: tuple[bytes, bytes] | None = None,
    ) -> None:
        db = self._db
        assert db is not None
        if not deletes and clear is None:
            db.put_many(puts)
            return
        with db.write_batch() as batch:
            if clear is not None:
                batch.delete_range(*clear)
            for k in deletes:
                batch.delete(k)
            if puts:
                batch.put_many(puts)

    def _last_key(self) -> bytes | None:
        db = self._db
        assert db is not None
        with db.keys(reverse=True) as it:
            last: bytes | None = next(it, None)
        return last

    def _cursor(self, lower: bytes | None, upper: bytes | None, values: bool) -> ChunkCursor:
        db = self._db
        assert db is not None
        it = db.items(start=lower, stop=upper) if values else db.keys(start=lower, stop=upper)
        return ChunkCursor(it, values, it.close)

    def _engine_stats(self) -> dict[str, Any]:
        assert self._db is not None
        stats: dict[str, Any] = dict(self._db.stats())
        stats.pop("path", None)
        return stats

    # ---- backup ------------------------------------------------------------------------------

    def _backup_sync(self, path: str) -> None:
        """An engine checkpoint (hard links to the immutable tables, a copy
        of the rest, made durable by the engine) taken aside and published
        by rename, so ``path`` is a complete openable weir database or
        absent."""
        db = self._db
        assert db is not None
        partial = partial_name(path)
        try:
            db.checkpoint(partial)
            publish(partial, path)
        except NoSpaceError as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise backup_no_space(path, e) from None
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            if e.errno == errno.ENOSPC:
                raise backup_no_space(path, e) from None
            raise
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

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
