"""The ``modelbus`` command.

  modelbus run [--no-demo]          start broker, Redis, simulator, all services and the
                                    gateway (real providers where keys are set)
  modelbus audit show REQUEST_ID    print one request's lineage  [--json]
  modelbus audit search|report|export|purge|verify
                                    query, report, export and verify the audit store
  modelbus dlq list|inspect|redrive dead-letter records
  modelbus policy check|diff|show   validate a policy, compare two, the versions routers run
  modelbus replay --policy FILE     route recorded requests under a candidate policy
  modelbus shadow report            how a shadow policy's decisions compare with the live ones
"""

from __future__ import annotations

import argparse
import sys

from modelbus_schemas.topics import PROVIDERS

from modelbus_cli import commands_audit, commands_dlq, commands_policy, commands_replay


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="modelbus", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the local stack")
    run.add_argument("--no-demo", action="store_true", help="start without sample traffic")
    run.add_argument("--workdir", default=".modelbus", help="logs and SQLite audit store")
    run.add_argument("--providers", default=",".join(PROVIDERS),
                     help=f"workers to start, of {PROVIDERS}")
    run.add_argument("--gateway-port", type=int, default=8080,
                     help="the gateway's port (another free one when taken)")
    run.add_argument("--broker-warn-mb", type=float, default=1024.0,
                     help="warn when the embedded broker's resident memory passes this")
    run.add_argument("--status-every", type=float, default=300.0,
                     help="seconds between status lines (0: none)")
    run.add_argument("--bounded", action="store_true",
                     help="broker on local S3 storage with retention: flat memory, slow")
    run.add_argument("--retention-minutes", type=float, default=10.0,
                     help="with --bounded: how long the broker keeps records")
    run.set_defaults(func=_run)
    commands_audit.register(sub)
    commands_dlq.register(sub)
    commands_policy.register(sub)
    commands_replay.register(sub)
    return root


def _run(args: argparse.Namespace) -> int:
    from modelbus_cli.commands_run import cmd_run

    return cmd_run(args)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
