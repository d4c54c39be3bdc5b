"""A full disk, from Python, on a real file system.

The store lives on a 12 MiB tmpfs that also holds an 8 MiB ballast file
(freeing it leaves room for a compaction that rewrites everything written). The
child process writes until the disk is full and checks that: the failing
write raises ``weir.NoSpaceError`` (a ``StorageIOError`` with ``errno`` =
ENOSPC) whose message says "No space left on device" and how to recover;
later writes keep failing the same way without corrupting anything; every
acknowledged write can still be read (gets, ranges, snapshots); once the
ballast is deleted, writes resume by themselves, in the same DB handle; and
after a reopen every acknowledged write is there.

The tmpfs is mounted in a private mount namespace (``unshare --mount``, with
``--map-root-user`` when not root), so it disappears with the child even if
the test dies. This needs root or unprivileged user namespaces; CI runs as
root. The engine-level equivalents (a fault-env quota at 20 fill levels, and
a tmpfs) are in tests/c/test_fault.c.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    r"""
    import errno, json, os, sys, time
    import weir

    mnt = sys.argv[1]
    ballast = os.path.join(mnt, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"x" * (8 << 20))
    path = os.path.join(mnt, "db")
    db = weir.DB(path, write_buffer_size=64 * 1024, compression="none")
    acked = {}
    value = lambda i: (b"%08d" % i) * 128  # 1 KiB, incompressible enough
    err = None
    i = 0
    while i < 100_000:
        k = b"key%08d" % i
        try:
            db.put(k, value(i))
        except weir.NoSpaceError as e:
            err = e
            break
        acked[k] = i
        i += 1
    out = {"acked_before": len(acked)}
    assert err is not None, "the disk never filled"
    out["message"] = str(err)
    out["status"] = err.status
    out["errno"] = err.errno
    assert isinstance(err, weir.StorageIOError) and isinstance(err, OSError)
    assert err.errno == errno.ENOSPC, err.errno
    assert "No space left on device" in str(err), str(err)
    assert "free some space" in str(err), str(err)

    # Writes of every kind fail with the same kind of error and leave
    # nothing behind; one may also go through, when background work (a
    # flush deleting its log) freed room: then it is simply acknowledged.
    failures = 0
    for attempt in range(5):
        for deletes_first_key, call in (
            (False, lambda: db.put(b"more", b"x" * 1024)),
            (False, lambda: db.put_many({b"m1": b"1", b"m2": b"2"})),
            (True, lambda: db.delete(b"key00000000")),
            (False, lambda: db.incr(b"counter")),
        ):
            try:
                call()
            except weir.StorageIOError as e:
                assert isinstance(e, weir.NoSpaceError), f"{type(e).__name__}: {e}"
                failures += 1
            else:
                if deletes_first_key:
                    acked.pop(b"key00000000", None)
        time.sleep(0.02)
    # Fill it up again: a full disk keeps refusing writes the same clear way.
    j = i + 1
    refused = None
    while j < i + 100_000:
        k = b"key%08d" % j
        try:
            db.put(k, value(j))
        except weir.NoSpaceError as e:
            refused = e
            break
        acked[k] = j
        j += 1
    assert refused is not None and "No space left on device" in str(refused), refused
    failures += 1
    i = j
    out["failed_writes"] = failures

    # Reads keep working and see exactly what was acknowledged.
    def check(d, where):
        for k, n in acked.items():
            got = d.get(k)
            assert got == value(n), f"{where}: {k!r} is {got!r:.40}"
        keys = [k for k in d.keys(prefix=b"key")]
        assert keys == sorted(acked), f"{where}: {len(keys)} keys, {len(acked)} acknowledged"
    check(db, "while full")
    with db.snapshot() as snap:
        assert snap.get(min(acked)) == value(acked[min(acked)])

    # Free space: writes resume in the same handle (weir retries at most
    # every 100 ms), and nothing acknowledged is lost.
    os.remove(ballast)
    deadline = time.monotonic() + 10
    resumed_after = None
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        try:
            db.put(b"after", b"space freed")
            resumed_after = time.monotonic() - t0
            break
        except weir.NoSpaceError:
            time.sleep(0.05)
    assert resumed_after is not None, "writes did not resume after space was freed"
    out["resumed_after_s"] = round(resumed_after, 3)
    acked[b"after"] = None
    for j in range(i + 1, i + 51):
        k = b"key%08d" % j
        db.put(k, value(j), sync="fsync")
        acked[k] = j
    del acked[b"after"]
    check(db, "after resume")
    assert db.get(b"after") == b"space freed"
    db.close()
    with weir.DB(path) as again:
        check(again, "after reopen")
        assert again.get(b"after") == b"space freed"
    out["acked_total"] = len(acked) + 1
    print(json.dumps(out))
    """
)


def _namespace_cmd(mnt: str, size: str = "12m") -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing: it is part of every Debian install")
    flags = ["--mount"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
    script = f'mount -t tmpfs -o size={size} weirtest "$1" && shift && exec "$@"'
    return [unshare, *flags, "sh", "-c", script, "sh", mnt]


def _run_child(tmp: pathlib.Path, code: str, env: dict[str, str], size: str) -> dict[str, object]:
    mnt = tmp / "mnt"
    mnt.mkdir()
    child = tmp / "child.py"
    child.write_text(code)
    cmd = [*_namespace_cmd(str(mnt), size), sys.executable, str(child), str(mnt)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "mount" in proc.stderr and "weir" not in proc.stderr:
        pytest.fail(
            "could not mount a tmpfs in a private mount namespace (needs root or user "
            f"namespaces):\n{proc.stderr}"
        )
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr}"
    # The tmpfs was private to the child: nothing is mounted here any more.
    assert not os.listdir(mnt)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


DEFAULTS_CHILD = textwrap.dedent(
    r"""
    import json, os, sys, time
    import weir

    mnt = sys.argv[1]
    big, small = os.path.join(mnt, "ballast-16m"), os.path.join(mnt, "ballast-4m")
    for name, size in ((big, 16 << 20), (small, 4 << 20)):
        with open(name, "wb") as f:
            f.write(b"x" * size)
    path = os.path.join(mnt, "db")
    value = lambda i: (b"%08d" % i) * 128
    acked = {}

    def fill(db, start):
        i = start
        while True:
            k = b"key%08d" % i
            try:
                db.put(k, value(i))
            except weir.NoSpaceError as e:
                return i, e
            acked[k] = i
            i += 1

    def check(db, where):
        for k, n in acked.items():
            assert db.get(k) == value(n), f"{where}: {k!r}"
        assert sum(1 for _ in db.keys()) == len(acked), where

    out = {}
    db = weir.DB(path)  # default options: a 64 MiB write buffer, far past the disk
    i, err = fill(db, 0)
    out["acked"] = len(acked)
    assert "No space left on device" in str(err), str(err)
    # Still full: refused again, cleanly, and reads see every acknowledged write.
    try:
        db.put(b"more", b"x" * 4096)
        out["second_write"] = "accepted"
    except weir.NoSpaceError:
        out["second_write"] = "refused"
    check(db, "while full")
    # Space is freed: writes resume in this handle, at once.
    os.remove(small)
    t0 = time.monotonic()
    while True:
        try:
            db.put(b"key%08d" % i, value(i))
            acked[b"key%08d" % i] = i
            break
        except weir.NoSpaceError:
            assert time.monotonic() - t0 < 1.0, "writes did not resume within a second"
            time.sleep(0.01)
    out["resumed_after_s"] = round(time.monotonic() - t0, 3)
    i, err = fill(db, i + 1)  # and fill it again
    out["acked"] = len(acked)
    db.close()  # close works on a full disk
    # A full disk always opens read-only...
    with weir.DB(path, read_only=True) as ro:
        check(ro, "read-only while full")
    # ...and read-write only when recovery can flush the log into a table.
    try:
        weir.DB(path).close()
        out["rw_while_full"] = "opened"
    except weir.NoSpaceError as e:
        out["rw_while_full"] = "refused"
        assert "No space left on device" in str(e), str(e)
    os.remove(big)
    with weir.DB(path) as db:
        check(db, "read-write after freeing space")
        db.put(b"after", b"ok")
    with weir.DB(path, read_only=True) as ro:
        assert ro.get(b"after") == b"ok"
    assert weir.check(path).ok
    print(json.dumps(out))
    """
)


def test_disk_full_with_default_options(tmp_path: pathlib.Path, child_env: dict[str, str]) -> None:
    """The probe's finding: an 8 MiB disk and the default 64 MiB write
    buffer used to leave the store unwritable after space was freed, and
    unopenable even for reads. The log write is taken back on ENOSPC, so
    writes resume as soon as there is room; close needs no space; a read-only
    open writes nothing."""
    out = _run_child(tmp_path, DEFAULTS_CHILD, child_env, "32m")
    assert out["acked"] > 5000  # about 12 MiB of 1 KiB values
    assert out["rw_while_full"] == "refused"
    assert out["resumed_after_s"] < 1.0
    print(f"disk full, default options: {out}")


def test_disk_full_on_tmpfs(tmp_path: pathlib.Path, child_env: dict[str, str]) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    cmd = [*_namespace_cmd(str(mnt)), sys.executable, str(child), str(mnt)]
    proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "mount" in proc.stderr and "weir" not in proc.stderr:
        pytest.fail(
            "could not mount a tmpfs in a private mount namespace (needs root or user "
            f"namespaces):\n{proc.stderr}"
        )
    assert proc.returncode == 0, f"child failed:\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["acked_before"] > 1000  # a good part of the 4 MiB left was usable
    assert out["status"] == "WEIR_NO_SPACE"
    assert out["failed_writes"] > 0
    # The tmpfs was private to the child: nothing is mounted here any more.
    assert not os.listdir(mnt)
    print(f"disk full: {out}")
