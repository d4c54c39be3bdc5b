"""Every example in README.md and docs/*.md runs as written.

The test extracts every fenced code block of those documents and runs it.
The rules, which the documents are written to:

* A document runs in a temporary directory of its own (its *work
  directory*), with ``HOME`` pointing at another temporary directory (the
  caches under ``XDG_CACHE_HOME`` stay the user's), and with the ``weir``
  tool (build/weir) and this interpreter's ``bin/`` (python3, pip,
  weir-worker) first on ``PATH``. Its blocks run in document order, and
  the files one block writes are there for the next. Examples therefore
  use relative paths (``example-db``, not ``/tmp/example-db`` or
  ``/var/lib/...``): they run wherever the reader is.
* ``python`` blocks of one document run in order in one fresh interpreter,
  in one namespace, like a session that follows the document: a block may
  use the names an earlier block of the same document defined. Top-level
  ``await`` is not Python, so async examples call ``asyncio.run``.
* ``sh`` blocks run with ``bash -e -o pipefail`` in the work directory;
  shell variables do not carry over from one block to the next (files do).
* Transcripts (``console`` blocks, and unlabelled blocks whose first line
  starts with ``$ ``): each ``$ command`` runs with bash in the work
  directory and must exit 0 (a transcript shows a failing command by
  ending it with ``; echo $?``); the lines after it, up to the next ``$ ``,
  are its output, stdout and stderr together as a terminal shows them,
  compared exactly, except that a line ``...`` stands for any number of
  lines.
* ``c`` blocks must compile as C11 and as C++ (weir.h promises both).
* Any other block must carry a mark saying what to do with it.

Marks are an HTML comment on the line right before the opening fence;
several may share one comment, separated by ``;`` (a reason may contain
``;`` too: only a ``;`` followed by a mark's name separates):

``<!-- not run: REASON -->``
    a synopsis, a signature, a byte layout, a diagram, sample output, or a
    command the tests must not run (``make test`` itself); the reason is
    required.
``<!-- file: PATH -->``
    the block is the content of the file PATH (relative to the work
    directory): it is written there, not run.
``<!-- run in: repository -->``
    an ``sh`` block that a reader runs in a clone of weir (a build, an
    install) runs in the repository root instead of the work directory.
``<!-- output varies: REASON -->``
    a transcript whose output is not reproducible (timings): its commands
    run and must succeed, their output is not compared.
``<!-- needs: redis -->``
    the block talks to Redis at ``redis://localhost:6379``: the test starts a
    real redis-server of the document's own, on a free port, and runs the
    block with that address replaced by the server's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WEIR_TOOL = ROOT / "build" / "weir"
#: The address Redis examples are written against; see ``needs: redis``.
DOC_REDIS = "localhost:6379"

FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
MARK = re.compile(r"^<!--\s*(.*?)\s*-->$")
KNOWN_MARKS = {"not run", "file", "run in", "output varies", "needs"}
SHELLS = {"sh", "bash", "shell"}

#: Seconds a block may take. The repository blocks of README.md build the
#: C library and the wheels (make wheel) the first time they run.
PYTHON_TIMEOUT = 600
SHELL_TIMEOUT = 1800


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """skip, file, python, sh, transcript or c; '' if unclassified."""
        if "not run" in self.marks:
            return "skip"
        if "file" in self.marks:
            return "file"
        if self.lang == "python":
            return "python"
        if self.lang in SHELLS:
            return "sh"
        if self.lang == "console" or (not self.lang and self.text.lstrip().startswith("$ ")):
            return "transcript"
        if self.lang == "c":
            return "c"
        return ""


def parse_marks(comment: str, where: str) -> dict[str, str]:
    marks: dict[str, str] = {}
    # A ";" separates marks only where a mark's name follows: reasons may
    # contain semicolons.
    names = "|".join(re.escape(k) for k in KNOWN_MARKS)
    for part in re.split(rf";\s*(?=(?:{names})\s*:?)", comment):
        key, _, value = part.partition(":")
        key, value = key.strip(), value.strip()
        if key not in KNOWN_MARKS:
            raise ValueError(f"{where}: unknown mark {key!r} (known: {sorted(KNOWN_MARKS)})")
        marks[key] = value
    return marks


def parse(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if end == len(lines):
            raise ValueError(f"{doc}:{i + 1}: unterminated code block")
        where = f"{doc.relative_to(ROOT)}:{i + 1}"
        mark = MARK.match(lines[i - 1].strip()) if i > 0 else None
        marks = parse_marks(mark.group(1), where) if mark else {}
        blocks.append(Block(doc, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n", marks))
        i = end + 1
    return blocks


ALL_BLOCKS = {doc: parse(doc) for doc in DOCUMENTS}


def doc_id(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


# ---- the rules themselves --------------------------------------------------------


@pytest.mark.parametrize("doc", DOCUMENTS, ids=doc_id)
def test_every_block_is_run_or_says_why_not(doc: Path) -> None:
    for block in ALL_BLOCKS[doc]:
        assert block.kind, (
            f"{block.where}: a ```{block.lang} block that is neither python, sh, a transcript "
            "nor C: mark it <!-- not run: why --> or <!-- file: PATH --> (see this test's "
            "docstring)"
        )
        if block.kind == "skip":
            assert block.marks["not run"], f"{block.where}: 'not run' needs a reason"
        if "run in" in block.marks:
            assert block.marks["run in"] == "repository" and block.kind == "sh", block.where
        if "output varies" in block.marks:
            assert block.kind == "transcript" and block.marks["output varies"], block.where
        if "needs" in block.marks:
            assert block.marks["needs"] == "redis", block.where
            assert DOC_REDIS in block.text, f"{block.where}: needs redis but names no {DOC_REDIS}"


def test_the_parser_sees_the_marks() -> None:
    readme = ALL_BLOCKS[ROOT / "README.md"]
    kinds = [b.kind for b in readme]
    assert "c" not in kinds and kinds.count("file") == 2  # example.c and its CMakeLists.txt
    assert any(b.kind == "skip" for b in readme)
    assert parse_marks("not run: a synopsis; needs: redis", "x") == {
        "not run": "a synopsis",
        "needs": "redis",
    }
    with pytest.raises(ValueError, match="unknown mark"):
        parse_marks("skip: because", "x")


# ---- C --------------------------------------------------------------------------


C_BLOCKS = [
    b
    for blocks in ALL_BLOCKS.values()
    for b in blocks
    if b.lang == "c" or (b.kind == "file" and b.marks["file"].endswith(".c"))
]


@pytest.mark.parametrize("block", C_BLOCKS, ids=lambda b: b.where)
@pytest.mark.parametrize(
    "compiler", [["cc", "-std=c11"], ["c++", "-x", "c++", "-std=c++11"]], ids=["c", "c++"]
)
def test_c_example_compiles(block: Block, compiler: list[str], tmp_path: Path) -> None:
    src = tmp_path / "example.c"
    src.write_text(block.text)
    exe = shutil.which(compiler[0])
    assert exe, f"{compiler[0]} is not installed (scripts/install-deps.sh installs build-essential)"
    proc = subprocess.run(
        [
            exe,
            *compiler[1:],
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(ROOT / "include"),
            "-c",
            str(src),
            "-o",
            str(tmp_path / "example.o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{block.where} does not compile as {compiler[0]}:\n{proc.stderr}"


# ---- running a document ------------------------------------------------------------

#: Runs the python blocks of one document: one block per line of JSON on
#: stdin, executed in one namespace; one result line per block on the file
#: descriptor given as argv[1]. Started with -c, so the work directory is
#: on sys.path as in an interactive session.
RUNNER = r"""
import json, os, sys, traceback
results = os.fdopen(int(sys.argv[1]), "w")
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
for line in sys.stdin:
    block = json.loads(line)
    try:
        exec(compile(block["code"], block["where"], "exec"), namespace)
        outcome = {"ok": True}
    except BaseException:
        outcome = {"ok": False, "error": traceback.format_exc()}
    sys.stdout.flush()
    sys.stderr.flush()
    results.write(json.dumps(outcome) + "\n")
    results.flush()
"""


class DocumentRun:
    """The state of one document's run: its directories, environment, log,
    and the interpreter its python blocks share."""

    def __init__(self, doc: Path, tmp: Path, redis_address: str | None) -> None:
        self.doc = doc
        self.work = tmp / "work"
        self.home = tmp / "home"
        self.work.mkdir()
        self.home.mkdir()
        self.log = tmp / "output.log"
        self.redis_address = redis_address
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        # The caches stay the user's (pip's, zig's under ~/.cache): only
        # speed depends on them, and make wheel would otherwise rebuild its
        # toolchain's caches from nothing on every run.
        env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        env["HOME"] = str(self.home)
        env["PATH"] = os.pathsep.join(
            [str(WEIR_TOOL.parent), str(Path(sys.executable).parent), env.get("PATH", "")]
        )
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env = env
        self.python: subprocess.Popen[str] | None = None
        self.results_fd = -1

    def source(self, block: Block) -> str:
        if "needs" in block.marks:
            assert self.redis_address
            return block.text.replace(DOC_REDIS, self.redis_address)
        return block.text

    def output_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def run(self, block: Block) -> None:
        kind = block.kind
        if kind == "skip":
            return
        if kind == "file":
            path = self.work / block.marks["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.source(block))
        elif kind == "python":
            self.run_python(block)
        elif kind == "sh":
            self.run_shell(block)
        elif kind == "transcript":
            self.run_transcript(block)
        # c: compiled by test_c_example_compiles; a C example is run through
        # the sh blocks that build it.

    def run_python(self, block: Block) -> None:
        if self.python is None:
            read_fd, write_fd = os.pipe()
            with open(self.log, "a") as log:
                self.python = subprocess.Popen(
                    [sys.executable, "-c", RUNNER, str(write_fd)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.work,
                    env=self.env,
                    pass_fds=(write_fd,),
                    text=True,
                )
            os.close(write_fd)
            self.results_fd = read_fd
        assert self.python.stdin is not None
        request = {"code": self.source(block), "where": block.where}
        self.python.stdin.write(json.dumps(request) + "\n")
        self.python.stdin.flush()
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.results_fd], [], [], PYTHON_TIMEOUT)
            assert ready, f"{block.where}: still running after {PYTHON_TIMEOUT} s"
            chunk = os.read(self.results_fd, 1 << 16)
            assert chunk, f"{block.where}: the interpreter died:\n{self.output_tail()}"
            line += chunk
        outcome = json.loads(line)
        assert outcome["ok"], f"{block.where} failed:\n{outcome['error']}\n{self.output_tail()}"

    def run_shell(self, block: Block) -> None:
        cwd = ROOT if block.marks.get("run in") == "repository" else self.work
        with open(self.log, "a") as log:
            proc = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", self.source(block)],
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=SHELL_TIMEOUT,
            )
        assert proc.returncode == 0, (
            f"{block.where} exited {proc.returncode} (in {cwd}):\n{self.output_tail()}"
        )

    def run_transcript(self, block: Block) -> None:
        compare = "output varies" not in block.marks
        for command, expected in transcript(self.source(block)):
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=SHELL_TIMEOUT,
            )
            got = proc.stdout.decode("utf-8", errors="replace")
            with open(self.log, "a") as log:
                log.write(f"$ {command}\n{got}")
            assert proc.returncode == 0, (
                f"{block.where}: `{command}` exited {proc.returncode}:\n{got}"
            )
            if compare:
                assert output_matches(got, expected), (
                    f"{block.where}: `{command}` printed\n{got}\ninstead of\n" + "\n".join(expected)
                )

    def close(self) -> None:
        if self.python is not None:
            assert self.python.stdin is not None
            self.python.stdin.close()
            try:
                self.python.wait(timeout=60)
            finally:
                if self.python.poll() is None:
                    self.python.kill()
                    self.python.wait()
                os.close(self.results_fd)


def transcript(text: str) -> list[tuple[str, list[str]]]:
    """[(command, expected output lines)] of a ``$ ``-prompted transcript."""
    steps: list[tuple[str, list[str]]] = []
    lines = text.rstrip("\n").split("\n")
    for line in lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    # A blank line between two commands' outputs is layout, not output.
    return [(cmd, out[:-1] if out and out[-1] == "" else out) for cmd, out in steps]


def output_matches(got: str, expected: list[str]) -> bool:
    """Exact, line by line, where a line "..." matches any number of lines."""
    pattern = "".join(
        r"(?:.*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, got) is not None


def test_transcript_parsing_and_matching() -> None:
    steps = transcript("$ a\none\ntwo\n\n$ b\n$ c\nx\n")
    assert steps == [("a", ["one", "two"]), ("b", []), ("c", ["x"])]
    assert output_matches("one\ntwo\n", ["one", "two"])
    assert not output_matches("one\ntwo\n", ["one"])
    assert output_matches("a\nb\nc\nd\n", ["a", "...", "d"])
    assert output_matches("a\nd\n", ["a", "...", "d"])
    assert not output_matches("a\nb\n", ["a", "...", "d"])
    assert output_matches("", [])


RUNNABLE = [doc for doc in DOCUMENTS if any(b.kind not in ("skip", "c") for b in ALL_BLOCKS[doc])]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A redis-server of this document's own (so no other test's keys can
    meet its job's); yields its host:port."""
    from weir.cluster.local import start_redis_server, stop_redis_server, wait_for_redis

    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed: run scripts/install-deps.sh (make deps)"
    tmp.mkdir()
    for _attempt in range(3):
        port = free_port()
        proc = start_redis_server(exe, port, tmp, tmp / f"redis-{port}.log")
        if wait_for_redis(port, proc):
            try:
                yield f"127.0.0.1:{port}"
            finally:
                stop_redis_server(proc)
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    pytest.fail(f"redis-server did not start on a free port (logs in {tmp})")


@pytest.mark.parametrize("doc", RUNNABLE, ids=doc_id)
def test_document_examples_run(doc: Path, tmp_path: Path) -> None:
    blocks = ALL_BLOCKS[doc]
    if any(b.kind in ("sh", "transcript") for b in blocks):
        assert WEIR_TOOL.exists(), f"{WEIR_TOOL} is missing: build the C tool first (make build)"
    with contextlib.ExitStack() as stack:
        redis_address = None
        if any("needs" in b.marks for b in blocks):
            redis_address = stack.enter_context(redis_server(tmp_path / "redis"))
        run = DocumentRun(doc, tmp_path, redis_address)
        stack.callback(run.close)
        for block in blocks:
            run.run(block)


def test_the_cli_command_table_lists_every_command() -> None:
    """docs/CLI.md's table of commands names each command `weir --help` lists."""
    assert WEIR_TOOL.exists(), f"{WEIR_TOOL} is missing: build the C tool first (make build)"
    usage = subprocess.run(
        [str(WEIR_TOOL), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    commands = re.findall(r"^  ([a-z][a-z-]*)\s{2,}", usage.split("Commands:")[1], re.M)
    table = re.findall(r"^\| `([a-z-]+)` +\|", (ROOT / "docs" / "CLI.md").read_text(), re.M)
    assert len(commands) >= 14 and sorted(table) == sorted(commands), (commands, table)
