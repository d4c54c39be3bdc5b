"""The RocksDB backend, through ``rocksdict`` (which bundles RocksDB).

It is here as the peer weir is measured against and as a migration path;
it behaves like the weir backend (same codecs and key order, atomic batches
via ``WriteBatch``, ``delete_range`` and ``clear`` via RocksDB's
``DeleteRange``, backups via RocksDB checkpoints). rocksdict exposes no
RocksDB transactions and no TTL that hides values before compaction, so
transactions are the store-level ones (:class:`~._txn.StoreTransaction`)
and ``ttl_seconds`` puts an 8-byte expiry header before each value.

Options, besides ``key_codec``, ``value_codec`` and ``executor_threads``:
``sync`` (``"flush"``, the default, or ``"fsync"``), ``write_buffer_size``,
``max_open_files``, ``max_background_jobs``, ``create_if_missing`` and
``error_if_exists``. ``config.compression`` picks the block compression.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

from .. import BusyError, CorruptionError, Error, InvalidArgumentError, NoSpaceError, StorageIOError
from ..durable import partial_name, publish
from ._common import backup_no_space, make_error
from ._directory import ChunkCursor, DirectoryBackend
from .base import StoreBackendConfig

_OPTIONS = frozenset(
    {
        "sync",
        "write_buffer_size",
        "max_open_files",
        "max_background_jobs",
        "create_if_missing",
        "error_if_exists",
    }
)
_INT_PROPERTIES = (
    "rocksdb.estimate-num-keys",
    "rocksdb.total-sst-files-size",
    "rocksdb.live-sst-files-size",
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.num-immutable-mem-table",
    "rocksdb.num-running-compactions",
    "rocksdb.num-running-flushes",
    "rocksdb.estimate-pending-compaction-bytes",
    "rocksdb.block-cache-usage",
    "rocksdb.num-live-versions",
    "rocksdb.background-errors",
)


def _rocksdict() -> Any:
    try:
        import rocksdict
    except ImportError as e:  # pragma: no cover - rocksdict is a test dependency
        raise ImportError(
            "the rocksdb backend needs the rocksdict package: pip install rocksdict"
        ) from e
    return rocksdict


def translate(exc: BaseException, path: str) -> BaseException:
    """The weir exception for a rocksdict error (which are plain Exceptions
    whose message starts with RocksDB's status)."""
    rocksdict = _rocksdict()
    if isinstance(exc, Error):
        return exc
    msg = str(exc)
    low = msg.lower()
    if isinstance(exc, rocksdict.DbClosedError):
        return make_error(_closed(), f"RocksDB store {path!r}: {msg}")
    if "lock" in low and (
        "resource temporarily unavailable" in low or "lock hold" in low or "no locks" in low
    ):
        return make_error(
            BusyError,
            f"RocksDB directory {path} is already open "
            f"(locked by another process or handle): {msg}",
        )
    if low.startswith("corruption"):
        return make_error(CorruptionError, f"RocksDB store {path!r}: {msg}")
    if "no space" in low:
        return make_error(NoSpaceError, f"RocksDB store {path!r}: {msg}")
    if low.startswith("invalid argument"):
        return make_error(InvalidArgumentError, f"RocksDB store {path!r}: {msg}")
    if low.startswith("io error"):
        return make_error(StorageIOError, f"RocksDB store {path!r}: {msg}")
    if isinstance(exc, Exception) and type(exc) is Exception:
        return make_error(Error, f"RocksDB store {path!r}: {msg}", "WEIR_IO_ERROR")
    return exc


def _closed() -> type[Error]:
    from .. import ClosedError

    return ClosedError


class RocksDBBackend(DirectoryBackend):
    """Store backend over a RocksDB directory at ``config.path``."""

    backend_type = "rocksdb"
    engine_name = "RocksDB"
    engine_options = _OPTIONS
    native_sync_face = True

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        sync = self._engine_opts.get("sync", "flush")
        if sync not in ("flush", "fsync"):
            raise make_error(
                InvalidArgumentError,
                f"the rocksdb backend's sync must be 'flush' or 'fsync', not {sync!r}",
            )

    def _options(self) -> Any:
        rocksdict = _rocksdict()
        o = rocksdict.Options(raw_mode=True)
        opts = self._engine_opts
        o.create_if_missing(bool(opts.get("create_if_missing", True)))
        o.set_error_if_exists(bool(opts.get("error_if_exists", False)))
        if "write_buffer_size" in opts:
            o.set_write_buffer_size(int(opts["write_buffer_size"]))
        if "max_open_files" in opts:
            o.set_max_open_files(int(opts["max_open_files"]))
        if "max_background_jobs" in opts:
            o.set_max_background_jobs(int(opts["max_background_jobs"]))
        comp = self.config.compression
        if comp is not None:
            o.set_compression_type(getattr(rocksdict.DBCompressionType, comp)())
        return o

    def _open_at(self, path: str, *, create: bool = True) -> Any:
        rocksdict = _rocksdict()
        if os.path.exists(path) and not os.path.isdir(path):
            raise make_error(
                InvalidArgumentError,
                f"create directory {path}: {path} exists and is not a directory",
            )
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        options = self._options()
        if not create:
            options.create_if_missing(False)
        try:
            db = rocksdict.Rdict(path, options)
        except Exception as e:
            raise translate(e, path) from e
        if self._engine_opts.get("sync", "flush") == "fsync":
            wo = rocksdict.WriteOptions()
            wo.set_sync(True)
            db.set_write_options(wo)
        return db

    # ---- engine hooks --------------------------------------------------------------------

    def _bind(self, db: Any) -> None:
        self._db = db
        self._get = db.get  # type: ignore[method-assign]
        self._get_many = db.get  # type: ignore[method-assign]  # a list gives a multi-get
        self._put = db.put  # type: ignore[method-assign]
        self._delete = db.delete  # type: ignore[method-assign]
        self._point_hooks_changed()

    def _verify_all(self, db: Any) -> None:
        rocksdict = _rocksdict()
        ro = rocksdict.ReadOptions()
        ro.set_verify_checksums(True)
        ro.fill_cache(False)
        # A raw iterator, not items(): rocksdict's items() ends quietly at a
        # damaged block; status() raises what stopped the iteration.
        try:
            it = db.iter(ro)
            it.seek_to_first()
            while it.valid():
                it.next()
            it.status()
        except Exception as e:
            raise translate(e, str(db.path())) from e

    def _write(
        self,
        puts: list[tuple[bytes, bytes]],
        deletes: list[bytes],
        clear: tuple[bytes, bytes] | None = None,
    ) -> None:
        rocksdict = _rocksdict()
        wb = rocksdict.WriteBatch(raw_mode=True)
        if clear is not None:
            wb.delete_range(*clear)
        for k in deletes:
            wb.delete(k)
        for k, v in puts:
            wb.put(k, v)
        try:
            self._db.write(wb)
        except Exception as e:
            raise translate(e, self._path) from e

    def _last_key(self) -> bytes | None:
        try:
            last: bytes | None = next(iter(self._db.keys(backwards=True)), None)
        except Exception as e:
            raise translate(e, self._path) from e
        return last

    def _cursor(self, lower: bytes | None, upper: bytes | None, values: bool) -> ChunkCursor:
        rocksdict = _rocksdict()
        ro = rocksdict.ReadOptions()
        if upper is not None:
            ro.set_iterate_upper_bound(upper)
        db = self._db
        it = (
            db.items(from_key=lower, read_opt=ro)
            if values
            else db.keys(from_key=lower, read_opt=ro)
        )
        return ChunkCursor(iter(it), values)

    def _engine_stats(self) -> dict[str, Any]:
        db = self._db
        out: dict[str, Any] = {}
        for name in _INT_PROPERTIES:
            try:
                out[name.removeprefix("rocksdb.").replace("-", "_")] = db.property_int_value(name)
            except Exception:  # a property this RocksDB build lacks
                continue
        return out

    # ---- backup ------------------------------------------------------------------------------

    def _backup_sync(self, path: str) -> None:
        """A RocksDB checkpoint taken aside, fsync'd, and published by rename."""
        rocksdict = _rocksdict()
        partial = partial_name(path)
        checkpoint = rocksdict.Checkpoint(self._db)
        try:
            checkpoint.create_checkpoint(partial)
            publish(partial, path)
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            if e.errno == errno.ENOSPC:
                raise backup_no_space(path, e) from None
            raise
        except Exception as e:
            shutil.rmtree(partial, ignore_errors=True)
            err = translate(e, path)
            if isinstance(err, NoSpaceError):
                raise backup_no_space(path, e) from None
            raise err from e
        finally:
            del checkpoint  # it pins the database handle
