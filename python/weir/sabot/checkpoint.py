"""Checkpoints of several stores at once: numbered, retained, restored whole.

Sabot's ``CheckpointManager`` dumps one backend's items into a JSON file
(so only JSON-able values survive, and a checkpoint of a persistent store
copies all of it). This one keeps Sabot's names and shape, and takes each
store's own backup (:meth:`weir.stores.StoreBackend.backup`: an engine
checkpoint that hard-links the table files for the weir engine, a dump for
the memory and Redis stores, a snapshot for Arrow files), so every value a
store holds comes back, and a checkpoint of a large weir store costs links,
not a copy::

    cp = CheckpointManager({"users": users, "sessions": sessions},
                           CheckpointConfig(checkpoint_dir=Path("ckpt"), max_checkpoints=5))
    cp_id = await cp.create_checkpoint(force=True, metadata={"offset": 1042})
    ...
    await cp.restore_checkpoint()          # the latest; or restore_checkpoint(cp_id)

Layout of ``checkpoint_dir``: checkpoint ``N`` is ``NNNNNNNN.json`` (its
manifest: the stores, their key counts, and the size and SHA-256 of every
file) and the directory ``NNNNNNNN/`` (one backup per store). The manifest
is written last (to a temporary name, fsynced, renamed), so a checkpoint
exists only once it is complete; a directory without a manifest is a
checkpoint a crash interrupted, and is removed. Numbers only grow (the
``LAST`` file remembers the last one given, so a deleted checkpoint's number
is never reused). Making,
deleting and restoring checkpoints take the ``LOCK`` file (``flock``), so
several managers, in this process or others, can share one directory.

A checkpoint is a consistent cut of each store; it is a cut of all of them
at one moment when nothing writes to them meanwhile, which is what
:class:`~weir.sabot.stores.StateStoreManager` arranges (its tables wait
while a checkpoint is taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import CorruptionError, Error
from ..stores import StoreBackend

__all__ = [
    "CheckpointConfig",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointMetadata",
    "CheckpointNotFoundError",
]

log = logging.getLogger("weir.sabot.checkpoint")

_MANIFEST = re.compile(r"^(\d{8})\.json$")
_DATA_DIR = re.compile(r"^(\d{8})$")
_FORMAT = 1


class CheckpointError(Error):
    """A checkpoint could not be made, found or restored."""


class CheckpointNotFoundError(CheckpointError, LookupError):
    """No checkpoint has the id asked for (or there is none at all)."""


class CheckpointCorruptError(CheckpointError, CorruptionError):
    """A checkpoint's manifest or files are missing or damaged."""


@dataclass
class CheckpointMetadata:
    """What a checkpoint's manifest records (Sabot's fields first)."""

    checkpoint_id: str
    timestamp: float
    backend_type: str
    key_count: int
    data_hash: str
    size_bytes: int
    incremental: bool = False
    parent_checkpoint_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the checkpoint's number (its id is the number, zero-padded to 8 digits)
    number: int = 0
    #: store name -> {"path", "backend_type", "key_count"}
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: file path (relative to the checkpoint's directory) -> [size, sha256]
    files: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class CheckpointConfig:
    """How checkpoints are taken and kept (Sabot's fields and defaults).

    ``interval_seconds``: the period of automatic checkpoints, and the least
    time between two ``create_checkpoint()`` calls that are not forced.
    ``max_checkpoints``: how many are kept (the oldest go first).
    ``auto_recovery``: :meth:`CheckpointManager.auto_recover_on_startup`
    restores the latest checkpoint (into stores that are empty).
    ``incremental``: record the previous checkpoint as the parent; the
    weir engine's backups share unchanged table files with the store
    through hard links whatever this says. ``compression`` is kept for
    Sabot's sake and changes nothing: each store's backup is stored in the
    store's own format, compressed as the store is.
    """

    enabled: bool = True
    interval_seconds: float = 300.0
    max_checkpoints: int = 10
    checkpoint_dir: Path = Path("./checkpoints")
    compression: bool = True
    incremental: bool = True
    auto_recovery: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.checkpoint_dir, str):
            self.checkpoint_dir = Path(self.checkpoint_dir)
        if not isinstance(self.checkpoint_dir, os.PathLike):
            raise TypeError(
                f"checkpoint_dir must be a path, not {type(self.checkpoint_dir).__name__}"
            )
        self.checkpoint_dir = Path(self.checkpoint_dir)
        n = self.max_checkpoints
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"max_checkpoints must be an int, not {type(n).__name__}")
        if n < 1:
            raise ValueError(f"max_checkpoints must be at least 1, not {n}")
        t = self.interval_seconds
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise TypeError(f"interval_seconds must be a number, not {type(t).__name__}")
        if not t > 0:
            raise ValueError(f"interval_seconds must be positive, not {t}")


def _check_store_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a store name must be a non-empty str, not {name!r}")
    return name


def _file_digests(root: Path) -> dict[str, list[Any]]:
    """{relative path: [size, sha256]} of every file under ``root``."""
    out: dict[str, list[Any]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            digest = hashlib.sha256()
            size = 0
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            out[path.relative_to(root).as_posix()] = [size, digest.hexdigest()]
    return dict(sorted(out.items()))


def _tree_hash(files: Mapping[str, list[Any]]) -> str:
    digest = hashlib.sha256()
    for rel, (size, sha) in sorted(files.items()):
        digest.update(f"{rel}\0{size}\0{sha}\n".encode())
    return digest.hexdigest()


def _write_json_atomically(path: Path, data: Any) -> None:
    _write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True))


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointManager:
    """Numbered checkpoints of one store or several (see the module docs).

    ``stores``: a store backend (Sabot's form; it is named ``"default"``)
    or a mapping of names to store backends. ``config``: a
    :class:`CheckpointConfig` (its defaults if None). The directory is
    created if missing; the checkpoints already in it are found.
    """

    def __init__(
        self,
        stores: StoreBackend | Mapping[str, StoreBackend],
        config: CheckpointConfig | None = None,
    ) -> None:
        if config is None:
            config = CheckpointConfig()
        if not isinstance(config, CheckpointConfig):
            raise TypeError(f"config must be a CheckpointConfig, not {type(config).__name__}")
        self.config = config
        self.stores: dict[str, StoreBackend] = {}
        if isinstance(stores, StoreBackend):
            self.stores["default"] = stores
        elif isinstance(stores, Mapping):
            for name, backend in stores.items():
                self.add_store(name, backend)
        else:
            raise TypeError(
                "stores must be a store backend or a mapping of names to store backends, "
                f"not {type(stores).__name__}"
            )
        self.checkpoints: dict[str, CheckpointMetadata] = {}
        self.last_checkpoint_time = 0.0
        self.is_running = False
        self._damaged: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._alock: asyncio.Lock | None = None
        self.config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._load()

    # ---- stores ----------------------------------------------------------------------

    @property
    def backend(self) -> StoreBackend | None:
        """The store, when there is one (Sabot's attribute)."""
        return next(iter(self.stores.values())) if len(self.stores) == 1 else None

    def add_store(self, name: str, backend: StoreBackend) -> None:
        """Include ``backend`` under ``name`` in the checkpoints from now on."""
        name = _check_store_name(name)
        if not isinstance(backend, StoreBackend):
            raise TypeError(f"store {name!r} must be a store backend, not {type(backend).__name__}")
        if name in self.stores and self.stores[name] is not backend:
            raise ValueError(f"a different store is already registered as {name!r}")
        self.stores[name] = backend

    def remove_store(self, name: str) -> None:
        """Leave the store out of later checkpoints (earlier ones keep it)."""
        self.stores.pop(name, None)

    # ---- the directory ---------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.config.checkpoint_dir

    def _manifest_path(self, cp_id: str) -> Path:
        return self.checkpoint_dir / f"{cp_id}.json"

    def _data_path(self, cp_id: str) -> Path:
        return self.checkpoint_dir / cp_id

    def _load(self) -> None:
        """Re-read the manifests in the directory (no lock: read only)."""
        found: dict[str, CheckpointMetadata] = {}
        damaged: dict[str, str] = {}
        for name in sorted(os.listdir(self.checkpoint_dir)):
            m = _MANIFEST.match(name)
            if not m:
                continue
            cp_id = m.group(1)
            try:
                with open(self.checkpoint_dir / name, encoding="utf-8") as f:
                    raw = json.load(f)
                if raw.get("format") != _FORMAT:
                    raise ValueError(f"format {raw.get('format')!r}, expected {_FORMAT}")
                meta = CheckpointMetadata(**raw["checkpoint"])
                if meta.checkpoint_id != cp_id:
                    raise ValueError(f"it names checkpoint {meta.checkpoint_id!r}")
            except FileNotFoundError:
                continue  # deleted meanwhile by another manager
            except (OSError, ValueError, KeyError, TypeError) as e:
                damaged[cp_id] = f"{self.checkpoint_dir / name}: unreadable manifest: {e}"
                continue
            found[cp_id] = meta
        self.checkpoints = found
        self._damaged = damaged

    def _remove_orphans(self) -> None:
        """Delete checkpoint directories without a manifest (interrupted by
        a crash); the caller holds the directory lock."""
        for name in os.listdir(self.checkpoint_dir):
            if _DATA_DIR.match(name) and not self._manifest_path(name).exists():
                self._note_number(int(name))
                shutil.rmtree(self.checkpoint_dir / name, ignore_errors=True)
            elif name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    (self.checkpoint_dir / name).unlink()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:
            fd = os.open(self.checkpoint_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                self._load()
                yield
            finally:
                os.close(fd)

    def _next_number(self) -> int:
        """A number never given before in this directory (the caller holds
        the lock): past the newest checkpoint and the ``LAST`` counter, which
        remembers numbers whose checkpoints were deleted or never finished."""
        numbers = [m.number for m in self.checkpoints.values()]
        numbers += [int(i) for i in self._damaged]
        for name in os.listdir(self.checkpoint_dir):
            if m := (_DATA_DIR.match(name) or _MANIFEST.match(name)):
                numbers.append(int(m.group(1)))
        number = max(max(numbers, default=0), self._last_number()) + 1
        self._note_number(number)
        return number

    def _last_number(self) -> int:
        last = self.checkpoint_dir / "LAST"
        try:
            return int(last.read_text().strip())
        except FileNotFoundError:
            return 0
        except ValueError:
            log.warning("%s is damaged; numbering from the checkpoints present", last)
            return 0

    def _note_number(self, number: int) -> None:
        """Remember that ``number`` was given (the caller holds the lock)."""
        if number > self._last_number():
            _write_text_atomically(self.checkpoint_dir / "LAST", f"{number}\n")

    @property
    def latest_checkpoint_id(self) -> str | None:
        """The id of the newest checkpoint, or None."""
        if not self.checkpoints:
            return None
        return max(self.checkpoints.values(), key=lambda m: m.number).checkpoint_id

    # ---- making checkpoints -------------------------------------------------------------

    async def create_checkpoint(
        self,
        force: bool = False,
        metadata: Mapping[str, Any] | None = None,
        *,
        stores: list[str] | None = None,
    ) -> str | None:
        """Take a checkpoint of every store (or of the ones ``stores`` names);
        returns its id.

        Without ``force``, returns None (and does nothing) when the last
        checkpoint of this manager is less than ``interval_seconds`` old.
        ``metadata`` (JSON-serialisable: source offsets, a job version...)
        is kept in the manifest. On failure nothing is left behind and
        :class:`CheckpointError` says why."""
        now = time.time()
        if not force and now - self.last_checkpoint_time < self.config.interval_seconds:
            return None
        if stores is None:
            chosen = dict(self.stores)
        else:
            unknown = [n for n in stores if n not in self.stores]
            if unknown:
                raise CheckpointError(
                    f"no store(s) {', '.join(map(repr, unknown))} in this manager "
                    f"(it has: {', '.join(self.stores) or 'none'})"
                )
            chosen = {n: self.stores[n] for n in stores}
        if not chosen:
            raise CheckpointError("there are no stores to checkpoint; add_store() one first")
        extra = dict(metadata or {})
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as e:
            raise TypeError(f"checkpoint metadata must be JSON-serialisable: {e}") from None
        async with self._locked():
            self._remove_orphans()
            number = self._next_number()
            cp_id = f"{number:08d}"
            data_dir = self._data_path(cp_id)
            parent = self.latest_checkpoint_id if self.config.incremental else None
            try:
                data_dir.mkdir()
                stored: dict[str, dict[str, Any]] = {}
                for i, (name, backend) in enumerate(chosen.items()):
                    rel = f"store-{i:03d}"
                    await backend.backup(data_dir / rel)
                    stored[name] = {
                        "path": rel,
                        "backend_type": getattr(backend, "backend_type", type(backend).__name__),
                        "key_count": await backend.size(),
                    }
                files = await asyncio.to_thread(_file_digests, data_dir)
                meta = CheckpointMetadata(
                    checkpoint_id=cp_id,
                    timestamp=now,
                    backend_type=", ".join(sorted({type(b).__name__ for b in chosen.values()})),
                    key_count=sum(s["key_count"] for s in stored.values()),
                    data_hash=_tree_hash(files),
                    size_bytes=sum(size for size, _ in files.values()),
                    incremental=self.config.incremental,
                    parent_checkpoint_id=parent,
                    metadata=extra,
                    number=number,
                    stores=stored,
                    files=files,
                )
                await asyncio.to_thread(
                    _write_json_atomically,
                    self._manifest_path(cp_id),
                    {"format": _FORMAT, "checkpoint": asdict(meta)},
                )
            except BaseException as e:
                await asyncio.to_thread(shutil.rmtree, data_dir, True)
                if isinstance(e, Exception):
                    raise CheckpointError(f"checkpoint {cp_id} failed: {e}") from e
                raise
            self.checkpoints[cp_id] = meta
            self.last_checkpoint_time = now
            await self._retain()
        log.info("checkpoint %s: %d keys in %d store(s)", cp_id, meta.key_count, len(stored))
        return cp_id

    async def _retain(self) -> None:
        ordered = sorted(self.checkpoints.values(), key=lambda m: m.number)
        for meta in ordered[: max(0, len(ordered) - self.config.max_checkpoints)]:
            await asyncio.to_thread(self._delete_files, meta.checkpoint_id)
            del self.checkpoints[meta.checkpoint_id]

    def _delete_files(self, cp_id: str) -> None:
        # The manifest first: without it the checkpoint no longer exists.
        self._manifest_path(cp_id).unlink(missing_ok=True)
        shutil.rmtree(self._data_path(cp_id), ignore_errors=True)

    # ---- reading checkpoints --------------------------------------------------------------

    def _find(self, checkpoint_id: str | None) -> CheckpointMetadata:
        if checkpoint_id is None:
            checkpoint_id = self.latest_checkpoint_id
            if checkpoint_id is None:
                raise CheckpointNotFoundError(f"there are no checkpoints in {self.checkpoint_dir}")
        if not isinstance(checkpoint_id, str):
            raise TypeError(f"checkpoint_id must be a str, not {type(checkpoint_id).__name__}")
        if checkpoint_id in self._damaged:
            raise CheckpointCorruptError(self._damaged[checkpoint_id])
        meta = self.checkpoints.get(checkpoint_id)
        if meta is None:
            known = ", ".join(sorted(self.checkpoints)) or "none"
            raise CheckpointNotFoundError(
                f"no checkpoint {checkpoint_id!r} in {self.checkpoint_dir} (there are: {known})"
            )
        return meta

    def _verify(self, meta: CheckpointMetadata) -> None:
        data_dir = self._data_path(meta.checkpoint_id)
        if not data_dir.is_dir():
            raise CheckpointCorruptError(f"checkpoint {meta.checkpoint_id}: {data_dir} is missing")
        found = _file_digests(data_dir)
        for rel, expected in meta.files.items():
            got = found.get(rel)
            if got is None:
                raise CheckpointCorruptError(
                    f"checkpoint {meta.checkpoint_id}: file {data_dir / rel} is missing"
                )
            if list(got) != list(expected):
                raise CheckpointCorruptError(
                    f"checkpoint {meta.checkpoint_id}: file {data_dir / rel} is damaged "
                    f"({got[0]} bytes, expected {expected[0]}; checksum mismatch)"
                )

    async def validate_checkpoint(self, checkpoint_id: str) -> bool:
        """True if the checkpoint exists and every file is as it was written."""
        self._load()
        try:
            meta = self._find(checkpoint_id)
            await asyncio.to_thread(self._verify, meta)
        except (CheckpointError, OSError):
            return False
        return True

    def list_checkpoints(self) -> list[CheckpointMetadata]:
        """Every checkpoint, oldest first."""
        return sorted(self.checkpoints.values(), key=lambda m: m.number)

    def get_checkpoint_info(self, checkpoint_id: str) -> CheckpointMetadata | None:
        return self.checkpoints.get(checkpoint_id)

    # ---- restoring -----------------------------------------------------------------------

    async def restore_checkpoint(
        self, checkpoint_id: str | None = None, *, stores: list[str] | None = None
    ) -> bool:
        """Put the stores back as the checkpoint holds them: the latest one
        when ``checkpoint_id`` is None. ``stores`` restores only those
        (default: every store in the checkpoint, each of which this manager
        must hold). Every file is verified first, so a damaged checkpoint
        (:class:`CheckpointCorruptError`) changes nothing. Returns True."""
        async with self._locked():
            meta = self._find(checkpoint_id)
            names = list(meta.stores) if stores is None else list(stores)
            for name in names:
                if name not in meta.stores:
                    raise CheckpointError(
                        f"checkpoint {meta.checkpoint_id} has no store {name!r} "
                        f"(it has: {', '.join(meta.stores)})"
                    )
                if name not in self.stores:
                    raise CheckpointError(
                        f"checkpoint {meta.checkpoint_id} holds store {name!r}, which this "
                        f"manager does not (it has: {', '.join(self.stores) or 'none'}); "
                        "add_store() it or pass stores=[...]"
                    )
            await asyncio.to_thread(self._verify, meta)
            data_dir = self._data_path(meta.checkpoint_id)
            done: list[str] = []
            for name in names:
                try:
                    await self.stores[name].restore(data_dir / meta.stores[name]["path"])
                except Exception as e:
                    raise CheckpointError(
                        f"restoring checkpoint {meta.checkpoint_id}: store {name!r} failed ({e}); "
                        f"restored already: {', '.join(done) or 'none'}"
                    ) from e
                done.append(name)
        log.info("restored checkpoint %s (%s)", meta.checkpoint_id, ", ".join(names))
        return True

    async def auto_recover_on_startup(self, stores: list[str] | None = None) -> bool:
        """Restore the stores (default: all of them; or those ``stores``
        names) from the latest checkpoint that holds them, if
        ``auto_recovery`` is on and every one of them is empty (a memory
        store after a restart, or a lost directory). A store that holds data
        is kept as it is: weir's stores are durable, so it is at least as
        new as its last checkpoint. Returns True if a checkpoint was restored."""
        if not self.config.auto_recovery:
            return False
        names = list(self.stores) if stores is None else list(stores)
        unknown = [n for n in names if n not in self.stores]
        if unknown or not names:
            raise CheckpointError(
                f"no store(s) {', '.join(map(repr, unknown))} in this manager"
                if unknown
                else "there are no stores to recover"
            )
        self._load()
        holding = [m for m in self.checkpoints.values() if all(n in m.stores for n in names)]
        if not holding:
            return False
        latest = max(holding, key=lambda m: m.number)
        sizes = [await self.stores[n].size() for n in names]
        if any(sizes):
            log.info(
                "auto-recovery skipped: the stores hold data (%d keys), newer than or equal "
                "to checkpoint %s",
                sum(sizes),
                latest.checkpoint_id,
            )
            return False
        return await self.restore_checkpoint(latest.checkpoint_id, stores=names)

    # ---- deleting, statistics, automatic checkpoints -----------------------------------------

    async def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Delete a checkpoint; False if there is none with that id."""
        async with self._locked():
            if checkpoint_id not in self.checkpoints and checkpoint_id not in self._damaged:
                return False
            self._note_number(int(checkpoint_id))
            await asyncio.to_thread(self._delete_files, checkpoint_id)
            self.checkpoints.pop(checkpoint_id, None)
            self._damaged.pop(checkpoint_id, None)
        return True

    async def get_checkpoint_stats(self) -> dict[str, Any]:
        """Sabot's statistics: ``total_checkpoints``, ``valid_checkpoints``,
        ``invalid_checkpoints`` (checked file by file), ``total_size_bytes``,
        ``auto_checkpointing``, ``checkpoint_interval``, ``max_checkpoints``,
        ``incremental_enabled``; and ``latest_checkpoint_id``, ``stores``."""
        self._load()
        valid = invalid = 0
        total = 0
        for meta in self.checkpoints.values():
            try:
                await asyncio.to_thread(self._verify, meta)
                valid += 1
                total += meta.size_bytes
            except (CheckpointError, OSError):
                invalid += 1
        return {
            "total_checkpoints": len(self.checkpoints) + len(self._damaged),
            "valid_checkpoints": valid,
            "invalid_checkpoints": invalid + len(self._damaged),
            "total_size_bytes": total,
            "auto_checkpointing": self.is_running,
            "checkpoint_interval": self.config.interval_seconds,
            "max_checkpoints": self.config.max_checkpoints,
            "incremental_enabled": self.config.incremental,
            "latest_checkpoint_id": self.latest_checkpoint_id,
            "checkpoint_dir": str(self.checkpoint_dir),
            "stores": list(self.stores),
        }

    async def start_auto_checkpointing(self) -> None:
        """Take a checkpoint every ``interval_seconds`` in a background task
        (if ``enabled``). A failed checkpoint is logged and retried at the
        next interval."""
        if not self.config.enabled or self.is_running:
            return
        self.is_running = True
        self._task = asyncio.create_task(self._auto_loop(), name="weir.sabot checkpoints")

    async def _auto_loop(self) -> None:
        while self.is_running:
            await asyncio.sleep(self.config.interval_seconds)
            try:
                await self.create_checkpoint(force=True)
            except Exception:
                log.exception(
                    "automatic checkpoint failed; retrying in %ss", self.config.interval_seconds
                )

    async def stop_auto_checkpointing(self) -> None:
        """Stop the background checkpoints; one in progress is cancelled and
        leaves nothing behind."""
        self.is_running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __repr__(self) -> str:
        return (
            f"<CheckpointManager {str(self.checkpoint_dir)!r} stores={list(self.stores)} "
            f"checkpoints={len(self.checkpoints)}>"
        )
