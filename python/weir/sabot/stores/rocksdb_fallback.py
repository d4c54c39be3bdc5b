"""Sabot's ``rocksdb_fallback`` module path (RocksDB with a SQLite fallback).

weir needs no fallback: the RocksDB backend is ``rocksdict``'s bundled
RocksDB, so this module names the same class as :mod:`.rocksdb`.
"""

from __future__ import annotations

from .rocksdb import RocksDBBackend

__all__ = ["RocksDBBackend"]
