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
- :class:`MsgpackCodec` -- msgpack.
- :class:`PickleCodec` -- pickle; never chosen implicitly, since unpickling
  data you did not write runs arbitrary code.
- :class:`KeyCodec` -- an order-preserving encoding of ``None``, ``bytes``,
  ``str``, ``int`` and tuples of them: within one type, comparing encodings
  bytewise gives the same order as comparing the values, so range and
  prefix scans work on typed keys.

:func:`get_codec` looks a codec up by name or passes a codec object through.

The libraries behind them (:func:`codec_libraries` names the ones in use):
msgspec (a dependency) writes and reads msgpack and reads JSON; orjson (a
dependency) writes JSON. Each is used only where it gives exactly what the
standard library gave (the ``json`` module; for msgpack the ``msgpack``
package, whose bytes msgspec reproduces): anything it refuses or cannot
match is handed to the standard path, and the few ways a value it accepts
comes out differently are listed in each codec's docstring. Without
msgspec, msgpack goes through the ``msgpack`` package if installed and JSON
through the ``json`` module; without orjson, JSON is written by ``json``.

``decode`` of bytes a codec cannot read raises ``ValueError`` (which covers
``UnicodeDecodeError``, ``json.JSONDecodeError`` and ``msgspec.DecodeError``),
whatever the bytes are; tests/fuzz/python/fuzz_codecs.py holds every codec
but pickle to that. Values nested too deeply for Python's recursion limit
raise ``ValueError`` too, at encode and at decode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

try:
    import msgspec
except ImportError:  # the fallbacks below; tests/python/test_codecs_libraries.py runs them
    msgspec = None  # type: ignore[assignment]
try:
    import orjson
except ImportError:
    orjson = None  # type: ignore[assignment]
try:
    import ormsgpack
except ImportError:
    ormsgpack = None  # type: ignore[assignment]

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
    "codec_libraries",
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


def _what(key: object) -> str:
    return "the value" if key is None else f"the value for key {key!r}"


def _cannot_encode(codec: str, value: object, key: object, detail: str) -> TypeError:
    return TypeError(f"{codec} cannot encode {_what(key)} (type {type(value).__name__}): {detail}")


def _encode_failure(codec: str, value: object, key: object, error: Exception) -> Exception:
    """The exception a value codec raises when its library refused ``value``:
    TypeError for a type it cannot store, ValueError for a value it cannot
    (an int out of range, a circular or too deeply nested container, a str
    with lone surrogates)."""
    if isinstance(error, TypeError):
        return _cannot_encode(codec, value, key, str(error))
    if isinstance(error, RecursionError):
        return ValueError(f"{codec} cannot encode {_what(key)}: it is nested too deeply")
    return ValueError(f"{codec} cannot encode {_what(key)}: {error}")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


def _version(package: str) -> str:
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:  # imported from a source tree
        return package


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


# ---- JSON ------------------------------------------------------------------
#
# The reference is the json module, compact and UTF-8: what it writes and
# reads is what JsonCodec has always written and read. orjson writes the
# same JSON about 10x faster, except that it writes NaN and the infinities
# as null (json writes NaN, Infinity, -Infinity) and refuses what it cannot
# match: non-str dict keys (json writes 1 as "1", True as "true", 1e16 as
# "1e+16"), ints outside 64 bits, nesting past 254 levels, lone
# surrogates, and, with the passthrough options below, subclasses of
# str/int/float/dict/list, dataclasses and datetimes. A refusal goes to
# json; so does a value orjson wrote with a null that is not a None.
#
# msgspec reads JSON like json.loads, exactly, for everything it accepts
# (big integers included, which orjson reads as floats); it refuses NaN and
# Infinity, numbers beyond float range (json gives inf), a UTF-8 BOM,
# UTF-16/32 text, lone surrogates and nesting past the recursion limit,
# and those go to json.loads.

_STDLIB_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json_encode_stdlib(value: Any) -> bytes:
    return _STDLIB_JSON_ENCODER.encode(value).encode("utf-8")


def _has_non_finite_float(value: Any) -> bool:
    """Whether a float NaN or infinity is somewhere in ``value`` (which
    orjson accepted: only exact str, int, float, bool, None, dict, list and
    tuple, nested at most 254 deep)."""
    t = type(value)
    if t is float:
        return not math.isfinite(value)
    if t is dict:
        return any(_has_non_finite_float(v) for v in value.values())
    if t is list or t is tuple:
        return any(_has_non_finite_float(v) for v in value)
    return False


if orjson is not None:
    _orjson_dumps = orjson.dumps
    _ORJSON_OPTIONS = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )

    def _json_encode(value: Any) -> bytes:
        try:
            out = _orjson_dumps(value, None, _ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: json decides, and words any error
            return _json_encode_stdlib(value)
        if b"null" in out and _has_non_finite_float(value):
            return _json_encode_stdlib(value)
        return out

else:
    _json_encode = _json_encode_stdlib


def _json_decode_stdlib(data: bytes | bytearray | memoryview) -> Any:
    try:
        return json.loads(_as_bytes(data))
    except RecursionError:
        # Arrays or objects nested thousands deep: still bad input.
        raise ValueError("JsonCodec cannot decode: the value is nested too deeply") from None


_json_decode_fast: Callable[[Any], Any] = (
    _json_decode_stdlib if msgspec is None else msgspec.json.Decoder().decode
)


class JsonCodec:
    """Compact JSON in UTF-8 (``{"name":"Alice","balance":1000}``).

    JSON has no tuples and only string object keys: tuples come back as
    lists and ``{1: "a"}`` as ``{"1": "a"}``. NaN and the infinities are
    written as ``NaN``, ``Infinity`` and ``-Infinity`` (as Python's json
    module writes them, and reads them back); integers of any size
    round-trip.

    Written by orjson and read by msgspec, with json as the reference (see
    the module docstring): a value round-trips exactly as it did through
    ``json``. The bytes can differ from json's in how a float is spelled
    (``1e16`` where json wrote ``1e+16``) and the value they decode to does
    not. Two kinds of value json refused are now written: an ``enum.Enum``
    member as its value (``Color.RED`` with value 1 as ``1``; ``IntEnum`` and
    ``str`` enums were always written so) and a ``uuid.UUID`` as its string;
    they come back as that value. Values nested too deeply for Python's
    recursion limit raise ValueError at encode (json raised RecursionError);
    msgspec reads a few more levels than json could.
    """

    name = "json"

    def encode(self, value: Any, key: object = None) -> bytes:
        try:
            return _json_encode(value)
        except (TypeError, ValueError, RecursionError) as e:
            # TypeError: a type JSON cannot hold; ValueError: circular
            # references, lone surrogates, ints json will not print.
            raise _encode_failure("JsonCodec", value, key, e) from e

    def decode(self, data: bytes) -> Any:
        try:
            return _json_decode_fast(data)
        except (ValueError, RecursionError):
            pass
        # Not JSON to msgspec: json.loads decides, and words the error.
        return _json_decode_stdlib(data)

    def __repr__(self) -> str:
        return "JsonCodec()"


_JSON = JsonCodec()


# ---- msgpack ----------------------------------------------------------------
#
# The reference is the msgpack package (packb(use_bin_type=True),
# unpackb(raw=False, strict_map_key=False)), which wrote every msgpack value
# weir stored before; tests/python/test_codecs_libraries.py compares bytes.
#
# Writing: ormsgpack, with the options below, writes msgpack's bytes for
# every value of the types msgpack took (exact str, int, float, bool, None,
# bytes-likes, dicts with keys of any of those types, lists, tuples, and
# subclasses of str, int, dict and list) and refuses the rest: enums,
# dataclasses, datetimes and UUIDs (which it would otherwise write), sets
# and other objects, subclasses of float and tuple, ints outside 64 bits,
# lone surrogates, nesting past 254 levels. A refusal takes the exact
# path: the value's types are checked as msgpack checked them (TypeError
# for what it refused) and msgspec, which writes msgpack's bytes for all of
# them but writes more types than msgpack did (sets, datetimes...), encodes
# it. msgspec alone is faster still, but nothing can make it refuse a set,
# and checking types in Python first costs more than it saves.
#
# Reading: msgspec reads everything msgpack did, to equal values, and reads
# arrays used as map keys as tuples (which MsgpackCodec did by reading such
# a value twice); only extension types come back as different objects.

_ORMSGPACK_OPTIONS = (
    0
    if ormsgpack is None
    else (
        ormsgpack.OPT_NON_STR_KEYS
        | ormsgpack.OPT_PASSTHROUGH_BIG_INT
        | ormsgpack.OPT_PASSTHROUGH_DATACLASS
        | ormsgpack.OPT_PASSTHROUGH_DATETIME
        | ormsgpack.OPT_PASSTHROUGH_ENUM
        | ormsgpack.OPT_PASSTHROUGH_UUID
    )
)
#: msgpack refused nesting deeper than this (and read back one level less).
_MSGPACK_MAX_DEPTH = 1024
_MSGPACK_SCALARS = (str, int, float, bytes, bytearray, memoryview)


def _check_msgpack_types(value: Any) -> None:
    """Raise TypeError, as the msgpack package did, if ``value`` holds a
    type it could not write; ValueError past its nesting limit (circular
    references included). msgspec.msgpack.Ext, which msgspec writes as the
    extension it is, is allowed; the msgpack package's own ExtType and
    Timestamp are not (msgspec would not write them as extensions)."""
    stack = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        obj, depth = pop()
        if obj is None or isinstance(obj, _MSGPACK_SCALARS):
            continue
        if depth >= _MSGPACK_MAX_DEPTH:
            raise ValueError("recursion limit exceeded")
        if isinstance(obj, dict):
            for k, v in obj.items():
                push((k, depth + 1))
                push((v, depth + 1))
        elif isinstance(obj, (list, tuple)):
            if type(obj).__module__ == "msgpack.ext":
                raise TypeError(
                    f"can not serialize {type(obj).__name__!r} object of the msgpack "
                    "package: use msgspec.msgpack.Ext"
                )
            for v in obj:
                push((v, depth + 1))
        elif msgspec is None or type(obj) is not msgspec.msgpack.Ext:
            raise TypeError(f"can not serialize {type(obj).__name__!r} object")


def _plain_value(obj: Any) -> Any:
    """msgspec's enc_hook: a subclass of str, int, float or bytes is written
    as its base type's value (what msgpack did, ignoring any __str__ or
    __int__ of the subclass); anything else is refused."""
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):
        return int.__int__(obj)
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, bytes):
        return bytes.__bytes__(obj)
    raise TypeError(f"can not serialize {type(obj).__name__!r} object")


def _lists_outside_keys(value: Any) -> Any:
    """Arrays read as tuples become lists again, except map keys."""
    if type(value) is tuple:
        return [_lists_outside_keys(v) for v in value]
    return value


def _dict_with_list_values(pairs: Any) -> dict[Any, Any]:
    return {k: _lists_outside_keys(v) for k, v in pairs}


def _msgpack_package() -> tuple[Callable[[Any], bytes], Callable[[Any], Any]] | None:
    """Encode and decode through the msgpack package, the fallback without
    ormsgpack or msgspec (what MsgpackCodec used before them); None if it
    is missing too."""
    try:
        import msgpack
    except ImportError:
        return None
    packb, unpackb = msgpack.packb, msgpack.unpackb

    def encode(value: Any) -> bytes:
        out: bytes = packb(value, use_bin_type=True)
        return out

    def decode(data: Any) -> Any:
        try:
            return unpackb(data, raw=False, strict_map_key=False)
        except TypeError as e:
            # A map key that is an array (a tuple key when encoded) cannot
            # be a list: read it again with arrays in key position as
            # tuples. A map key that is a map cannot be read at all.
            try:
                return _lists_outside_keys(
                    unpackb(
                        data,
                        raw=False,
                        strict_map_key=False,
                        use_list=False,
                        object_pairs_hook=_dict_with_list_values,
                    )
                )
            except (TypeError, ValueError):
                pass
            raise ValueError(str(e)) from e

    return encode, decode


def _fast_msgpack() -> tuple[Callable[[Any], bytes], Callable[[Any], Any]] | None:
    """Encode through ormsgpack (msgspec where it refuses), decode through
    msgspec; None if either is missing."""
    if ormsgpack is None or msgspec is None:
        return None
    packb, options = ormsgpack.packb, _ORMSGPACK_OPTIONS
    exact_encode = msgspec.msgpack.Encoder(enc_hook=_plain_value).encode

    def encode(value: Any) -> bytes:
        try:
            return packb(value, None, options)
        except TypeError:  # ormsgpack.MsgpackEncodeError: take the exact path
            pass
        _check_msgpack_types(value)
        return exact_encode(value)

    return encode, msgspec.msgpack.Decoder().decode


_msgpack_functions = _fast_msgpack()
if _msgpack_functions is not None:
    _MSGPACK_LIBRARY = f"{_version('ormsgpack')} writes, {_version('msgspec')} reads"
else:
    _msgpack_functions = _msgpack_package()
    _MSGPACK_LIBRARY = "missing" if _msgpack_functions is None else _version("msgpack")


def _msgpack_decode_failure(error: Exception) -> ValueError:
    if isinstance(error, RecursionError):
        return ValueError("MsgpackCodec cannot decode: the value is nested too deeply")
    return ValueError(f"MsgpackCodec cannot decode: {error}")


def codec_libraries() -> dict[str, str]:
    """The library behind each format, with its version: ``{"json encode":
    "orjson 3.10.7", "json decode": "msgspec 0.19.0", "msgpack": "msgspec
    0.19.0"}`` with the dependencies installed; ``"json (standard
    library)"``, ``"msgpack 1.1.0"`` or ``"missing"`` (no msgpack codec can
    be made) without them."""
    stdlib = "json (standard library)"
    return {
        "json encode": stdlib if orjson is None else _version("orjson"),
        "json decode": stdlib if msgspec is None else _version("msgspec"),
        "msgpack": _MSGPACK_LIBRARY,
    }


class MsgpackCodec:
    """msgpack, byte for byte as the ``msgpack`` package writes it
    (``packb(value, use_bin_type=True)``), read as it reads it.

    ``bytes`` and ``str`` stay distinct; tuples come back as lists (a tuple
    used as a dict key stays a tuple); dict keys keep their type.
    Integers must fit in ``[-2**63, 2**64)`` (ValueError otherwise).

    Written by ormsgpack and read by msgspec (see the module docstring).
    Where that differs from the ``msgpack`` package: extension types read
    back as ``msgspec.msgpack.Ext`` (``msgpack.ExtType`` before) and the
    timestamp extension as a UTC ``datetime`` (``msgpack.Timestamp``
    before); a ``msgspec.msgpack.Ext`` can be written, and the ``msgpack``
    package's own ``ExtType`` and ``Timestamp`` are refused (TypeError).
    Values nested deeper than Python's recursion limit allows (about 990
    levels) raise ValueError; msgpack wrote 1,024 levels and read back
    1,023.
    """

    name = "msgpack"

    def __init__(self) -> None:
        if _msgpack_functions is None:
            raise ModuleNotFoundError(
                "weir's msgpack codecs need msgspec, a dependency of weirdb that is not "
                "installed: pip install msgspec (or, slower, pip install msgpack)",
                name="msgspec",
            )
        self._encode, self._decode = _msgpack_functions

    def encode(self, value: Any, key: object = None) -> bytes:
        try:
            return self._encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise _encode_failure("MsgpackCodec", value, key, e) from e

    def decode(self, data: bytes) -> Any:
        try:
            return self._decode(data)
        except (ValueError, RecursionError) as e:
            raise _msgpack_decode_failure(e) from e

    def __repr__(self) -> str:
        return "MsgpackCodec()"


_DIGITS = frozenset(b"0123456789")
_ONE_DIGIT = frozenset(bytes((d,)) for d in _DIGITS)


class DefaultValueCodec(MsgpackCodec):
    """The default value codec: msgpack, readable by any msgpack library.

    What comes back differs from what went in as msgpack defines it:
    tuples come back as lists (a tuple used as a dict key stays a tuple),
    ``bytearray`` and ``memoryview`` as ``bytes``; dict keys keep their
    type (``{1: "a"}`` stays ``{1: "a"}``, unlike JSON); NaN and the
    infinities round-trip; integers outside ``[-2**63, 2**64)`` raise
    ValueError at encode (JSON took them); ``bytes`` are stored as msgpack
    binary and come back as ``bytes`` (JSON refused them); ``set``,
    ``datetime``, ``enum.Enum`` members and other objects raise TypeError
    (as JSON did).

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
        self._only_msgpack = legacy == "msgpack"
        self._pickle = legacy == "pickle"

    def encode(self, value: Any, key: object = None) -> bytes:
        try:
            out = self._encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise _encode_failure("MsgpackCodec", value, key, e) from e
        if len(out) == 1 and out in _ONE_DIGIT:
            return b"\xcc" + out
        return out

    def decode(self, data: bytes) -> Any:
        if self._only_msgpack or (data and data[0] >= 0x80):
            if self._pickle and data[0] == 0x80 and len(data) > 1:
                import pickle

                return pickle.loads(data)
            try:
                return self._decode(data)
            except (ValueError, RecursionError) as e:
                raise _msgpack_decode_failure(e) from e
        if not data:
            raise ValueError("DefaultValueCodec cannot decode an empty value")
        if len(data) == 1 and data[0] not in _DIGITS:
            return MsgpackCodec.decode(self, data)
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
        name_or_codec = "default"
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


if _msgpack_functions is not None:
    #: The one default value codec of weir's Python layers (see :class:`DefaultValueCodec`).
    DEFAULT_VALUE_CODEC: Codec[Any] = get_codec("default")


def __getattr__(name: str) -> Any:
    # Only reached without msgspec and msgpack: importing weir still works
    # (the engine, JSON and the other codecs need neither), and using the
    # default codec raises MsgpackCodec's ModuleNotFoundError, which says
    # what to install.
    if name == "DEFAULT_VALUE_CODEC":
        return get_codec("default")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
