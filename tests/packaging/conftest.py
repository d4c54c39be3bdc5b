"""Shared helpers of the packaging tests (`make test-packaging`).

These tests install and use what weir ships: the wheels and sdist that
`make wheel` left in dist/ (WEIR_DIST overrides), the Python build from a
read-only tree, `python -m weir` and the demo. They run with the project's
.venv interpreter; the wheels are installed into fresh venvs of the
interpreter each was built for.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIST = pathlib.Path(os.environ.get("WEIR_DIST", ROOT / "dist"))


def find_python(version: str) -> str | None:
    """A CPython ``version`` ("3.12") interpreter: PATH, then pyenv, then /usr/bin."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    candidates.append(f"/usr/bin/python{version}")
    want = tuple(int(p) for p in version.split("."))
    for cand in candidates:
        if not cand or not os.access(cand, os.X_OK):
            continue
        probe = subprocess.run(
            [cand, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and tuple(map(int, probe.stdout.split())) == want:
            return cand
    return None


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure, fail the test with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc  # type: ignore[no-any-return]


def wheels() -> list[pathlib.Path]:
    return sorted(DIST.glob("weirdb-*.whl"))


@pytest.fixture(scope="session")
def built_wheels() -> list[pathlib.Path]:
    found = wheels()
    if not found:
        pytest.fail(f"no wheels in {DIST}: run `make wheel` first (make test-packaging does)")
    return found


@pytest.fixture(scope="session")
def built_sdist() -> pathlib.Path:
    found = sorted(DIST.glob("weirdb-*.tar.gz"))
    if not found:
        pytest.fail(f"no sdist in {DIST}: run `make wheel` first (make test-packaging does)")
    return found[-1]


@pytest.fixture(scope="session")
def project_version() -> str:
    import re

    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(weir VERSION ([0-9.]+)", text)
    assert m, "CMakeLists.txt has no project(weir VERSION x.y.z)"
    return m.group(1)


PYTHON = sys.executable
