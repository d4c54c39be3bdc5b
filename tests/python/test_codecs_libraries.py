"""weir.codecs against the libraries it replaced.

MsgpackCodec and DefaultValueCodec must write the bytes the ``msgpack``
package wrote (``packb(value, use_bin_type=True)``) and read them back to the
same values; JsonCodec must round-trip every value as the ``json`` module
did. The stdlib/msgpack fallbacks run in a subprocess with the fast
libraries' imports blocked, so the fallback code itself is what runs.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weir.codecs import (
    DefaultValueCodec,
    JsonCodec,
    MsgpackCodec,
    codec_libraries,
)

MSGPACK = MsgpackCodec()
DEFAULT = DefaultValueCodec()
JSON = JsonCodec()


def reference_pack(value: Any) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


def reference_unpack(data: bytes) -> Any:
    """What MsgpackCodec read before msgspec: the msgpack package, and for
    a map with an array key, a second read with such keys as tuples."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except TypeError:
        return _lists_outside_keys(
            msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=False,
                use_list=False,
                object_pairs_hook=lambda pairs: {k: _lists_outside_keys(v) for k, v in pairs},
            )
        )


def _lists_outside_keys(value: Any) -> Any:
    return [_lists_outside_keys(v) for v in value] if type(value) is tuple else value


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return (
            list(a) == list(b)
            and all(same(a[k], b[k]) for k in a)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


class Text(str):
    pass


class Number(int):
    def __int__(self) -> int:  # msgpack ignored it: the stored value is the int itself
        return 0


class Mapping(dict[Any, Any]):
    pass


class Items(list[Any]):
    pass


INTS = [
    0,
    1,
    -1,
    9,
    10,
    31,
    32,
    -32,
    -33,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**31),
    -(2**63),
]

# Every kind of value the docs allow the msgpack codecs to store.
ALLOWED: list[Any] = [
    None,
    True,
    False,
    "",
    "a",
    "ü" * 40,
    "x" * 40,
    "y" * 300,
    "z" * 70_000,
    b"",
    b"\x00\xff",
    b"b" * 300,
    b"c" * 70_000,
    bytearray(b"ab"),
    memoryview(b"mv"),
    0.0,
    -0.0,
    1.5,
    1e16,
    1e-7,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    *INTS,
    [],
    (),
    [1, "a"],
    (1, 2),
    [1, (2, 3)],
    list(range(20)),
    {},
    {"id": 7, "value": "data_7", "score": 10.5},
    {1: "a", 2.5: "b", None: 2, b"k": 3, (1, 2): "t", "s": {"n": [1, (2,)]}},
    {True: 1, False: 0},
    {(1, (2, 3)): [4, 5]},
    {f"k{i}": i for i in range(20)},
    Text("sub"),
    Number(5),
    Mapping(a=1),
    Items([1, 2]),
    {"x": Text("y")},
]


@pytest.mark.parametrize("value", ALLOWED, ids=lambda v: type(v).__name__)
def test_msgpack_bytes_and_values_are_the_msgpack_packages(value: Any) -> None:
    expected = reference_pack(value)
    assert MSGPACK.encode(value) == expected
    assert same(MSGPACK.decode(expected), reference_unpack(expected))
    assert same(DEFAULT.decode(DEFAULT.encode(value)), reference_unpack(expected))


def test_default_codec_still_marks_ints_that_look_like_json_digits() -> None:
    # The msgpack fixints 48..57 are the one bytes b"0".."9", which read as
    # legacy JSON digits: the default codec writes them as uint8 instead.
    for i in range(48, 58):
        assert DEFAULT.encode(i) == b"\xcc" + bytes((i,))
        assert DEFAULT.decode(DEFAULT.encode(i)) == i
        assert DEFAULT.decode(bytes((i,))) == i - 48  # legacy JSON
    assert DEFAULT.encode(47) == reference_pack(47) == b"/"
    assert DEFAULT.encode(58) == reference_pack(58)


def test_default_codec_reads_legacy_json_as_json_did() -> None:
    for text in [
        '{"id":1,"value":"v","score":1.5}',
        "[1,2,3]",
        '"s"',
        "12",
        "1.5e3",
        "true",
        "null",
        '{"1":NaN,"2":Infinity}',
        str(2**80),
    ]:
        assert same(DEFAULT.decode(text.encode()), json.loads(text)), text


msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.text()
    | st.binary()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
)
msgpack_keys = (
    st.none()
    | st.booleans()
    | st.text()
    | st.binary()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.tuples(st.integers(0, 9), st.text(max_size=3))
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(msgpack_keys, inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(msgpack_values)
def test_msgpack_matches_the_msgpack_package_on_generated_values(value: Any) -> None:
    expected = reference_pack(value)
    assert MSGPACK.encode(value) == expected
    assert same(MSGPACK.decode(expected), reference_unpack(expected))


class Color(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset(),
        datetime.datetime(2020, 1, 1),
        datetime.date(2020, 1, 1),
        uuid.UUID(int=5),
        Color.RED,
        object(),
        [1, {2}],
        {"k": {"n": datetime.time()}},
    ],
    ids=lambda v: type(v).__name__,
)
def test_msgpack_refuses_what_the_msgpack_package_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        reference_pack(value)
    for codec in (MSGPACK, DEFAULT):
        with pytest.raises(TypeError, match="for key 'user:1'"):
            codec.encode(value, key="user:1")


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, [2**100], "\ud800"],
    ids=["2**64", "-2**63-1", "nested big", "surrogate"],
)
def test_msgpack_out_of_range_values_are_value_errors_naming_the_key(value: Any) -> None:
    for codec in (MSGPACK, DEFAULT):
        with pytest.raises(ValueError, match="MsgpackCodec cannot encode the value for key b'k'"):
            codec.encode(value, key=b"k")


def test_msgpack_circular_and_deep_values_are_value_errors() -> None:
    loop: list[Any] = []
    loop.append(loop)
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    for value in (loop, deep):
        with pytest.raises(ValueError, match="for key 'k'"):
            MSGPACK.encode(value, key="k")


@pytest.mark.parametrize("data", [b"\xc1", b"\x92\x01", b"\xd9\x05ab", b"\x81\x80\x01\x02"])
def test_msgpack_decode_errors_are_value_errors(data: bytes) -> None:
    for codec in (MSGPACK, DEFAULT):
        with pytest.raises(ValueError, match="MsgpackCodec cannot decode"):
            codec.decode(data)


# ---- JSON ------------------------------------------------------------------

JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    2**64,
    2**100,
    -(2**200),
    1.5,
    -0.0,
    1e16,
    1e-7,
    1e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "ü",
    "\u2028",
    "\x00",
    [],
    (),
    [1, (2, [3])],
    {},
    {"id": 7, "value": "data_7", "score": 10.5},
    {1: "a", 2.5: "b", None: 2, 1e16: 3},
    {True: 1, False: 0},
    {"n": [float("nan"), {"i": float("inf")}]},
    Text("sub"),
    Number(5),
    Mapping(a=Text("b")),
    Items([1]),
    {Text("k"): 1},
]


def stdlib_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


@pytest.mark.parametrize("value", JSON_VALUES, ids=lambda v: type(v).__name__)
def test_json_round_trip_is_the_json_modules(value: Any) -> None:
    encoded = JSON.encode(value)
    assert same(JSON.decode(encoded), stdlib_round_trip(value))
    assert same(json.loads(encoded), stdlib_round_trip(value))  # json reads what we write


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text() | st.integers() | st.booleans() | st.none(), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_json_matches_the_json_module_on_generated_values(value: Any) -> None:
    try:
        expected = stdlib_round_trip(value)
    except ValueError:  # a lone surrogate json wrote but UTF-8 cannot hold
        with pytest.raises(ValueError):
            JSON.encode(value)
        return
    assert same(JSON.decode(JSON.encode(value)), expected)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        "NaN",
        "[Infinity,-Infinity]",
        "1e400",
        str(2**100),
        '"\\ud800"',
        "\ufeff[1]",
        '{"a":1,"a":2}',
        "[" * 100 + "]" * 100,
        " 1 ",
    ],
)
def test_json_decode_is_json_loads(text: str) -> None:
    assert same(JSON.decode(text.encode()), json.loads(text.encode()))


def test_json_decode_of_utf16_is_json_loads() -> None:
    data = '{"a":[1,2]}'.encode("utf-16")
    assert JSON.decode(data) == json.loads(data)


@pytest.mark.parametrize("data", [b"", b"{", b"[1,]", b"\xff", b"nul", b"[" * 100_000])
def test_json_decode_errors_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        JSON.decode(data)


def test_json_encode_errors_name_the_key() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="JsonCodec cannot encode the value for key 'k'"):
        JSON.encode(loop, key="k")
    with pytest.raises(ValueError, match="JsonCodec cannot encode the value for key 'k'"):
        JSON.encode("\ud800", key="k")
    with pytest.raises(TypeError, match="JsonCodec cannot encode the value for key 'k'"):
        JSON.encode({1, 2}, key="k")
    with pytest.raises(TypeError, match="for key 'k'"):
        JSON.encode(datetime.datetime(2020, 1, 1), key="k")
    with pytest.raises(TypeError, match="for key 'k'"):
        JSON.encode(b"bytes", key="k")


def test_json_writes_enums_and_uuids_as_their_values() -> None:
    # The documented difference from the json module, which refused both.
    assert JSON.encode([Color.RED]) == b"[1]"
    assert JSON.encode(uuid.UUID(int=5)) == b'"00000000-0000-0000-0000-000000000005"'


def test_codec_libraries_names_the_fast_libraries() -> None:
    libs = codec_libraries()
    assert libs["json encode"].startswith("orjson ")
    assert libs["json decode"].startswith("msgspec ")
    assert libs["msgpack"].startswith("ormsgpack ") and "msgspec" in libs["msgpack"]


# ---- fallbacks, with the fast libraries' imports blocked -------------------

_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import json, math, sys
    for name in sys.argv[1].split(","):
        sys.modules[name] = None  # import name now raises ImportError
    import weir
    from weir.codecs import JsonCodec, MsgpackCodec, DefaultValueCodec, codec_libraries
    print(json.dumps(codec_libraries()))
    value = {"id": 7, "value": "data_7", "score": 10.5, "n": [1, None, True], "k": {"1": 2.5}}
    json_codec = JsonCodec()
    assert json_codec.encode(value) == json.dumps(value, separators=(",", ":")).encode()
    assert json_codec.decode(json_codec.encode(value)) == value
    assert math.isnan(json_codec.decode(json_codec.encode(float("nan"))))
    try:
        json_codec.decode(b"{")
    except ValueError:
        pass
    else:
        raise AssertionError("no ValueError")
    try:
        codec = DefaultValueCodec()
    except ModuleNotFoundError as e:
        print("MISSING", e)
    else:
        with_tuple_key = {(1, 2): [3, (4,)], b"b": 2**64 - 1}
        data = codec.encode(with_tuple_key)
        print("MSGPACK", data.hex())
        assert codec.decode(data) == {(1, 2): [3, [4]], b"b": 2**64 - 1}
        assert codec.decode(b'{"legacy":1}') == {"legacy": 1}
        assert codec.encode(51) == b"\\xcc3"
        try:
            codec.encode({1, 2}, key="k")
        except TypeError as e:
            assert "'k'" in str(e)
        else:
            raise AssertionError("no TypeError")
    """
)


def run_blocked(modules: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _FALLBACK_SCRIPT, modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_fallback_without_the_fast_libraries_is_json_and_msgpack() -> None:
    lines = run_blocked("msgspec,orjson,ormsgpack")
    libs = json.loads(lines[0])
    assert libs["json encode"] == libs["json decode"] == "json (standard library)"
    assert libs["msgpack"].startswith("msgpack ")
    expected = reference_pack({(1, 2): [3, (4,)], b"b": 2**64 - 1})
    assert lines[1] == "MSGPACK " + expected.hex()


def test_fallback_with_only_ormsgpack_missing_uses_the_msgpack_package() -> None:
    lines = run_blocked("ormsgpack")
    libs = json.loads(lines[0])
    assert libs["json encode"].startswith("orjson ")
    assert libs["json decode"].startswith("msgspec ")
    assert libs["msgpack"].startswith("msgpack ")


def test_without_any_msgpack_library_weir_imports_and_the_codec_says_what_to_install() -> None:
    lines = run_blocked("msgspec,orjson,ormsgpack,msgpack")
    assert json.loads(lines[0])["msgpack"] == "missing"
    assert lines[1].startswith("MISSING ") and "pip install msgspec" in lines[1]


# ---- JSON-lines sources ----------------------------------------------------

JSONL_LINES = [
    b'{"a": 1, "b": [1, 2.5, null, true], "c": {"d": "x\\u00e9"}}\n',
    b"\n",
    b"   \n",
    b'  {"indented": 1}\n',
    b'{"trailing": 1}   \n',
    b'{"crlf": 1}\r\n',
    b"1 2\n",
    b'{"ff": 1}\x0c\n',
    b'{"nbsp": 1}\xc2\xa0\n',
    b"\xef\xbb\xbf" + b'{"bom": 1}\n',
    b'{"bad utf8": "\xff"}\n',
    b'"\\ud800"\n',
    b"NaN\n",
    b"[Infinity, 1e400]\n",
    b"-0.0\n",
    b"[1, 2\n",
    b"{}{}\n",
    b'{"dup": 1, "dup": 2}\n',
    b"12345678901234567890123\n",
    b"[" * 100_000 + b"\n",
    b'{"last": 1}\n',
]

_JSONL_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    for name in sys.argv[2].split(","):
        if name:
            sys.modules[name] = None
    from weir.stream import JsonLinesSource

    async def main():
        src = JsonLinesSource(sys.argv[1])
        await src.open(None)
        events, errors = [], []
        while (b := await src.read(4)) is not None and (b.events or b.errors):
            events += b.events
            errors += [int(msg.split(" line ")[1].split(":")[0]) for _raw, msg in b.errors]
        await src.close()
        print(json.dumps(events))
        print(json.dumps(errors))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("blocked", ["", "msgspec"], ids=["msgspec", "json scanner"])
def test_jsonl_source_reads_what_json_loads_reads(tmp_path: Any, blocked: str) -> None:
    path = tmp_path / "edge.jsonl"
    path.write_bytes(b"".join(JSONL_LINES))
    want_events, want_errors = [], []
    for n, raw in enumerate(JSONL_LINES, 1):
        if not raw.strip():
            continue
        try:
            want_events.append(json.loads(raw))
        except (ValueError, RecursionError):
            want_errors.append(n)
    proc = subprocess.run(
        [sys.executable, "-c", _JSONL_SCRIPT, str(path), blocked],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    events, errors = proc.stdout.splitlines()
    assert events == json.dumps(want_events)  # NaN != NaN: compare the texts
    assert json.loads(errors) == want_errors
