"""Shared helpers of the packaging tests (`make test-packaging`).

These tests install and use what weir ships: the wheels and sdist that
`make wheel` left in dist/ (WEIR_DIST overrides), the Python build from a
read-only tree, `python -m weir` and the demo. They run with the project's
.venv interpreter; the wheels are installed into fresh venvs of the
interpreter each was built for.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIST = pathlib.Path(os.environ.get("WEIR_DIST", ROOT / "dist"))


BUILD_WHEELS = ROOT / "scripts" / "build-wheels.sh"


def wheel_plan(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``scripts/build-wheels.sh --plan``: the interpreters `make wheel` uses."""
    return subprocess.run(
        ["bash", str(BUILD_WHEELS), "--plan"],
        capture_output=True,
        text=True,
        env=os.environ.copy() if env is None else env,
    )


def parse_plan(stdout: str) -> dict[str, str | None]:
    """The plan's "X.Y PATH" / "X.Y -" lines as {version: path or None}."""
    out: dict[str, str | None] = {}
    for line in stdout.splitlines():
        version, path = line.split(" ", 1)
        out[version] = None if path == "-" else path
    return out


#: What `make wheel` builds for here: the versions WHEEL_PYTHONS names, or
#: else every supported one whose interpreter build-wheels.sh finds (the
#: same lookup, so the tests expect exactly the wheels it built).
PLAN = parse_plan(wheel_plan().stdout)
WHEEL_VERSIONS = (
    os.environ["WHEEL_PYTHONS"].split()
    if os.environ.get("WHEEL_PYTHONS")
    else [v for v, path in PLAN.items() if path]
)


def find_python(version: str) -> str | None:
    """The CPython ``version`` ("3.12") interpreter build-wheels.sh uses."""
    return PLAN.get(version)


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
