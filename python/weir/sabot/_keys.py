"""The key codec of weir.sabot's stores: the keys Sabot code uses, as is.

Sabot's memory backend is a dict, so its callers use ``str`` keys, ``int``
keys and tuples without saying so. weir's stores take ``str`` and bytes by
default and need ``key_codec="key"`` for the rest; this codec takes all of
them, and keeps ``str`` keys byte-identical to weir's default encoding
(UTF-8), so a store written through weir.sabot reads the same through
:mod:`weir.stores` as long as its keys are strings:

- ``str``: its UTF-8 bytes.
- bytes-like: the bytes themselves (a bytes key may not start with 0xFF,
  which no UTF-8 text starts with either: that byte marks the next case).
- ``int``, ``None`` and tuples of keys: 0xFF, then
  :class:`weir.codecs.KeyCodec`'s order-preserving encoding, so integer
  keys sort by value and range scans over them work.

``bool`` and ``float`` keys are refused (``TypeError``) rather than being
silently turned into ints or strings.
"""

from __future__ import annotations

from typing import Any

from ..codecs import KeyCodec

_TAG = b"\xff"
_ORDERED = KeyCodec()


class SabotKeyCodec:
    """``str``, bytes, ``int``, ``None`` and tuples of them (see the module docs)."""

    name = "sabot-keys"

    def encode(self, value: Any, key: object = None) -> bytes:
        if type(value) is str:
            return value.encode("utf-8")
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if raw[:1] == _TAG:
                raise ValueError(
                    "a bytes key may not start with 0xff (weir.sabot marks int and tuple keys so)"
                )
            return raw
        if isinstance(value, str):
            return str(value).encode("utf-8")
        if value is None or (type(value) is not bool and isinstance(value, int | tuple)):
            try:
                return _TAG + _ORDERED.encode(value)
            except TypeError as e:
                raise TypeError(f"unsupported key {value!r}: {e}") from None
        raise TypeError(
            f"a key must be a str, bytes, int, None or a tuple of these, "
            f"not {type(value).__name__} ({value!r:.60})"
        )

    def decode(self, data: bytes) -> Any:
        raw = bytes(data)
        if raw[:1] == _TAG:
            return _ORDERED.decode(raw[1:])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw

    def prefix(self, value: Any) -> bytes:
        """Bytes every key starting with ``value`` starts with: the encoding
        of a ``str`` or bytes prefix, or, for a tuple, of the tuples that
        begin with its elements."""
        if isinstance(value, tuple):
            return _TAG + _ORDERED.prefix(value)
        if isinstance(value, str | bytes | bytearray | memoryview):
            return self.encode(value)
        raise TypeError(f"a prefix must be a str, bytes or tuple, not {type(value).__name__}")

    def __repr__(self) -> str:
        return "SabotKeyCodec()"


#: The one instance the stores share (the codec holds no state).
SABOT_KEYS = SabotKeyCodec()
