"""How the Python package builds from source: from a read-only tree, and
never silently without a codec (the build refuses unless told, and a
reduced build says so in weir.build_info() and `python -m weir`). Also the
CMake WARNING a C build without a codec prints."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import zipfile

from conftest import PYTHON, ROOT, run


def pip_wheel(out: pathlib.Path, *settings: str) -> subprocess.CompletedProcess[str]:
    cmd = [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out)]
    for s in settings:
        cmd += ["-C", s]
    return subprocess.run([*cmd, str(ROOT)], capture_output=True, text=True)


def unpack(wheel_dir: pathlib.Path, into: pathlib.Path) -> pathlib.Path:
    (wheel,) = wheel_dir.glob("weirdb-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(into)
    return into


def test_builds_from_a_read_only_source_tree(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "wheel"
    # A private mount namespace where the source tree is mounted read-only
    # (root ignores file modes, so chmod would prove nothing).
    script = (
        f"mount --bind {ROOT} {ROOT} && mount -o remount,bind,ro {ROOT} && "
        f"if touch {ROOT}/.weir-rw-probe 2>/dev/null; then echo 'tree is writable'; exit 3; fi && "
        f"cd {ROOT} && exec {PYTHON} -m pip wheel --no-deps --no-build-isolation -w {out} ."
    )
    run(["unshare", "-m", "sh", "-c", script])
    site = unpack(out, tmp_path / "site")
    info = run(
        [PYTHON, "-c", "import weir; print(weir.build_info())"],
        env=dict(os.environ, PYTHONPATH=str(site)),
        cwd=tmp_path,
    ).stdout
    assert "compression: none lz4 zstd" in info


def test_python_build_refuses_a_missing_codec_unless_allowed(tmp_path: pathlib.Path) -> None:
    refused = pip_wheel(
        tmp_path / "refused", "cmake.define.WEIR_WITH_ZSTD=OFF", f"build-dir={tmp_path}/b1"
    )
    assert refused.returncode != 0, "the Python build went ahead without zstd"
    text = refused.stdout + refused.stderr
    assert "Refusing to build" in text and "zstd" in text, text[-3000:]
    assert "WEIR_REQUIRE_CODECS=OFF" in text  # says how to allow it
    assert not list((tmp_path / "refused").glob("*.whl"))

    allowed = pip_wheel(
        tmp_path / "allowed",
        "cmake.define.WEIR_WITH_ZSTD=OFF",
        "cmake.define.WEIR_REQUIRE_CODECS=OFF",
        f"build-dir={tmp_path}/b2",
    )
    assert allowed.returncode == 0, (allowed.stdout + allowed.stderr)[-3000:]
    site = unpack(tmp_path / "allowed", tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=str(site))
    info = run(
        [PYTHON, "-c", "import weir; print(weir.build_info())"], env=env, cwd=tmp_path
    ).stdout
    assert "compression: none lz4)" in info
    assert "WARNING: built without zstd" in info and "cannot be opened" in info
    status = subprocess.run(
        [PYTHON, "-m", "weir", "--require-codecs"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert status.returncode == 1
    assert "lacks zstd" in status.stderr
    assert "zstd NO" in status.stdout


def _configure(tmp_path: pathlib.Path, name: str, *args: str) -> str:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is not installed (scripts/install-deps.sh)"
    proc = run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(tmp_path / name),
            "-DWEIR_BUILD_TESTS=OFF",
            "-DWEIR_BUILD_BENCH=OFF",
            *args,
        ]
    )
    return proc.stdout + proc.stderr


def test_c_build_warns_loudly_about_a_missing_codec(tmp_path: pathlib.Path) -> None:
    complete = _configure(tmp_path, "complete")
    assert "WITHOUT" not in complete and "CMake Warning" not in complete

    disabled = _configure(tmp_path, "disabled", "-DWEIR_WITH_LZ4=OFF")
    assert "CMake Warning" in disabled
    assert "WITHOUT lz4 (WEIR_WITH_LZ4=OFF)" in disabled

    # Not found, rather than switched off: an empty search root hides the
    # system's headers and libraries.
    missing = _configure(
        tmp_path,
        "missing",
        "-DCMAKE_FIND_ROOT_PATH=/nonexistent",
        "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY",
    )
    assert "CMake Warning" in missing
    assert "liblz4 not found" in missing and "libzstd not found" in missing

    cmake = shutil.which("cmake")
    assert cmake
    required = subprocess.run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(tmp_path / "required"),
            "-DWEIR_BUILD_TESTS=OFF",
            "-DWEIR_WITH_ZSTD=OFF",
            "-DWEIR_REQUIRE_CODECS=ON",
        ],
        capture_output=True,
        text=True,
    )
    assert required.returncode != 0 and "Refusing to build" in required.stderr
