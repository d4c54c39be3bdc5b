"""Dimension tables and incrementally maintained aggregate views over Arrow.

``DimensionTable`` keeps a keyed table (securities by symbol, customers by
id) in memory as Arrow record batches, with a C hash index over the key
column (``weir._enrich``), and persists every change to a weir DB so it is
rebuilt on restart. ``dim.enrich(batch)`` attaches the dimension's columns
to a stream batch: the key lookups (and the gather of fixed-width columns)
run in C over the Arrow buffers with the GIL released.

``AggregateView`` maintains count/sum/min/max/mean per group in a weir DB
with merge operators, so an update is a write-only batch of merges (no
read-modify-write) and survives restarts.

See docs/MATERIALIZE.md.
"""

from ._aggregate import AggregateView
from ._common import KeyTypeError, LoadError, MaterializeError, NullKeyError, SchemaError
from ._dimension import DimensionTable

__all__ = [
    "AggregateView",
    "DimensionTable",
    "KeyTypeError",
    "LoadError",
    "MaterializeError",
    "NullKeyError",
    "SchemaError",
]
