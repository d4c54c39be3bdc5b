"""Sabot's in-memory store backend, over weir's memory backend.

As in Sabot, it needs no ``start()``: the first operation starts it, and
``stop()`` drops everything it held (a later operation starts it again,
empty). ``max_size`` caps the number of keys (least recently used evicted)
and ``ttl_seconds`` expires values, as in :mod:`weir.stores`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .base import SabotStoreBackend

__all__ = ["MemoryBackend"]


class MemoryBackend(SabotStoreBackend):
    """Keys and values in process memory; nothing is kept after ``stop()``."""

    backend_type = "memory"
    engine_type = "memory"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._start_lock: asyncio.Lock | None = None

    async def _ready(self) -> None:
        if self._running:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._running:
                await self.start()

    def _memory_usage(self, engine_stats: Mapping[str, Any]) -> int:
        return int(engine_stats.get("bytes_in_memory", 0))
