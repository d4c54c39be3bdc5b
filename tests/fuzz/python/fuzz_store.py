#!/usr/bin/env python3
"""atheris harness for the async store API (weir.stores, weir backend)
against a dict model.

Each input is a program of up to 60 operations on a fresh store: set, get,
delete (its return value too), exists, batch_set, batch_delete (the count it
returns), batch_get, keys/items/values with and without a prefix, scan with
start, end, prefix and limit (awaited and streamed with ``async for``), size,
clear, transactions that commit or roll back, and stop/start (a reopen).
Keys are short str from an alphabet with multi-byte UTF-8 characters and
NUL, so key order (the byte order of their UTF-8 encodings) differs from
Python's str order at the edges; values are JSON-able. Every read must equal
the model; at the end the whole store is compared.

Run: python fuzz_store.py [libFuzzer flags] [corpus dirs] (see scripts/fuzz-python.sh).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import sys
import tempfile
from typing import Any

import atheris

with atheris.instrument_imports(include=["weir"]):
    import weir.stores._engine
    import weir.stores.weir_backend  # noqa: F401  (imported lazily by create_backend otherwise)
    from weir.stores import StoreBackendConfig, create_backend

ALPHABET = ["a", "b", "\x00", "\u00e9", "\uffff", "\U0001f600"]
# The stores live under WEIR_FUZZ_TMP (scripts/fuzz-python.sh makes it and
# removes it afterwards: libFuzzer ends the process without running atexit
# handlers) or, run by hand, under a fresh directory on tmpfs if there is one.
BASE = os.environ.get("WEIR_FUZZ_TMP") or tempfile.mkdtemp(
    prefix="weir-fuzz-store-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
)
if "WEIR_FUZZ_TMP" not in os.environ:
    atexit.register(shutil.rmtree, BASE, True)
RUN = [0]


def enc(k: str) -> bytes:
    return k.encode("utf-8")


@atheris.instrument_func
def gen_key(fdp: atheris.FuzzedDataProvider) -> str:
    return "".join(
        ALPHABET[fdp.ConsumeIntInRange(0, len(ALPHABET) - 1)]
        for _ in range(fdp.ConsumeIntInRange(0, 3))
    )


@atheris.instrument_func
def gen_value(fdp: atheris.FuzzedDataProvider) -> Any:
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return fdp.ConsumeIntInRange(-(10**6), 10**6)
    if kind == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 6))
    if kind == 2:
        return None
    return [fdp.ConsumeIntInRange(0, 9) for _ in range(fdp.ConsumeIntInRange(0, 3))]


@atheris.instrument_func
def model_scan(
    model: dict[str, Any], start: str | None, end: str | None, prefix: str | None, limit: int | None
) -> list[tuple[str, Any]]:
    out = [
        (k, model[k])
        for k in sorted(model, key=enc)
        if (start is None or enc(k) >= enc(start))
        and (end is None or enc(k) < enc(end))
        and (prefix is None or enc(k).startswith(enc(prefix)))
    ]
    return out if limit is None else out[:limit]


@atheris.instrument_func
async def run(fdp: atheris.FuzzedDataProvider) -> None:
    RUN[0] += 1
    path = os.path.join(BASE, f"s{RUN[0]}")
    store = create_backend(StoreBackendConfig(backend_type="weir", path=path))
    await store.start()
    model: dict[str, Any] = {}
    try:
        for _ in range(fdp.ConsumeIntInRange(1, 60)):
            if fdp.remaining_bytes() == 0:
                break
            op = fdp.ConsumeIntInRange(0, 13)
            if op == 0:
                k, v = gen_key(fdp), gen_value(fdp)
                await store.set(k, v)
                model[k] = v
            elif op == 1:
                k = gen_key(fdp)
                assert await store.get(k) == model.get(k)
                assert await store.exists(k) == (k in model)
            elif op == 2:
                k = gen_key(fdp)
                assert await store.delete(k) == (k in model)
                model.pop(k, None)
            elif op == 3:
                items = {gen_key(fdp): gen_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))}
                await store.batch_set(items)
                model.update(items)
            elif op == 4:
                keys = [gen_key(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))]
                want = len({k for k in keys if k in model})
                assert await store.batch_delete(keys) == want
                for k in keys:
                    model.pop(k, None)
            elif op == 5:
                keys = [gen_key(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))]
                assert await store.batch_get(keys) == [model.get(k) for k in keys]
            elif op == 6:
                prefix = gen_key(fdp) if fdp.ConsumeBool() else None
                want = model_scan(model, None, None, prefix, None)
                assert await store.keys(prefix) == [k for k, _ in want]
                assert await store.items(prefix) == want
                assert await store.values() == [
                    v for _, v in model_scan(model, None, None, None, None)
                ]
            elif op == 7:
                start = gen_key(fdp) if fdp.ConsumeBool() else None
                end = gen_key(fdp) if fdp.ConsumeBool() else None
                prefix = gen_key(fdp) if fdp.ConsumeBool() else None
                limit = fdp.ConsumeIntInRange(0, 6) if fdp.ConsumeBool() else None
                want = model_scan(model, start, end, prefix, limit)
                if fdp.ConsumeBool():
                    got = list(await store.scan(start, end, prefix, limit))
                else:
                    got = [p async for p in store.scan(start, end, prefix, limit)]
                assert got == want, (start, end, prefix, limit, got, want)
            elif op == 8:
                assert await store.size() == len(model)
            elif op == 9 and fdp.ConsumeIntInRange(0, 3) == 0:
                await store.clear()
                model.clear()
            elif op == 10:
                staged = dict(model)
                txn = await store.begin_transaction()
                for _ in range(fdp.ConsumeIntInRange(0, 4)):
                    k = gen_key(fdp)
                    what = fdp.ConsumeIntInRange(0, 2)
                    if what == 0:
                        v = gen_value(fdp)
                        await txn.set(k, v)
                        staged[k] = v
                    elif what == 1:
                        assert await txn.delete(k) == (k in staged)
                        staged.pop(k, None)
                    else:
                        assert await txn.get(k) == staged.get(k)
                if fdp.ConsumeBool():
                    await store.commit_transaction(txn)
                    model = staged
                else:
                    await store.rollback_transaction(txn)
            elif op == 11:
                await store.stop()
                await store.start()
            else:
                k = gen_key(fdp)
                assert await store.get(k) == model.get(k)
        assert await store.items() == model_scan(model, None, None, None, None)
    finally:
        await store.stop()
        shutil.rmtree(path, ignore_errors=True)


def test_one_input(data: bytes) -> None:
    asyncio.run(run(atheris.FuzzedDataProvider(data)))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
