"""Sabot's ``sabot.stores.checkpoint`` module path: the names of
:mod:`weir.sabot.checkpoint`."""

from __future__ import annotations

from ..checkpoint import (
    CheckpointConfig,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointManager,
    CheckpointMetadata,
    CheckpointNotFoundError,
)

__all__ = [
    "CheckpointConfig",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointMetadata",
    "CheckpointNotFoundError",
]
