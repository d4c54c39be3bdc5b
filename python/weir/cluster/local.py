"""A throwaway Redis Cluster on loopback ports, for tests, benchmarks and
trying weir.cluster on one machine (Debian's redis-server and redis-cli)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
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
    durable: bool = False,
) -> subprocess.Popen[bytes]:
    """A ``server`` (redis-server) process on loopback ``port`` with
    ``options`` added and its output in ``log_path`` (discarded when None);
    wait for it with :func:`wait_for_redis`, end it with
    :func:`stop_redis_server`. It saves nothing to disk unless ``durable``:
    then every write is in its append-only file, fsynced, before the reply
    (``appendfsync always``), so a ``kill -9`` loses nothing."""
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
                "yes" if durable else "no",
                "--appendfsync",
                "always" if durable else "everysec",
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
    to disk unless ``durable`` (then each node keeps an fsynced append-only
    file, so a node can be killed and restarted without losing a write:
    :meth:`restart`). :meth:`pause` and :meth:`resume` stop and continue a
    node (SIGSTOP, SIGCONT) the way a stalled machine would.
    ``node_timeout_ms`` is the cluster's node timeout: a node silent for
    longer is marked failed, and the cluster refuses commands until it is
    back (these clusters have no replicas to fail over to)."""

    def __init__(
        self,
        nodes: int = 3,
        workdir: str | Path | None = None,
        *,
        durable: bool = False,
        node_timeout_ms: int = 5000,
    ) -> None:
        if nodes < 3:
            raise ClusterError("a Redis Cluster needs at least 3 masters")
        self.nodes = nodes
        self.durable = durable
        self.node_timeout_ms = node_timeout_ms
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
        self._server, self._cli = server, cli
        try:
            for port in self.ports:
                self._procs.append(self._start_node(port))
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
            self.wait_ok(30)
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int) -> subprocess.Popen[bytes]:
        assert self._workdir is not None
        d = self._workdir / str(port)
        d.mkdir(parents=True, exist_ok=True)
        return start_redis_server(
            self._server,
            port,
            d,
            d / "redis.log",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            durable=self.durable,
        )

    def wait_ok(self, timeout: float) -> None:
        """Wait until every node reports ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    out = subprocess.run(
                        [self._cli, "-p", str(port), "cluster", "info"],
                        capture_output=True,
                        timeout=5,
                    ).stdout
                except subprocess.TimeoutExpired:
                    out = b""
                if b"cluster_state:ok" in out:
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"the redis cluster did not reach cluster_state:ok within {timeout:g} s"
                    )
                time.sleep(0.1)

    def pid(self, node: int) -> int:
        """The process id of node ``node`` (0-based)."""
        return self._procs[node].pid

    def pause(self, node: int) -> None:
        """Stop node ``node`` (SIGSTOP): it keeps its connections and
        answers nothing until :meth:`resume`."""
        os.kill(self._procs[node].pid, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        """Continue a node stopped by :meth:`pause` (SIGCONT)."""
        os.kill(self._procs[node].pid, signal.SIGCONT)

    def restart(self, node: int, *, kill: bool = True, down_for: float = 0.0) -> None:
        """Kill node ``node`` (SIGKILL, or SIGTERM with ``kill=False``),
        leave it down ``down_for`` seconds, start it again on the same port
        and directory (it rejoins the cluster from its nodes.conf and, if
        the cluster is ``durable``, reloads its data) and wait until it
        answers. Without ``durable`` its data is lost."""
        proc = self._procs[node]
        os.kill(proc.pid, signal.SIGCONT)
        if kill:
            proc.kill()
        else:
            proc.terminate()
        proc.wait(30)
        time.sleep(down_for)
        port = self.ports[node]
        # The old process's port can take a moment to be free again.
        deadline = time.monotonic() + 30
        while True:
            self._procs[node] = self._start_node(port)
            if wait_for_redis(port, self._procs[node], timeout=30):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"redis cluster node on port {port} did not restart")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused node cannot exit
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
