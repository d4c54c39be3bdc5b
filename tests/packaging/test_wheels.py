"""The wheels `make wheel` builds: each installs into a fresh venv of its
own CPython without a compiler, links lz4 and zstd statically (no NEEDED
entry for them, and it works with the system's liblz4/libzstd hidden), is
tagged manylinux, and reads and writes DBs with every codec, including DBs
written by a development build that uses the system's shared codec
libraries. Also: the licence and metadata in the wheel and the sdist."""

from __future__ import annotations

import email.parser
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

import weir
from conftest import DIST, ROOT, WHEEL_VERSIONS, find_python, run

#: The wheels `make wheel` built here (see conftest.WHEEL_VERSIONS).
VERSIONS = WHEEL_VERSIONS
#: What a manylinux extension may link dynamically (glibc's own libraries).
GLIBC_LIBS = {
    "libc.so.6",
    "libpthread.so.0",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
CODECS = ("none", "lz4", "zstd")
ROWS = 3000

WRITE_AND_CHECK = r"""
import ctypes, json, os, sys
import weir

mode, root = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3])
value = lambda i: (b"value-%06d-" % i) * 20
out = {"build_info": weir.build_info()}
if mode == "write":
    for codec in ("none", "lz4", "zstd"):
        with weir.DB(os.path.join(root, codec), compression=codec) as db:
            for i in range(rows):
                db.put(b"key-%06d" % i, value(i))
            db.flush()
else:
    for codec in ("none", "lz4", "zstd"):
        with weir.DB(os.path.join(root, codec)) as db:
            got = [db.get(b"key-%06d" % i) for i in range(rows)]
        bad = [i for i in range(rows) if got[i] != value(i)]
        assert not bad, f"{codec}: {len(bad)} wrong values, first at {bad[0]}"
    out["read"] = list(("none", "lz4", "zstd"))
if os.environ.get("EXPECT_CODECS_HIDDEN"):
    hidden = {}
    for lib in ("liblz4.so.1", "libzstd.so.1"):
        try:
            ctypes.CDLL(lib)
            hidden[lib] = False
        except OSError:
            hidden[lib] = True
    out["hidden"] = hidden
print(json.dumps(out))
"""


def wheel_for(version: str) -> pathlib.Path:
    tag = "cp" + version.replace(".", "")
    found = sorted(DIST.glob(f"weirdb-*-{tag}-{tag}-*.whl"))
    if not found:
        pytest.fail(f"no {tag} wheel in {DIST}: run `make wheel` (WHEEL_PYTHONS={version})")
    return found[-1]


def system_codec_files() -> list[str]:
    """The real files of the system's liblz4.so.1 and libzstd.so.1."""
    out = run(["ldconfig", "-p"]).stdout
    files = set()
    for line in out.splitlines():
        name = line.strip().split(" ", 1)[0]
        if name in ("liblz4.so.1", "libzstd.so.1") and "=>" in line:
            files.add(os.path.realpath(line.split("=>", 1)[1].strip()))
    return sorted(files)


def hidden_codecs_cmd(cmd: list[str]) -> list[str]:
    """``cmd`` in a private mount namespace where the system's shared lz4
    and zstd libraries are replaced by an empty file."""
    files = system_codec_files()
    assert files, "ldconfig knows no liblz4.so.1/libzstd.so.1 to hide"
    mounts = " && ".join(f"mount --bind /dev/null {f}" for f in files)
    quoted = " ".join("'" + c.replace("'", "'\\''") + "'" for c in cmd)
    return ["unshare", "-m", "sh", "-c", f"{mounts} && exec {quoted}"]


@pytest.mark.parametrize("version", VERSIONS)
def test_wheel_installs_and_runs_every_codec_without_system_codecs(
    version: str, tmp_path: pathlib.Path
) -> None:
    import json

    wheel = wheel_for(version)
    assert "manylinux" in wheel.name, f"{wheel.name} is not tagged manylinux"
    py = find_python(version)
    assert py, f"CPython {version} is not installed; it built {wheel.name}"
    venv = tmp_path / "venv"
    run([py, "-m", "venv", str(venv)])
    vpy = str(venv / "bin" / "python")
    # --only-binary: nothing may be compiled on the way in.
    run([vpy, "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel)])

    site = run([vpy, "-c", "import weir, os; print(os.path.dirname(weir.__file__))"]).stdout
    exts = sorted(pathlib.Path(site.strip()).glob("_weir*.so"))
    assert len(exts) == 1, exts
    needed = {
        line.split("[", 1)[1].rstrip("]")
        for line in run(["readelf", "-d", str(exts[0])]).stdout.splitlines()
        if "(NEEDED)" in line
    }
    assert not [n for n in needed if "lz4" in n or "zstd" in n], needed
    assert needed <= GLIBC_LIBS, f"links more than glibc: {needed - GLIBC_LIBS}"

    # DBs written by this development build (system liblz4/libzstd, shared).
    dev_dbs = tmp_path / "dev"
    dev_dbs.mkdir()
    run([sys.executable, "-c", WRITE_AND_CHECK, "write", str(dev_dbs), str(ROWS)])
    wheel_dbs = tmp_path / "wheel"
    wheel_dbs.mkdir()
    env = dict(os.environ, EXPECT_CODECS_HIDDEN="1")
    for mode, where in (("read", dev_dbs), ("write", wheel_dbs), ("read", wheel_dbs)):
        proc = run(
            hidden_codecs_cmd([vpy, "-c", WRITE_AND_CHECK, mode, str(where), str(ROWS)]), env=env
        )
        out = json.loads(proc.stdout)
        assert out["hidden"] == {"liblz4.so.1": True, "libzstd.so.1": True}, out
        assert "compression: none lz4 zstd" in out["build_info"], out["build_info"]
        assert "WARNING" not in out["build_info"]
    # ... and the development build reads what the wheel wrote.
    run([sys.executable, "-c", WRITE_AND_CHECK, "read", str(wheel_dbs), str(ROWS)])

    status = subprocess.run(
        hidden_codecs_cmd([vpy, "-m", "weir", "--require-codecs"]), capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert "lz4 yes, zstd yes" in status.stdout


def _metadata(text: str) -> email.message.Message:
    return email.parser.Parser().parsestr(text)


def test_wheels_carry_the_licence_and_metadata(built_wheels: list[pathlib.Path]) -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    for wheel in built_wheels:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
            assert zf.read(f"{dist_info}/licenses/LICENSE").decode() == licence
            # The statically linked codecs' licences travel with them.
            for bundled in ("lz4-LICENSE.txt", "zstd-LICENSE.txt"):
                assert f"{dist_info}/licenses/{bundled}" in names, (wheel.name, bundled)
            assert b"BSD" in zf.read(f"{dist_info}/licenses/lz4-LICENSE.txt")
            meta = _metadata(zf.read(f"{dist_info}/METADATA").decode())
        assert meta["License-Expression"] == "Apache-2.0", wheel.name
        assert meta["Author"] == "weir developers"
        assert "key-value store" in (meta["Keywords"] or "")
        classifiers = meta.get_all("Classifier") or []
        assert "Programming Language :: Python :: 3.13" in classifiers
        assert not [c for c in classifiers if c.startswith("License ::")], (
            "PEP 639: no licence classifiers"
        )
        # No URL unless there is a real one to name.
        assert not meta.get_all("Project-URL") and not meta["Home-page"]


def test_sdist_has_the_licence_and_no_build_leftovers(built_sdist: pathlib.Path) -> None:
    with tarfile.open(built_sdist) as tf:
        names = tf.getnames()
        top = names[0].split("/")[0]
        pkg_info = tf.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        meta = _metadata(pkg_info.read().decode())
        licence = tf.extractfile(f"{top}/LICENSE")
        assert licence is not None and licence.read().decode() == (ROOT / "LICENSE").read_text()
    assert meta["License-Expression"] == "Apache-2.0"
    # dist/ held the wheels when the sdist was made (make wheel builds them first).
    assert any(DIST.glob("*.whl"))
    leftovers = [
        n
        for n in names
        if n.endswith((".whl", ".so", ".pyc"))
        or n.split("/")[1:2] in (["dist"], ["build"], [".venv"])
        or (len(n.split("/")) > 1 and n.split("/")[1].startswith(("build-", ".venv-")))
    ]
    assert not leftovers, leftovers[:10]
    for needed in (
        "CMakeLists.txt",
        "include/weir.h",
        "python/weir/_weir.c",
        "cmake/weir.pc.in",
        # what `make wheel` and `make test` need from an unpacked sdist
        "scripts/build-wheels.sh",
        "scripts/install-deps.sh",
        "Makefile",
    ):
        assert f"{top}/{needed}" in names, needed


def test_sdist_holds_exactly_the_tracked_files(built_sdist: pathlib.Path) -> None:
    """Nothing untracked (wheels in dist/, build trees, caches) gets in, and
    no tracked file is left out by an exclude pattern. Needs the git
    checkout the sdist was made from (make test-packaging runs in one)."""
    tracked = run(["git", "-C", str(ROOT), "ls-files", "-z"]).stdout.split("\0")
    with tarfile.open(built_sdist) as tf:
        members = [m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()]
    extra = sorted(set(members) - set(tracked) - {"PKG-INFO"})
    missing = sorted(set(tracked) - set(members) - {""})
    assert not extra, f"the sdist holds untracked files: {extra[:10]}"
    assert not missing, f"the sdist lacks tracked files: {missing[:10]}"


def test_dev_build_matches_the_wheel_version(project_version: str) -> None:
    assert weir.__version__ == project_version
