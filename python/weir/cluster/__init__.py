"""weir.cluster: one streaming job across many worker processes and machines.

Redis does the parts a cluster manager would: a job's input is P partition
streams (records routed by a hash of their key), workers take partitions
through leases with fencing tokens, and each partition's checkpoints are
appended to a changelog stream, with periodic snapshots of its weir DB in a
shared directory, so any worker can take a partition over exactly where
the last owner's last checkpoint left it. One Redis server or a Redis
Cluster (every key of a partition shares one hash slot)::

    # jobs/fraud.py
    from weir.cluster import Job
    JOB = Job("fraud", partitions=8, key="user_id",
              build=lambda s, out: s.key_by("user_id").process(...).sink(out))

    $ weir-worker jobs/fraud.py --redis redis://10.0.0.5:7000 \\
          --work-dir /var/lib/weir --snapshot-dir /mnt/shared/weir-snapshots
    $ weir job status fraud --redis redis://10.0.0.5:7000

See docs/CLUSTER.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._job import FencedStreamSink, Job, PartitionSource, Producer, ProducerError, load_job
    from ._redis import ClusterError, FencedError, PartitionKeys, partition_of
    from ._worker import Worker, job_status, restore_partition

#: Where each public name lives. Imported on first use, so that
#: ``weir-worker`` and ``python -m weir.cluster`` can say what is missing
#: when redis-py is not installed instead of failing on import.
_HOME = {
    "FencedStreamSink": "._job",
    "Job": "._job",
    "PartitionSource": "._job",
    "Producer": "._job",
    "ProducerError": "._job",
    "load_job": "._job",
    "ClusterError": "._redis",
    "FencedError": "._redis",
    "PartitionKeys": "._redis",
    "partition_of": "._redis",
    "Worker": "._worker",
    "job_status": "._worker",
    "restore_partition": "._worker",
}

#: What ``import redis`` failing means for a user.
MISSING_REDIS = "weir.cluster needs redis-py, which is not installed: pip install 'weirdb[cluster]'"


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'weir.cluster' has no attribute {name!r}")
    try:
        module = importlib.import_module(home, __name__)
    except ModuleNotFoundError as e:
        if e.name == "redis" or (e.name or "").startswith("redis."):
            raise ModuleNotFoundError(MISSING_REDIS, name="redis") from e
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "ClusterError",
    "FencedError",
    "FencedStreamSink",
    "Job",
    "PartitionKeys",
    "PartitionSource",
    "Producer",
    "ProducerError",
    "Worker",
    "job_status",
    "load_job",
    "partition_of",
    "restore_partition",
]
