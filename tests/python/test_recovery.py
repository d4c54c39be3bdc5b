"""Recovery never invents a state, from Python: fork, a missing or damaged
file, a read-only directory, weir.check and weir.salvage.

Each test is one finding of the outside probe (issue "Recovery never
invents a state") done as a user would: a DB, then the damage, then what
weir says.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import weir


def _fill(path: pathlib.Path, n: int, **options: object) -> weir.DB:
    db = weir.DB(path, **options)  # type: ignore[arg-type]
    for i in range(n):
        db.put(b"k%05d" % i, b"v%d" % i)
    return db


def _count(path: pathlib.Path, **options: object) -> int:
    with weir.DB(path, **options) as db:  # type: ignore[arg-type]
        return sum(1 for _ in db.keys())


# ---- fork ------------------------------------------------------------------


def test_forked_child_gets_a_clear_error_and_exits_without_hanging(tmp_path: pathlib.Path) -> None:
    db = _fill(tmp_path / "db", 2000)
    it = db.iterator()
    snap = db.snapshot()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        report = []
        for call in (lambda: db.put(b"child", b"x"), lambda: db.get(b"k00001"), db.flush):
            try:
                call()
                report.append("no error")
            except weir.InvalidArgumentError as e:
                report.append("ok" if "open a new handle in the child" in str(e) else str(e))
        other = weir.DB(tmp_path / "child-db")  # a handle of its own works
        other.put(b"a", b"b")
        report.append("own" if other.get(b"a") == b"b" else "own failed")
        other.close()
        db.close()  # returns at once: nothing of the parent's is touched
        os.write(write, ",".join(report).encode())
        os._exit(0)
    os.close(write)
    for i in range(2000, 4000):  # the parent goes on meanwhile
        db.put(b"k%05d" % i, b"v%d" % i)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        report = f.read()
    assert status == 0
    assert report == "ok,ok,ok,own", report
    del it
    snap.release()
    db.close()
    assert _count(tmp_path / "db") == 4000
    assert weir.check(tmp_path / "db").ok


FORK_EXIT = textwrap.dedent(
    r"""
    import os, sys, weir
    db = weir.DB(sys.argv[1])
    for i in range(100):
        db.put(b"k%05d" % i, b"v")
    it = db.iterator()
    pid = os.fork()
    if pid == 0:
        if sys.argv[2] == "close":
            db.close()
        sys.exit(0)  # interpreter teardown deallocates the inherited handle
    _, status = os.waitpid(pid, 0)
    del it
    db.close()
    print(status)
    """
)


@pytest.mark.parametrize("how", ["exit", "close"])
def test_forked_child_that_closes_or_exits_does_not_hang(tmp_path: pathlib.Path, how: str) -> None:
    script = tmp_path / "fork_exit.py"
    script.write_text(FORK_EXIT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "db"), how],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
    assert _count(tmp_path / "db") == 100


def _child_counts(path: str) -> int:
    with weir.DB(path, read_only=True) as db:
        return sum(1 for _ in db.keys())


def _child_writes(path: str) -> int:
    with weir.DB(path) as db:
        db.put(b"from", b"child")
        return 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_open_their_own_handles(
    tmp_path: pathlib.Path, method: str
) -> None:
    _fill(tmp_path / "db", 500).close()
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        assert pool.map(_child_counts, [str(tmp_path / "db")] * 2) == [500, 500]
        assert pool.map(_child_writes, [str(tmp_path / f"own{i}") for i in range(2)]) == [1, 1]


def test_a_writer_in_another_process_excludes_readers(tmp_path: pathlib.Path) -> None:
    _fill(tmp_path / "db", 10).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, weir
                db = weir.DB(sys.argv[1])
                print("open", flush=True)
                sys.stdin.readline()
                db.close()
                """
            ),
            str(tmp_path / "db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(weir.BusyError, match="open for writing"):
            weir.DB(tmp_path / "db", read_only=True)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert _count(tmp_path / "db", read_only=True) == 10


# ---- missing and damaged files ---------------------------------------------------


def test_a_deleted_live_log_is_reported_not_reverted(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db", write_buffer_size=64 * 1024)
    db.put(b"key", b"old")
    db.flush()
    db.put(b"key", b"new")
    db.close()
    logs = sorted(p for p in (tmp_path / "db").iterdir() if p.suffix == ".log")
    logs[-1].unlink()
    with pytest.raises(weir.CorruptionError, match=r"\.log is missing"):
        weir.DB(tmp_path / "db")
    report = weir.check(tmp_path / "db")
    assert not report.ok
    assert any("is missing" in f.message for f in report.damage)
    with pytest.raises(weir.CorruptionError):
        report.raise_for_damage()


def test_check_and_salvage_a_damaged_log(tmp_path: pathlib.Path) -> None:
    db = weir.DB(tmp_path / "db")
    for i in range(100):
        db.put(b"k%03d" % i, b"value", sync="fsync")
    db.close()
    log = next(p for p in (tmp_path / "db").iterdir() if p.suffix == ".log")
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0x10
    log.write_bytes(bytes(data))
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "db").iterdir())
    with pytest.raises(weir.CorruptionError, match=log.name):
        weir.DB(tmp_path / "db")
    report = weir.check(tmp_path / "db")
    assert not report.ok
    assert next(f.file for f in report.damage) == log.name
    result = weir.salvage(tmp_path / "db", tmp_path / "salvaged")
    assert not result.complete
    assert any("are lost" in f.message for f in result.losses)
    # The source is untouched; the copy opens and holds all but the lost record.
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "db").iterdir()) == before
    assert _count(tmp_path / "salvaged") == 99
    assert weir.check(tmp_path / "salvaged").ok


def test_salvage_of_an_intact_store_is_complete(tmp_path: pathlib.Path) -> None:
    db = _fill(tmp_path / "db", 3000, write_buffer_size=64 * 1024)
    db.delete_range(b"k00100", b"k00200")
    db.close()
    result = weir.salvage(tmp_path / "db", tmp_path / "copy")
    assert result.complete, result.losses
    with weir.DB(tmp_path / "db") as a, weir.DB(tmp_path / "copy") as b:
        assert list(a.items()) == list(b.items())
    with pytest.raises(weir.InvalidArgumentError, match="not empty"):
        weir.salvage(tmp_path / "db", tmp_path / "copy")


def test_check_is_a_clear_error_on_something_that_is_no_store(tmp_path: pathlib.Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(weir.InvalidArgumentError, match="not a weir database"):
        weir.check(tmp_path)
    # ...and no store is created among the user's files.
    with pytest.raises(weir.InvalidArgumentError, match="not empty"):
        weir.DB(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---- read-only media --------------------------------------------------------------

READ_ONLY_CHILD = textwrap.dedent(
    r"""
    import json, os, subprocess, sys
    import weir

    mnt = sys.argv[1]
    path = os.path.join(mnt, "db")
    with weir.DB(path) as db:
        for i in range(1000):
            db.put(b"k%04d" % i, b"v")
        db.put(b"last", b"unflushed")  # still only in the log
    # The file system is read-only now: not even root can write there.
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    out = {}
    with weir.DB(path, read_only=True) as db:
        out["keys"] = sum(1 for _ in db.keys())
        out["last"] = db.get(b"last").decode()
        try:
            db.put(b"x", b"y")
        except weir.ReadOnlyError:
            out["write"] = "refused"
    try:
        weir.DB(path)
    except weir.Error as e:
        out["read_write"] = type(e).__name__
    out["check_ok"] = weir.check(path).ok
    print(json.dumps(out))
    """
)


def test_read_only_open_on_read_only_media(
    tmp_path: pathlib.Path, child_env: dict[str, str]
) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing: it is part of every Debian install")
    if os.geteuid() != 0:
        pytest.fail("remounting read-only needs root (CI runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    child = tmp_path / "child.py"
    child.write_text(READ_ONLY_CHILD)
    script = 'mount -t tmpfs -o size=16m weirro "$1" && shift && exec "$@"'
    cmd = ["unshare", "--mount", "sh", "-c", script, "sh", str(mnt)]
    cmd += [sys.executable, str(child), str(mnt)]
    proc = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "keys": 1001,
        "last": "unflushed",
        "write": "refused",
        "read_write": "StorageIOError",
        "check_ok": True,
    }, out
