"""Sabot's Tonbo backend: on weir, the weir engine under Tonbo's name.

``get_stats()`` carries the keys Sabot's Tonbo backend reports:
``backend_type`` ``"tonbo"``, ``db_path``, ``cython_enabled`` (True: as in
Sabot, it says the store runs in compiled code rather than a Python
fallback; weir's engine is C, reached through a CPython extension) and
``arrow_enabled`` (False: values are pickled objects, not Arrow records).
"""

from __future__ import annotations

from typing import Any

from .engine import WeirBackend

__all__ = ["TonboBackend"]


class TonboBackend(WeirBackend):
    """A weir database directory at ``config.path``, named as Sabot's Tonbo backend."""

    backend_type = "tonbo"

    async def get_stats(self) -> dict[str, Any]:
        stats = await super().get_stats()
        stats["cython_enabled"] = True
        stats["arrow_enabled"] = False
        return stats
