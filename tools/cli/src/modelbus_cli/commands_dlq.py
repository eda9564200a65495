"""``modelbus dlq``: list, inspect and redrive dead-letter records."""

from __future__ import annotations

import argparse
import asyncio
import sys

from modelbus_schemas.topics import dlq_topic

from modelbus_cli.endpoints import resolve

# modelbus_cli.dlq (aiokafka, redis) is imported where a command runs, so `modelbus` starts
# without loading a Kafka client.


def _topics(args) -> list[str]:
    if not args.topic:
        from modelbus_cli.dlq import dlq_topics

        return dlq_topics()
    return [t if t.endswith(".dlq") else dlq_topic(t) for t in args.topic]


def _filter(args):
    from modelbus_cli.dlq import Filter

    return Filter(reason=args.reason, service=args.service, key=args.key, contains=args.contains)


def _read(bootstrap: str, topics: list[str], want=None,
          limit: int | None = None):
    """The matching records, or None after telling the user why the listing is incomplete."""
    from modelbus_cli.dlq import DlqReadStalled, Filter, read_dlq

    try:
        return asyncio.run(read_dlq(bootstrap, topics, want or Filter(), limit))
    except DlqReadStalled as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_list(args: argparse.Namespace) -> int:
    ends = resolve(args.workdir, bootstrap=args.bootstrap)
    records = _read(ends.bootstrap, _topics(args), _filter(args), args.limit)
    if records is None:
        return 2
    for record in records:
        print(record.summary())
    print(f"{len(records)} record(s)", file=sys.stderr)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    ends = resolve(args.workdir, bootstrap=args.bootstrap)
    records = _read(ends.bootstrap, [args.dlq_topic])
    if records is None:
        return 2
    match = [r for r in records if r.partition == args.partition and r.offset == args.offset]
    if not match:
        print("no such record", file=sys.stderr)
        return 1
    record = match[0]
    print(record.summary())
    for name, value in record.headers:
        print(f"  {name}: {value.decode('utf-8', 'replace')[:200]}")
    body = (record.value or b"")[:2000].decode("utf-8", "replace")
    print(f"  body ({len(record.value or b'')} bytes): {body}")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    ends = resolve(args.workdir, bootstrap=args.bootstrap, redis_url=args.redis_url)
    records = _read(ends.bootstrap, _topics(args), _filter(args), args.limit)
    if records is None:
        return 2
    if not records:
        print("nothing matches")
        return 0
    if not args.yes:
        for record in records:
            print("would redrive", record.summary())
        print(f"{len(records)} record(s); rerun with --yes to send them")
        return 0
    from modelbus_cli.dlq import redrive

    outcomes = asyncio.run(redrive(ends.bootstrap, ends.redis_url, records, args.force))
    for i, outcome in enumerate(outcomes, 1):
        mark = "sent" if outcome.sent else "skip"
        print(f"[{i}/{len(outcomes)}] {mark} {outcome.record.dlq_id}: {outcome.note}", flush=True)
    return 0


def register(sub) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter topics").add_subparsers(
        dest="dlq_command", required=True)
    for name, func, text in (("list", cmd_list, "list records"),
                             ("redrive", cmd_redrive, "send records back to their source")):
        p = dlq.add_parser(name, help=text)
        p.add_argument("--topic", action="append", help="source or DLQ topic (repeatable)")
        p.add_argument("--reason", help="schema, provider_terminal, retries_exhausted, …")
        p.add_argument("--service")
        p.add_argument("--key", help="request id")
        p.add_argument("--contains", help="substring of the error message")
        p.add_argument("--limit", type=int)
        p.set_defaults(func=func)
    inspect = dlq.add_parser("inspect", help="show one record with headers and body")
    inspect.add_argument("dlq_topic")
    inspect.add_argument("partition", type=int)
    inspect.add_argument("offset", type=int)
    inspect.set_defaults(func=cmd_inspect)
    redrive_p = dlq.choices["redrive"]
    redrive_p.add_argument("--yes", action="store_true", help="really send")
    redrive_p.add_argument("--force", action="store_true",
                           help="resend records whose earlier redrive was not confirmed")
    redrive_p.add_argument("--redis-url")
    for p in dlq.choices.values():
        p.add_argument("--bootstrap")
        p.add_argument("--workdir", default=".modelbus")
