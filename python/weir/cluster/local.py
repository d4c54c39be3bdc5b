"""A throwaway Redis Cluster on loopback ports, for tests, benchmarks and
trying weir.cluster on one machine (Debian's redis-server and redis-cli)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ._redis import ClusterError

__all__ = [
    "LocalRedisCluster",
    "redis_ping",
    "start_redis_server",
    "start_worker",
    "stop_redis_server",
    "wait_for_redis",
]


def _port_pair_free(port: int) -> bool:
    # A cluster node also listens on its bus port, port + 10000.
    for p in (port, port + 10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def redis_ping(port: int) -> bool:
    """Whether a Redis server answers PING on loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(
    server: str,
    port: int,
    data_dir: str | os.PathLike[str],
    log_path: str | os.PathLike[str] | None,
    *options: str,
) -> subprocess.Popen[bytes]:
    """A ``server`` (redis-server) process on loopback ``port`` that saves
    nothing to disk, with ``options`` added and its output in ``log_path``
    (discarded when None); wait for it with :func:`wait_for_redis`, end it
    with :func:`stop_redis_server`."""
    with open(log_path if log_path is not None else os.devnull, "wb") as log:
        return subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                *options,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                os.fspath(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_for_redis(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> bool:
    """Wait until the server ``proc`` answers PING on ``port``; False if it
    exited or ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if redis_ping(port):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return False


def stop_redis_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server from :func:`start_redis_server`: SIGTERM, then SIGKILL
    after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LocalRedisCluster:
    """``with LocalRedisCluster(3) as url:`` starts ``nodes`` redis-server
    masters with cluster mode on free loopback ports, joins them with
    ``redis-cli --cluster create`` and stops them on exit. Nothing is saved
    to disk (this is for tests and benchmarks, not for durable jobs)."""

    def __init__(self, nodes: int = 3, workdir: str | Path | None = None) -> None:
        if nodes < 3:
            raise ClusterError("a Redis Cluster needs at least 3 masters")
        self.nodes = nodes
        self._workdir = Path(workdir) if workdir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ports: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def __enter__(self) -> str:
        self.start()
        return self.url

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise ClusterError(
                "redis-server and redis-cli are needed (Debian: apt-get install redis-server; "
                "scripts/install-deps.sh does it)"
            )
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="weir-redis-cluster-")
            self._workdir = Path(self._tmp.name)
        rng = random.Random(time.monotonic_ns())
        while len(self.ports) < self.nodes:
            p = rng.randrange(20000, 45000)
            if p not in self.ports and _port_pair_free(p):
                self.ports.append(p)
        try:
            for port in self.ports:
                d = self._workdir / str(port)
                d.mkdir(parents=True, exist_ok=True)
                self._procs.append(
                    start_redis_server(
                        server,
                        port,
                        d,
                        d / "redis.log",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    )
                )
            for port, proc in zip(self.ports, self._procs, strict=True):
                if not wait_for_redis(port, proc):
                    raise ClusterError(f"redis cluster node on port {port} did not start")
            made = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *[f"127.0.0.1:{p}" for p in self.ports],
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=60,
            )
            if made.returncode != 0:
                raise ClusterError(f"redis-cli --cluster create failed: {made.stderr!r}")
            deadline = time.monotonic() + 30
            for port in self.ports:
                while (
                    b"cluster_state:ok"
                    not in subprocess.run(
                        [cli, "-p", str(port), "cluster", "info"], capture_output=True, timeout=10
                    ).stdout
                ):
                    if time.monotonic() > deadline:
                        raise ClusterError("the redis cluster did not reach cluster_state:ok")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in self._procs:
            stop_redis_server(proc)
        self._procs = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def start_worker(
    url: str,
    job_module: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str],
    worker_id: str,
    log_path: str | os.PathLike[str],
    *,
    lease_ms: int = 6000,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A ``weir-worker`` process (this interpreter, ``-m weir.cluster
    worker``) with its output in ``log_path`` and ``env`` added to the
    environment; the caller waits for it or kills it."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "weir.cluster",
                "worker",
                os.fspath(job_module),
                "--redis",
                url,
                "--work-dir",
                os.fspath(work_dir),
                "--snapshot-dir",
                os.fspath(snapshot_dir),
                "--id",
                worker_id,
                "--lease-ms",
                str(lease_ms),
            ],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
