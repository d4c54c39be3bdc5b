"""The fraud-detection job of examples/fraud_detection.py as a scaled-out
job (weir.cluster): records are routed to partitions by ``user_id`` and
every worker runs the same per-user detector on the partitions it owns.

Run workers with::

    weir-worker examples/fraud_cluster.py --redis redis://127.0.0.1:7000 \\
        --snapshot-dir /shared/weir-snapshots

and feed them with :class:`weir.cluster.Producer` (``bench/bench_cluster.py``
does both, and tests/python/test_cluster.py kills and adds workers on the
way). ``WEIR_FRAUD_PARTITIONS`` sets the partition count (default 8).
"""

from __future__ import annotations

import os

from fraud_detection import OPERATOR, STATE, make_detector

from weir.cluster import Job
from weir.stream import Sink, Stream, ValueState


def build(stream: Stream, out: Sink) -> None:
    """Per user: update the running figures, emit an alert when flagged."""
    stream.key_by("user_id").process(make_detector(False), ValueState(STATE), name=OPERATOR).sink(
        out
    )


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


JOB = Job(
    name=os.environ.get("WEIR_FRAUD_JOB", "fraud"),
    partitions=_int_env("WEIR_FRAUD_PARTITIONS", 8),
    key="user_id",
    build=build,
    checkpoint_interval=float(os.environ.get("WEIR_FRAUD_CHECKPOINT_S", "0.5")),
    checkpoint_every=_int_env("WEIR_FRAUD_CHECKPOINT_EVERY", 20_000),
    snapshot_every=_int_env("WEIR_FRAUD_SNAPSHOT_EVERY", 10),
)

__all__ = ["JOB", "build"]
