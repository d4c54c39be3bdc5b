"""weir.sabot: Sabot's state, checkpoint and materialization API on weir.

Code written against the Sabot streaming framework's state layer runs on
weir with one changed import (``sabot.`` becomes ``weir.sabot.``)::

    from weir.sabot.stores import StateStoreManager, StateStoreConfig, BackendType

The modules mirror Sabot's public ones, and each name is built on weir's
own layers:

- :mod:`weir.sabot.stores`: the store backends under Sabot's names
  (``MemoryBackend``, ``TonboBackend``, ``RocksDBBackend``, ``RedisBackend``,
  ``ArrowFileBackend``...), thin over :mod:`weir.stores`, plus
  ``StateStoreManager`` / ``StateTable`` (named tables over
  :mod:`weir.table`) and the checkpoint names.
- :mod:`weir.sabot.state`: Flink-style keyed state (``ValueState``,
  ``ListState``, ``MapState``, ``ReducingState``, ``AggregatingState``)
  bound to a store, a namespace and a current key.
- :mod:`weir.sabot.checkpoint`: numbered, retained checkpoints of several
  stores at once, restored whole.
- :mod:`weir.sabot.materializations`: dimension tables and analytical
  views over :mod:`weir.materialize`.

What stays different from Sabot, and why, is in docs/SABOT.md.
"""

from __future__ import annotations

__all__ = ["checkpoint", "materializations", "state", "stores"]


def __getattr__(name: str) -> object:
    # Submodules load on first use: weir.sabot.materializations needs
    # pyarrow, which the others do not.
    if name in __all__:
        from importlib import import_module

        module = import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'weir.sabot' has no attribute {name!r}")
