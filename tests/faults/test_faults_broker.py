"""A broker SIGKILL in the middle of load, restarted on the same address ~2 s later with the
data it had: nothing accepted is lost, no request gets two different answers, lineage is
complete, no service exits.

The broker is a private tansu (never the session's: it is killed) whose storage engine is a
local S3 server (moto), so its records, topics and committed offsets survive the kill. The
load generator resends what the dead broker did not acknowledge; the services reconnect by
themselves. Without idempotent producers, a batch the broker stored but could not
acknowledge before dying is sent again, so the ledger may count identical copies of a
response (same event id, same content) as duplicates; consumers deduplicate them by id.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from modelbus_cli.processes import ProcessGroup, free_port, port_open, wait_for
from modelbus_cli.stack import start_broker, start_redis
from modelbus_testing.simulator import provider_calls, simulate

from tests.conftest import start_stack
from tests.faults.ledger import Recorder, check_lineage, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N, RATE = 200, 50.0
DOWN_S = 2.0
BUCKET, REGION = "tansu", "eu-west-2"
# tansu's object-store engine spends a fetch's max wait on its own storage calls and
# returns nothing for partitions it had no time left for: consumers must allow it time
SLOW_STORAGE_ENV = {"MODELBUS_FETCH_MAX_WAIT_MS": "500"}


@dataclass
class PersistentBroker:
    """A tansu broker on a fixed address whose data lives in a local S3 bucket."""

    group: ProcessGroup
    storage: str
    env: dict[str, str]
    bootstrap: str = ""

    def start(self) -> str:
        port = urlsplit(f"//{self.bootstrap}").port if self.bootstrap else None
        self.bootstrap = start_broker(self.group, self.storage, env=self.env, port=port)
        return self.bootstrap

    def kill(self) -> None:
        broker = next(c for c in reversed(self.group.children) if c.name == "broker")
        broker.kill()
        self.group.children.remove(broker)


def start_object_store(group: ProcessGroup) -> dict[str, str]:
    """A moto S3 server with an empty bucket; returns the environment tansu needs for it."""
    import boto3

    port = free_port()
    child = group.spawn("object-store",
                        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    wait_for(lambda: port_open("127.0.0.1", port), "moto S3 server", 30, child.proc)
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **credentials).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true"}


@pytest.fixture
def persistent_broker(tmp_path):
    group = ProcessGroup(tmp_path / "broker")
    try:
        broker = PersistentBroker(group, f"s3://{BUCKET}/", start_object_store(group))
        broker.start()
        yield broker
    finally:
        group.stop_all()


def answered_differently(rec: Recorder, ids: list[str]) -> list[str]:
    """Requests with two different responses. Identical copies of one response event (same
    event id, same content) are a batch the broker stored but could not acknowledge before
    it died, sent again by the producer; consumers deduplicate them by event id."""
    return [i for i in ids
            if len({json.dumps(r, sort_keys=True) for r in rec.responses.get(i, [])}) > 1]


async def test_broker_sigkill_mid_load_loses_nothing(persistent_broker, tmp_path,
                                                      record_report):
    broker = persistent_broker
    stack = start_stack(tmp_path / "stack", broker.bootstrap, start_redis(broker.group),
                        f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", env=SLOW_STORAGE_ENV)
    try:
        simulate(stack, "gpt-4o-mini", latency_ms=100)
        run = uuid.uuid4().hex[:6]
        ids = [f"broker-{run}-{i}" for i in range(N)]
        rec = Recorder(stack.bootstrap)
        await rec.start()
        # a send the dead broker does not acknowledge within 1 s fails and is sent again
        load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, RATE,
                                                   request_timeout_ms=1000))
        await asyncio.sleep(N / RATE / 2)
        await asyncio.to_thread(broker.kill)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(broker.start)
        delivery = await load
        await rec.wait(delivery.accepted, timeout=180)
        await rec.stop()
        report = tally(f"broker SIGKILL mid-load, back after {DOWN_S:.0f} s (S3 storage)",
                       delivery.accepted, rec)
        report.provider_calls = provider_calls(stack)
        twice = answered_differently(rec, delivery.accepted)
        report.notes.append(f"{delivery.resent} sends repeated by the load generator")
        if report.duplicates and not twice:
            report.notes.append("every duplicate is an identical copy of one response event "
                                "(stored by the broker, unacknowledged when it died, resent)")
        await check_lineage(stack.database_url, delivery.accepted, rec, report, timeout=60)
        record_report(report)
        exited = [name for name in stack.health if stack.child(name).proc.poll() is not None]

        assert delivery.resent > 0, "the load generator never saw the broker down"
        assert delivery.refused == [] and sorted(delivery.accepted) == sorted(ids)
        assert exited == [], f"services exited: {exited}"
        assert report.lost == 0, report.notes
        assert twice == [], f"requests answered twice, differently: {twice[:5]}"
        assert report.errors == 0
        assert report.lineage_incomplete == 0, report.notes
        # at most the calls in flight at the crash are repeated: rate x provider latency, x2
        assert report.provider_calls - N <= RATE * 0.1 * 2 + 5
    finally:
        stack.stop()
