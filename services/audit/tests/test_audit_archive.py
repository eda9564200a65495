"""The archive, on SQLite and PostgreSQL, against an in-process S3 server (moto): closed days
are written as Parquet with a manifest chained in ``audit_archives`` and then leave the live
store (PostgreSQL: their partitions are dropped); the live chains still verify across the
gap; ``audit query`` answers over archive and live store together (a team filter finds the
team's rows of both); ``verify --archive`` finds altered and missing files and records."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from modelbus_audit import archive, cli, partitions
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.archive_verify import verify_archive
from modelbus_audit.query import run_query
from modelbus_audit.tables import audit_archives
from modelbus_runtime.signing import KeyRing
from modelbus_testing.s3 import moto_s3
from sqlalchemy import func, select, text, update

RING = KeyRing.parse("k1:" + "a" * 32)
DAY1_TEAM, DAY2_TEAM = "blue", "red"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LIVE = T0 + timedelta(days=9)
TODAY = (T0 + timedelta(days=10)).date()
ARCHIVE_AFTER_DAYS = 2  # day 1 and day 2 are closed, the live day is not


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def target(s3_endpoint, monkeypatch) -> ArchiveTarget:
    bucket = f"customer-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_BUCKET", bucket)
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("MODELBUS_SIGNING_KEYS", "k1:" + "a" * 32)
    found = ArchiveTarget(bucket, "audit", s3_endpoint, "us-east-1", "test-key-id",
                          "test-secret")
    found.client.create_bucket(Bucket=bucket)
    return found


@pytest.fixture
def filled(store, new_flow):
    async def fill():
        day1 = new_flow(f"a1-{uuid.uuid4().hex[:6]}", T0, team=DAY1_TEAM)
        live1 = new_flow(f"l1-{uuid.uuid4().hex[:6]}", LIVE, team=DAY1_TEAM)
        day2 = new_flow(f"a2-{uuid.uuid4().hex[:6]}", T0 + timedelta(days=1), team=DAY2_TEAM)
        live2 = new_flow(f"l2-{uuid.uuid4().hex[:6]}", LIVE, team=DAY2_TEAM)
        for flow in (day1, live1, day2, live2):
            assert await store.write(flow.records()) == 6
        await partitions.maintain(store.engine, today=TODAY)
        return day1, live1, day2, live2

    return fill


async def _partition_days(store) -> set:
    async with store.engine.connect() as connection:
        return set(await connection.run_sync(partitions.days))


async def test_closed_days_are_archived_then_dropped_and_the_chains_still_verify(
        store, filled, target):
    day1, *_ = await filled()
    pg = store.engine.dialect.name == "postgresql"
    if pg:  # the rows of days without a partition were moved out of the default partition
        assert {T0.date(), T0.date() + timedelta(days=1), LIVE.date()} <= await _partition_days(
            store)
        async with store.engine.begin() as connection:
            held = await connection.execute(text(f"SELECT count(*) FROM {partitions.DEFAULT}"))
            assert held.scalar_one() == 0
            empty = T0.date() - timedelta(days=5)
            await connection.run_sync(lambda sync: partitions.create(sync, empty))

    done = await archive.archive_closed(store.engine, target, ARCHIVE_AFTER_DAYS, RING,
                                        today=TODAY)

    assert [(d.day, d.rows) for d in done] == [(T0.date(), 6), (T0.date() + timedelta(1), 6)]
    assert await store.count() == 12  # the two live flows
    assert await store.lineage(day1.request_id) == []
    if pg:  # dropped as partitions, not deleted row by row
        days = await _partition_days(store)
        assert T0.date() not in days and T0.date() + timedelta(days=1) not in days
        assert LIVE.date() in days and empty not in days  # an empty day: dropped, no record
    keys = [o["Key"] for o in target.client.list_objects_v2(Bucket=target.bucket)["Contents"]]
    assert f"audit/events/date={T0.date()}/tenant=acme/part-00000001.parquet" in keys
    assert f"audit/manifests/date={T0.date()}/manifest-00000001.json" in keys
    report = await store.verify(full=True)
    assert report.ok, report.describe()
    assert report.rows_checked == 12
    assert (await verify_archive(store.engine, target, RING)).ok
    # nothing left to archive: a second round is a no-op
    assert await archive.archive_closed(store.engine, target, ARCHIVE_AFTER_DAYS, RING,
                                        today=TODAY) == []


async def test_a_team_query_over_archive_and_live_store_finds_the_teams_rows(
        store, filled, target):
    day1, live1, day2, _ = await filled()
    await archive.archive_closed(store.engine, target, ARCHIVE_AFTER_DAYS, RING, today=TODAY)

    columns, rows = await run_query(
        store.engine, target,
        f"SELECT request_id, kind FROM events WHERE req_team = '{DAY1_TEAM}' "
        "ORDER BY event_time, id")

    assert columns == ["request_id", "kind"]
    assert sorted({r[0] for r in rows}) == sorted([day1.request_id, live1.request_id])
    assert len(rows) == 12  # request, 2 tasks, 2 results, response of each
    assert {r[1] for r in rows} == {"request", "task", "result", "response"}
    # the dropped day still answers: its costs come from the Parquet archive
    _, archived = await run_query(
        store.engine, target, "SELECT count(*), sum(cost_usd) FROM archived_events "
        f"WHERE request_id = '{day2.request_id}'")
    assert archived[0][0] == 6 and archived[0][1] > 0
    _, payloads = await run_query(  # the stored JSON, archived (day 2) and live alike
        store.engine, target, "SELECT payload FROM events WHERE kind = 'result' AND part_id = 0 "
        f"AND request_id IN ('{day2.request_id}', '{live1.request_id}')")
    assert [json.loads(p)["attempts"][0]["status_code"] for (p,) in payloads] == [429, 429]
    text_out = await cli.query(
        f"SELECT req_team, count(*) AS n FROM events WHERE req_team = '{DAY2_TEAM}' "
        "GROUP BY req_team", url=store.url)
    assert DAY2_TEAM in text_out and "12" in text_out and "1 rows" in text_out


async def test_verify_archive_finds_a_tampered_and_a_missing_file(store, filled, target):
    await filled()
    done = await archive.archive_closed(store.engine, target, ARCHIVE_AFTER_DAYS, RING,
                                        today=TODAY)
    tampered = target.file_key(done[0].day, "acme", done[0].seq)
    data = target.client.get_object(Bucket=target.bucket, Key=tampered)["Body"].read()
    target.client.put_object(Bucket=target.bucket, Key=tampered, Body=data[:-9] + b"x" * 9)
    missing = target.file_key(done[1].day, "acme", done[1].seq)
    target.client.delete_object(Bucket=target.bucket, Key=missing)

    report = await verify_archive(store.engine, target, RING)

    assert not report.ok
    assert report.records == 2 and report.files == 2
    assert any(tampered in p and "altered" in p for p in report.problems), report.problems
    assert any(missing in p and "missing" in p for p in report.problems), report.problems
    ok, text_out = await cli.verify(url=store.url, archive=True)
    assert not ok and "archive TAMPERED" in text_out and tampered in text_out
    with pytest.raises(Exception, match="does not match its manifest"):
        await run_query(store.engine, target, "SELECT count(*) FROM events")


async def test_verify_archive_finds_an_altered_record_and_a_cut_chain(store, filled, target):
    await filled()
    await archive.archive_closed(store.engine, target, ARCHIVE_AFTER_DAYS, RING, today=TODAY)
    async with store.engine.begin() as connection:
        await connection.execute(update(audit_archives).where(audit_archives.c.seq == 1)
                                 .values(rows=5))
    report = await verify_archive(store.engine, target, RING)
    assert any("seq 1" in p and "altered" in p for p in report.problems), report.problems

    async with store.engine.begin() as connection:
        await connection.execute(update(audit_archives).where(audit_archives.c.seq == 1)
                                 .values(rows=6))
        await connection.execute(audit_archives.delete().where(audit_archives.c.seq == 2))
        left = await connection.execute(select(func.count()).select_from(audit_archives))
        assert left.scalar_one() == 1
    report = await verify_archive(store.engine, target, RING)
    assert [p for p in report.problems if "checkpoint" in p], report.problems


async def test_incremental_verify_starts_from_a_checkpoint_whose_row_was_archived(
        store, new_flow, target):
    from modelbus_audit.store import AuditStore

    signing = await AuditStore.open(store.url, ring=RING)
    try:
        day1 = new_flow(f"c1-{uuid.uuid4().hex[:6]}", T0, team=DAY1_TEAM)
        await signing.write(day1.records())
        assert await signing.checkpoint() > 0  # heads at day 1's last rows
        for flow in (new_flow(f"c2-{uuid.uuid4().hex[:6]}", LIVE),
                     new_flow(f"c3-{uuid.uuid4().hex[:6]}", LIVE)):
            await signing.write(flow.records())
        await archive.archive_closed(signing.engine, target, ARCHIVE_AFTER_DAYS, RING,
                                     today=TODAY)
        assert await signing.lineage(day1.request_id) == []  # the checkpointed rows are gone

        report = await signing.verify()

        assert report.ok, report.describe()
        assert report.from_checkpoints > 0 and report.rows_checked == 12
        async with signing.engine.begin() as connection:  # a live row altered: still found
            await connection.execute(text(
                "UPDATE audit_events SET cost_usd = 9 WHERE kind = 'response'"))
        assert not (await signing.verify()).ok
    finally:
        await signing.close()


def test_the_archive_credentials_never_show(monkeypatch):
    from modelbus_audit.settings import AuditSettings

    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_BUCKET", "customer-bucket")
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    monkeypatch.setenv("MODELBUS_AUDIT_ARCHIVE_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
    settings = AuditSettings()
    found = ArchiveTarget.from_settings(settings)
    assert found is not None and found.secret_access_key == "wJalrXUtnFEMI-secret"
    for shown in (str(found), repr(found), repr(settings), str(settings.model_dump())):
        assert "wJalrXUtnFEMI-secret" not in shown
    assert "AKIAEXAMPLEKEYID" not in repr(found) + str(found)
    assert str(found) == "s3://customer-bucket/modelbus-audit"
    monkeypatch.delenv("MODELBUS_AUDIT_ARCHIVE_BUCKET")
    assert ArchiveTarget.from_settings(AuditSettings()) is None


async def test_the_modelbus_cli_archives_queries_and_verifies_the_archive(store, filled,
                                                                           target):
    """``modelbus audit archive|query|verify --archive`` as an operator runs them (the
    archive settings come from the environment, as in the audit's Deployment)."""
    day1, live1, *_ = await filled()

    def modelbus(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "modelbus_cli.main", "audit", *args,
             "--database-url", store.url], check=False, capture_output=True, text=True,
            timeout=300)

    archived = modelbus("archive", "--after-days", "1")
    assert archived.returncode == 0, archived.stderr
    assert "3 days archived to s3://" in archived.stdout  # every day is long closed
    queried = modelbus("query", f"SELECT count(*) AS n FROM events WHERE req_team = '{DAY1_TEAM}'",
                       "--json")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout.strip().splitlines()[-1])["n"] == \
        len(day1.records()) + len(live1.records())
    verified = modelbus("verify", "--archive")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = target.client.list_objects_v2(Bucket=target.bucket)["Contents"]
    key = next(o["Key"] for o in listed if o["Key"].endswith(".parquet"))
    target.client.put_object(Bucket=target.bucket, Key=key, Body=b"not the archived file")
    tampered = modelbus("verify", "--archive")
    assert tampered.returncode == 1 and "archive TAMPERED" in tampered.stdout
