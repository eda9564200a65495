"""``modelbus run``: start the local stack, optionally with sample traffic, until Ctrl-C.

The stack includes the OpenAI-compatible gateway, with an API key generated for the work
directory; the banner prints a ready-to-paste ``curl`` and ``openai`` SDK call with it, says
which provider is called for real (a key or address in the environment, see
:mod:`modelbus_cli.providers`) and which the simulator stands in for, and states the
embedded broker's limits. While running, a status line with the broker's resident memory is
printed every ``--status-every`` seconds and a warning when it passes ``--broker-warn-mb``
(:mod:`modelbus_cli.monitor`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

from modelbus_cli.demo import run_demo
from modelbus_cli.endpoints import Endpoints, forget
from modelbus_cli.monitor import BROKER_LIMITS, StackMonitor
from modelbus_cli.providers import real_providers
from modelbus_cli.stack import Stack

CHECK_EVERY_S = 5.0


def build_stack(args: argparse.Namespace, env=os.environ) -> Stack:
    providers = tuple(args.providers.split(",")) if args.providers else ("openai",)
    stack = Stack(Path(args.workdir), providers=providers,
                  real=real_providers(providers, env), gateway_port=args.gateway_port,
                  retention_s=args.retention_minutes * 60 if args.bounded else 0)
    stack.gateway_key = stack.local_api_key()
    return stack


def cmd_run(args: argparse.Namespace) -> int:
    stack = build_stack(args)
    workdir = stack.workdir
    stopping = False

    def on_signal(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("starting broker, Redis, simulator, services and gateway…", flush=True)
        stack.start()
        Endpoints(stack.bootstrap, stack.redis_url, stack.database_url).save(workdir)
        print(banner(stack), flush=True)
        if not args.no_demo:
            _demo(stack)
        print("\nmodelbus is running; Ctrl-C stops every process it started.", flush=True)
        monitor = StackMonitor(stack.group, warn_mb=args.broker_warn_mb)
        if stack.sweeper:
            monitor.advice = "lower --retention-minutes"
        next_check, next_line = 0.0, time.monotonic() + args.status_every
        while not stopping:
            time.sleep(0.5)
            now = time.monotonic()
            if stack.sweeper and stack.sweeper.due():
                sweep(stack.sweeper)
            if now >= next_check:
                snapshot = monitor.check()
                next_check = now + CHECK_EVERY_S
                if args.status_every and now >= next_line:
                    print(snapshot.line(), flush=True)
                    next_line = now + args.status_every
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping…", flush=True)
        stack.stop()
        forget(workdir)
    return 0


def sweep(sweeper) -> None:
    try:
        sweeper.sweep()
    except Exception as exc:  # noqa: BLE001 - the next pass tries again; say why once
        print(f"WARNING: broker retention pass failed: {type(exc).__name__}: {exc}", flush=True)


def banner(stack: Stack) -> str:
    lines = [f"  broker     {stack.bootstrap}", f"  redis      {stack.redis_url}",
             f"  simulator  {stack.simulator_url}", f"  audit db   {stack.database_url}"]
    lines.append("\nproviders:")
    for provider in stack.providers:
        real = stack.real.get(provider)
        how = real.describe() if real else f"simulator  {stack.simulator_url}"
        lines.append(f"  {provider:<11}{how}")
    if stack.real:
        lines.append("  (REAL providers are billed; the sample traffic calls them too — "
                     "`make run-quiet` sends none)")
    lines.append("\nhealth and metrics:")
    lines += [f"  {name:<16} {url}/metrics" for name, url in stack.health.items()]
    lines.append(f"  stack status     {stack.workdir / 'status.json'}")
    lines.append(f"  logs             {stack.workdir / 'logs'}")
    if "gateway" in stack.health:
        lines.append(gateway_examples(stack.health["gateway"] + "/v1", stack.gateway_key or ""))
    if stack.sweeper:
        lines.append(f"\nnote: bounded broker: S3 storage, records older than "
                     f"{stack.retention_s / 60:g} min deleted; slow (seconds per request, "
                     "a few requests/s), see README (\"The embedded broker's limits\").")
    elif not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        lines.append(f"\nnote: {BROKER_LIMITS}. For long runs: `make run-bounded`, see "
                     "README (\"The embedded broker's limits\").")
    return "\n".join(lines)


def gateway_examples(base_url: str, key: str) -> str:
    return f"""
gateway (OpenAI-compatible): {base_url}   API key: {key}
  curl {base_url}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "chat", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python3 -m uv run python - <<'EOF'
from openai import OpenAI
client = OpenAI(base_url="{base_url}", api_key="{key}")
reply = client.chat.completions.create(
    model="chat", messages=[{{"role": "user", "content": "Hello!"}}])
print(reply.choices[0].message.content)
EOF
  ("model" is a task of the routing policy: chat, summarize, classify, fact-check, …)"""


def _demo(stack: Stack) -> None:
    from modelbus_audit.cli import show

    responses = asyncio.run(run_demo(stack.bootstrap))
    ok = next((r for r in responses if r["status"] == "ok"), None)
    if ok:
        time.sleep(1.0)  # let audit catch up with the response event
        print(f"\nlineage of {ok['request_id']}:")
        print(asyncio.run(show(ok["request_id"], url=stack.database_url)))
