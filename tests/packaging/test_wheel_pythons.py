"""Which CPython versions `make wheel` builds for (scripts/build-wheels.sh
--plan): every version pyproject.toml's classifiers name that is installed,
found on PATH, in pyenv's versions or in WHEEL_PYTHON_DIRS; a missing one is
skipped and said so, and fails the build only when WHEEL_PYTHONS names it.

Each case runs the script in a world of its own: PATH holds only the
commands it needs and the fake interpreters of the case, PYENV_ROOT and
WHEEL_PYTHON_DIRS point into the test's directory. A fake interpreter
answers the script's version probe as the real one would (exit 0: "I am
that version"; exit 1: a pyenv shim of an inactive version).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil

from conftest import ROOT, parse_plan, wheel_plan

SUPPORTED = re.findall(
    r'"Programming Language :: Python :: (3\.\d+)"', (ROOT / "pyproject.toml").read_text()
)


def fake_python(path: pathlib.Path, answers: bool) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {0 if answers else 1}\n")
    path.chmod(0o755)
    return str(path)


def world(tmp: pathlib.Path, **extra: str) -> dict[str, str]:
    """An environment whose PATH has the script's tools and tmp/bin only."""
    tools = tmp / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("sed", "paste", "uname", "dirname", "bash"):
        found = shutil.which(name)
        assert found, f"{name} is not installed"
        link = tools / name
        if not link.exists():
            link.symlink_to(found)
    (tmp / "bin").mkdir(exist_ok=True)
    env = {
        "PATH": f"{tmp / 'bin'}:{tools}",
        "HOME": str(tmp / "home"),
        "PYENV_ROOT": str(tmp / "pyenv"),
        "WHEEL_PYTHON_DIRS": str(tmp / "opt-python"),
    }
    env.update(extra)
    return env


def test_the_supported_versions_are_the_classifiers() -> None:
    assert SUPPORTED == ["3.11", "3.12", "3.13"]


def test_missing_versions_are_skipped_and_named(tmp_path: pathlib.Path) -> None:
    first, *rest = SUPPORTED
    on_path = fake_python(tmp_path / "bin" / f"python{first}", answers=True)
    # An inactive pyenv shim on PATH, and the real thing in pyenv's versions.
    fake_python(tmp_path / "bin" / f"python{rest[-1]}", answers=False)
    in_pyenv = fake_python(
        tmp_path / "pyenv" / "versions" / f"{rest[-1]}.4" / "bin" / f"python{rest[-1]}",
        answers=True,
    )
    proc = wheel_plan(world(tmp_path))
    assert proc.returncode == 0, proc.stderr
    plan = parse_plan(proc.stdout)
    missing = rest[:-1]
    assert plan == {first: on_path, **dict.fromkeys(missing), rest[-1]: in_pyenv}
    assert f"skipping CPython {' '.join(missing)}: not found" in proc.stderr
    assert f"building for {first} {rest[-1]}" in proc.stderr
    assert str(tmp_path / "pyenv" / "versions") in proc.stderr  # says where it looked


def test_wheel_python_dirs_are_searched(tmp_path: pathlib.Path) -> None:
    paths = {
        v: fake_python(tmp_path / "opt-python" / f"python{v}", answers=True) for v in SUPPORTED
    }
    proc = wheel_plan(world(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert parse_plan(proc.stdout) == paths
    assert "skipping" not in proc.stderr


def test_a_version_named_in_wheel_pythons_must_exist(tmp_path: pathlib.Path) -> None:
    first, second, *_ = SUPPORTED
    fake_python(tmp_path / "bin" / f"python{first}", answers=True)
    asked = wheel_plan(world(tmp_path, WHEEL_PYTHONS=f"{first} {second}"))
    assert asked.returncode == 1
    assert f"no CPython {second} found" in asked.stderr
    assert f'WHEEL_PYTHONS="{first} {second}" asks for it' in asked.stderr
    only = wheel_plan(world(tmp_path, WHEEL_PYTHONS=first))
    assert only.returncode == 0, only.stderr
    assert list(parse_plan(only.stdout)) == [first]
    assert "skipping" not in only.stderr


def test_no_interpreter_at_all_is_an_error(tmp_path: pathlib.Path) -> None:
    proc = wheel_plan(world(tmp_path))
    assert proc.returncode == 1
    assert "nothing to build" in proc.stderr
    assert parse_plan(proc.stdout) == dict.fromkeys(SUPPORTED)


def test_this_machine_builds_what_it_has() -> None:
    """The real plan covers every supported version and finds at least one
    (make test-packaging builds wheels for what it finds)."""
    proc = wheel_plan(dict(os.environ, WHEEL_PYTHONS=""))
    assert proc.returncode == 0, proc.stderr
    plan = parse_plan(proc.stdout)
    assert list(plan) == SUPPORTED
    assert any(plan.values())
