"""Sabot's RocksDB backend, over weir's (``rocksdict``, which bundles RocksDB).

The directory is ``config.path`` (required). Importing this module needs
``rocksdict`` (``pip install rocksdict``); :data:`weir.sabot.stores.ROCKSDB_AVAILABLE`
says whether it is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import SabotStoreBackend

__all__ = ["RocksDBBackend"]


class RocksDBBackend(SabotStoreBackend):
    """A RocksDB directory at ``config.path``, with Sabot's defaults."""

    backend_type = "rocksdb"
    engine_type = "rocksdb"

    def _memory_usage(self, engine_stats: Mapping[str, Any]) -> int:
        return int(engine_stats.get("cur_size_all_mem_tables", 0)) + int(
            engine_stats.get("block_cache_usage", 0)
        )
