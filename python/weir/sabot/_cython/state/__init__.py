"""Sabot's ``sabot._cython.state`` path: the keyed state classes of
:mod:`weir.sabot.state` (there is no Cython in weir)."""

from __future__ import annotations

from ...state import (
    AggregatingState,
    KeyedStateBackend,
    ListState,
    MapState,
    ReducingState,
    TonboStateBackend,
    ValueState,
)

#: Sabot's base-class name for a keyed state backend
StateBackend = KeyedStateBackend

__all__ = [
    "AggregatingState",
    "ListState",
    "MapState",
    "ReducingState",
    "StateBackend",
    "TonboStateBackend",
    "ValueState",
]
