"""``modelbus replay --execute N --budget-usd X``: counterfactual execution of a sample.

Wires the CLI's endpoints and keys to :mod:`modelbus_router.replay.execute`. The tasks go to
the provider task topics signed as the **router** role: the workers accept a request's first
tasks from the router alone (:func:`modelbus_schemas.topics.writer_roles`), so the command
needs the services' signing ring (``--signing-keys``, ``MODELBUS_SIGNING_KEYS`` /
``MODELBUS_SIGNING_KEYS_FILE``, or ``<workdir>/signing.keys`` of a ``modelbus run`` stack) and
Redis (the run's budget scope). On Kubernetes, run it where the router's Secret and Kafka
principal are mounted (a Job beside the router), not on an operator's laptop.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from modelbus_cli.endpoints import resolve


def ring_source(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(inline ring, ring file) as a service would read them, the work directory's ring
    last."""
    inline = os.environ.get("MODELBUS_SIGNING_KEYS")
    path = getattr(args, "signing_keys", None) or os.environ.get("MODELBUS_SIGNING_KEYS_FILE")
    if not inline and not path and (Path(args.workdir) / "signing.keys").exists():
        path = str(Path(args.workdir) / "signing.keys")
    return inline, path


def check(args: argparse.Namespace) -> None:
    if args.execute is None:
        return
    if args.execute < 1:
        raise SystemExit("replay: --execute needs a positive number of requests")
    if args.budget_usd is None or args.budget_usd <= 0:
        raise SystemExit("replay: --execute calls providers: give the run a budget with "
                         "--budget-usd (a positive amount in USD)")


def sampler(args: argparse.Namespace):
    from modelbus_router.replay.counterfactual import Sampler

    if args.execute is None:
        return None
    args.run_id = args.run_id or uuid.uuid4().hex[:10]
    return Sampler(args.execute, args.run_id)


async def execute(args: argparse.Namespace, policy, audit, sampled) -> dict:
    """Execute the sampled requests; the counterfactual section of the report."""
    from modelbus_router.replay.counterfactual import Counterfactual, Run
    from modelbus_router.replay.execute import Executor
    from modelbus_runtime.errors import TransientInfraError
    from modelbus_runtime.redis import build_redis
    from modelbus_runtime.settings import RuntimeSettings

    ends = resolve(args.workdir, bootstrap=args.bootstrap, redis_url=args.redis_url)
    inline, path = ring_source(args)
    settings = RuntimeSettings(kafka_bootstrap_servers=ends.bootstrap, redis_url=ends.redis_url,
                               signing_keys=inline, signing_keys_file=path)
    run = Run(args.run_id, args.budget_usd)
    picks = sampled.sample()
    out = Counterfactual(run, sampled=len(picks), purged_not_executable=sampled.purged)
    originals = await audit.answers([(p.recorded.request.caller.tenant,
                                      p.recorded.request.request_id) for p in picks])
    redis = build_redis(settings)
    try:
        executor = Executor(settings, redis, policy, run, timeout_s=args.execute_timeout,
                            concurrency=args.concurrency,
                            progress=lambda line: print(f"\r{line}", end="", file=sys.stderr,
                                                        flush=True))
        await executor.execute(picks, originals, out)
        print(file=sys.stderr)
    except TransientInfraError as exc:  # Redis unreachable: no budget, so nothing more is sent
        raise SystemExit(f"replay --execute: stopped: {exc}") from None
    finally:
        await redis.aclose()
    return out.as_json()


def register(replay: argparse.ArgumentParser) -> None:
    replay.add_argument("--execute", type=int, metavar="N", help=(
        "call the candidate's models for N sampled requests it serves, through the workers, "
        "on a reply topic of the run's own (never the caller's); needs --budget-usd"))
    replay.add_argument("--budget-usd", type=float, help="the spend cap of --execute")
    replay.add_argument("--execute-timeout", type=float, default=120.0,
                        help="seconds to wait for each window's answers (default 120)")
    replay.add_argument("--concurrency", type=int, default=8,
                        help="requests executed at once (default 8)")
    replay.add_argument("--run-id", help="names the run's reply topic and budget scope "
                        "(default: random)")
    replay.add_argument("--redis-url", help="Redis of the stack (the run's budget scope)")
    replay.add_argument("--signing-keys", help="the services' signing ring file (--execute)")
