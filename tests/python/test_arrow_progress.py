"""DB.put_arrow(..., progress=...): a large bulk load reports how far it has
got while it encodes the rows and while the engine applies the one atomic
write batch (most of a large load's time), the built-in bar draws only on
a terminal, and a callback that fails stops the load before the write
(nothing written) or is reported after it (everything written)."""

from __future__ import annotations

import os
import pathlib
import pty
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import weir

Report = tuple[str, int, "int | None"]


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[weir.DB]:
    d = weir.DB(tmp_path / "db")
    yield d
    d.close()


class Recorder:
    """A progress callback that keeps every call, and may raise at one."""

    def __init__(self, fail_at: tuple[str, int] | None = None) -> None:
        self.calls: list[Report] = []
        self.fail_at = fail_at  # (stage, n): raise at that stage's n-th call (0-based)

    def __call__(self, stage: str, rows_done: int, rows_total: int | None) -> None:
        self.calls.append((stage, rows_done, rows_total))
        if self.fail_at is not None:
            stage_calls = [c for c in self.calls if c[0] == stage]
            if stage == self.fail_at[0] and len(stage_calls) == self.fail_at[1] + 1:
                raise RuntimeError(f"stop at {stage} #{self.fail_at[1]}")

    def stage(self, name: str) -> list[Report]:
        return [c for c in self.calls if c[0] == name]


def rows(n: int, *, shuffled: bool = False, seed: int = 1) -> pa.Table:
    ids = list(range(n))
    if shuffled:
        random.Random(seed).shuffle(ids)
    names = pa.array([f"user{i}" for i in ids], pa.string())
    return pa.table({"id": pa.array(ids, pa.int64()), "name": names})


def check_reports(calls: list[Report], n: int, encode_total: int | None) -> None:
    """The order and figures put_arrow promises."""
    stages = [c[0] for c in calls]
    first_write = stages.index("write")
    assert set(stages[:first_write]) <= {"encode"}
    assert set(stages[first_write:-1]) == {"write"}
    assert stages[-1] == "done" and stages.count("done") == 1
    encode = calls[:first_write]
    assert {t for _, _, t in encode} <= {encode_total}
    done = [d for _, d, _ in encode]
    assert done == sorted(done) and (not done or done[-1] == n)
    write = calls[first_write:-1]
    assert write[0][1] == 0, "the write is reported before it starts"
    assert {t for _, _, t in write} == {n}
    applied = [d for _, d, _ in write]
    assert applied == sorted(applied) and applied[-1] <= n
    assert calls[-1] == ("done", n, n)


def test_reports_each_slice_then_the_write_then_done(db: weir.DB) -> None:
    table = rows(200_000)
    rec = Recorder()
    assert db.put_arrow(table, key="id", value_columns="name", progress=rec) == 200_000
    check_reports(rec.calls, 200_000, 200_000)
    # Encoding reports after each slice of 65,536 rows.
    assert [d for _, d, _ in rec.stage("encode")] == [65_536, 131_072, 196_608, 200_000]
    assert db.get(struct_key(123)) == b"user123"


def struct_key(i: int) -> bytes:
    """put_arrow's stored form of an int64 key: big-endian, sign bit flipped."""
    return (i ^ (1 << 63)).to_bytes(8, "big")


def test_a_long_write_is_reported_while_the_engine_applies_it(db: weir.DB) -> None:
    # Random keys make the memtable inserts the long part (seconds for
    # this many rows on a shared machine, against a tenth of that to encode).
    n = 400_000
    rec = Recorder()
    assert db.put_arrow(rows(n, shuffled=True), key="id", progress=rec) == n
    check_reports(rec.calls, n, n)
    midway = [d for _, d, _ in rec.stage("write") if 0 < d < n]
    assert midway, f"no report while the write ran: {rec.stage('write')}"
    assert db.property("weir.num-entries-active-memtable") == str(n)


def test_total_is_none_when_the_stream_has_no_length(db: weir.DB) -> None:
    table = rows(70_000)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=30_000))
    assert not hasattr(reader, "__len__")
    rec = Recorder()
    assert db.put_arrow(reader, key="id", progress=rec) == 70_000
    check_reports(rec.calls, 70_000, None)
    # One report per slice of each incoming batch.
    assert [d for _, d, _ in rec.stage("encode")] == [30_000, 60_000, 70_000]


class ArrayOnly:
    """Arrow data offering only __arrow_c_array__ (one record batch)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch

    def __arrow_c_array__(self, requested_schema: Any = None) -> Any:
        return self.batch.__arrow_c_array__(requested_schema)


def test_one_array_knows_its_length(db: weir.DB) -> None:
    batch = rows(1000).to_batches()[0]
    rec = Recorder()
    assert db.put_arrow(ArrayOnly(batch), key="id", progress=rec) == 1000
    check_reports(rec.calls, 1000, 1000)


def test_an_empty_load_is_reported_too(db: weir.DB) -> None:
    rec = Recorder()
    assert db.put_arrow(rows(0), key="id", progress=rec) == 0
    assert rec.calls == [("write", 0, 0), ("done", 0, 0)]


@pytest.mark.parametrize("fail_at", [("encode", 0), ("encode", 2), ("write", 0)])
def test_a_failing_callback_before_the_write_writes_nothing(
    db: weir.DB, fail_at: tuple[str, int]
) -> None:
    rec = Recorder(fail_at)
    with pytest.raises(RuntimeError, match="stop at"):
        db.put_arrow(rows(200_000), key="id", progress=rec)
    assert rec.calls[-1][0] == fail_at[0]
    assert db.get(struct_key(0)) is None
    assert db.property("weir.num-entries-active-memtable") == "0"
    # The DB takes the same load afterwards.
    assert db.put_arrow(rows(10), key="id") == 10


def test_a_failing_callback_during_the_write_is_raised_after_it(db: weir.DB) -> None:
    n = 400_000
    rec = Recorder(("write", 1))  # the first report while the engine applies the batch
    with pytest.raises(RuntimeError, match="stop at write #1"):
        db.put_arrow(rows(n, shuffled=True), key="id", progress=rec)
    # The write could not be taken back halfway: all of it is there, and
    # the callback was not called again after it failed.
    assert db.property("weir.num-entries-active-memtable") == str(n)
    assert db.get(struct_key(n - 1)) is not None
    assert rec.calls[-1][0] == "write" and len(rec.stage("write")) == 2
    assert not rec.stage("done")


def test_a_failing_callback_at_done_is_raised_with_the_rows_written(db: weir.DB) -> None:
    rec = Recorder(("done", 0))
    with pytest.raises(RuntimeError, match="stop at done"):
        db.put_arrow(rows(100), key="id", progress=rec)
    assert db.get(struct_key(99)) == b"\x81\xa4name\xa6user99"  # msgpack {"name": "user99"}


CLOSE_DURING_WRITE = """
import random, sys, threading, weir, pyarrow as pa
n = 400_000
ids = list(range(n))
random.Random(1).shuffle(ids)
t = pa.table({"id": pa.array(ids, pa.int64()), "v": [b"x"] * n})
db = weir.DB(sys.argv[1])
stages = []

def close_elsewhere() -> None:
    closer = threading.Thread(target=db.close)
    closer.start()
    closer.join()

close = db.close if sys.argv[2] == "here" else close_elsewhere

def progress(stage, done, total):
    stages.append(stage)
    if stage == "write" and stages.count("write") == 2:
        close()  # waits for the engine's write, then closes
        assert db.closed

print(db.put_arrow(t, key="id", value_columns="v", progress=progress))
print(stages.count("write") >= 2, stages[-1])
with weir.DB(sys.argv[1]) as again:
    print(again.get((ids[-1] ^ (1 << 63)).to_bytes(8, "big")))
"""


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_callback_may_close_the_db_during_the_write(tmp_path: pathlib.Path, where: str) -> None:
    # A callback that closes the DB (itself or through another thread that
    # it waits for) must not wait for the put_arrow that is running it: the
    # close waits for the engine's write only, and the load still completes.
    # In a child process, so that a deadlock fails the test at the timeout.
    proc = subprocess.run(
        [sys.executable, "-c", CLOSE_DURING_WRITE, str(tmp_path / "db"), where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n") == ["400000", "True done", "b'x'", ""]


def test_progress_must_be_a_callable_or_a_flag(db: weir.DB) -> None:
    with pytest.raises(TypeError, match="progress must be True, False, None or a callable"):
        db.put_arrow(rows(10), key="id", progress="yes")  # type: ignore[arg-type]
    assert db.get(struct_key(0)) is None


def test_an_engine_failure_wins_over_the_callback(tmp_path: pathlib.Path) -> None:
    with weir.DB(tmp_path / "ro-src") as src:
        src.put(b"x", b"1")
    with weir.DB(tmp_path / "ro-src", read_only=True) as ro:
        rec = Recorder()
        with pytest.raises(weir.ReadOnlyError):
            ro.put_arrow(rows(100), key="id", progress=rec)
    assert [c[0] for c in rec.calls] == ["encode", "write"]


def test_progress_true_draws_nothing_off_a_terminal(
    db: weir.DB, capfd: pytest.CaptureFixture[str]
) -> None:
    assert db.put_arrow(rows(100_000), key="id", progress=True) == 100_000
    assert db.put_arrow(rows(10), key="id", progress=False) == 10
    out, err = capfd.readouterr()
    assert out == "" and err == ""


LOAD = """
import sys, weir, pyarrow as pa
n = int(sys.argv[2])
t = pa.table({"id": pa.array(range(n), pa.int64()), "v": [b"x"] * n})
with weir.DB(sys.argv[1]) as db:
    db.put_arrow(t, key="id", value_columns="v", progress=True)
"""


def run_on_terminal(db_dir: pathlib.Path, env: dict[str, str]) -> str:
    """Run LOAD with a pseudo-terminal as stderr; what it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD, str(db_dir), "150000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_true_draws_a_bar_on_a_terminal(tmp_path: pathlib.Path) -> None:
    text = run_on_terminal(tmp_path / "xterm", dict(os.environ, TERM="xterm"))
    # The terminal turns the final "\n" into "\r\n".
    lines = [ln for ln in text.replace("\x1b[K", "").replace("\n", "").split("\r") if ln]
    encoded = [ln for ln in lines if ln.endswith(" rows encoded")]
    written = [ln for ln in lines if ln.endswith(" rows written")]
    assert encoded and written, text[-2000:]
    assert all(ln.startswith("put_arrow: [") for ln in encoded + written)
    assert encoded[-1].endswith("100.0% 150,000/150,000 rows encoded")
    assert written[0].endswith("0.0% 0/150,000 rows written")
    assert lines.index(encoded[-1]) < lines.index(written[0])
    assert lines[-1].startswith("put_arrow: 150,000 rows written in "), lines[-3:]
    assert text.endswith("\n")
    dumb = run_on_terminal(tmp_path / "dumb", dict(os.environ, TERM="dumb"))
    assert dumb == ""


def test_the_bar_keeps_its_total_and_never_passes_it() -> None:
    from weir._arrow import LoadProgressBar

    bar = LoadProgressBar(sys.stderr)
    assert bar.line("encode", 50, 200) == (
        "put_arrow: [#######                       ]  25.0% 50/200 rows encoded"
    )
    assert "200/200" in bar.line("encode", 500, 200)
    assert bar.line("encode", 7, None) == "put_arrow: 7 rows encoded"
    assert (
        bar.line("write", 0, 200)
        == "put_arrow: [                              ]   0.0% 0/200 rows written"
    )
    assert bar.line("done", 200, 200).startswith("put_arrow: 200 rows written in ")
