"""Where the CPU goes under load: every service sampled with py-spy while the pipeline runs at
one constant rate, each sample put in a category by the frame it was taken in.

On a fresh stack, after the same warm-up as the pipeline benchmark, the load generator runs at
``--rate`` for ``--seconds`` while py-spy records each modelbus process (Python frames and the
native code they call; idle waits left out). In the same window every process's CPU time is
metered, so a category's share of a process's samples becomes CPU-ms per request. The broker
and Redis are not Python and are shown whole.

Writes ``bench/results/profile.json``, ``profile.png`` (a stacked bar per process) and one
folded-stack file per service under ``bench/results/profile/`` for flame-graph tools
(``flamegraph.pl``, speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from cpu import CpuMeter
from loadgen import Pipeline
from pipeline_bench import on_fresh_stack, pct

RESULTS = Path(__file__).parent / "results"

# first match wins; tested against the innermost frame ("function (path:line)")
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("socket writes", ("StreamWriter.write", "StreamWriter.writelines", "_send_packed_command",
                       "http_writer.py")),
    ("event loop and sockets (uvloop)", ("Runner.run (", "uvloop")),
    ("asyncio machinery", ("asyncio/",)),
    ("Kafka client", ("aiokafka/",)),
    ("Redis client", ("redis/",)),
    ("validation and JSON", ("pydantic", "json/", "orjson")),
    ("HTTP client", ("aiohttp/", "yarl/", "multidict/", "httpx/", "httpcore/")),
    ("database", ("sqlalchemy/", "aiosqlite/", "sqlite3/", "asyncpg/", "psycopg/")),
    ("telemetry and logging", ("opentelemetry/", "prometheus_client/", "logging/")),
    ("modelbus code", ("modelbus_",)),
]
OTHER = "other"
ORDER = [name for name, _ in CATEGORIES] + [OTHER]


def category(frame: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in frame for n in needles):
            return name
    return OTHER


def summarise(folded: Path) -> tuple[Counter, int]:
    """Samples per category (by innermost frame) of one py-spy ``raw`` recording."""
    counts: Counter = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[category(stack.rsplit(";", 1)[-1])] += int(n)
        total += int(n)
    return counts, total


async def profile(stack, pipeline: Pipeline, meter: CpuMeter, args, out: Path) -> dict:
    """A phase for ``on_fresh_stack``: the stack is up and warmed, the meter set."""
    services = [c for c in stack.group.children if c.name not in ("simulator", "broker")]
    spies = {c.name: await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(c.proc.pid), "--rate", str(args.hz),
        "--duration", str(int(args.seconds)), "--format", "raw", "--nonblocking",
        "--output", str(out / f"{c.name}.folded"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in services}
    print(f"profiling {', '.join(spies)} at {args.rate:.0f} req/s for {args.seconds:.0f} s…",
          flush=True)
    before = meter.snapshot()
    latencies = await pipeline.run(args.rate, args.seconds, drain_s=15)
    cpu = CpuMeter.delta(before, meter.snapshot())
    for name, spy in spies.items():
        _, err = await spy.communicate()
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy on {name} failed: {err.decode()}")
    answered = max(1, len(latencies))
    by_process = {}
    for name, seconds in cpu.items():
        ms_per_request = 1000 * seconds / answered
        folded = out / f"{name}.folded"
        if name in spies:
            counts, total = summarise(folded)
            share = {c: counts[c] / total for c in ORDER if counts[c]} if total else {}
        else:  # the broker and Redis: native processes, shown whole
            share = {name.split("-")[0] + " (native)": 1.0}
        by_process[name] = {"cpu_ms_per_request": round(ms_per_request, 3),
                            "share": {k: round(v, 4) for k, v in share.items()}}
    return {"rate": args.rate, "seconds": args.seconds, "answered": len(latencies),
            "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "cpu_ms_per_request": round(sum(p["cpu_ms_per_request"]
                                            for p in by_process.values()), 3),
            "by_process": by_process}


def report(result: dict) -> None:
    print(f"{result['answered']} answered, p50 {result['p50_ms']:.1f} ms, p99 "
          f"{result['p99_ms']:.1f} ms; {result['cpu_ms_per_request']:.2f} CPU-ms per request")
    for name, proc in sorted(result["by_process"].items(),
                             key=lambda kv: -kv[1]["cpu_ms_per_request"]):
        parts = ", ".join(f"{c} {100 * s:.0f}%" for c, s in
                          sorted(proc["share"].items(), key=lambda kv: -kv[1]) if s >= 0.03)
        print(f"  {name:<16} {proc['cpu_ms_per_request']:.2f} CPU-ms/req: {parts}")
    totals: Counter = Counter()
    for proc in result["by_process"].values():
        for c, s in proc["share"].items():
            totals[c] += s * proc["cpu_ms_per_request"]
    print("  across the services (CPU-ms per request): " + ", ".join(
        f"{c} {ms:.2f}" for c, ms in totals.most_common()))


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    procs = sorted(result["by_process"], key=lambda n: -result["by_process"][n]["cpu_ms_per_request"])
    cats = ORDER + sorted({c for p in procs for c in result["by_process"][p]["share"]} - set(ORDER))
    colours = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(10, 5))
    left = [0.0] * len(procs)
    for i, cat in enumerate(cats):
        widths = [result["by_process"][p]["share"].get(cat, 0.0)
                  * result["by_process"][p]["cpu_ms_per_request"] for p in procs]
        if any(widths):
            ax.barh(procs, widths, left=left, label=cat, color=colours[i % len(colours)])
            left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("CPU-ms per request")
    ax.set_title(f"Where the CPU goes at {result['rate']:.0f} req/s "
                 f"({result['cpu_ms_per_request']:.2f} CPU-ms per request in all)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--hz", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: run `uv sync` (it is a dev dependency)")
    out = RESULTS / "profile"
    out.mkdir(parents=True, exist_ok=True)
    result = on_fresh_stack(profile, args, out)
    report(result)
    (RESULTS / "profile.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "profile.png")
    print(f"results: {RESULTS / 'profile.json'}, plot: {RESULTS / 'profile.png'}, "
          f"folded stacks: {out}/")


if __name__ == "__main__":
    main()
