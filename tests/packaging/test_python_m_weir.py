"""`python -m weir`: the version, the build line and the codecs, as text or
JSON; quiet when its reader goes away."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import PYTHON, run


def test_prints_version_build_and_codecs(project_version: str) -> None:
    out = run([PYTHON, "-m", "weir"]).stdout
    assert f"weirdb {project_version}, engine {project_version}" in out
    assert "build:    weir " in out and "compression: none lz4 zstd" in out
    assert "codecs:   none yes, lz4 yes, zstd yes" in out


def test_json_and_version(project_version: str) -> None:
    info = json.loads(run([PYTHON, "-m", "weir", "--json"]).stdout)
    assert info["package_version"] == info["engine_version"] == project_version
    assert info["codecs"] == {"none": True, "lz4": True, "zstd": True}
    assert run([PYTHON, "-m", "weir", "--version"]).stdout.strip() == project_version
    assert subprocess.run([PYTHON, "-m", "weir", "--require-codecs"]).returncode == 0


def test_closed_pipe_is_not_an_error() -> None:
    # `python -m weir | head -0`, made deterministic: the reading end is
    # closed before weir writes, so every write fails with EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "weir", "--json"], stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_bad_option_is_a_usage_error() -> None:
    proc = subprocess.run([PYTHON, "-m", "weir", "--nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: python -m weir" in proc.stderr
