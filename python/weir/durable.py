"""Publishing files and directories so that a power cut cannot undo them.

A file or directory is *published* when it appears under its final name
complete: it is built under a temporary name beside the target, its data
is fsync'd, it is renamed into place, and the directory that now names it
is fsync'd. Without that last step a rename can be lost in a power cut
even though the program already reported success (the rename lives in the
parent directory's metadata, which has its own write-back).

Every rename in weir's Python layers that publishes something goes through
:func:`publish` (store backups, store restores, cluster snapshots), and
every file written that way through :func:`publish_file`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import IO

__all__ = ["fsync_dir", "fsync_tree", "partial_name", "publish", "publish_file"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync the directory ``path`` (its entries: names created, renamed, removed)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every regular file and every directory under ``root``."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def partial_name(target: str | os.PathLike[str], what: str = "partial") -> str:
    """A fresh temporary name beside ``target`` (same directory, so the
    rename that publishes it is atomic)."""
    return f"{os.fspath(target)}.{what}-{uuid.uuid4().hex[:8]}"


def _parent(path: str) -> str:
    return os.path.dirname(os.path.abspath(path)) or "."


def publish(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename ``source`` (a finished file or directory whose contents are
    already durable) to ``target`` and fsync the directory of each name,
    so the rename survives a power cut once this returns."""
    src = os.fspath(source)
    dst = os.fspath(target)
    os.rename(src, dst)
    parent = _parent(dst)
    fsync_dir(parent)
    if _parent(src) != parent:
        fsync_dir(_parent(src))


def publish_file(target: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Create the file ``target`` durably: ``write(f)`` fills a temporary
    file beside it, which is fsync'd, renamed to ``target`` and its
    directory fsync'd. On any failure the temporary file is removed and
    ``target`` is left as it was."""
    dst = os.fspath(target)
    tmp = partial_name(dst)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
