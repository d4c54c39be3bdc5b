"""Pieces every backend shares: key and value encoding, argument checks, the
expiry header, key ranges, the gate that lets stop/restore wait for work in
worker threads, and the file format of memory and Redis backups.

Nothing here knows a particular engine.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import reprlib
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

from .. import ClosedError, CorruptionError, Error, InvalidArgumentError, NoSpaceError
from ..codecs import Codec, get_codec
from ..durable import publish_file

T = TypeVar("T")

#: The largest encoded key any backend accepts (the weir engine's limit,
#: applied to every backend so they all behave alike).
MAX_KEY_SIZE = 1 << 20

#: Batches with more items than this are encoded and written in a worker
#: thread; smaller ones inline, where the thread hop would cost more.
INLINE_BATCH_ITEMS = 512
#: A single value larger than this is written in a worker thread.
INLINE_VALUE_BYTES = 1 << 20
#: Pairs fetched per worker-thread call by a streaming ``async for`` scan.
SCAN_CHUNK = 1024

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def short_repr(obj: object) -> str:
    """``repr`` cut to a readable length for error messages (keys may be 1 MiB)."""
    return _short.repr(obj)


def make_error(cls: type[Error], message: str, status: str | None = None) -> Error:
    """An instance of a weir exception class with ``.status`` set as the engine would."""
    exc = cls(message)
    default = {
        "ClosedError": "WEIR_CLOSED",
        "CorruptionError": "WEIR_CORRUPTION",
        "BusyError": "WEIR_BUSY",
        "InvalidArgumentError": "WEIR_INVALID",
        "StorageIOError": "WEIR_IO_ERROR",
        "NoSpaceError": "WEIR_NO_SPACE",
    }.get(cls.__name__)
    exc.status = status or default
    return exc


def closed_error(what: str) -> Error:
    """The error every operation on a stopped backend raises."""
    return make_error(ClosedError, f"{what} is stopped; call start() first")


# ---- keys ------------------------------------------------------------------------


class TextOrBytesKeys:
    """The default key codec: ``str`` as UTF-8, bytes-like as is.

    Decoding gives ``str`` when the bytes are valid UTF-8, else ``bytes``, so
    the keys the seed's code uses ("user:1") round-trip, and binary keys
    still work. (A bytes key that happens to be valid UTF-8 comes back as a
    ``str``; choose ``key_codec="bytes"`` to always get bytes.)
    """

    name = "str|bytes"

    def encode(self, value: Any, key: object = None) -> bytes:
        t = type(value)
        if t is str:
            try:
                return value.encode("utf-8")  # type: ignore[no-any-return]
            except UnicodeEncodeError as e:
                raise make_error(
                    InvalidArgumentError, f"key {short_repr(value)} is not valid Unicode: {e}"
                ) from None
        if t is bytes:
            return value  # type: ignore[no-any-return]
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return self.encode(str(value))
        raise TypeError(
            f"key must be str or bytes, not {type(value).__name__} ({short_repr(value)}); "
            "for int or tuple keys use options={'key_codec': 'key'}"
        )

    def decode(self, data: bytes) -> str | bytes:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data

    def prefix(self, value: Any) -> bytes:
        return self.encode(value)


_TEXT_OR_BYTES = TextOrBytesKeys()


def _encode_text_or_bytes_key(key: Any) -> bytes:
    """:meth:`KeyEncoding.encode` for the default key codec in one call:
    the hot paths of every store encode a ``str`` key through it."""
    if type(key) is str:
        try:
            data = key.encode()
        except UnicodeEncodeError:
            data = _TEXT_OR_BYTES.encode(key)  # raises, naming the key
    elif type(key) is bytes:
        data = key
    else:
        data = _TEXT_OR_BYTES.encode(key)
    if len(data) > MAX_KEY_SIZE:
        raise make_error(
            InvalidArgumentError,
            f"key of {len(data)} bytes exceeds the limit of {MAX_KEY_SIZE} bytes",
        )
    return data


def key_list(keys: Iterable[Any]) -> list[Any]:
    """The keys of an iterable as a list; TypeError for a str or bytes,
    which would otherwise be taken one character at a time."""
    if isinstance(keys, (str, bytes, bytearray, memoryview)) or not isinstance(keys, Iterable):
        raise TypeError(f"keys must be a list or other iterable of keys, not {type(keys).__name__}")
    return list(keys)


class KeyEncoding:
    """A key codec plus the checks and range arithmetic the stores need.

    ``encode`` is an attribute, not a method: with the default codec it is
    a function that does the whole job in one call.
    """

    __slots__ = ("codec", "decode", "encode", "name", "text_or_bytes")

    def __init__(self, spec: str | Codec[Any] | None) -> None:
        self.codec: Any = _TEXT_OR_BYTES if spec is None else get_codec(spec)
        self.decode: Callable[[bytes], Any] = self.codec.decode
        self.name: str = getattr(self.codec, "name", type(self.codec).__name__)
        #: True with the default codec: ``str`` keys as UTF-8, bytes-like as is.
        self.text_or_bytes: bool = self.codec is _TEXT_OR_BYTES
        #: The bytes of a key; TypeError for a key of the wrong type,
        #: InvalidArgumentError for one over 1 MiB.
        self.encode: Callable[[Any], bytes] = (
            _encode_text_or_bytes_key if self.text_or_bytes else self._encode_with_codec
        )

    def _encode_with_codec(self, key: Any) -> bytes:
        try:
            data: bytes = self.codec.encode(key)
        except TypeError:
            raise
        except Error:
            raise
        except (ValueError, UnicodeError) as e:
            raise make_error(InvalidArgumentError, f"bad key {short_repr(key)}: {e}") from None
        if len(data) > MAX_KEY_SIZE:
            raise make_error(
                InvalidArgumentError,
                f"key of {len(data)} bytes exceeds the limit of {MAX_KEY_SIZE} bytes",
            )
        return data

    def encode_many(self, keys: Iterable[Any]) -> list[bytes]:
        """Encode every key of an iterable (not a str or bytes, which would
        otherwise be taken one character at a time)."""
        return self.encode_list(keys if type(keys) is list else key_list(keys))

    def encode_list(self, keys: list[Any]) -> list[bytes]:
        """:meth:`encode_many` of a list; ``str`` keys of the default codec
        are encoded without a Python call each."""
        enc = self.encode
        if not self.text_or_bytes:
            return [enc(k) for k in keys]
        try:
            eks = [k.encode() if type(k) is str else enc(k) for k in keys]
        except UnicodeEncodeError:
            return [enc(k) for k in keys]  # raises, naming the key
        if eks and max(map(len, eks)) > MAX_KEY_SIZE:
            return [enc(k) for k in keys]  # raises, naming the size
        return eks

    def encode_prefix(self, prefix: Any) -> bytes:
        """The byte prefix shared by the keys that start with ``prefix``."""
        fn = getattr(self.codec, "prefix", None)
        try:
            data: bytes = fn(prefix) if fn is not None else self.codec.encode(prefix)
        except TypeError as e:
            raise TypeError(f"bad prefix {short_repr(prefix)}: {e}") from None
        return data

    def bounds(
        self, start_key: Any, end_key: Any, prefix: Any
    ) -> tuple[bytes | None, bytes | None, bool]:
        """Encoded ``[lower, upper)`` for a scan and whether it is empty."""
        lower = None if start_key is None else self.encode(start_key)
        upper = None if end_key is None else self.encode(end_key)
        if prefix is not None and not (isinstance(prefix, (str, bytes)) and len(prefix) == 0):
            p = self.encode_prefix(prefix)
            if lower is None or lower < p:
                lower = p
            succ = prefix_successor(p)
            if succ is not None and (upper is None or succ < upper):
                upper = succ
        empty = upper is not None and (upper == b"" or (lower is not None and lower >= upper))
        return lower, upper, empty


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with
    ``prefix``; None when there is none (the prefix is all 0xff)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes((p[-1] + 1,))


def range_bounds(
    keys: KeyEncoding, start_key: Any, end_key: Any
) -> tuple[bytes | None, bytes | None]:
    """Encoded ``[lower, upper)`` of a ``delete_range`` (None: unbounded);
    InvalidArgumentError, naming both keys, when ``start_key > end_key``."""
    lower = None if start_key is None else keys.encode(start_key)
    upper = None if end_key is None else keys.encode(end_key)
    if lower is not None and upper is not None and lower > upper:
        raise make_error(
            InvalidArgumentError,
            f"delete_range: start_key {short_repr(start_key)} is after end_key "
            f"{short_repr(end_key)} (in the byte order of the encoded keys)",
        )
    return lower, upper


def prefix_bounds(keys: KeyEncoding, prefix: Any) -> tuple[bytes, bytes | None]:
    """Encoded ``[lower, upper)`` holding exactly the keys under ``prefix``
    (upper None when the prefix is all 0xff bytes, or empty)."""
    if prefix is None:
        raise TypeError("delete_prefix needs a prefix (use clear() to remove every key)")
    check_prefix(prefix)
    lower = keys.encode_prefix(prefix)
    return lower, prefix_successor(lower)


def _check_encoded_key(key: Any, what: str) -> bytes:
    if type(key) is not bytes:
        raise TypeError(f"{what} must be bytes (an encoded key), not {type(key).__name__}")
    if len(key) > MAX_KEY_SIZE:
        raise make_error(
            InvalidArgumentError,
            f"key of {len(key)} bytes exceeds the limit of {MAX_KEY_SIZE} bytes",
        )
    return key


def check_encoded_writes(
    puts: list[tuple[bytes, bytes]], deletes: list[bytes]
) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """Check the encoded writes of an ``apply``: bytes keys of at most
    1 MiB, bytes payloads. Raises before anything is written."""
    for pair in puts:
        if type(pair) is not tuple or len(pair) != 2:
            raise TypeError(f"puts must be (key, value) pairs of bytes, got {short_repr(pair)}")
        _check_encoded_key(pair[0], "a key")
        if type(pair[1]) is not bytes:
            raise TypeError(
                f"the value for key {short_repr(pair[0])} must be bytes (a value codec "
                f"payload), not {type(pair[1]).__name__}"
            )
    for key in deletes:
        _check_encoded_key(key, "a key to delete")
    return puts, deletes


def check_encoded_range(bounds: Any) -> tuple[bytes | None, bytes | None]:
    """Check a ``(lower, upper)`` of encoded keys (None: unbounded)."""
    if not isinstance(bounds, tuple) or len(bounds) != 2:
        raise TypeError(f"a range must be a (lower, upper) tuple, not {short_repr(bounds)}")
    lower, upper = bounds
    if lower is not None:
        _check_encoded_key(lower, "a range's lower bound")
    if upper is not None:
        _check_encoded_key(upper, "a range's upper bound")
    if lower is not None and upper is not None and lower > upper:
        raise make_error(
            InvalidArgumentError,
            f"range lower bound {short_repr(lower)} is above its upper bound {short_repr(upper)}",
        )
    return lower, upper


def check_limit(limit: Any) -> int | None:
    """Validate a scan ``limit``: None (no limit) or an int >= 0."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}")
    if limit < 0:
        raise make_error(InvalidArgumentError, f"limit must be >= 0, not {limit}")
    return limit


def check_prefix(prefix: Any) -> None:
    """Prefixes are keys or key fragments: anything but these is a type error."""
    if prefix is not None and isinstance(prefix, (float, bool, list, dict, set)):
        raise TypeError(f"prefix must be a str, bytes or key, not {type(prefix).__name__}")


def iter_pairs(items: Any) -> Iterator[tuple[Any, Any]]:
    """The pairs of a mapping, or of an iterable of 2-tuples."""
    if type(items) is dict or isinstance(items, Mapping):
        return iter(items.items())
    if isinstance(items, (str, bytes, bytearray, memoryview)) or not isinstance(items, Iterable):
        raise TypeError(f"items must be a dict of key -> value, not {type(items).__name__}")
    return _checked_pairs(items)


def _checked_pairs(items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    for pair in items:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"items must be a dict or (key, value) pairs, got {short_repr(pair)}")
        yield pair


# ---- values ----------------------------------------------------------------------

_EXPIRY = struct.Struct(">Q")
EXPIRY_HEADER = _EXPIRY.size


def now_ms() -> int:
    """Wall-clock milliseconds: expiry headers must survive a restart."""
    return time.time_ns() // 1_000_000


class ValueEncoding:
    """A value codec plus, when the store has a TTL, the expiry header.

    With ``ttl_seconds`` set, every stored value starts with 8 bytes: the
    big-endian wall-clock millisecond at which it expires. A store's TTL
    setting is therefore part of its on-disk format: reopen it with
    ``ttl_seconds`` set (to any value) exactly when it was created with it.
    """

    __slots__ = ("codec", "codec_decode", "codec_encode", "name", "plain", "ttl_ms")

    def __init__(self, spec: str | Codec[Any] | None, ttl_seconds: float | None) -> None:
        self.codec: Any = get_codec(spec)  # None: the default codec
        self.name: str = getattr(self.codec, "name", type(self.codec).__name__)
        self.ttl_ms: int | None = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        #: True when stored values are the codec's bytes (no expiry header):
        #: then the hot paths call ``codec_encode``/``codec_decode`` directly
        #: and turn a failure into the store's error with
        #: :meth:`encode_error` / :meth:`decode_error`.
        self.plain: bool = self.ttl_ms is None
        self.codec_encode: Callable[[Any, Any], bytes] = self.codec.encode
        self.codec_decode: Callable[[bytes], Any] = self.codec.decode

    def encode_error(self, key: Any, value: Any, exc: Exception) -> Exception:
        """The store's error for the codec's TypeError or ValueError ``exc``
        on the value of ``key``: a TypeError naming the key and type, an
        InvalidArgumentError for a value the codec refuses."""
        if isinstance(exc, TypeError):
            msg = str(exc)
            if "key" not in msg:
                msg = (
                    f"cannot encode the value for key {short_repr(key)} "
                    f"(type {type(value).__name__}) with the {self.name} codec: {msg}"
                )
            return TypeError(msg)
        return make_error(
            InvalidArgumentError,
            f"cannot encode the value for key {short_repr(key)} with the {self.name} codec: {exc}",
        )

    def encode_plain(self, key: Any, value: Any) -> bytes:
        """The codec's bytes for ``value``; TypeError names the key and type."""
        try:
            data: bytes = self.codec_encode(value, key)
        except (TypeError, ValueError) as e:
            raise self.encode_error(key, value, e) from None
        return data

    def encode(self, key: Any, value: Any) -> bytes:
        """Bytes to store: the codec's output behind the expiry header if any."""
        data = self.encode_plain(key, value)
        if self.ttl_ms is None:
            return data
        return _EXPIRY.pack(now_ms() + self.ttl_ms) + data

    def live_payload(self, raw: bytes, now: int | None = None) -> bytes | None:
        """The codec bytes of a stored value, or None if it has expired."""
        if self.ttl_ms is None:
            return raw
        if len(raw) < EXPIRY_HEADER:
            raise make_error(
                CorruptionError,
                f"stored value of {len(raw)} bytes is shorter than the expiry header; "
                "was this store created without ttl_seconds?",
            )
        (expires,) = _EXPIRY.unpack_from(raw)
        if expires <= (now_ms() if now is None else now):
            return None
        return raw[EXPIRY_HEADER:]

    def decode_error(self, key: Any, exc: Exception) -> Error:
        """The CorruptionError for a payload of ``key`` the codec cannot read
        (``exc`` is what the codec raised)."""
        return make_error(
            CorruptionError,
            f"the value for key {short_repr(key)} cannot be decoded with the {self.name} "
            f"codec ({type(exc).__name__}: {exc}); was the store written with another value_codec?",
        )

    def decode_payload(self, key: Any, payload: bytes) -> Any:
        try:
            return self.codec_decode(payload)
        except Exception as e:
            raise self.decode_error(key, e) from e

    def decode(self, key: Any, raw: bytes) -> Any:
        """The value of stored bytes (caller has checked it is live)."""
        payload = self.live_payload(raw)
        return None if payload is None else self.decode_payload(key, payload)


# ---- the gate -----------------------------------------------------------------------


class Gate:
    """Lets ``stop`` and ``restore`` wait for the work running in worker
    threads, and hold new work back while they swap the engine handle.

    Work in a worker thread counts itself in with :meth:`enter` and out with
    :meth:`leave`. :meth:`close` raises a barrier and waits until that count
    is zero; point operations, which run inline on the event loop, only
    check the barrier, so they cost one attribute test. Everything here runs
    on the event loop thread.
    """

    __slots__ = ("_active", "_idle", "barrier")

    def __init__(self) -> None:
        self._active = 0
        self._idle: asyncio.Event | None = None
        self.barrier: asyncio.Future[None] | None = None

    async def wait_open(self) -> None:
        while self.barrier is not None:
            await asyncio.shield(self.barrier)

    async def enter(self) -> None:
        if self.barrier is not None:
            await self.wait_open()
        self._active += 1

    def enter_open(self) -> None:
        """Count in work when the caller has just seen ``barrier is None``."""
        self._active += 1

    def leave(self) -> None:
        self._active -= 1
        if self._active == 0 and self._idle is not None:
            self._idle.set()

    async def close(self) -> None:
        """Raise the barrier (waiting for a previous holder) and drain."""
        await self.wait_open()
        self.barrier = asyncio.get_running_loop().create_future()
        while self._active > 0:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None

    def open(self) -> None:
        barrier, self.barrier = self.barrier, None
        if barrier is not None and not barrier.done():
            barrier.set_result(None)


# ---- dump files (memory and Redis backups) ------------------------------------------

DUMP_MAGIC = b"WEIRDUMP\x01\n"
_DUMP_REC = struct.Struct(">IIq")  # key length, value length, expiry ms (-1: none)
_DUMP_END = struct.Struct(">4sQI")  # b"END!", record count, crc32 of every record


def write_dump(f: IO[bytes], records: Iterable[tuple[bytes, bytes, int]]) -> int:
    """Write ``(key, value, expires_ms_or_-1)`` records; returns the count.

    The trailer holds the count and a CRC-32 of every record, so a torn or
    damaged file is refused on restore instead of half-loaded.
    """
    f.write(DUMP_MAGIC)
    crc = 0
    n = 0
    for key, value, expires in records:
        head = _DUMP_REC.pack(len(key), len(value), expires)
        crc = zlib.crc32(value, zlib.crc32(key, zlib.crc32(head, crc)))
        f.write(head)
        f.write(key)
        f.write(value)
        n += 1
    f.write(_DUMP_END.pack(b"END!", n, crc))
    return n


def read_dump(f: IO[bytes], name: str) -> list[tuple[bytes, bytes, int]]:
    """Read and verify a dump file written by :func:`write_dump`."""
    if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
        raise make_error(
            CorruptionError, f"{name}: not a weir.stores backup (bad magic at offset 0)"
        )
    out: list[tuple[bytes, bytes, int]] = []
    crc = 0
    offset = len(DUMP_MAGIC)
    while True:
        head = f.read(_DUMP_REC.size)
        if head[:4] == b"END!" and len(head) >= 12:
            tail = head + f.read(_DUMP_END.size - len(head))
            if len(tail) != _DUMP_END.size:
                break
            _, count, want = _DUMP_END.unpack(tail)
            if count != len(out) or want != crc:
                raise make_error(
                    CorruptionError,
                    f"{name}: checksum or record count mismatch in the trailer at offset {offset}",
                )
            if f.read(1):
                raise make_error(
                    CorruptionError, f"{name}: trailing bytes after offset {offset + len(tail)}"
                )
            return out
        if len(head) != _DUMP_REC.size:
            break
        klen, vlen, expires = _DUMP_REC.unpack(head)
        key = f.read(klen)
        value = f.read(vlen)
        if len(key) != klen or len(value) != vlen:
            break
        crc = zlib.crc32(value, zlib.crc32(key, zlib.crc32(head, crc)))
        out.append((key, value, expires))
        offset += len(head) + klen + vlen
    raise make_error(CorruptionError, f"{name}: truncated at offset {offset}")


def backup_no_space(target: str, cause: BaseException) -> NoSpaceError:
    """The error of a backup that ran out of space: nothing was published,
    and the store itself is fine (it is the target that is full)."""
    # The engine's own ENOSPC hint is about the database's writes, which a
    # failed backup does not stop: keep the OS's reason, drop the hint.
    reason = getattr(cause, "strerror", None) or str(cause)
    reason = re.sub(r"\s*\([^()]*resumes writes[^()]*\)", "", str(reason))
    exc = NoSpaceError(
        errno.ENOSPC,
        f"backup to {target!r} failed, no space left on that file system ({reason}); "
        "nothing was left at that path and the store is unchanged and still "
        "writable. Free space there or back up to another file system, then "
        "run the backup again",
    )
    exc.status = "WEIR_NO_SPACE"
    return exc


def write_dump_file(target: str, records: Any) -> None:
    """Publish a dump file of ``records`` at ``target`` durably (see
    :func:`weir.durable.publish_file`); a full disk raises
    :class:`weir.NoSpaceError` saying that nothing was written."""
    try:
        publish_file(target, lambda f: write_dump(f, records))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise backup_no_space(target, e) from None
        raise


def read_dump_file(source: str, backend_type: str) -> list[tuple[bytes, bytes, int]]:
    """Read and verify (every record's checksum) the dump file ``source``."""
    if os.path.isdir(source):
        raise make_error(
            InvalidArgumentError,
            f"{source!r} is a directory, not a {backend_type} backup file "
            "(backups of the memory and redis backends are single dump files)",
        )
    with open(source, "rb") as f:
        return read_dump(f, source)
