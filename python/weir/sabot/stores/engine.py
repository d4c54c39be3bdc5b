"""The embedded-engine backends under Sabot's names (Tonbo, MarbleDB, weir).

Sabot's Tonbo and MarbleDB backends are embedded LSM stores in a directory;
on weir all three names are the weir engine (:class:`weir.stores.WeirBackend`):
crash-safe atomic batches, engine transactions, hard-linked backups. The
directory comes from ``config.path`` (required). ``get_stats()`` reports
the Sabot name as ``backend_type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import DB
from .base import SabotStoreBackend

__all__ = ["WeirBackend"]


class WeirBackend(SabotStoreBackend):
    """A weir database directory at ``config.path``, with Sabot's defaults."""

    backend_type = "weir"
    engine_type = "weir"

    @property
    def db(self) -> DB | None:
        """The :class:`weir.DB` while started (None otherwise); keyed state
        (:mod:`weir.sabot.state`) reads and writes it directly."""
        db = getattr(self._inner, "db", None)
        return db if isinstance(db, DB) else None

    def _memory_usage(self, engine_stats: Mapping[str, Any]) -> int:
        return int(engine_stats.get("memtable_bytes", 0)) + int(
            engine_stats.get("block_cache_usage", 0)
        )

    async def get_stats(self) -> dict[str, Any]:
        stats = await super().get_stats()
        stats["db_path"] = str(self.config.path)
        return stats
