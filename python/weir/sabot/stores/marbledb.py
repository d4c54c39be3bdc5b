"""Sabot's MarbleDB backend: on weir, the weir engine under MarbleDB's name."""

from __future__ import annotations

from .engine import WeirBackend

__all__ = ["MarbleDBStoreBackend"]


class MarbleDBStoreBackend(WeirBackend):
    """A weir database directory at ``config.path``, named as Sabot's MarbleDB backend."""

    backend_type = "marbledb"
