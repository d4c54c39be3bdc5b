"""What the two backends over an on-disk engine directory share (weir and
RocksDB): the chunked cursor over an engine iterator, the bytes on disk,
and restore: stage a copy of the backup beside the store, verify all of it
(open it, then read every entry so every data block's checksum is checked),
and only then swap it in by renaming, fsync'ing the parent directory.

An engine subclass says how to open a directory (:meth:`_open_at`), how to
bind an open handle (:meth:`_bind`), what marks a backup directory
(:attr:`marker_file`), and how to read every entry of a staged copy
(:meth:`_verify_all`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from .. import CorruptionError, Error, InvalidArgumentError
from ..durable import partial_name, publish
from ._common import make_error
from ._engine import EngineBackend, dir_size
from .base import StoreBackendConfig


class ChunkCursor:
    """Chunks of an engine iterator, which reads one consistent view.

    ``it`` yields ``(key, value)`` pairs, or only keys when ``values`` is
    False (the raw values are then empty). ``release`` (if given) frees the
    engine iterator at close.
    """

    __slots__ = ("_it", "_release", "_values")

    def __init__(
        self, it: Iterator[Any], values: bool, release: Callable[[], None] | None = None
    ) -> None:
        self._it: Iterator[Any] | None = it
        self._values = values
        self._release = release

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
        # Dropping (or closing) the iterator releases its hold on the
        # engine handle, which must go before the directory is reopened.
        self._it = None
        release, self._release = self._release, None
        if release is not None:
            release()


def link_or_copy(src: str, dst: str) -> str:
    """Hard-link table files (engines never change one once written, and
    deleting one name leaves the other intact); copy everything else, and
    tables too across file systems."""
    if src.endswith(".sst"):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return str(shutil.copy2(src, dst))


class DirectoryBackend(EngineBackend):
    """An engine backend whose data is a directory at ``config.path``."""

    #: the file every backup directory of this engine holds
    marker_file = "CURRENT"
    #: how the engine is named in messages
    engine_name = "engine"

    def __init__(self, config: StoreBackendConfig) -> None:
        super().__init__(config)
        if config.path is None:
            raise make_error(
                InvalidArgumentError,
                f"the {self.backend_type} backend needs a directory: "
                "StoreBackendConfig(path=...) (or backend_type='memory' for a store "
                "that is not kept)",
            )
        self._path = os.path.abspath(os.fspath(config.path))
        self._db: Any = None

    # ---- what an engine supplies --------------------------------------------------------

    def _open_at(self, path: str, *, create: bool = True) -> Any:
        """Open the engine at ``path`` (creating it only if ``create``)."""
        raise NotImplementedError

    def _bind(self, db: Any) -> None:
        """Make ``db`` the live handle (and its methods the point hooks)."""
        self._db = db

    def _verify_all(self, db: Any) -> None:
        """Read every entry of ``db`` so every data block's checksum is checked."""
        raise NotImplementedError

    # ---- shared hooks -------------------------------------------------------------------------

    def _open_engine(self) -> None:
        parent = os.path.dirname(self._path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        self._bind(self._open_at(self._path))

    def _close_engine(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _bytes_on_disk(self) -> int:
        return dir_size(self._path)

    # ---- restore ----------------------------------------------------------------------------

    def _prepare_restore(self, path: str) -> str:
        """Stage ``path`` beside the store and verify every checksum of the
        staged copy; the live store is not touched. Errors name ``path``,
        never the staging directory."""
        name = f"{self.engine_name} backup"
        if not os.path.isdir(path):
            raise make_error(
                InvalidArgumentError, f"{path!r} is not a {name} directory (it is a file)"
            )
        if not os.path.isfile(os.path.join(path, self.marker_file)):
            raise make_error(
                InvalidArgumentError,
                f"{path!r} is not a {name} directory (it has no {self.marker_file} file)",
            )
        staging = partial_name(self._path, "restore")
        try:
            shutil.copytree(
                path, staging, ignore=shutil.ignore_patterns("LOCK"), copy_function=link_or_copy
            )
            db = self._open_at(staging, create=False)
            try:
                self._verify_all(db)
            finally:
                db.close()
        except Error as e:
            shutil.rmtree(staging, ignore_errors=True)
            cls = type(e) if isinstance(e, Error) else CorruptionError
            detail = str(e).replace(staging, path)
            raise make_error(
                cls,
                f"restore from {path!r} refused, the store is unchanged: {detail}",
                getattr(e, "status", None),
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _swap_restore(self, staged: Any) -> None:
        staging = str(staged)
        old = partial_name(self._path, "old")
        self._close_engine()
        publish(self._path, old)
        try:
            publish(staging, self._path)
            self._bind(self._open_at(self._path))
        except BaseException:
            if os.path.exists(self._path):
                publish(self._path, staging)
            publish(old, self._path)
            self._bind(self._open_at(self._path))
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _discard_restore(self, staged: Any) -> None:
        shutil.rmtree(str(staged), ignore_errors=True)
