"""``modelbus replay`` and ``modelbus shadow report``: what a candidate policy would do.

  modelbus replay --policy candidate.yaml [--since T] [--until T] [--tenant X] [--team Y]
                  [--sample N] [--json] [--html out.html] [--details out.jsonl] [--from-topic]
                  [--execute N --budget-usd X]
      routes the requests recorded in the audit store under the candidate, calling no
      provider (:mod:`modelbus_router.replay`); progress on stderr; a table (or JSON) on
      stdout; a self-contained HTML page with plots; one JSON line per request with
      ``--details``. With ``--execute`` a sample of N requests the candidate serves is also
      sent to the candidate's models under a budget of its own
      (:mod:`modelbus_cli.replay_execute`).
  modelbus shadow report [--since T] [--until T] [--json]
      summarises the shadow decisions a router with ``MODELBUS_SHADOW_POLICY_PATH`` published
      on ``modelbus.decisions.shadow.v1`` (only events signed by the router role count).

Wire into ``main.py`` with ``commands_replay.register(sub)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from modelbus_cli import replay_execute
from modelbus_cli.endpoints import resolve


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _progress(total: int):
    started = time.monotonic()

    def show(done: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        print(f"\rreplayed {done}/{total} requests ({rate:,.0f}/s)", end="", file=sys.stderr,
              flush=True)

    return show


async def run_replay(args: argparse.Namespace, details=None) -> dict:
    from modelbus_router.policy import load_policy
    from modelbus_router.replay import replay
    from modelbus_router.replay.audit_source import AuditSource, Window
    from modelbus_router.replay.html import render

    replay_execute.check(args)
    policy = load_policy(args.policy)
    url = resolve(args.workdir, database_url=args.database_url).database_url
    if not url:
        raise SystemExit("replay: no audit store (--database-url, DATABASE_URL or modelbus run)")
    audit = AuditSource(url, Window(since=args.since, until=args.until, tenant=args.tenant,
                                    team=args.team, sample=args.sample))
    source = audit
    if args.from_topic:
        from modelbus_router.replay.topic_source import TopicSource
        from modelbus_runtime.settings import RuntimeSettings

        bootstrap = resolve(args.workdir, bootstrap=args.bootstrap).bootstrap
        source = TopicSource({**RuntimeSettings().kafka_client_options(),
                              "bootstrap_servers": bootstrap}, audit)
    sampled = replay_execute.sampler(args)
    try:
        progress = _progress(await source.count())
        report = await replay(source.batches(), policy, progress=progress, details=details,
                              observe=sampled.offer if sampled else None,
                              limits=not args.no_limits)
        print(file=sys.stderr)
        if sampled is not None:
            report.counterfactual = await replay_execute.execute(args, policy, audit, sampled)
    finally:
        await audit.close()
    report.skipped = audit.skipped + getattr(source, "unrecorded", 0)
    out = report.as_json()
    if args.html:
        Path(args.html).write_text(render(out))
        print(f"wrote {args.html}", file=sys.stderr)
    print(json.dumps(out, indent=2) if args.json else report.table())
    return out


def cmd_replay(args: argparse.Namespace) -> int:
    with open(args.details, "w") if args.details else contextlib.nullcontext() as details:
        asyncio.run(run_replay(args, details))
    return 0


async def shadow_summary(bootstrap: str, ring, since=None, until=None):
    """Every verified shadow decision on the topic, folded into a summary as it is read."""
    from modelbus_router.shadow_report import ShadowSummary
    from modelbus_runtime.signing import Unauthenticated, verify
    from modelbus_schemas.shadow import ShadowDecisionEvent
    from modelbus_schemas.topics import DECISIONS_SHADOW, writer_roles
    from pydantic import ValidationError

    from modelbus_cli.dlq import read_dlq

    summary = ShadowSummary(since=since, until=until)
    rejected = 0

    def fold(record) -> bool:  # read_dlq keeps what this returns True for: keep nothing
        nonlocal rejected
        try:
            verify(ring, topic=record.topic, key=record.key, value=record.value,
                   headers=record.headers, allowed_roles=writer_roles(DECISIONS_SHADOW))
            summary.add(ShadowDecisionEvent.model_validate_json(record.value))
        except (Unauthenticated, ValidationError):
            rejected += 1
        return False

    await read_dlq(bootstrap, [DECISIONS_SHADOW], want=fold)
    return summary, rejected


def _ring(args: argparse.Namespace):
    from modelbus_runtime.signing import load_ring

    return load_ring(*replay_execute.ring_source(args))


def cmd_shadow_report(args: argparse.Namespace) -> int:
    bootstrap = resolve(args.workdir, bootstrap=args.bootstrap).bootstrap
    summary, rejected = asyncio.run(shadow_summary(bootstrap, _ring(args), args.since,
                                                   args.until))
    out = {**summary.as_json(), "rejected_records": rejected}
    print(json.dumps(out, indent=2) if args.json else summary.table()
          + (f"\n{rejected} records not signed by the router were ignored" if rejected else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="route recorded requests under a candidate policy")
    replay.add_argument("--policy", required=True, help="the candidate policy (YAML)")
    replay.add_argument("--since", type=_time, help="recorded at or after (ISO 8601)")
    replay.add_argument("--until", type=_time, help="recorded before (ISO 8601)")
    replay.add_argument("--tenant")
    replay.add_argument("--team")
    replay.add_argument("--sample", type=int, help="replay about N requests, evenly spread")
    replay.add_argument("--json", action="store_true", help="the report as JSON")
    replay.add_argument("--html", help="write the report as a self-contained HTML page")
    replay.add_argument("--details", help="write one JSON line per request to this file")
    replay.add_argument("--database-url", help="the audit store (default: DATABASE_URL)")
    replay.add_argument("--from-topic", action="store_true", help=(
        "read the requests from modelbus.requests.v1 (whole text while the log holds it); "
        "only those the audit store also holds are replayed"))
    replay.add_argument("--bootstrap", help="Kafka bootstrap servers (--from-topic, --execute)")
    replay.add_argument("--no-limits", action="store_true", help=(
        "do not simulate the candidate's budgets and quotas over the recorded requests"))
    replay.add_argument("--workdir", default=".modelbus")
    replay_execute.register(replay)
    replay.set_defaults(func=cmd_replay)

    shadow = sub.add_parser("shadow", help="shadow routing").add_subparsers(
        dest="shadow_command", required=True)
    report = shadow.add_parser("report", help="agreement, cost and surface changes")
    report.add_argument("--since", type=_time)
    report.add_argument("--until", type=_time)
    report.add_argument("--json", action="store_true")
    report.add_argument("--bootstrap", help="Kafka bootstrap servers")
    report.add_argument("--signing-keys", help="key ring file to verify the router's signature")
    report.add_argument("--workdir", default=".modelbus")
    report.set_defaults(func=cmd_shadow_report)
