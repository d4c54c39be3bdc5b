"""Sabot's ``sabot._c`` package path, kept for the one module of it that
Sabot code imports for its public materialization classes."""
