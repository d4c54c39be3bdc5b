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

from ._job import FencedStreamSink, Job, PartitionSource, Producer, load_job
from ._redis import ClusterError, FencedError, PartitionKeys, partition_of
from ._worker import Worker, job_status, restore_partition

__all__ = [
    "ClusterError",
    "FencedError",
    "FencedStreamSink",
    "Job",
    "PartitionKeys",
    "PartitionSource",
    "Producer",
    "Worker",
    "job_status",
    "load_job",
    "partition_of",
    "restore_partition",
]
