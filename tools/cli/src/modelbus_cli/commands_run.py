"""``modelbus run``: start the local stack, optionally with sample traffic, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

from modelbus_cli.demo import run_demo
from modelbus_cli.endpoints import Endpoints, forget
from modelbus_cli.stack import Stack


def cmd_run(args: argparse.Namespace) -> int:
    providers = tuple(args.providers.split(",")) if args.providers else ("openai",)
    workdir = Path(args.workdir)
    stack = Stack(workdir, providers=providers)
    stopping = False

    def on_signal(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("starting broker, Redis, simulator and services…", flush=True)
        stack.start()
        Endpoints(stack.bootstrap, stack.redis_url, stack.database_url).save(workdir)
        print(f"  broker     {stack.bootstrap}\n  redis      {stack.redis_url}\n"
              f"  simulator  {stack.simulator_url}\n  audit db   {stack.database_url}")
        for name, url in stack.health.items():
            print(f"  {name:<16} {url}/metrics")
        print(f"  logs       {workdir / 'logs'}", flush=True)
        if not args.no_demo:
            _demo(stack)
        print("\nmodelbus is running; Ctrl-C stops every process it started.", flush=True)
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping…", flush=True)
        stack.stop()
        forget(workdir)
    return 0


def _demo(stack: Stack) -> None:
    from modelbus_audit.cli import show

    responses = asyncio.run(run_demo(stack.bootstrap))
    ok = next((r for r in responses if r["status"] == "ok"), None)
    if ok:
        time.sleep(1.0)  # let audit catch up with the response event
        print(f"\nlineage of {ok['request_id']}:")
        print(asyncio.run(show(ok["request_id"], url=stack.database_url)))
