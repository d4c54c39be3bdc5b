#!/usr/bin/env python3
"""atheris harness for the raw DB API (weir.DB and its batches, iterators,
cursors, snapshots and transactions) against a dict model.

Each input is a program: up to 80 operations decoded from the bytes, run on
a fresh store. Keys come from a 4-letter alphabet that includes 0x00 and 0xff
(so ranges and prefixes meet their edge cases); values are short, or large
enough to take the extension's heap path. After every read the result must
equal the model's; snapshots must keep reading the state they were taken
at; a reopen must bring back exactly the model; at the end the whole store
is compared. Invalid calls that the input makes on purpose (a range whose
start is after its end, a batch abandoned by an exception) must fail the
documented way and change nothing.

Run: python fuzz_db.py [libFuzzer flags] [corpus dirs] (see scripts/fuzz-python.sh).
"""

from __future__ import annotations

import atexit
import bisect
import os
import shutil
import struct
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["weir"]):
    import weir

ALPHABET = b"\x00ab\xff"
# The stores live under WEIR_FUZZ_TMP (scripts/fuzz-python.sh makes it and
# removes it afterwards: libFuzzer ends the process without running atexit
# handlers) or, run by hand, under a fresh directory on tmpfs if there is one.
BASE = os.environ.get("WEIR_FUZZ_TMP") or tempfile.mkdtemp(
    prefix="weir-fuzz-db-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
)
if "WEIR_FUZZ_TMP" not in os.environ:
    atexit.register(shutil.rmtree, BASE, True)
COUNTER_KEYS = [b"#c0", b"#c1"]
RUN = [0]


class Abandon(Exception):
    """Raised inside a batch's with-block to discard it."""


@atheris.instrument_func
def gen_key(fdp: atheris.FuzzedDataProvider) -> bytes:
    n = fdp.ConsumeIntInRange(0, 3)
    return bytes(ALPHABET[fdp.ConsumeIntInRange(0, 3)] for _ in range(n))


@atheris.instrument_func
def gen_value(fdp: atheris.FuzzedDataProvider) -> bytes:
    if fdp.ConsumeIntInRange(0, 15) == 0:
        # Past the extension's 4 KiB stack buffer for gets.
        return fdp.ConsumeBytes(4) * 1500
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 8))


@atheris.instrument_func
def model_range(
    model: dict[bytes, bytes],
    prefix: bytes | None,
    start: bytes | None,
    stop: bytes | None,
    reverse: bool,
) -> list[tuple[bytes, bytes]]:
    out = [
        (k, v)
        for k, v in sorted(model.items())
        if (prefix is None or k.startswith(prefix))
        and (start is None or k >= start)
        and (stop is None or k < stop)
    ]
    return out[::-1] if reverse else out


@atheris.instrument_func
def opt_key(fdp: atheris.FuzzedDataProvider) -> bytes | None:
    return gen_key(fdp) if fdp.ConsumeBool() else None


@atheris.instrument_func
def apply_delete_range(model: dict[bytes, bytes], start: bytes, end: bytes) -> None:
    for k in [k for k in model if start <= k < end]:
        del model[k]


@atheris.instrument_func
def check_cursor(
    cur: weir.Iterator,
    fdp: atheris.FuzzedDataProvider,
    keys: list[bytes],
    model: dict[bytes, bytes],
) -> None:
    pos: int | None = None  # index into keys, None when not valid
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        op = fdp.ConsumeIntInRange(0, 5)
        if op == 0:
            ok = cur.seek_to_first()
            pos = 0 if keys else None
        elif op == 1:
            ok = cur.seek_to_last()
            pos = len(keys) - 1 if keys else None
        elif op == 2:
            target = gen_key(fdp)
            ok = cur.seek(target)
            i = bisect.bisect_left(keys, target)
            pos = i if i < len(keys) else None
        elif op == 3:
            target = gen_key(fdp)
            ok = cur.seek_for_prev(target)
            i = bisect.bisect_right(keys, target) - 1
            pos = i if i >= 0 else None
        elif op == 4:
            if pos is None:
                continue  # stepping an invalid cursor is not defined by the docs
            ok = cur.next()
            pos = pos + 1 if pos + 1 < len(keys) else None
        else:
            if pos is None:
                continue
            ok = cur.prev()
            pos = pos - 1 if pos > 0 else None
        assert ok == (pos is not None) == cur.valid, (op, ok, pos)
        if pos is not None:
            assert cur.key == keys[pos] and cur.value == model[keys[pos]], (cur.key, keys[pos])
        else:
            assert cur.key is None and cur.value is None


@atheris.instrument_func
def run(fdp: atheris.FuzzedDataProvider) -> None:
    RUN[0] += 1
    path = os.path.join(BASE, f"db{RUN[0]}")
    db = weir.DB(path, write_buffer_size=fdp.PickValueInList([65536, 1 << 20]))
    model: dict[bytes, bytes] = {}
    snaps: list[tuple[weir.Snapshot, dict[bytes, bytes]]] = []
    try:
        for _ in range(fdp.ConsumeIntInRange(1, 80)):
            if fdp.remaining_bytes() == 0:
                break
            op = fdp.ConsumeIntInRange(0, 17)
            if op == 0:
                k, v = gen_key(fdp), gen_value(fdp)
                db.put(k, v, sync=fdp.PickValueInList([None, "none", "flush"]))
                model[k] = v
            elif op == 1:
                k = gen_key(fdp)
                db.delete(k)
                model.pop(k, None)
            elif op == 2:
                k = gen_key(fdp)
                assert db.get(k) == model.get(k), k
                assert (k in db) == (k in model)
            elif op == 3:
                # A batch: committed by its with-block, abandoned by an
                # exception, or built unbound and written with db.write().
                how = fdp.ConsumeIntInRange(0, 2)
                staged = dict(model)
                b = db.write_batch() if how < 2 else weir.WriteBatch()
                for _ in range(fdp.ConsumeIntInRange(0, 6)):
                    sub = fdp.ConsumeIntInRange(0, 2)
                    if sub == 0:
                        k, v = gen_key(fdp), gen_value(fdp)
                        b.put(k, v)
                        staged[k] = v
                    elif sub == 1:
                        k = gen_key(fdp)
                        b.delete(k)
                        staged.pop(k, None)
                    else:
                        s, e = sorted((gen_key(fdp), gen_key(fdp)))
                        b.delete_range(s, e)
                        apply_delete_range(staged, s, e)
                if how == 0:
                    with b:
                        pass
                    model = staged
                elif how == 1:
                    try:
                        with b:
                            raise Abandon
                    except Abandon:
                        pass
                    assert len(b) == 0
                else:
                    db.write(b)
                    model = staged
            elif op == 4:
                s, e = gen_key(fdp), gen_key(fdp)
                if s > e:
                    try:
                        db.delete_range(s, e)
                    except weir.InvalidArgumentError as err:
                        assert "start is after end" in str(err)
                    else:
                        raise AssertionError("delete_range accepted start > end")
                else:
                    db.delete_range(s, e)
                    apply_delete_range(model, s, e)
            elif op == 5:
                p = gen_key(fdp)
                db.delete_prefix(p)
                for k in [k for k in model if k.startswith(p)]:
                    del model[k]
            elif op == 6:
                prefix, start, stop = opt_key(fdp), opt_key(fdp), opt_key(fdp)
                reverse = fdp.ConsumeBool()
                want = model_range(model, prefix, start, stop, reverse)
                which = fdp.ConsumeIntInRange(0, 2)
                if which == 0:
                    assert (
                        list(db.items(prefix=prefix, start=start, stop=stop, reverse=reverse))
                        == want
                    )
                elif which == 1:
                    assert list(
                        db.keys(prefix=prefix, start=start, stop=stop, reverse=reverse)
                    ) == [k for k, _ in want]
                else:
                    it = db.values(prefix=prefix, start=start, stop=stop, reverse=reverse)
                    n = fdp.ConsumeIntInRange(0, 3)
                    got = [next(it, None) for _ in range(n)]
                    it.close()
                    assert got == ([v for _, v in want] + [None] * n)[:n]
            elif op == 7:
                prefix, start, stop = opt_key(fdp), opt_key(fdp), opt_key(fdp)
                keys = [k for k, _ in model_range(model, prefix, start, stop, False)]
                with db.iterator(prefix=prefix, start=start, stop=stop) as cur:
                    check_cursor(cur, fdp, keys, model)
            elif op == 8 and len(snaps) < 4:
                snaps.append((db.snapshot(), dict(model)))
            elif op == 9 and snaps:
                snap, seen = snaps[fdp.ConsumeIntInRange(0, len(snaps) - 1)]
                k = gen_key(fdp)
                assert snap.get(k) == seen.get(k)
                assert db.get(k, snapshot=snap) == seen.get(k)
                assert list(snap.items()) == sorted(seen.items())
            elif op == 10 and snaps:
                snap, _ = snaps.pop(fdp.ConsumeIntInRange(0, len(snaps) - 1))
                snap.release()
            elif op == 11:
                db.flush()
            elif op == 12:
                s, e = opt_key(fdp), opt_key(fdp)
                if s is not None and e is not None and s > e:
                    # A reversed range is the caller's mistake: a typed error.
                    try:
                        db.compact(s, e)
                    except weir.InvalidArgumentError:
                        pass
                    else:
                        raise AssertionError("compact(start > end) was accepted")
                else:
                    db.compact(s, e)
            elif op == 13:
                # Reopen: snapshots die with the handle; the data must not.
                db.close()
                for snap, _ in snaps:
                    assert snap.released
                snaps.clear()
                db = weir.DB(path)
                assert dict(db.items()) == model
            elif op == 14:
                items = {gen_key(fdp): gen_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))}
                assert db.put_many(items) == len(items)
                model.update(items)
                dels = [gen_key(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
                db.delete_many(dels)
                for k in dels:
                    model.pop(k, None)
            elif op == 15:
                keys = [gen_key(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))]
                assert db.get_many(keys) == [model.get(k) for k in keys]
            elif op == 16:
                staged = dict(model)
                with db.transaction() as txn:
                    for _ in range(fdp.ConsumeIntInRange(0, 5)):
                        k = gen_key(fdp)
                        if fdp.ConsumeBool():
                            v = gen_value(fdp)
                            txn.put(k, v)
                            staged[k] = v
                        else:
                            txn.delete(k)
                            staged.pop(k, None)
                        assert txn.get(k) == staged.get(k)
                    assert list(txn.items()) == sorted(staged.items())
                    commit = fdp.ConsumeBool()
                    if not commit:
                        txn.rollback()
                if commit:
                    model = staged
            else:
                k = COUNTER_KEYS[fdp.ConsumeIntInRange(0, 1)]
                n = fdp.ConsumeIntInRange(-1000, 1000)
                db.incr(k, n)
                old = struct.unpack("<q", model[k])[0] if k in model else 0
                new = (old + n + (1 << 63)) % (1 << 64) - (1 << 63)
                model[k] = struct.pack("<q", new)
                assert db.get_int(k) == new
        assert dict(db.items()) == model
        assert list(db.keys(reverse=True)) == sorted(model, reverse=True)
    finally:
        for snap, _ in snaps:
            snap.release()
        db.close()
        weir.destroy(path)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    run(atheris.FuzzedDataProvider(data))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
