"""How Python keys and values become the bytes weir stores.

A codec has ``encode(value, key=None) -> bytes`` and ``decode(data) ->
value``. ``key`` is only used in error messages, so a store can say which
key held the value that could not be encoded.

- :class:`BytesCodec` -- bytes-like in, ``bytes`` out, no copy for ``bytes``.
- :class:`StrCodec` -- ``str`` as UTF-8.
- :class:`DefaultValueCodec` -- the default value codec everywhere
  (store backends, ``weir.table``, ``weir.stream`` state): msgpack, which
  also reads the JSON values that store backends wrote by default before.
- :class:`JsonCodec` -- compact JSON.
- :class:`MsgpackCodec` -- msgpack (the ``msgpack`` package's C extension).
- :class:`PickleCodec` -- pickle; never chosen implicitly, since unpickling
  data you did not write runs arbitrary code.
- :class:`KeyCodec` -- an order-preserving encoding of ``None``, ``bytes``,
  ``str``, ``int`` and tuples of them: within one type, comparing encodings
  bytewise gives the same order as comparing the values, so range and
  prefix scans work on typed keys.

:func:`get_codec` looks a codec up by name or passes a codec object through.

``decode`` of bytes a codec cannot read raises ``ValueError`` (which covers
``UnicodeDecodeError`` and ``json.JSONDecodeError``), whatever the bytes are;
tests/fuzz/python/fuzz_codecs.py holds every codec but pickle to that.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

__all__ = [
    "DEFAULT_VALUE_CODEC",
    "BytesCodec",
    "Codec",
    "DefaultValueCodec",
    "JsonCodec",
    "KeyCodec",
    "KeyValue",
    "MsgpackCodec",
    "PickleCodec",
    "StrCodec",
    "codec_names",
    "get_codec",
]

T = TypeVar("T")

#: What :class:`KeyCodec` encodes.
KeyValue: TypeAlias = bytes | str | int | tuple["KeyValue", ...] | None


@runtime_checkable
class Codec(Protocol[T]):
    """Turns values of one kind into bytes and back."""

    name: str

    def encode(self, value: T, key: object = None) -> bytes:
        """Return the bytes of ``value``; ``key`` only names it in errors."""
        ...

    def decode(self, data: bytes) -> T:
        """Return the value ``data`` encodes."""
        ...


def _cannot_encode(codec: str, value: object, key: object, detail: str) -> TypeError:
    what = "the value" if key is None else f"the value for key {key!r}"
    return TypeError(f"{codec} cannot encode {what} (type {type(value).__name__}): {detail}")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


class BytesCodec:
    """Raw bytes: any bytes-like value is stored as is."""

    name = "bytes"

    def encode(self, value: bytes | bytearray | memoryview, key: object = None) -> bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise _cannot_encode("BytesCodec", value, key, "expected bytes, bytearray or memoryview")

    def decode(self, data: bytes) -> bytes:
        return _as_bytes(data)

    def __repr__(self) -> str:
        return "BytesCodec()"


class StrCodec:
    """``str`` stored as UTF-8."""

    name = "str"

    def encode(self, value: str, key: object = None) -> bytes:
        if not isinstance(value, str):
            raise _cannot_encode("StrCodec", value, key, "expected str")
        return value.encode("utf-8")

    def decode(self, data: bytes) -> str:
        return _as_bytes(data).decode("utf-8")

    def __repr__(self) -> str:
        return "StrCodec()"


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=False)


class JsonCodec:
    """Compact JSON in UTF-8 (``{"name":"Alice","balance":1000}``).

    JSON has no tuples and only string object keys: tuples come back as
    lists and ``{1: "a"}`` as ``{"1": "a"}``.
    """

    name = "json"

    def encode(self, value: Any, key: object = None) -> bytes:
        try:
            return _JSON_ENCODER.encode(value).encode("utf-8")
        except TypeError as e:
            raise _cannot_encode("JsonCodec", value, key, str(e)) from e
        except ValueError as e:  # circular references, out-of-range floats
            what = "the value" if key is None else f"the value for key {key!r}"
            raise ValueError(f"JsonCodec cannot encode {what}: {e}") from e

    def decode(self, data: bytes) -> Any:
        try:
            return json.loads(_as_bytes(data))
        except RecursionError:
            # Arrays or objects nested thousands deep: still bad input.
            raise ValueError("JsonCodec cannot decode: the value is nested too deeply") from None

    def __repr__(self) -> str:
        return "JsonCodec()"


_JSON = JsonCodec()


class MsgpackCodec:
    """msgpack, via the ``msgpack`` package (a dependency of weir).

    ``bytes`` and ``str`` stay distinct; tuples come back as lists.
    """

    name = "msgpack"

    def __init__(self) -> None:
        import msgpack  # imported here so the other codecs never need it

        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def encode(self, value: Any, key: object = None) -> bytes:
        try:
            out: bytes = self._packb(value, use_bin_type=True)
        except TypeError as e:
            raise _cannot_encode("MsgpackCodec", value, key, str(e)) from e
        except (ValueError, OverflowError) as e:
            what = "the value" if key is None else f"the value for key {key!r}"
            raise ValueError(f"MsgpackCodec cannot encode {what}: {e}") from e
        return out

    def decode(self, data: bytes) -> Any:
        try:
            return self._unpackb(data, raw=False, strict_map_key=False)
        except TypeError as e:
            # A map key that is an array (a tuple key when encoded) cannot
            # be a list: read it again with arrays in key position as
            # tuples. A map key that is a map cannot be read at all.
            try:
                return _lists_outside_keys(
                    self._unpackb(
                        data,
                        raw=False,
                        strict_map_key=False,
                        use_list=False,
                        object_pairs_hook=_dict_with_list_values,
                    )
                )
            except (TypeError, ValueError):
                pass
            raise ValueError(f"MsgpackCodec cannot decode: {e}") from e

    def __repr__(self) -> str:
        return "MsgpackCodec()"


def _lists_outside_keys(value: Any) -> Any:
    """Arrays read as tuples become lists again, except map keys."""
    if type(value) is tuple:
        return [_lists_outside_keys(v) for v in value]
    return value


def _dict_with_list_values(pairs: Any) -> dict[Any, Any]:
    return {k: _lists_outside_keys(v) for k, v in pairs}


_DIGITS = frozenset(b"0123456789")


class DefaultValueCodec(MsgpackCodec):
    """The default value codec: msgpack, readable by any msgpack library.

    What comes back differs from what went in as msgpack defines it:
    tuples come back as lists (a tuple used as a dict key stays a tuple),
    ``bytearray`` and ``memoryview`` as ``bytes``; dict keys keep their
    type (``{1: "a"}`` stays ``{1: "a"}``, unlike JSON); NaN and the
    infinities round-trip; integers outside ``[-2**63, 2**64)`` raise
    ValueError at encode (JSON took them); ``bytes`` are stored as msgpack
    binary and come back as ``bytes`` (JSON refused them); ``set``,
    ``datetime`` and other objects raise TypeError (as JSON did).

    It also reads what weir wrote by default before it (``legacy``):

    * ``"json"`` (the default; store backends wrote JSON): a stored value
      is msgpack when its first byte is 0x80 or above, or when it is a
      single byte other than an ASCII digit; anything else is JSON (JSON
      text starts with an ASCII character and is more than one byte unless
      it is a single digit). To keep that rule exact, the top-level
      integers 48-57, which msgpack writes as the single bytes
      ``"0"``-``"9"``, are written in msgpack's two-byte uint8 form
      (``0xcc 0x30``...), which every msgpack reader decodes the same way.
    * ``"pickle"`` (weir.stream's own state stores were pickled): as
      ``"json"``, and a value of more than one byte starting with 0x80 is
      pickle. Only for stores weir.stream itself wrote: unpickling runs
      code, so never for data someone else could write.
    * ``"msgpack"`` (``weir.table`` over a ``weir.DB`` wrote plain
      msgpack): every value is msgpack.

    Every variant writes the same bytes.
    """

    name = "default"

    def __init__(self, *, legacy: str = "json") -> None:
        super().__init__()
        if legacy not in ("json", "pickle", "msgpack"):
            raise ValueError(f"legacy must be 'json', 'pickle' or 'msgpack', not {legacy!r}")
        self.legacy = legacy

    def encode(self, value: Any, key: object = None) -> bytes:
        out = super().encode(value, key)
        if len(out) == 1 and out[0] in _DIGITS:
            return b"\xcc" + out
        return out

    def decode(self, data: bytes) -> Any:
        if self.legacy == "msgpack":
            return super().decode(data)
        if not data:
            raise ValueError("DefaultValueCodec cannot decode an empty value")
        first = data[0]
        if first >= 0x80:
            if first == 0x80 and len(data) > 1 and self.legacy == "pickle":
                import pickle

                return pickle.loads(data)
            return super().decode(data)
        if len(data) == 1 and first not in _DIGITS:
            return super().decode(data)
        return _JSON.decode(data)

    def __repr__(self) -> str:
        return f"DefaultValueCodec(legacy={self.legacy!r})"


class PickleCodec:
    """pickle at the highest protocol. Only ever used when asked for by name:
    decoding runs whatever code the stored bytes name, so never read data
    someone else could have written."""

    name = "pickle"

    def __init__(self) -> None:
        import pickle

        self._pickle = pickle

    def encode(self, value: Any, key: object = None) -> bytes:
        pickle = self._pickle
        try:
            out: bytes = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (TypeError, pickle.PicklingError, AttributeError) as e:
            raise _cannot_encode("PickleCodec", value, key, str(e)) from e
        return out

    def decode(self, data: bytes) -> Any:
        return self._pickle.loads(data)

    def __repr__(self) -> str:
        return "PickleCodec()"


# ---- order-preserving keys -------------------------------------------------
#
# Every value starts with a type tag, so values of different types never
# interleave (None < bytes < str < int < tuple). Each encoding is
# self-delimiting, which is what lets a tuple be the plain concatenation of
# its elements' encodings followed by _END: a shorter tuple that is a
# prefix of a longer one then sorts first, because _END is below every tag.
#
#   bytes/str  tag, the bytes (UTF-8 for str) with 0x00 written as 0x00 0xFF,
#              then 0x00. The byte after a terminator is a tag or _END, never
#              0xFF, so the escape is unambiguous and order is kept.
#   int        tag, then a marker byte: 0x80 for zero; 0x80+L for a positive
#              number of L <= 8 bytes, followed by those bytes big-endian;
#              0x80-L for a negative one, followed by the complement of its
#              magnitude. Longer numbers use 0xFF (positive) or 0x00
#              (negative) and an 8-byte length (complemented when negative).

_END = 0x00
_T_NONE = 0x01
_T_BYTES = 0x02
_T_STR = 0x03
_T_INT = 0x04
_T_TUPLE = 0x05

_U64 = (1 << 64) - 1
_SUPPORTED = "supported: None, bytes, str, int and tuples of them"


class _Unsupported(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


def _put_escaped(out: bytearray, raw: bytes) -> None:
    out += raw.replace(b"\x00", b"\x00\xff")
    out.append(0)


def _put_int(out: bytearray, n: int) -> None:
    if n == 0:
        out.append(0x80)
        return
    if n > 0:
        size = (n.bit_length() + 7) // 8
        if size <= 8:
            out.append(0x80 + size)
        else:
            out.append(0xFF)
            out += size.to_bytes(8, "big")
        out += n.to_bytes(size, "big")
        return
    m = -n
    size = (m.bit_length() + 7) // 8
    if size <= 8:
        out.append(0x80 - size)
    else:
        out.append(0x00)
        out += (_U64 - size).to_bytes(8, "big")
    out += (((1 << (8 * size)) - 1) - m).to_bytes(size, "big")


def _put(out: bytearray, v: object) -> None:
    t = type(v)
    if t is str:
        out.append(_T_STR)
        _put_escaped(out, v.encode("utf-8", "surrogatepass"))  # type: ignore[attr-defined]
    elif t is int:
        out.append(_T_INT)
        _put_int(out, v)  # type: ignore[arg-type]
    elif t is tuple:
        out.append(_T_TUPLE)
        for item in v:  # type: ignore[attr-defined]
            _put(out, item)
        out.append(_END)
    elif t is bytes or t is bytearray or t is memoryview:
        out.append(_T_BYTES)
        _put_escaped(out, bytes(v))  # type: ignore[call-overload]
    elif v is None:
        out.append(_T_NONE)
    elif isinstance(v, bool):
        raise _Unsupported(v)  # True == 1, but it would come back as an int
    elif isinstance(v, int):
        out.append(_T_INT)
        _put_int(out, int(v))
    elif isinstance(v, str):
        out.append(_T_STR)
        _put_escaped(out, str(v).encode("utf-8", "surrogatepass"))
    elif isinstance(v, tuple):
        out.append(_T_TUPLE)
        for item in v:
            _put(out, item)
        out.append(_END)
    else:
        raise _Unsupported(v)


def _get_escaped(data: bytes, pos: int) -> tuple[bytes, int]:
    parts = []
    while True:
        i = data.find(b"\x00", pos)
        if i < 0:
            raise ValueError(f"KeyCodec: unterminated string or bytes at offset {pos}")
        if i + 1 < len(data) and data[i + 1] == 0xFF:
            parts.append(data[pos : i + 1])
            pos = i + 2
            continue
        parts.append(data[pos:i])
        return b"".join(parts), i + 1


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise ValueError(f"KeyCodec: truncated integer at offset {pos}")


def _get_int(data: bytes, pos: int) -> tuple[int, int]:
    _need(data, pos, 1)
    m = data[pos]
    pos += 1
    if m == 0x80:
        return 0, pos
    if 0x80 < m <= 0x88 or m == 0xFF:
        if m == 0xFF:
            _need(data, pos, 8)
            size = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        else:
            size = m - 0x80
        _need(data, pos, size)
        return int.from_bytes(data[pos : pos + size], "big"), pos + size
    if 0x78 <= m < 0x80 or m == 0x00:
        if m == 0x00:
            _need(data, pos, 8)
            size = _U64 - int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        else:
            size = 0x80 - m
        _need(data, pos, size)
        inv = int.from_bytes(data[pos : pos + size], "big")
        return -(((1 << (8 * size)) - 1) - inv), pos + size
    raise ValueError(f"KeyCodec: bad integer marker 0x{m:02x} at offset {pos - 1}")


def _get(data: bytes, pos: int) -> tuple[KeyValue, int]:
    if pos >= len(data):
        raise ValueError(f"KeyCodec: truncated key at offset {pos}")
    tag = data[pos]
    pos += 1
    if tag == _T_STR:
        raw, pos = _get_escaped(data, pos)
        return raw.decode("utf-8", "surrogatepass"), pos
    if tag == _T_INT:
        return _get_int(data, pos)
    if tag == _T_TUPLE:
        items: list[KeyValue] = []
        while True:
            if pos >= len(data):
                raise ValueError("KeyCodec: unterminated tuple")
            if data[pos] == _END:
                return tuple(items), pos + 1
            item, pos = _get(data, pos)
            items.append(item)
    if tag == _T_BYTES:
        return _get_escaped(data, pos)
    if tag == _T_NONE:
        return None, pos
    raise ValueError(f"KeyCodec: unknown type tag 0x{tag:02x} at offset {pos - 1}")


class KeyCodec:
    """Order-preserving keys: ``None``, ``bytes``, ``str``, ``int`` (any size)
    and tuples of these, nested freely.

    For two values of the same type (for tuples: whose first differing
    elements have the same type), ``encode(a) < encode(b)`` exactly when
    ``a < b``. Across types the order is None < bytes < str < int < tuple.
    ``bool`` and ``float`` are refused rather than silently changed.
    """

    name = "key"

    def encode(self, value: KeyValue, key: object = None) -> bytes:
        out = bytearray()
        try:
            _put(out, value)
        except _Unsupported as e:
            if e.value is value:
                detail = f"type {type(value).__name__} is not supported"
            else:
                detail = f"element {e.value!r} of type {type(e.value).__name__} is not supported"
            raise TypeError(
                f"KeyCodec cannot encode key {value!r}: {detail} ({_SUPPORTED})"
            ) from None
        return bytes(out)

    def decode(self, data: bytes) -> KeyValue:
        data = _as_bytes(data)
        try:
            value, pos = _get(data, 0)
        except RecursionError:
            raise ValueError("KeyCodec: tuples nested too deeply") from None
        if pos != len(data):
            raise ValueError(f"KeyCodec: {len(data) - pos} trailing bytes after the key")
        return value

    def prefix(self, value: str | bytes | tuple[KeyValue, ...]) -> bytes:
        """Bytes that every encoded key extending ``value`` starts with: for a
        str or bytes, the keys starting with it; for a tuple, the tuples that
        start with its elements. Pass it as ``prefix=`` to a scan."""
        full = self.encode(value)
        # Drop the string terminator or the tuple's end marker.
        return full[:-1]

    def __repr__(self) -> str:
        return "KeyCodec()"


# ---- lookup ----------------------------------------------------------------

_FACTORIES: dict[str, type] = {
    "bytes": BytesCodec,
    "raw": BytesCodec,
    "str": StrCodec,
    "string": StrCodec,
    "utf-8": StrCodec,
    "utf8": StrCodec,
    "json": JsonCodec,
    "msgpack": MsgpackCodec,
    "pickle": PickleCodec,
    "default": DefaultValueCodec,
    "key": KeyCodec,
    "tuple": KeyCodec,
}
_INSTANCES: dict[type, Any] = {}


def codec_names() -> list[str]:
    """Every name :func:`get_codec` accepts."""
    return sorted(_FACTORIES)


def get_codec(name_or_codec: str | Codec[Any] | None = None) -> Codec[Any]:
    """The codec called ``name_or_codec`` ("bytes", "str", "json", "msgpack",
    "pickle", "key", "default", ...), or the object itself if it already has
    ``encode`` and ``decode``. ``None`` gives :data:`DEFAULT_VALUE_CODEC`."""
    if name_or_codec is None:
        return DEFAULT_VALUE_CODEC
    if isinstance(name_or_codec, str):
        cls = _FACTORIES.get(name_or_codec.lower())
        if cls is None:
            raise ValueError(
                f"unknown codec {name_or_codec!r}; choose one of {', '.join(codec_names())}"
            )
        inst = _INSTANCES.get(cls)
        if inst is None:
            inst = _INSTANCES[cls] = cls()
        return inst  # type: ignore[no-any-return]
    if callable(getattr(name_or_codec, "encode", None)) and callable(
        getattr(name_or_codec, "decode", None)
    ):
        return name_or_codec
    raise TypeError(
        "codec must be a name or an object with encode() and decode(), "
        f"not {type(name_or_codec).__name__}"
    )


#: The one default value codec of weir's Python layers (see :class:`DefaultValueCodec`).
DEFAULT_VALUE_CODEC: Codec[Any] = get_codec("default")
