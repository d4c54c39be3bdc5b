"""Tests of weir.codecs: round trips, error messages and KeyCodec ordering."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import weir
from weir.codecs import (
    DEFAULT_VALUE_CODEC,
    BytesCodec,
    Codec,
    DefaultValueCodec,
    JsonCodec,
    KeyCodec,
    MsgpackCodec,
    PickleCodec,
    StrCodec,
    codec_names,
    get_codec,
)

KC = KeyCodec()

# ---- value codecs ----------------------------------------------------------


def test_bytes_codec() -> None:
    c = BytesCodec()
    b = b"\x00raw\xff"
    assert c.encode(b) is b
    assert c.encode(bytearray(b)) == b
    assert c.encode(memoryview(b)) == b
    assert c.decode(b) == b
    assert type(c.decode(bytearray(b))) is bytes
    with pytest.raises(TypeError) as ei:
        c.encode("text", key="user:1")
    assert "user:1" in str(ei.value) and "str" in str(ei.value)


def test_str_codec() -> None:
    c = StrCodec()
    assert c.encode("héllo") == "héllo".encode()
    assert c.decode("héllo".encode()) == "héllo"
    with pytest.raises(TypeError) as ei:
        c.encode(b"bytes", key=b"k")
    assert "b'k'" in str(ei.value) and "bytes" in str(ei.value)


def test_json_codec_is_compact_and_keeps_order() -> None:
    c = JsonCodec()
    value = {"name": "Alice", "balance": 1000}
    assert c.encode(value) == b'{"name":"Alice","balance":1000}'
    assert c.decode(c.encode(value)) == value
    assert c.encode({"b": 1, "a": 2}) == b'{"b":1,"a":2}'
    assert c.encode("ünï") == '"ünï"'.encode()
    nested = {"list": [1, 2.5, None, True], "obj": {"x": "y"}}
    assert c.decode(c.encode(nested)) == nested


def test_json_codec_errors_name_key_and_type() -> None:
    c = JsonCodec()
    with pytest.raises(TypeError) as ei:
        c.encode({"tags": {1, 2}}, key="user:7")
    msg = str(ei.value)
    assert "user:7" in msg and "set" in msg
    with pytest.raises(TypeError) as ei:
        c.encode(object())
    assert "object" in str(ei.value)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="k1"):
        c.encode(loop, key="k1")


def test_msgpack_codec() -> None:
    c = MsgpackCodec()
    value = {"name": "Alice", "raw": b"\x00\x01", "n": [1, -2, 3.5, None], 7: "int key"}
    assert c.decode(c.encode(value)) == value
    assert c.decode(c.encode((1, 2))) == [1, 2]
    with pytest.raises(TypeError) as ei:
        c.encode({"s": {1}}, key="acct:1")
    assert "acct:1" in str(ei.value) and "set" in str(ei.value)


def test_pickle_codec_only_by_name() -> None:
    c = get_codec("pickle")
    assert isinstance(c, PickleCodec)
    value = {"set": {1, 2}, "tuple": (1, "a")}
    assert c.decode(c.encode(value)) == value
    assert not isinstance(get_codec(), PickleCodec)
    with pytest.raises(TypeError) as ei:
        c.encode(lambda: None, key="fn")
    assert "fn" in str(ei.value) and "function" in str(ei.value)


def test_get_codec_lookup() -> None:
    assert isinstance(get_codec(), DefaultValueCodec)
    assert get_codec(None) is DEFAULT_VALUE_CODEC
    assert isinstance(get_codec("default"), DefaultValueCodec)
    assert isinstance(get_codec("json"), JsonCodec)
    assert isinstance(get_codec("JSON"), JsonCodec)
    assert isinstance(get_codec("bytes"), BytesCodec)
    assert isinstance(get_codec("raw"), BytesCodec)
    assert isinstance(get_codec("str"), StrCodec)
    assert isinstance(get_codec("utf-8"), StrCodec)
    assert isinstance(get_codec("msgpack"), MsgpackCodec)
    assert isinstance(get_codec("key"), KeyCodec)
    assert get_codec("json") is get_codec("json")
    custom = KeyCodec()
    assert get_codec(custom) is custom
    with pytest.raises(ValueError, match="unknown codec 'yaml'"):
        get_codec("yaml")
    with pytest.raises(TypeError):
        get_codec(42)  # type: ignore[arg-type]
    assert {"bytes", "str", "json", "msgpack", "pickle", "key"} <= set(codec_names())
    for name in codec_names():
        assert isinstance(get_codec(name), Codec)


# ---- KeyCodec --------------------------------------------------------------

INTS = st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\x00", "\x00\x00", "a", "a\x00", "a\x00b", "a\x01", "ab", "\uffff", "\U0010ffff"]
)
BYTES = st.binary(max_size=12) | st.sampled_from([b"", b"\x00", b"\x00\xff", b"\xff", b"a\x00"])
ATOMS = st.none() | BYTES | TEXT | INTS
KEYS = st.recursive(ATOMS, lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=10)


@given(KEYS)
def test_key_roundtrip(v) -> None:
    assert KC.decode(KC.encode(v)) == v


def check_order(a, b) -> None:
    ea, eb = KC.encode(a), KC.encode(b)
    assert (ea < eb) == (a < b), (a, b, ea.hex(), eb.hex())
    assert (ea == eb) == (a == b)


@given(INTS, INTS)
def test_int_order(a: int, b: int) -> None:
    check_order(a, b)


def test_int_order_at_size_boundaries() -> None:
    edges = sorted(
        {s * (2 ** (8 * n)) + d for n in range(0, 12) for d in (-1, 0, 1) for s in (-1, 1)}
        | {0, 2**64, -(2**64), 2**64 - 1, -(2**64) + 1}
    )
    encoded = [KC.encode(x) for x in edges]
    assert encoded == sorted(encoded)
    assert [KC.decode(e) for e in encoded] == edges


@given(TEXT, TEXT)
def test_str_order(a: str, b: str) -> None:
    check_order(a, b)


@given(BYTES, BYTES)
def test_bytes_order(a: bytes, b: bytes) -> None:
    check_order(a, b)


# Tuples whose elements follow one schema, so Python can compare them.
SCHEMA = st.lists(st.sampled_from(["str", "int"]), min_size=1, max_size=4)


@st.composite
def tuple_pair(draw):
    schema = draw(SCHEMA)

    def one():
        n = draw(st.integers(0, len(schema)))  # prefixes of the schema too
        return tuple(draw(TEXT if t == "str" else INTS) for t in schema[:n])

    return one(), one()


@given(tuple_pair())
def test_mixed_tuple_order(pair) -> None:
    a, b = pair
    check_order(a, b)


@given(st.lists(st.tuples(TEXT, INTS), min_size=2, max_size=20))
def test_sorting_encodings_sorts_values(values) -> None:
    assert sorted(values, key=KC.encode) == sorted(values)


@given(st.tuples(TEXT, INTS, TEXT), st.integers(0, 3))
def test_tuple_prefix(t, n) -> None:
    assert KC.encode(t).startswith(KC.prefix(t[:n]))


@given(TEXT, TEXT)
def test_str_prefix(s, p) -> None:
    assert KC.encode(s).startswith(KC.prefix(p)) == s.startswith(p)


def test_cross_type_order_is_fixed() -> None:
    values = [None, b"z", "a", -5, 0, 7, ()]
    encoded = [KC.encode(v) for v in values]
    assert encoded == sorted(encoded)


def test_key_codec_type_errors() -> None:
    with pytest.raises(TypeError) as ei:
        KC.encode(1.5)
    assert "float" in str(ei.value) and "1.5" in str(ei.value)
    with pytest.raises(TypeError) as ei:
        KC.encode(("user", 2.5))
    msg = str(ei.value)
    assert "('user', 2.5)" in msg and "element 2.5 of type float" in msg
    with pytest.raises(TypeError, match="bool"):
        KC.encode(True)
    with pytest.raises(TypeError, match="list"):
        KC.encode(["a"])
    with pytest.raises(TypeError, match="set"):
        KC.encode(("a", ({1},)))


def test_key_codec_accepts_subclasses_and_buffers() -> None:
    class MyStr(str):
        pass

    class MyInt(int):
        pass

    assert KC.decode(KC.encode(MyStr("x"))) == "x"
    assert KC.decode(KC.encode(MyInt(5))) == 5
    assert KC.encode(bytearray(b"ab")) == KC.encode(b"ab")
    assert KC.encode(memoryview(b"ab")) == KC.encode(b"ab")


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x09",
        b"\x03abc",
        b"\x04",
        b"\x04\x82\x01",
        b"\x05\x04\x80",
        b"\x04\x80extra",
        b"\x04\x10",
    ],
)
def test_key_codec_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(ValueError):
        KC.decode(bad)


def test_typed_keys_scan_in_order(tmp_path: pathlib.Path) -> None:
    values = get_codec("json")
    with weir.DB(tmp_path / "db") as db:
        rows = [("acct", n) for n in (-1000, -3, 0, 2, 10, 255, 256, 70000, 2**70)]
        rows += [("user", "alice"), ("user", "bob"), ("user", "bo")]
        db.put_many((KC.encode(r), values.encode({"row": list(r)}, key=r)) for r in rows)
        accts = [KC.decode(k) for k in db.keys(prefix=KC.prefix(("acct",)))]
        assert accts == sorted(r for r in rows if r[0] == "acct")
        window = [
            KC.decode(k)
            for k in db.keys(start=KC.encode(("acct", 0)), stop=KC.encode(("acct", 256)))
        ]
        assert window == [("acct", 0), ("acct", 2), ("acct", 10), ("acct", 255)]
        users = [KC.decode(k) for k in db.keys(prefix=KC.prefix(("user",)), reverse=True)]
        assert users == [("user", "bob"), ("user", "bo"), ("user", "alice")]
        assert values.decode(db[KC.encode(("user", "bo"))]) == {"row": ["user", "bo"]}


@settings(max_examples=200)
@given(st.lists(KEYS, max_size=30))
def test_encodings_unique(vals) -> None:
    assert len({KC.encode(v) for v in vals}) == len(set(vals))


# ---- decode of bad bytes raises ValueError, whatever the bytes ---------------
# (found by tests/fuzz/python/fuzz_codecs.py; the inputs are in its corpus)


def test_msgpack_map_with_unhashable_key_is_a_value_error() -> None:
    # A map whose key is a map: msgpack itself raises TypeError.
    with pytest.raises(ValueError, match=r"MsgpackCodec cannot decode: .*hashable"):
        MsgpackCodec().decode(b"\x82\x0a\x01\x82\x0a\x01\x00\x00\x00\xab")
    # A map whose key is an array is what a tuple key encodes to: read back
    # with that key as a tuple (other arrays stay lists).
    assert MsgpackCodec().decode(b"\x81\x91\x01\x92\x02\x03") == {(1,): [2, 3]}


def test_deeply_nested_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        JsonCodec().decode(b"[" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        KC.decode(b"\x05" * 100_000)
    with pytest.raises(ValueError):  # msgpack's own StackError is a ValueError
        MsgpackCodec().decode(b"\x91" * 100_000)


# ---- the default value codec -------------------------------------------------------


def test_default_codec_round_trips_as_documented() -> None:
    c = DEFAULT_VALUE_CODEC
    same = [
        {"id": 1, "value": "data_1", "score": 1.5},
        {1: "int key", None: "none key", b"k": "bytes key", 2.5: "float key"},
        b"\x00raw",
        2**64 - 1,
        -(2**63),
        "",
        None,
        True,
        float("inf"),
    ]
    for v in same:
        assert c.decode(c.encode(v)) == v
        assert type(c.decode(c.encode(v))) is type(v)
    nan = c.decode(c.encode(float("nan")))
    assert nan != nan
    # Tuples come back as lists, except a tuple used as a dict key.
    assert c.decode(c.encode((1, (2, 3)))) == [1, [2, 3]]
    assert c.decode(c.encode({(1, "a"): (2, 3)})) == {(1, "a"): [2, 3]}
    assert c.decode(c.encode(bytearray(b"ab"))) == b"ab"
    for too_big in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError):
            c.encode(too_big)
    for bad in ({1, 2}, object()):
        with pytest.raises(TypeError):
            c.encode(bad, key="k")


def test_default_codec_bytes_are_plain_msgpack() -> None:
    import msgpack

    c = DEFAULT_VALUE_CODEC
    for v in [{"a": [1, 2.5, None]}, "text", 7, 48, 57, -1, b"b", list(range(20))]:
        data = c.encode(v)
        assert msgpack.unpackb(data, raw=False, strict_map_key=False) == v
    # 48..57 would be the single bytes "0".."9": written in the uint8 form.
    assert c.encode(48) == b"\xcc0" and c.encode(57) == b"\xcc9"
    assert c.encode(47) == b"/" and c.encode(58) == b":"


@pytest.mark.parametrize(
    "value",
    [0, 5, 9, 10, 48, -3, 1.5, "s", "", [], {}, [1, "a"], {"k": None}, True, False, None],
)
def test_default_codec_reads_the_json_stores_wrote_before(value: Any) -> None:
    old = JsonCodec().encode(value)
    assert DEFAULT_VALUE_CODEC.decode(old) == value
    new = DEFAULT_VALUE_CODEC.encode(value)
    assert DEFAULT_VALUE_CODEC.decode(new) == value


def test_default_codec_legacy_variants() -> None:
    pickled = PickleCodec().encode({"t": (1, 2)})
    with pytest.raises(ValueError):
        DEFAULT_VALUE_CODEC.decode(pickled)  # never unpickles unless asked
    state = DefaultValueCodec(legacy="pickle")
    assert state.decode(pickled) == {"t": (1, 2)}
    assert state.decode(state.encode({"a": 1})) == {"a": 1}
    assert state.decode(JsonCodec().encode([1])) == [1]
    table = DefaultValueCodec(legacy="msgpack")
    assert table.decode(MsgpackCodec().encode(48)) == 48  # b"0": msgpack, not JSON 0
    assert table.decode(table.encode({"x": 48})) == {"x": 48}
    assert table.encode(48) == DEFAULT_VALUE_CODEC.encode(48)
    with pytest.raises(ValueError):
        DefaultValueCodec(legacy="yaml")
    with pytest.raises(ValueError):
        DEFAULT_VALUE_CODEC.decode(b"")
    with pytest.raises(ValueError):
        DEFAULT_VALUE_CODEC.decode(b"{not json")


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.text(max_size=8)
        | st.floats(allow_nan=False),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_default_codec_decodes_what_both_formats_wrote(value: Any) -> None:
    assert DEFAULT_VALUE_CODEC.decode(DEFAULT_VALUE_CODEC.encode(value)) == value
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) < 2**53:
        assert DEFAULT_VALUE_CODEC.decode(JsonCodec().encode(value)) == value
