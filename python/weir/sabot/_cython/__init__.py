"""Sabot's ``sabot._cython`` package path, kept for the keyed state backend
Sabot code imports from it (``sabot._cython.state.tonbo_state``)."""
