#!/usr/bin/env python3
"""atheris harness for weir.codecs.

Each input picks one check:

- decode arbitrary bytes with every codec but pickle (whose decode runs
  whatever code the bytes name; it is documented as only for data you wrote):
  the only exceptions allowed are ``ValueError`` (which covers
  ``UnicodeDecodeError``, ``json.JSONDecodeError`` and msgspec's errors);
  whatever KeyCodec decodes re-encodes to bytes that decode to the same value;
- round trips of generated values through every codec, pickle included;
- KeyCodec's order: for two generated keys, comparing their encodings gives
  the documented order (None < bytes < str < int < tuple; within a type the
  values' own order; tuples element by element, a prefix first), and equal
  encodings mean equal keys; ``prefix(v)`` starts ``encode(v)``.

Run: python fuzz_codecs.py [libFuzzer flags] [corpus dirs]
(see scripts/fuzz-python.sh).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["weir"]):
    from weir import codecs

KEY = codecs.KeyCodec()
VALUE_CODECS = [
    codecs.BytesCodec(),
    codecs.StrCodec(),
    codecs.JsonCodec(),
    codecs.MsgpackCodec(),
    codecs.DefaultValueCodec(),
]
PICKLE = codecs.PickleCodec()
TYPE_RANK = {type(None): 0, bytes: 1, str: 2, int: 3, tuple: 4}


@atheris.instrument_func
def gen_key(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 4 if depth < 4 else 3)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 6))
    if kind == 2:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 6))  # may hold surrogates
    if kind == 3:
        size = fdp.ConsumeIntInRange(1, 20)
        return fdp.ConsumeInt(size)
    return tuple(gen_key(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4)))


@atheris.instrument_func
def gen_json(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 6 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 8))
    if kind == 3:
        x = fdp.ConsumeRegularFloat()
        return x if math.isfinite(x) else 0.5
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8))
    if kind == 5:
        return [gen_json(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {
        fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4)): gen_json(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 4))
    }


@atheris.instrument_func
def ref_cmp(a: Any, b: Any) -> int:
    """The order KeyCodec documents, written independently of it."""
    ra, rb = TYPE_RANK[type(a)], TYPE_RANK[type(b)]
    if ra != rb:
        return -1 if ra < rb else 1
    if a is None:
        return 0
    if isinstance(a, tuple):
        for x, y in zip(a, b, strict=False):
            c = ref_cmp(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    return (a > b) - (a < b)


@atheris.instrument_func
def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@atheris.instrument_func
def check_decode_arbitrary(raw: bytes) -> None:
    for codec in VALUE_CODECS:
        try:
            value = codec.decode(raw)
        except ValueError:
            continue
        if isinstance(codec, codecs.BytesCodec):
            assert value == raw
        elif isinstance(codec, codecs.StrCodec):
            assert value.encode("utf-8") == raw
    try:
        key = KEY.decode(raw)
    except ValueError:
        return
    again = KEY.encode(key)
    assert same(KEY.decode(again), key), (raw, key, again)


@atheris.instrument_func
def check_round_trips(fdp: atheris.FuzzedDataProvider) -> None:
    key = gen_key(fdp)
    enc = KEY.encode(key)
    assert same(KEY.decode(enc), key), (key, enc)
    if isinstance(key, (str, bytes, tuple)):
        assert enc.startswith(KEY.prefix(key))
    assert same(PICKLE.decode(PICKLE.encode(key)), key)
    value = gen_json(fdp)
    for codec in (codecs.JsonCodec(), codecs.MsgpackCodec(), codecs.DEFAULT_VALUE_CODEC, PICKLE):
        back = codec.decode(codec.encode(value, key="k"))
        assert same(back, value), (codec, value, back)
    text = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 12))
    try:
        encoded = codecs.StrCodec().encode(text)
    except UnicodeEncodeError:
        assert any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
    else:
        assert codecs.StrCodec().decode(encoded) == text
    blob = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))
    for wrapped in (blob, bytearray(blob), memoryview(blob)):
        assert codecs.BytesCodec().encode(wrapped) == blob
        assert same(KEY.decode(KEY.encode(wrapped)), blob)
    assert same(codecs.MsgpackCodec().decode(codecs.MsgpackCodec().encode(blob)), blob)


@atheris.instrument_func
def check_order(fdp: atheris.FuzzedDataProvider) -> None:
    a, b = gen_key(fdp), gen_key(fdp)
    ea, eb = KEY.encode(a), KEY.encode(b)
    want = ref_cmp(a, b)
    got = (ea > eb) - (ea < eb)
    assert got == want, (a, b, ea, eb, got, want)
    assert (ea == eb) == same(a, b), (a, b)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        check_decode_arbitrary(fdp.ConsumeBytes(fdp.remaining_bytes()))
    elif mode == 1:
        check_round_trips(fdp)
    else:
        check_order(fdp)


def main() -> None:
    json.loads("[]")  # warm the json module outside the first input
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
