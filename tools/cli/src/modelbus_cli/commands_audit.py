"""``modelbus audit``: show a lineage, search, report usage and cost, export, purge, verify,
archive closed days to the bucket and query the archive and the live store together (SQL).

Every command reads the audit store directly (``--database-url``, else ``DATABASE_URL``, else
the store a running ``modelbus run`` uses). Exports, ``verify`` (from the last signed
checkpoints; ``--full``: every row, chains in parallel processes) and ``verify
--against-broker`` (which reads every audited topic to its real end) print their progress to
stderr. Audit modules are imported inside the commands, so ``--help`` and ``show`` start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from modelbus_cli.endpoints import resolve

FILTERS = ("tenant", "team", "user", "task", "provider", "model", "data_class", "status", "kind",
           "request_id")


def _url(args: argparse.Namespace) -> str | None:
    return resolve(args.workdir, database_url=args.database_url).database_url


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _filters(args: argparse.Namespace):
    from modelbus_audit.queries import Filters

    values = {name: getattr(args, name) for name in FILTERS}
    return Filters(**values, since=args.since, until=args.until)


def cmd_show(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import show

    print(asyncio.run(show(args.request_id, url=_url(args), as_json=args.json,
                           tenant=args.tenant)))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import search

    print(asyncio.run(search(_filters(args), _url(args), args.limit, args.after, args.json)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import report

    print(asyncio.run(report(_filters(args), _url(args), args.json)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import export

    fmt = args.format or Path(args.output).suffix.lstrip(".") or "jsonl"
    started = datetime.now(UTC)

    def progress(rows: int) -> None:
        seconds = (datetime.now(UTC) - started).total_seconds()
        print(f"\rexported {rows} rows ({seconds:.1f}s)", end="", file=sys.stderr, flush=True)

    rows = asyncio.run(export(_filters(args), fmt, Path(args.output), _url(args),
                              args.metadata_only, args.limit, progress))
    print(f"\r{rows} rows written to {args.output} ({fmt})", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import purge

    rows, blobs = asyncio.run(purge(args.older_than_days, _url(args)))
    print(f"purged the text of {rows} rows and deleted {blobs} claim-checked blobs older "
          f"than {args.older_than_days} days")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import verify

    bootstrap = None
    if args.against_broker:
        bootstrap = resolve(args.workdir, bootstrap=args.bootstrap).bootstrap

    def progress(records: int, gaps: int, done: int, total: int) -> None:
        print(f"\rbroker: {records} records read, {gaps} missing, {done}/{total} partitions "
              "at their end", end="", file=sys.stderr, flush=True)

    def chain_progress(rows: int, done: int, total: int) -> None:
        print(f"\rchains: {done}/{total} verified, {rows} rows checked", end="",
              file=sys.stderr, flush=True)

    ok, text = asyncio.run(verify(url=_url(args), against_broker=bootstrap,
                                  progress=progress, quiet_s=args.quiet_seconds,
                                  full=args.full, workers=args.workers,
                                  chain_progress=chain_progress, archive=args.archive))
    print(file=sys.stderr)
    print(text)
    return 0 if ok else 1


def cmd_archive(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import archive

    print(asyncio.run(archive(args.after_days, _url(args))))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from modelbus_audit.cli import query

    print(asyncio.run(query(args.sql, _url(args), args.since, args.until, args.json)))
    return 0


def _add_filters(parser: argparse.ArgumentParser) -> None:
    for name in FILTERS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)
    parser.add_argument("--since", type=_time, default=None, help="ISO-8601, UTC if no zone")
    parser.add_argument("--until", type=_time, default=None, help="ISO-8601, exclusive")


def register(sub) -> None:
    audit = sub.add_parser("audit", help="query the audit store").add_subparsers(
        dest="audit_command", required=True)
    show = audit.add_parser("show", help="print one request's lineage")
    show.add_argument("request_id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--tenant", default=None,
                      help="the request's tenant (a request is tenant + request id)")
    show.set_defaults(func=cmd_show)
    search = audit.add_parser("search", help="events by tenant, team, user, model, time, ...")
    _add_filters(search)
    search.add_argument("--limit", type=int, default=50)
    search.add_argument("--after", default=None, help="the cursor a previous page printed")
    search.add_argument("--json", action="store_true", help="one JSON object per line")
    search.set_defaults(func=cmd_search)
    report = audit.add_parser("report", help="usage and cost by day, team and model")
    _add_filters(report)
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_report)
    export = audit.add_parser("export", help="write matching events as JSONL, CSV or Parquet")
    _add_filters(export)
    export.add_argument("output", help="file to write; the suffix picks the format")
    export.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None)
    export.add_argument("--metadata-only", action="store_true", help="leave out stored text")
    export.add_argument("--limit", type=int, default=None)
    export.set_defaults(func=cmd_export)
    purge = audit.add_parser("purge", help="retention: remove stored text older than N days")
    purge.add_argument("--older-than-days", type=float, required=True)
    purge.set_defaults(func=cmd_purge)
    verify = audit.add_parser("verify", help="verify the tamper-evident hash chains")
    verify.add_argument("--full", action="store_true",
                        help="check every row of every chain, not only since the last "
                        "signed checkpoints (and checkpoint the verified heads)")
    verify.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes that check chains in parallel with --full")
    verify.add_argument("--against-broker", action="store_true",
                        help="also check that every record of every audited topic was stored")
    verify.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers")
    verify.add_argument("--quiet-seconds", type=float, default=2.0,
                        help="a partition is at its end when nothing new came for this long")
    verify.add_argument("--archive", action="store_true",
                        help="also check every archived Parquet file against its manifest "
                        "and every manifest against the archive chain")
    verify.set_defaults(func=cmd_verify)
    archive = audit.add_parser("archive", help="write closed days to the archive bucket as "
                               "Parquet, then drop them from the live store")
    archive.add_argument("--after-days", type=int, required=True,
                         help="archive days that ended more than this many days ago")
    archive.set_defaults(func=cmd_archive)
    query = audit.add_parser("query", help="SQL (DuckDB) over the archive and the live "
                             "store: tables events, archived_events, live_events")
    query.add_argument("sql")
    query.add_argument("--since", type=_time, default=None,
                       help="load archived days from this time on (ISO-8601)")
    query.add_argument("--until", type=_time, default=None, help="ISO-8601, exclusive")
    query.add_argument("--json", action="store_true", help="one JSON object per line")
    query.set_defaults(func=cmd_query)
    for p in (show, search, report, export, purge, verify, archive, query):
        p.add_argument("--database-url", default=None)
        p.add_argument("--workdir", default=".modelbus")
