"""Sabot's ``sabot._cython.state.tonbo_state`` path: :class:`TonboStateBackend`
is :mod:`weir.sabot.state`'s keyed state backend under Sabot's name."""

from __future__ import annotations

from ...state import TonboStateBackend

__all__ = ["TonboStateBackend"]
