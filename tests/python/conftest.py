"""Fixtures shared by the Python tests: a real redis-server for the Redis
store backend, and factories for started store backends of every kind."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

#: Every store backend; the conformance suite runs each test on each.
BACKENDS = ("weir", "memory", "rocksdb", "redis")
#: Backends whose data outlives a stop()/start() of a new backend object.
PERSISTENT = ("weir", "rocksdb", "redis")
#: Backends that own a directory (and lock it).
PATH_BACKENDS = ("weir", "rocksdb")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, for the session.

    redis-server comes from scripts/install-deps.sh; it is a failure, not a
    skip, when it is missing. Nothing is saved to disk.
    """
    # Imported here, not at the top: weir.cluster pulls in redis-py, and the
    # tests that never touch Redis (the valgrind run among them) should not
    # depend on it importing.
    from weir.cluster.local import start_redis_server, stop_redis_server, wait_for_redis

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/install-deps.sh (make deps)")
    workdir = tmp_path_factory.mktemp("redis")
    last_log = ""
    for _attempt in range(3):
        port = _free_port()
        log_path = workdir / f"redis-{port}.log"
        proc = start_redis_server(exe, port, workdir, log_path)
        if wait_for_redis(port, proc):
            try:
                yield f"redis://127.0.0.1:{port}/0"
            finally:
                stop_redis_server(proc)
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        last_log = log_path.read_text(errors="replace")
    pytest.fail(f"redis-server did not start on a free port:\n{last_log}")


BackendFactory = Callable[..., Any]


@pytest.fixture
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[BackendFactory]:
    """``make(kind, **config_fields)`` -> an unstarted backend of ``kind``.

    weir and rocksdb get a directory under ``tmp_path`` (``path=`` picks
    another); redis gets the session's server and a namespace of its own
    (``options={"namespace": ...}`` to share one). Every backend made is
    stopped, and every Redis namespace cleared, at teardown.
    """
    from weir.stores import StoreBackendConfig, create_backend

    made: list[Any] = []
    namespaces: list[tuple[str, str]] = []
    default_ns = f"test-{uuid.uuid4().hex[:12]}"

    def make(kind: str, **fields: Any) -> Any:
        options = dict(fields.pop("options", None) or {})
        if kind == "redis":
            url = request.getfixturevalue("redis_url")
            options.setdefault("url", url)
            options.setdefault("namespace", default_ns)
            namespaces.append((url, options["namespace"]))
            path = fields.pop("path", None)
        else:
            path = fields.pop("path", tmp_path / f"{kind}-store")
        backend = create_backend(
            StoreBackendConfig(backend_type=kind, path=path, options=options, **fields)
        )
        made.append(backend)
        return backend

    yield make

    for backend in made:
        with contextlib.suppress(Exception):
            await backend.stop()
    if namespaces:
        import redis.asyncio

        for url, ns in set(namespaces):
            client = redis.asyncio.Redis.from_url(url)
            try:
                keys = [k async for k in client.scan_iter(match=f"{{{ns}}}*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each backend type in turn."""
    return str(request.param)


@pytest.fixture
async def backend(kind: str, make_backend: BackendFactory) -> AsyncIterator[Any]:
    """A started backend of each type in turn, with the default settings."""
    b = make_backend(kind)
    await b.start()
    yield b


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for a child Python that must import this same weir."""
    import weir

    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(weir.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    return env
