"""Sabot's ``sabot._c.materialization_engine`` import path.

Sabot's engine is Cython; here the same names are weir.sabot's engine-level
materialization classes (:mod:`weir.sabot.materializations`), so code that
imports them from this path runs unchanged.
"""

from __future__ import annotations

from ..materializations import (
    Materialization,
    MaterializationBackend,
    PopulationStrategy,
)
from ..materializations import MaterializationEngine as MaterializationManager

__all__ = [
    "Materialization",
    "MaterializationBackend",
    "MaterializationManager",
    "PopulationStrategy",
]
