"""``make bench``: every benchmark, one after another, each printing its own figures.

The pipeline benchmark writes ``bench/results/pipeline.json`` and ``pipeline.png``, the
profile ``profile.json``, ``profile.png`` and folded stacks, the signing benchmark
``signing.json``, the streaming benchmark ``stream.json`` and ``stream.png`` (``QUICK=1``
makes it a smoke run); the others print to stdout. The whole output is also kept in
``bench/results/summary.txt``.
Benchmarks share the machine with nothing else of ours: run them on a quiet machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [
    ("signing and verifying the events of one request (CPU µs)",
     ["signing_bench.py", "--iterations", "20000"]),
    ("routing decision cost (50-route policy)", ["router_bench.py", "--runs", "20000"]),
    ("PII redaction recall and precision", ["pii_bench.py"]),
    ("pipeline: added latency, throughput, CPU per request", ["pipeline_bench.py"]),
    ("where the CPU goes at 300 req/s (py-spy, every service)",
     ["profile_bench.py", "--rate", "300", "--seconds", "15"]),
    ("broker poll wait: added latency against CPU", ["fetch_wait_bench.py"]),
    ("latency by stage, and the bare broker hop", ["stages_bench.py"]),
    ("fan-out-3 completion minus slowest provider", ["fanout_bench.py", "--requests", "20"]),
    ("one worker process against a 1.5 s provider",
     ["worker_bench.py", "--rate", "600", "--duration", "20", "--latency-ms", "1500"]),
    ("gateway added latency and throughput", ["gateway_bench.py", "--samples", "200",
                                              "--concurrency", "32", "--duration", "15"]),
    ("streaming: time to first token added, at 20 and 100 concurrent streams",
     ["stream_bench.py", "--levels", "20,100"]),
    ("audit ingest rows/s (PostgreSQL, SQLite)", ["audit_bench.py", "--rows", "10000"]),
    ("policy replay req/s and peak memory; shadow decision cost", ["replay_bench.py"]),
]


def main() -> int:
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    summary = results / "summary.txt"
    failed = []
    with summary.open("w") as out:
        for n, (title, argv) in enumerate(RUNS, 1):
            banner = f"\n[{n}/{len(RUNS)}] {title}: {' '.join(argv)}"
            print(banner, flush=True)
            out.write(banner + "\n")
            started = time.monotonic()
            proc = subprocess.Popen([sys.executable, str(HERE / argv[0]), *argv[1:]],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                print(line, end="", flush=True)
                out.write(line)
            if proc.wait() != 0:
                failed.append(title)
            out.write(f"({time.monotonic() - started:.0f} s)\n")
    print(f"\nsummary: {summary}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
