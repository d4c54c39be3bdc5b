"""weir.durable: files and directories published by rename, with fsyncs."""

from __future__ import annotations

import os
import pathlib
from typing import IO

import pytest

from weir.durable import fsync_dir, fsync_tree, partial_name, publish, publish_file


def test_publish_file_writes_the_whole_file_or_nothing(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "out.bin"
    publish_file(target, lambda f: f.write(b"all of it"))
    assert target.read_bytes() == b"all of it"
    assert os.listdir(tmp_path) == ["out.bin"]

    def fails(f: IO[bytes]) -> None:
        f.write(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        publish_file(tmp_path / "other.bin", fails)
    assert os.listdir(tmp_path) == ["out.bin"]  # no partial file, no target
    with pytest.raises(FileNotFoundError):
        publish_file(tmp_path / "missing-dir" / "x", lambda f: f.write(b"x"))


def test_publish_renames_a_tree_into_place(tmp_path: pathlib.Path) -> None:
    tmp = pathlib.Path(partial_name(tmp_path / "snap"))
    assert tmp.parent == tmp_path and tmp.name.startswith("snap.partial-")
    (tmp / "sub").mkdir(parents=True)
    (tmp / "sub" / "f").write_bytes(b"data")
    fsync_tree(tmp)
    publish(tmp, tmp_path / "snap")
    assert (tmp_path / "snap" / "sub" / "f").read_bytes() == b"data"
    assert not tmp.exists()
    other = tmp_path / "elsewhere"
    other.mkdir()
    publish(tmp_path / "snap", other / "snap")  # across directories: both fsync'd
    assert (other / "snap" / "sub" / "f").exists()
    fsync_dir(other)
    with pytest.raises(FileNotFoundError):
        publish(tmp_path / "gone", tmp_path / "x")
    with pytest.raises(NotADirectoryError):
        fsync_dir(other / "snap" / "sub" / "f")
