"""WriteBatch.put_encoded (a batch encoded in one binding call) and the
store hot paths built on it: the weir backend's ``batch_set`` encodes the
whole batch through ``put_encoded`` and ``set``/``get`` call the codec
directly. Each path must give the bytes the Python encoders give, and a key
or value that cannot be encoded must leave the store untouched.

The bad-input rows of put_encoded itself (argument types, what the
encoders return) are in test_api_badinput.py with every other method's.
"""

from __future__ import annotations

import pathlib
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

import weir
from conftest import BackendFactory
from weir.stores import StoreBackend
from weir.stores._common import KeyEncoding, ValueEncoding


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[weir.DB]:
    with weir.DB(str(tmp_path / "db")) as handle:
        yield handle


def enc(value: Any, key: Any) -> bytes:
    return f"{key}={value}".encode()


class Text(str):
    """A str subclass whose str() is not its own text."""

    def __str__(self) -> str:
        return "other"


# ---- WriteBatch.put_encoded ---------------------------------------------------------


def test_put_encoded_takes_every_shape_of_items(db: weir.DB) -> None:
    shapes: list[Any] = [
        {"a": 1, b"b": 2},
        [("c", 3), (bytearray(b"d"), 4)],
        types.MappingProxyType({"e": 5}),
        (pair for pair in [(memoryview(b"f"), 6)]),
    ]
    batch = weir.WriteBatch()
    assert [batch.put_encoded(items, enc) for items in shapes] == [2, 2, 1, 1]
    assert len(batch) == 6
    assert db.get(b"a") is None  # nothing written until the batch is
    db.write(batch)
    stored = dict(db.items())
    assert stored.pop(b"f").startswith(b"<memory at ")  # the encoder got the memoryview
    assert stored == {
        b"a": b"a=1",
        b"b": b"b'b'=2",
        b"c": b"c=3",
        b"d": b"bytearray(b'd')=4",
        b"e": b"e=5",
    }


def test_put_encoded_gives_the_encoders_the_pair(db: weir.DB) -> None:
    seen: list[tuple[Any, Any]] = []

    def encode_value(value: Any, key: Any) -> bytes:
        seen.append((value, key))
        return bytes([value])

    batch = weir.WriteBatch()
    n = batch.put_encoded({(1, "x"): 7, (2, "y"): 8}, encode_value, encode_key=repr_key)
    assert n == 2
    assert seen == [(7, (1, "x")), (8, (2, "y"))]
    db.write(batch)
    assert dict(db.items()) == {b"(1, 'x')": b"\x07", b"(2, 'y')": b"\x08"}


def repr_key(key: Any) -> bytes:
    return repr(key).encode()


def test_put_encoded_takes_utf8_of_exact_str_only(db: weir.DB) -> None:
    batch = weir.WriteBatch()
    batch.put_encoded({"\u00e9t\u00e9": 1}, enc)
    db.write(batch)
    assert db.get("\u00e9t\u00e9".encode()) == "\u00e9t\u00e9=1".encode()
    with pytest.raises(TypeError, match="not a subclass"):
        weir.WriteBatch().put_encoded({Text("k"): 1}, enc)


def test_put_encoded_error_keeps_earlier_pairs_in_the_batch(db: weir.DB) -> None:
    # Documented: the pairs before the failing one stay in the batch, and
    # nothing is in the DB until the batch is written.
    batch = weir.WriteBatch()
    with pytest.raises(TypeError, match="not int"):
        batch.put_encoded([("a", 1), ("b", 2), (3, 3), ("d", 4)], enc)
    assert len(batch) == 2
    assert dict(db.items()) == {}


def test_put_encoded_dict_changed_by_the_encoder(db: weir.DB) -> None:
    items: dict[Any, Any] = {"a": 1, "b": 2}

    def grows(value: Any, key: Any) -> bytes:
        items[f"new{value}"] = value
        return b"x"

    with pytest.raises(RuntimeError, match="changed size"):
        weir.WriteBatch().put_encoded(items, grows)


def test_put_encoded_holds_the_pair_while_encoding(db: weir.DB) -> None:
    # The encoder drops the dict's last references to the pair it encodes.
    items: dict[Any, Any] = {"k" * 40: bytearray(b"v" * 64)}

    def clears(value: Any, key: Any) -> bytes:
        items.clear()
        items["k" * 40] = b"again"  # same size: iteration continues safely
        return bytes(value) + key.encode()

    batch = weir.WriteBatch()
    batch.put_encoded(items, clears)
    db.write(batch)
    assert db.get(b"k" * 40) == b"v" * 64 + b"k" * 40


def test_put_encoded_batch_cannot_be_used_by_its_encoder(db: weir.DB) -> None:
    batch = weir.WriteBatch()
    uses = [
        lambda: db.write(batch),
        lambda: batch.put_encoded({"inner": 1}, enc),
        lambda: batch.put_many({b"x": b"y"}),
        batch.clear,
    ]
    for use in uses:

        def encoder(value: Any, key: Any, use: Any = use) -> bytes:
            use()
            return b"v"

        with pytest.raises(RuntimeError, match="filled by put_encoded"):
            batch.put_encoded({"k": 1}, encoder)
        assert len(batch) == 0
    assert dict(db.items()) == {}
    batch.put_encoded({"k": 1}, enc)  # usable again once the call returns
    db.write(batch)
    assert db.get(b"k") == b"k=1"


def test_put_encoded_on_a_closed_db_writes_nothing(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "c")
    handle = weir.DB(path)
    batch = handle.write_batch()
    handle.close()
    assert batch.put_encoded({"a": 1}, enc) == 1  # filling touches no DB
    with pytest.raises(weir.ClosedError, match="is closed"):
        batch.commit()
    with weir.DB(path) as again:
        assert dict(again.items()) == {}


def test_put_encoded_from_threads(db: weir.DB) -> None:
    # Encoders run Python code: other threads fill their own batches and
    # write meanwhile; each batch lands whole.
    def work(t: int) -> None:
        for r in range(20):
            batch = weir.WriteBatch()
            batch.put_encoded({f"{t}:{r}:{i}": i for i in range(50)}, enc)
            db.write(batch)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(1 for _ in db.keys()) == 4 * 20 * 50


# ---- the store paths ----------------------------------------------------------------


async def test_batch_set_stores_what_set_stores(make_backend: BackendFactory) -> None:
    b: StoreBackend = make_backend("weir")
    await b.start()
    keys: list[Any] = ["plain", "\u00e9t\u00e9", b"raw", bytearray(b"ba"), Text("sub")]
    values: list[Any] = [{"n": 1, "s": "x"}, [1, 2.5, None], "text", 7, {"deep": {"a": [1]}}]
    await b.batch_set(list(zip(keys, values, strict=True)))
    for k, v in zip(keys, values, strict=True):
        assert await b.get(k) == v
    by_batch = await b.items()
    # A str subclass is stored under its str(), by set() as by batch_set().
    assert ("other", {"deep": {"a": [1]}}) in by_batch
    await b.clear()
    for k, v in zip(keys, values, strict=True):
        await b.set(k, v)
    assert await b.items() == by_batch


@pytest.mark.parametrize(
    ("bad_key", "exc", "match"),
    [
        (5, TypeError, "key must be str or bytes, not int"),
        ("\udcff", weir.InvalidArgumentError, "not valid Unicode"),
        ("k" * (weir.MAX_KEY_SIZE + 1), weir.InvalidArgumentError, "exceeds the limit"),
    ],
)
async def test_batch_set_with_a_bad_key_writes_nothing(
    make_backend: BackendFactory, bad_key: Any, exc: type[Exception], match: str
) -> None:
    b: StoreBackend = make_backend("weir")
    await b.start()
    for n in (10, 3000):  # inline, and encoded off the loop
        items: dict[Any, Any] = {f"k{i}": {"i": i} for i in range(n)}
        items[bad_key] = 1
        items["after"] = 2
        with pytest.raises(exc, match=match):
            await b.batch_set(items)
        assert await b.size() == 0


async def test_batch_set_with_a_custom_key_codec(make_backend: BackendFactory) -> None:
    b: StoreBackend = make_backend("weir", options={"key_codec": "key"})
    await b.start()
    await b.batch_set({("user", 1): "a", ("user", 2): "b", 3: "c"})
    assert await b.get(("user", 2)) == "b"
    assert await b.get(3) == "c"
    with pytest.raises(TypeError):
        await b.batch_set({("ok", 1): 1, object(): 2})
    assert await b.size() == 3


async def test_set_and_get_errors_name_the_key(
    make_backend: BackendFactory, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "named"
    b: StoreBackend = make_backend("weir", path=path)
    await b.start()
    with pytest.raises(TypeError, match="'bad'"):
        await b.set("bad", object())
    with pytest.raises(TypeError, match="key must be str or bytes"):
        await b.set(1.5, 1)
    assert await b.size() == 0
    await b.set("ok", 1)
    await b.stop()
    # Bytes no msgpack encoder wrote (0xc1 is never used in msgpack).
    raw: StoreBackend = make_backend("weir", path=path, options={"value_codec": "bytes"})
    await raw.start()
    await raw.set("garbled", b"\xc1")
    await raw.stop()
    b = make_backend("weir", path=path)
    await b.start()
    with pytest.raises(weir.CorruptionError, match="'garbled'"):
        await b.get("garbled")
    with pytest.raises(weir.CorruptionError, match="'garbled'"):
        await b.batch_get(["ok", "garbled"])
    assert await b.batch_get(["ok", "nope"]) == [1, None]


async def test_batch_get_refuses_a_str_of_keys(make_backend: BackendFactory) -> None:
    b: StoreBackend = make_backend("weir")
    await b.start()
    await b.batch_set({"a": 1, "b": 2})
    assert await b.batch_get(k for k in "ab") == [1, 2]
    for bad in ("ab", b"ab", 5):
        with pytest.raises(TypeError, match="keys must be a list or other iterable"):
            await b.batch_get(bad)  # type: ignore[arg-type]


def test_key_and_value_encoding_fast_paths_agree() -> None:
    keys = KeyEncoding(None)
    assert keys.text_or_bytes
    sample: list[Any] = ["a", "\u00e9", b"b", bytearray(b"c"), memoryview(b"d"), Text("e")]
    assert keys.encode_list(sample) == [keys.codec.encode(k) for k in sample]
    assert keys.encode_list(sample) == [keys.encode(k) for k in sample]
    with pytest.raises(weir.InvalidArgumentError, match="exceeds the limit"):
        keys.encode_list(["a", "k" * (weir.MAX_KEY_SIZE + 1)])
    with pytest.raises(weir.InvalidArgumentError, match="not valid Unicode"):
        keys.encode_list(["a", "\udcff"])
    assert not KeyEncoding("key").text_or_bytes
    assert ValueEncoding(None, None).plain
    assert not ValueEncoding(None, 5.0).plain
