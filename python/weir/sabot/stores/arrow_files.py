"""Sabot's Arrow-files backend: a store kept as Arrow IPC files in a directory.

Sabot's ``ArrowFileBackend`` holds its data in a dict and now and then
writes it out whole; what was written since the last save is lost in a
crash. This one keeps the same shape (the data in memory, the files as its
durable copy) and makes every write durable before it returns:

``data-NNNNNNNN.arrow``
    A snapshot: an Arrow IPC *file* (readable by any Arrow tool, e.g.
    ``pyarrow.ipc.open_file``) with two ``large_binary`` columns, ``key``
    and ``value``, sorted by key. The schema metadata names the format
    version and the key and value codecs the bytes were written with.
``changes-NNNNNNNN.arrows``
    The writes since that snapshot, one record per store operation (a
    ``set``, a whole ``batch_set``, a transaction's commit): a 4-byte
    little-endian length, a 4-byte CRC-32 of the payload, then the payload,
    an Arrow IPC *stream* holding one record batch with columns ``op``
    (int8: 0 put, 1 delete), ``key`` and ``value``.

A record is appended and flushed to the OS (``options={"sync": "fsync"}``
also fsyncs it) before the write is applied in memory, so an acknowledged
write survives a process crash, and a batch is applied completely or not at
all: at open, an incomplete or damaged record at the very end of the change
file is a write torn by a crash and is cut off; damage followed by more
records is :class:`weir.CorruptionError`, naming the file and offset. When
the change file outgrows the snapshot (and ``compact_bytes``, 4 MiB by
default), and at ``stop()``, the data is written as the next snapshot
(to a temporary name, fsynced, then renamed) and a new, empty change file
begins; files of older generations are deleted. ``clear`` and ``restore``
write a new snapshot directly. A ``LOCK`` file (``flock``) keeps a second
backend, in this process or another, out of the directory
(:class:`weir.BusyError`).

Keys and values go through the same codecs as weir.sabot's other backends
(``str``/``int``/tuple keys, pickled values; ``key_codec`` and
``value_codec`` options choose others). Snapshots are compressed with zstd
by default (``compression``: ``"zstd"``, ``"lz4"``, ``"none"``; Sabot's
``"gzip"`` is zstd). ``ttl_seconds`` is refused: nothing here expires.

Needs pyarrow (``pip install "weirdb[arrow]"``); building the backend
without it raises ImportError saying so.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ... import (
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    BusyError,
    ClosedError,
    CorruptionError,
    InvalidArgumentError,
    NoSpaceError,
    StorageIOError,
)
from ...codecs import Codec, get_codec
from ...stores import (
    EncodedPairs,
    EncodedRange,
    StoreBackend,
    Transaction,
    TransactionConflictError,
)
from .._keys import SABOT_KEYS
from .base import ScanItems, ScanPairs, StoreBackendConfig

try:
    import pyarrow as pa
    import pyarrow.ipc as pa_ipc
except ImportError:  # pragma: no cover - exercised by a subprocess test
    pa = None
    pa_ipc = None

__all__ = ["ArrowFileBackend", "ArrowFileTransaction"]

log = logging.getLogger("weir.sabot.stores")

FORMAT_VERSION = "1"
_SNAPSHOT = re.compile(r"^data-(\d{8})\.arrow$")
_CHANGES = re.compile(r"^changes-(\d{8})\.arrows$")
_FRAME = struct.Struct("<II")
_OPTIONS = frozenset({"key_codec", "value_codec", "sync", "compact_bytes"})
_PUT = 0
_DELETE = 1


def _snapshot_name(gen: int) -> str:
    return f"data-{gen:08d}.arrow"


def _changes_name(gen: int) -> str:
    return f"changes-{gen:08d}.arrows"


def _io_error(what: str, e: OSError) -> StorageIOError:
    cls = NoSpaceError if e.errno in (errno.ENOSPC, errno.EDQUOT) else StorageIOError
    err = cls(f"{what}: {e.strerror or e}")
    err.errno = e.errno
    err.status = "WEIR_NO_SPACE" if cls is NoSpaceError else "WEIR_IO_ERROR"
    return err


def _open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArrowFileBackend(StoreBackend):
    """A store backend kept as Arrow IPC files in ``config.path`` (see the module docs)."""

    backend_type = "arrow_files"

    def __init__(self, config: Any = None) -> None:
        if pa is None:
            raise ImportError(
                "the arrow_files backend needs pyarrow: pip install 'weirdb[arrow]' (or pyarrow)"
            )
        if config is None:
            config = StoreBackendConfig(backend_type="arrow_files")
        super().__init__(config)
        if config.path is None:
            raise InvalidArgumentError(
                "the arrow_files backend needs a directory: StoreBackendConfig(path=...)"
            )
        if config.ttl_seconds is not None:
            raise InvalidArgumentError(
                "the arrow_files backend does not expire values; drop ttl_seconds "
                "(the memory, weir and redis backends have it)"
            )
        opts = dict(config.options or {})
        unknown = sorted(set(opts) - _OPTIONS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for the arrow_files backend; "
                f"it accepts {', '.join(sorted(_OPTIONS))}"
            )
        self._kc: Any = get_codec(opts.get("key_codec", SABOT_KEYS))
        self._vc: Any = get_codec(opts.get("value_codec", "pickle"))
        sync = opts.get("sync", "flush")
        if sync not in ("flush", "fsync"):
            raise InvalidArgumentError(f"sync must be 'flush' or 'fsync', not {sync!r}")
        self._fsync = sync == "fsync"
        compact = opts.get("compact_bytes", 4 << 20)
        if isinstance(compact, bool) or not isinstance(compact, int) or compact <= 0:
            raise InvalidArgumentError(f"compact_bytes must be a positive int, not {compact!r}")
        self._compact_bytes = compact
        comp = config.compression
        self._compression: str | None = {"gzip": "zstd", "none": None, None: "zstd"}.get(comp, comp)
        if self._compression not in (None, "zstd", "lz4"):
            raise InvalidArgumentError(
                f"compression must be 'zstd', 'lz4', 'gzip' or 'none', not {comp!r}"
            )
        if config.max_size is not None:
            log.warning(
                "arrow_files backend ignores max_size=%s (it never evicts)", config.max_size
            )
        #: the directory the files live in
        self.data_path = Path(os.fspath(config.path))
        # Encoded key -> encoded value: the whole store, as on disk.
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = None
        self._loaded = False
        self._open = False
        self._broken: str | None = None
        self._lock = threading.RLock()
        self._gen = 0
        self._log_fd: int | None = None
        self._log_bytes = 0
        self._snapshot_bytes = 0
        self._retry_at = 0
        self._lock_fd: int | None = None

    # ---- schemas -------------------------------------------------------------------

    def _metadata(self) -> dict[bytes, bytes]:
        return {
            b"weir.sabot.format": FORMAT_VERSION.encode(),
            b"weir.sabot.key_codec": str(getattr(self._kc, "name", "?")).encode(),
            b"weir.sabot.value_codec": str(getattr(self._vc, "name", "?")).encode(),
        }

    def _snapshot_schema(self) -> Any:
        return pa.schema(
            [
                pa.field("key", pa.large_binary(), False),
                pa.field("value", pa.large_binary(), False),
            ],
            metadata=self._metadata(),
        )

    def _changes_schema(self) -> Any:
        return pa.schema(
            [
                pa.field("op", pa.int8(), False),
                pa.field("key", pa.large_binary(), False),
                pa.field("value", pa.large_binary(), True),
            ],
            metadata=self._metadata(),
        )

    def _check_metadata(self, schema: Any, where: str) -> None:
        meta = schema.metadata or {}
        fmt = meta.get(b"weir.sabot.format")
        if fmt != FORMAT_VERSION.encode():
            raise CorruptionError(
                f"{where}: not a weir.sabot arrow_files file (format {fmt!r}, expected "
                f"{FORMAT_VERSION!r})"
            )
        for what, codec in (("key", self._kc), ("value", self._vc)):
            stored = meta.get(f"weir.sabot.{what}_codec".encode(), b"").decode("utf-8", "replace")
            wanted = str(getattr(codec, "name", "?"))
            if stored != wanted:
                raise InvalidArgumentError(
                    f"{where} was written with {what} codec {stored!r}; this backend is "
                    f"configured with {wanted!r} (options={{'{what}_codec': {stored!r}}})"
                )

    # ---- encoding ------------------------------------------------------------------

    def _ek(self, key: Any) -> bytes:
        try:
            data: bytes = self._kc.encode(key)
        except TypeError:
            raise
        except (ValueError, UnicodeError) as e:
            raise InvalidArgumentError(f"bad key {key!r:.60}: {e}") from None
        if len(data) > MAX_KEY_SIZE:
            raise InvalidArgumentError(
                f"key of {len(data)} bytes exceeds the limit of {MAX_KEY_SIZE} bytes"
            )
        return data

    def _ev(self, key: Any, value: Any) -> bytes:
        data: bytes = self._vc.encode(value, key)
        if len(data) > MAX_VALUE_SIZE:
            raise InvalidArgumentError(
                f"the value for key {key!r:.60} is {len(data)} bytes, over the limit of "
                f"{MAX_VALUE_SIZE}"
            )
        return data

    def _prefix(self, prefix: Any) -> bytes:
        fn = getattr(self._kc, "prefix", None)
        data: bytes = fn(prefix) if fn is not None else self._kc.encode(prefix)
        return data

    def _dk(self, data: bytes) -> Any:
        return self._kc.decode(data)

    def _dv(self, data: bytes) -> Any:
        return self._vc.decode(data)

    # ---- reading the directory -----------------------------------------------------

    def _read_snapshot(self, path: Path) -> dict[bytes, bytes]:
        try:
            with pa.memory_map(str(path)) as source:
                reader = pa_ipc.open_file(source)
                self._check_metadata(reader.schema, str(path))
                table = reader.read_all()
        except pa.ArrowInvalid as e:
            raise CorruptionError(f"{path}: not a readable Arrow IPC file: {e}") from e
        except FileNotFoundError:
            raise
        except OSError as e:
            raise _io_error(f"cannot read {path}", e) from e
        if table.schema.names != ["key", "value"]:
            raise CorruptionError(f"{path}: expected columns key, value, not {table.schema.names}")
        return dict(
            zip(table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True)
        )

    def _replay(self, path: Path, data: dict[bytes, bytes], repair: bool) -> int:
        """Applies the records of a change file to ``data``; returns the
        length of its intact part (cutting off a torn tail when ``repair``)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise _io_error(f"cannot read {path}", e) from e
        pos, n = 0, len(raw)
        while pos < n:
            if n - pos < _FRAME.size:
                break
            length, crc = _FRAME.unpack_from(raw, pos)
            end = pos + _FRAME.size + length
            if end > n:
                break
            payload = raw[pos + _FRAME.size : end]
            problem = None
            if zlib.crc32(payload) != crc:
                problem = "checksum mismatch"
            else:
                try:
                    reader = pa_ipc.open_stream(pa.py_buffer(payload))
                    self._check_metadata(reader.schema, str(path))
                    batches = list(reader)
                except pa.ArrowInvalid as e:
                    problem = str(e)
            if problem is not None:
                if end == n:
                    break  # the last record, torn by a crash
                raise CorruptionError(f"{path}: damaged change record at offset {pos}: {problem}")
            for batch in batches:
                ops = batch.column(0).to_pylist()
                keys = batch.column(1).to_pylist()
                values = batch.column(2).to_pylist()
                for op, k, v in zip(ops, keys, values, strict=True):
                    if op == _PUT:
                        data[k] = v
                    else:
                        data.pop(k, None)
            pos = end
        if pos < n:
            if not repair:
                raise CorruptionError(f"{path}: incomplete change record at offset {pos}")
            log.warning("%s: cut off %d bytes of a write torn by a crash", path, n - pos)
            try:
                os.truncate(path, pos)
            except OSError as e:
                raise _io_error(f"cannot truncate {path}", e) from e
        return pos

    def _scan_dir(self, directory: Path) -> tuple[int, list[int], list[int]]:
        """(current generation, snapshot generations, change generations)."""
        snaps, changes = [], []
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0, [], []
        for name in names:
            if m := _SNAPSHOT.match(name):
                snaps.append(int(m.group(1)))
            elif m := _CHANGES.match(name):
                changes.append(int(m.group(1)))
        return (max(snaps) if snaps else 0), snaps, changes

    def _read_dir(self, directory: Path, repair: bool) -> tuple[int, dict[bytes, bytes], int, int]:
        """(generation, data, snapshot bytes, intact change bytes) of a directory;
        with ``repair`` also removes leftovers of other generations."""
        gen, snaps, changes = self._scan_dir(directory)
        data: dict[bytes, bytes] = {}
        snap_bytes = 0
        if gen in snaps:
            path = directory / _snapshot_name(gen)
            data = self._read_snapshot(path)
            snap_bytes = path.stat().st_size
        elif changes and 0 not in changes:
            raise CorruptionError(
                f"{directory}: {_changes_name(min(changes))} has no snapshot "
                f"{_snapshot_name(min(changes))}"
            )
        log_bytes = self._replay(directory / _changes_name(gen), data, repair)
        if repair:
            for g in snaps:
                if g < gen:
                    (directory / _snapshot_name(g)).unlink(missing_ok=True)
            for g in changes:
                # Older generations are in the snapshot; a newer change file
                # is an empty one made just before a crash stopped the switch.
                if g != gen:
                    (directory / _changes_name(g)).unlink(missing_ok=True)
            for name in os.listdir(directory):
                if name.endswith(".tmp"):
                    (directory / name).unlink(missing_ok=True)
        return gen, data, snap_bytes, log_bytes

    # ---- writing -------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self._open:
            raise ClosedError(f"arrow_files store {str(self.data_path)!r} is stopped; call start()")
        if self._broken is not None:
            raise StorageIOError(
                f"arrow_files store {str(self.data_path)!r} stopped taking writes after an "
                f"I/O error ({self._broken}); stop() and start() it again"
            )

    def _ensure_loaded(self) -> None:
        if not self._open:
            raise ClosedError(f"arrow_files store {str(self.data_path)!r} is stopped; call start()")
        if not self._loaded:
            self._gen, self._data, self._snapshot_bytes, self._log_bytes = self._read_dir(
                self.data_path, repair=False
            )
            self._sorted = None
            self._loaded = True

    def _append(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        """Logs one record of ``puts`` and ``deletes``, then applies it in memory."""
        self._check_writable()
        self._ensure_loaded()
        if not puts and not deletes:
            return
        # Deletes first, then puts, in the record and in memory: a key both
        # deleted and put ends up put (what apply() promises).
        batch = pa.record_batch(
            [
                pa.array([_DELETE] * len(deletes) + [_PUT] * len(puts), pa.int8()),
                pa.array(deletes + [k for k, _ in puts], pa.large_binary()),
                pa.array([None] * len(deletes) + [v for _, v in puts], pa.large_binary()),
            ],
            schema=self._changes_schema(),
        )
        sink = pa.BufferOutputStream()
        with pa_ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        payload = sink.getvalue().to_pybytes()
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        fd = self._log_fd
        assert fd is not None
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except OSError as e:
            self._undo_partial_write()
            raise _io_error(
                f"cannot write to {self.data_path / _changes_name(self._gen)}", e
            ) from e
        self._log_bytes += len(frame)
        data = self._data
        if self._sorted is not None and (
            any(k not in data for k, _ in puts) or any(k in data for k in deletes)
        ):
            self._sorted = None
        for k in deletes:
            data.pop(k, None)
        for k, v in puts:
            data[k] = v
        if self._log_bytes > max(self._compact_bytes, self._snapshot_bytes, self._retry_at):
            try:
                self._compact()
            except OSError as e:
                # The write itself is in the change file: report it as done,
                # and try the snapshot again once as much more was written.
                self._retry_at = self._log_bytes + self._compact_bytes
                log.warning("%s: cannot write a snapshot now (%s); will retry", self.data_path, e)

    def _undo_partial_write(self) -> None:
        # A record that did not make it whole must not stay in the file:
        # later records after it would make the file read as damaged.
        path = self.data_path / _changes_name(self._gen)
        try:
            os.truncate(path, self._log_bytes)
        except OSError as e:
            self._broken = f"cannot cut a failed write off {path}: {e.strerror or e}"

    def _write_snapshot(self, directory: Path, gen: int, items: list[tuple[bytes, bytes]]) -> int:
        """Writes a snapshot file durably (temporary name, fsync, rename)."""
        items.sort(key=lambda kv: kv[0])
        table = pa.table(
            [
                pa.array([k for k, _ in items], pa.large_binary()),
                pa.array([v for _, v in items], pa.large_binary()),
            ],
            schema=self._snapshot_schema(),
        )
        final = directory / _snapshot_name(gen)
        tmp = directory / (final.name + ".tmp")
        options = pa_ipc.IpcWriteOptions(compression=self._compression)
        try:
            with open(tmp, "wb") as f:
                with pa_ipc.new_file(f, table.schema, options=options) as writer:
                    writer.write_table(table, max_chunksize=65536)
                f.flush()
                os.fsync(f.fileno())
            return os.stat(tmp).st_size
        except BaseException as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(e, OSError):
                raise _io_error(f"cannot write snapshot {final}", e) from e
            raise

    def _switch(self, snapshot: dict[bytes, bytes]) -> None:
        """Makes ``snapshot`` the next generation's snapshot and starts an
        empty change file for it; the caller holds the lock."""
        gen = self._gen + 1
        directory = self.data_path
        size = self._write_snapshot(directory, gen, list(snapshot.items()))
        new_log_path = directory / _changes_name(gen)
        new_log = -1
        try:
            new_log = _open_log(new_log_path)
            os.fsync(new_log)
        except OSError as e:
            if new_log >= 0:
                os.close(new_log)
            with contextlib.suppress(OSError):
                (directory / (_snapshot_name(gen) + ".tmp")).unlink()
            raise _io_error(f"cannot create {new_log_path}", e) from e
        try:
            # The rename is the switch: before it the old generation is
            # whole, after it the new one.
            os.replace(directory / (_snapshot_name(gen) + ".tmp"), directory / _snapshot_name(gen))
            _fsync_dir(directory)
        except OSError as e:
            os.close(new_log)
            with contextlib.suppress(OSError):
                new_log_path.unlink()
            raise _io_error(f"cannot install snapshot {directory / _snapshot_name(gen)}", e) from e
        old_gen, old_log = self._gen, self._log_fd
        self._log_fd, self._gen = new_log, gen
        self._log_bytes, self._snapshot_bytes, self._retry_at = 0, size, 0
        if old_log is not None:
            os.close(old_log)
        for name in (_snapshot_name(old_gen), _changes_name(old_gen)):
            with contextlib.suppress(OSError):
                (directory / name).unlink()

    def _compact(self) -> None:
        self._switch(self._data)

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Open the directory (created if missing) and load the store;
        :class:`weir.BusyError` if another backend holds it."""
        if self._open:
            return
        await asyncio.to_thread(self._start_sync)

    def _start_sync(self) -> None:
        with self._lock:
            if self._open:
                return
            directory = self.data_path
            try:
                directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise _io_error(f"cannot open arrow_files store {str(directory)!r}", e) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                err = BusyError(
                    f"arrow_files store {str(directory)!r} is in use by another backend "
                    "(in this process or another)"
                )
                err.status = "WEIR_BUSY"
                raise err from None
            try:
                gen, data, snap_bytes, log_bytes = self._read_dir(directory, repair=True)
                log_fd = _open_log(directory / _changes_name(gen))
            except BaseException as e:
                os.close(fd)
                if isinstance(e, OSError) and not isinstance(e, StorageIOError):
                    raise _io_error(f"cannot open arrow_files store {str(directory)!r}", e) from e
                raise
            self._lock_fd = fd
            self._gen, self._data, self._sorted = gen, data, None
            self._snapshot_bytes, self._log_bytes = snap_bytes, log_bytes
            self._log_fd = log_fd
            self._loaded = self._open = True
            self._broken = None

    async def stop(self) -> None:
        """Write the data as one snapshot, close the files and free the memory.
        Idempotent; later operations raise :class:`weir.ClosedError`."""
        if not self._open:
            return
        await asyncio.to_thread(self._stop_sync)

    def _stop_sync(self) -> None:
        with self._lock:
            if not self._open:
                return
            try:
                if self._log_bytes and self._broken is None and self._loaded:
                    self._compact()
            finally:
                self._open = self._loaded = False
                if self._log_fd is not None:
                    os.close(self._log_fd)
                    self._log_fd = None
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
                self._data = {}
                self._sorted = None

    @property
    def started(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._open

    # Sabot's ArrowFileBackend has these two; its tests call them.

    async def _save_data(self) -> None:
        """Write the data as a new snapshot now (it is durable already)."""
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            self._compact()

    async def _load_data(self) -> None:
        """Re-read the files if the in-memory copy was dropped (``_loaded`` False)."""
        with self._lock:
            self._ensure_loaded()

    # ---- point operations ------------------------------------------------------------

    async def get(self, key: Any) -> Any | None:
        ek = self._ek(key)
        with self._lock:
            self._ensure_loaded()
            raw = self._data.get(ek)
        return None if raw is None else self._dv(raw)

    async def set(self, key: Any, value: Any) -> None:
        ek = self._ek(key)
        ev = self._ev(key, value)
        with self._lock:
            self._append([(ek, ev)], [])

    async def delete(self, key: Any) -> bool:
        ek = self._ek(key)
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            if ek not in self._data:
                return False
            self._append([], [ek])
            return True

    async def exists(self, key: Any) -> bool:
        ek = self._ek(key)
        with self._lock:
            self._ensure_loaded()
            return ek in self._data

    # ---- ranges ----------------------------------------------------------------------

    def _sorted_keys(self) -> list[bytes]:
        if self._sorted is None:
            self._sorted = sorted(self._data)
        return self._sorted

    def _range(self, start: bytes | None, end: bytes | None) -> list[bytes]:
        keys = self._sorted_keys()
        lo = 0 if start is None else bisect.bisect_left(keys, start)
        hi = len(keys) if end is None else bisect.bisect_left(keys, end)
        return keys[lo:hi] if lo < hi else []

    def _bounds(
        self, start_key: Any, end_key: Any, prefix: Any
    ) -> tuple[bytes | None, bytes | None]:
        lower = None if start_key is None else self._ek(start_key)
        upper = None if end_key is None else self._ek(end_key)
        if prefix is not None and not (isinstance(prefix, str | bytes) and len(prefix) == 0):
            p = self._prefix(prefix)
            if lower is None or lower < p:
                lower = p
            succ = _successor(p)
            if succ is not None and (upper is None or succ < upper):
                upper = succ
        return lower, upper

    def _pairs(
        self, start_key: Any, end_key: Any, prefix: Any, limit: int | None
    ) -> list[tuple[bytes, bytes]]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
        if limit is not None and limit < 0:
            raise InvalidArgumentError(f"limit must not be negative, not {limit}")
        lower, upper = self._bounds(start_key, end_key, prefix)
        with self._lock:
            self._ensure_loaded()
            keys = self._range(lower, upper)
            if limit is not None:
                keys = keys[:limit]
            data = self._data
            return [(k, data[k]) for k in keys]

    async def keys(self, prefix: Any | None = None) -> list[Any]:
        return [self._dk(k) for k, _ in self._pairs(None, None, prefix, None)]

    async def values(self) -> list[Any]:
        return [self._dv(v) for _, v in self._pairs(None, None, None, None)]

    async def items(self, prefix: Any | None = None) -> list[tuple[Any, Any]]:
        return [(self._dk(k), self._dv(v)) for k, v in self._pairs(None, None, prefix, None)]

    async def size(self) -> int:
        with self._lock:
            self._ensure_loaded()
            return len(self._data)

    def scan(
        self,
        start_key: Any | None = None,
        end_key: Any | None = None,
        prefix: Any | None = None,
        limit: int | None = None,
    ) -> ScanPairs:
        """Pairs with ``start_key <= key < end_key`` under ``prefix``, at most
        ``limit``, in key order (one consistent view)."""

        async def collect() -> ScanItems:
            pairs = self._pairs(start_key, end_key, prefix, limit)
            return ScanItems((self._dk(k), self._dv(v)) for k, v in pairs)

        async def stream() -> AsyncIterator[tuple[Any, Any]]:
            for pair in await collect():
                yield pair

        return ScanPairs(collect, stream)

    async def clear(self) -> None:
        """Remove every key (one new, empty snapshot)."""
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            self._switch({})
            self._data, self._sorted = {}, None

    async def delete_range(self, start_key: Any | None = None, end_key: Any | None = None) -> None:
        lower = None if start_key is None else self._ek(start_key)
        upper = None if end_key is None else self._ek(end_key)
        if lower is not None and upper is not None and lower > upper:
            raise InvalidArgumentError(
                f"delete_range: start_key {start_key!r:.60} is after end_key {end_key!r:.60}"
            )
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            self._append([], self._range(lower, upper))

    async def delete_prefix(self, prefix: Any) -> None:
        lower, upper = self._bounds(None, None, prefix)
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            self._append([], self._range(lower, upper))

    # ---- batches ---------------------------------------------------------------------

    async def batch_set(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        """Store every pair in one record: all of them or, after a crash, none."""
        pairs = items.items() if isinstance(items, Mapping) else items
        encoded: dict[bytes, bytes] = {}
        for k, v in pairs:
            encoded[self._ek(k)] = self._ev(k, v)
        with self._lock:
            self._append(list(encoded.items()), [])

    async def batch_delete(self, keys: Iterable[Any]) -> int:
        if isinstance(keys, str | bytes):
            raise TypeError(
                f"keys must be a list or other iterable of keys, not {type(keys).__name__}"
            )
        encoded = list(dict.fromkeys(self._ek(k) for k in keys))
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            present = [k for k in encoded if k in self._data]
            self._append([], present)
            return len(present)

    # ---- statistics, backup ------------------------------------------------------------

    def _file_bytes(self) -> int:
        total = 0
        for name in (_snapshot_name(self._gen), _changes_name(self._gen)):
            with contextlib.suppress(OSError):
                total += (self.data_path / name).stat().st_size
        return total

    async def get_stats(self) -> dict[str, Any]:
        """``backend_type``, ``size``, ``data_path``, ``file_size_bytes``,
        ``loaded``, ``compression``, ``memory_usage_bytes`` (the encoded keys
        and values held), ``generation`` and weir's ``keys``/``keys_exact``/``bytes_on_disk``."""
        with self._lock:
            self._ensure_loaded()
            size = len(self._data)
            memory = sum(len(k) + len(v) for k, v in self._data.items())
            file_bytes = self._file_bytes()
            return {
                "backend_type": self.backend_type,
                "size": size,
                "keys": size,
                "keys_exact": True,
                "data_path": str(self.data_path),
                "file_size_bytes": file_bytes,
                "bytes_on_disk": file_bytes,
                "loaded": self._loaded,
                "compression": self._compression,
                "memory_usage_bytes": memory,
                "generation": self._gen,
                "key_codec": getattr(self._kc, "name", None),
                "value_codec": getattr(self._vc, "name", None),
                "max_size": self.config.max_size,
                "ttl_seconds": self.config.ttl_seconds,
            }

    async def backup(self, path: Any) -> None:
        """Write a consistent copy (one snapshot file) into the new directory ``path``."""
        target = Path(os.fspath(path))
        if os.path.lexists(target):
            raise FileExistsError(f"backup target {str(target)!r} already exists")
        with self._lock:
            self._ensure_loaded()
            items = list(self._data.items())
        await asyncio.to_thread(self._backup_sync, target, items)

    def _backup_sync(self, target: Path, items: list[tuple[bytes, bytes]]) -> None:
        try:
            target.mkdir(parents=True)
            self._write_snapshot(target, 1, items)
            os.replace(target / (_snapshot_name(1) + ".tmp"), target / _snapshot_name(1))
            _fsync_dir(target)
        except OSError as e:
            raise _io_error(f"cannot write backup {target}", e) from e

    async def restore(self, path: Any) -> None:
        """Replace the whole store with the backup at ``path`` (one new snapshot)."""
        source = Path(os.fspath(path))
        if not source.is_dir():
            raise FileNotFoundError(f"no arrow_files backup at {str(source)!r}")
        _, snapshots, _ = self._scan_dir(source)
        if not snapshots:
            raise CorruptionError(f"{source}: no snapshot file (data-*.arrow) in the backup")
        _, data, _, _ = await asyncio.to_thread(self._read_dir, source, False)
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            self._switch(data)
            self._data, self._sorted = data, None

    # ---- the byte-level interface of weir's layers -------------------------------------

    @property
    def key_codec(self) -> Codec[Any]:
        codec: Codec[Any] = self._kc
        return codec

    @property
    def value_codec(self) -> Codec[Any]:
        codec: Codec[Any] = self._vc
        return codec

    def encode_key(self, key: Any) -> bytes:
        return self._ek(key)

    def decode_key(self, data: bytes) -> Any:
        return self._dk(data)

    def encode_value(self, key: Any, value: Any) -> bytes:
        return self._ev(key, value)

    def decode_value(self, key: Any, payload: bytes) -> Any:
        try:
            return self._dv(payload)
        except Exception as e:
            err = CorruptionError(f"the value of key {key!r:.60} cannot be decoded: {e}")
            err.status = "WEIR_CORRUPTION"
            raise err from e

    async def apply(
        self,
        puts: EncodedPairs = (),
        deletes: Sequence[bytes] = (),
        *,
        clear_range: EncodedRange | None = None,
    ) -> None:
        """One record: the keys of ``clear_range``, then ``deletes``, then
        ``puts`` (encoded keys and value payloads)."""
        put_list = [(k, v) for k, v in puts]
        delete_list = list(deletes)
        for k, v in put_list:
            if not isinstance(k, bytes) or not isinstance(v, bytes):
                raise TypeError("apply: keys and values must be bytes")
            if len(k) > MAX_KEY_SIZE:
                raise InvalidArgumentError(f"apply: a key of {len(k)} bytes is over 1 MiB")
        for k in delete_list:
            if not isinstance(k, bytes):
                raise TypeError(f"apply: keys must be bytes, not {type(k).__name__}")
        if clear_range is not None:
            lower, upper = clear_range
            if lower is not None and upper is not None and lower > upper:
                raise InvalidArgumentError("apply: clear_range's lower bound is above its upper")
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            gone = self._range(*clear_range) if clear_range is not None else []
            put_keys = {k for k, _ in put_list}
            drop = [k for k in dict.fromkeys(gone + delete_list) if k not in put_keys]
            self._append(put_list, [k for k in drop if k in self._data])

    async def snapshot_range(
        self, lower: bytes | None = None, upper: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        with self._lock:
            self._ensure_loaded()
            data = self._data
            return [(k, data[k]) for k in self._range(lower, upper)]

    # ---- transactions ------------------------------------------------------------------

    def transaction(self) -> ArrowFileTransaction:
        """A new transaction: ``async with backend.transaction() as txn:``."""
        with self._lock:
            self._check_writable()
        return ArrowFileTransaction(self)

    async def begin_transaction(self) -> ArrowFileTransaction:
        return self.transaction()

    def _own(self, transaction: Any) -> ArrowFileTransaction:
        if not isinstance(transaction, Transaction):
            raise TypeError(f"expected a Transaction, not {type(transaction).__name__}")
        if not isinstance(transaction, ArrowFileTransaction) or transaction.backend is not self:
            raise InvalidArgumentError("the transaction belongs to another backend")
        return transaction

    async def commit_transaction(self, transaction: Transaction) -> None:
        """Apply the transaction's writes as one record, or raise
        :class:`~weir.stores.TransactionConflictError` (nothing written) if a
        key it read changed since."""
        txn = self._own(transaction)
        txn._check_active()
        with self._lock:
            self._check_writable()
            self._ensure_loaded()
            for ek, seen in txn.reads.items():
                if self._data.get(ek) != seen:
                    txn.state = "failed"
                    err = TransactionConflictError(
                        f"key {self._dk(ek)!r:.60} changed since the transaction read it"
                    )
                    err.status = "WEIR_CONFLICT"
                    raise err
            puts = [(k, v) for k, v in txn.writes.items() if v is not None]
            deletes = [k for k, v in txn.writes.items() if v is None]
            try:
                self._append(puts, deletes)
            except BaseException:
                txn.state = "failed"
                raise
            txn.state = "committed"

    async def rollback_transaction(self, transaction: Transaction) -> None:
        txn = self._own(transaction)
        if txn.state == "active":
            txn.state = "rolled back"

    def _raw(self, ek: bytes) -> bytes | None:
        with self._lock:
            self._ensure_loaded()
            return self._data.get(ek)


class ArrowFileTransaction(Transaction):
    """Buffered writes applied at commit as one record; reads see the
    transaction's own writes, and a key read then changed by someone else
    makes the commit fail (optimistic, as weir's store transactions)."""

    def __init__(self, backend: ArrowFileBackend) -> None:
        self.backend = backend
        #: encoded key -> the encoded value it held when first read (None: absent)
        self.reads: dict[bytes, bytes | None] = {}
        #: encoded key -> encoded value to write, or None to delete
        self.writes: dict[bytes, bytes | None] = {}
        self.state = "active"

    def _check_active(self) -> None:
        if self.state != "active":
            raise InvalidArgumentError(f"the transaction is already {self.state}; begin a new one")

    def _read(self, ek: bytes) -> bytes | None:
        if ek in self.writes:
            return self.writes[ek]
        raw = self.backend._raw(ek)
        self.reads.setdefault(ek, raw)
        return raw

    async def get(self, key: Any) -> Any | None:
        self._check_active()
        raw = self._read(self.backend._ek(key))
        return None if raw is None else self.backend._dv(raw)

    async def set(self, key: Any, value: Any) -> None:
        self._check_active()
        self.writes[self.backend._ek(key)] = self.backend._ev(key, value)

    async def delete(self, key: Any) -> bool:
        self._check_active()
        ek = self.backend._ek(key)
        existed = self._read(ek) is not None
        self.writes[ek] = None
        return existed

    async def commit(self) -> None:
        await self.backend.commit_transaction(self)

    async def rollback(self) -> None:
        await self.backend.rollback_transaction(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.state == "active":
            await self.commit()
        elif self.state == "active":
            await self.rollback()


def _successor(prefix: bytes) -> bytes | None:
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes((p[-1] + 1,))
