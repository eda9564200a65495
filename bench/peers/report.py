"""The report: ratios of modelbus to LiteLLM per level, a printed table, JSON and a PNG."""

from __future__ import annotations

import json
from pathlib import Path

MODELBUS = ("modelbus-gateway", "modelbus-kafka")


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _litellm(names) -> list[str]:
    return [n for n in names if n.startswith("litellm")]


def ratios(result: dict) -> dict:
    """modelbus ÷ LiteLLM for every pair present, level by level (req/s above 1 is better
    for modelbus; latency and CPU below 1 are)."""
    out: dict[str, dict] = {}
    seq = result.get("sequential", {})
    for mb in (n for n in MODELBUS if n in seq):
        for peer in _litellm(seq):
            out.setdefault("sequential", {})[f"{mb} / {peer}"] = {
                "added_p50": _ratio(seq[mb]["added_p50_ms"], seq[peer]["added_p50_ms"]),
                "added_p99": _ratio(seq[mb]["added_p99_ms"], seq[peer]["added_p99_ms"])}
    levels = [(f"c={lv['callers']}", lv["targets"]) for lv in result.get("closed_loop", [])]
    if result.get("slow_provider"):
        levels.append(("slow", result["slow_provider"]["targets"]))
    for label, targets in levels:
        for mb in (n for n in MODELBUS if n in targets):
            for peer in _litellm(targets):
                m, p = targets[mb], targets[peer]
                out.setdefault(label, {})[f"{mb} / {peer}"] = {
                    "rps": _ratio(m["rps"], p["rps"]),
                    "p99": _ratio(m["p99_ms"], p["p99_ms"]),
                    "added_p50": _ratio(m.get("added_p50_ms"), p.get("added_p50_ms")),
                    "cpu_ms_per_request": _ratio(m["cpu_ms_per_request"],
                                                 p["cpu_ms_per_request"])}
    return out


def _f(value, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def table(result: dict) -> str:
    lines = []
    seq = result.get("sequential", {})
    if seq:
        lines += ["one request at a time (interleaved): added p50 / p99 over direct",
                  *(f"  {n:<20} {_f(f['added_p50_ms'], ' ms'):>10} {_f(f['added_p99_ms'], ' ms'):>10}"
                    f"   (p50 {_f(f['p50_ms'], ' ms')}, errors {f['errors']})"
                    for n, f in seq.items())]
    blocks = [(f"closed loop, {lv['callers']} callers", lv["targets"])
              for lv in result.get("closed_loop", [])]
    if result.get("slow_provider"):
        slow = result["slow_provider"]
        blocks.append((f"{slow['callers']} callers, provider takes {slow['latency_ms']} ms",
                       slow["targets"]))
    for title, targets in blocks:
        lines.append(f"{title}: req/s, p50, p99, added p50, CPU-ms/req, load generator cores")
        lines += [f"  {n:<20} {_f(f['rps']):>8} {_f(f['p50_ms'], ' ms'):>11} "
                  f"{_f(f['p99_ms'], ' ms'):>11} {_f(f.get('added_p50_ms'), ' ms'):>11} "
                  f"{_f(f['cpu_ms_per_request']):>7} {f['loadgen_cores']:>6}"
                  f"{'' if not f['errors'] else '   errors ' + str(f['errors'])}"
                  for n, f in targets.items()]
    for name, idle in result.get("idle", {}).items():
        lines.append(f"idle, no traffic: {name:<20} {idle['cores']:.3f} cores")
    for level, pairs in result.get("ratios", {}).items():
        for pair, r in pairs.items():
            lines.append(f"ratio {level:<10} {pair:<34} "
                         + ", ".join(f"{k} {v}×" for k, v in r.items() if v is not None))
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result.get("closed_loop", [])
    names = list(levels[0]["targets"]) if levels else []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    callers = [lv["callers"] for lv in levels]
    for name in names:
        axes[0].plot(callers, [lv["targets"][name]["rps"] for lv in levels], marker="o",
                     label=name)
        axes[1].plot(callers, [lv["targets"][name]["p99_ms"] for lv in levels], marker="o",
                     label=name)
    for ax, title in ((axes[0], "req/s (closed loop, log)"), (axes[1], "p99 latency (ms, log)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(callers, [str(c) for c in callers])
        ax.minorticks_off()
        ax.set_xlabel("concurrent callers")
        ax.set_title(title)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    peers = [n for n in names
             if all(lv["targets"][n]["cpu_ms_per_request"] is not None for lv in levels)]
    if levels and peers:
        width = 0.8 / len(peers)
        for i, name in enumerate(peers):
            axes[2].bar([x + i * width for x in range(len(levels))],
                        [lv["targets"][name]["cpu_ms_per_request"] for lv in levels],
                        width, label=name)
        axes[2].set_xticks([x + 0.4 - width / 2 for x in range(len(levels))], callers)
        axes[2].set_xlabel("concurrent callers")
        axes[2].set_title("CPU-ms per request, every process of the target")
        axes[2].legend(fontsize=7)
    meta = result.get("meta", {})
    fig.suptitle(f"modelbus vs {meta.get('litellm', 'LiteLLM')}, one mock provider "
                 f"(load average {meta.get('load_average_before', '?')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict, directory: Path, stem: str = "peers") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    result["ratios"] = ratios(result)
    data, png = directory / f"{stem}.json", directory / f"{stem}.png"
    data.write_text(json.dumps(result, indent=2))
    (directory / f"{stem}.md").write_text(markdown(result) + "\n")
    plot(result, png)
    return data, png


def markdown(result: dict) -> str:
    """The run as the tables ``docs/performance.md`` shows."""
    def cell(f: dict) -> str:
        cpu = "" if f["cpu_ms_per_request"] is None else f", {f['cpu_ms_per_request']:.1f}"
        err = f", {f['errors']} errors" if f["errors"] else ""
        return f"{f['rps']:,.1f}{cpu} (p50 {_f(f['p50_ms'])}, p99 {_f(f['p99_ms'])}){err}"

    seq = result.get("sequential", {})
    out = ["| one request at a time, interleaved | p50 | p99 | added p50 | added p99 |",
           "|---|---|---|---|---|"]
    out += [f"| {n} | {_f(f['p50_ms'], ' ms')} | {_f(f['p99_ms'], ' ms')} | "
            f"{_f(f['added_p50_ms'], ' ms')} | {_f(f['added_p99_ms'], ' ms')} |"
            for n, f in seq.items()]
    levels = result.get("closed_loop", [])
    names = list(levels[0]["targets"]) if levels else []
    out += ["", "| closed loop: req/s, CPU-ms/req (p50, p99 ms) | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|"]
    out += [f"| {lv['callers']} callers | "
            + " | ".join(cell(lv["targets"][n]) for n in names) + " |" for lv in levels]
    slow = result.get("slow_provider")
    if slow:
        out.append(f"| {slow['callers']} callers, provider {slow['latency_ms']} ms: added p50 | "
                   + " | ".join(_f(slow["targets"][n].get("added_p50_ms"), " ms")
                                for n in names) + " |")
    if levels:
        top = levels[-1]
        out += ["", f"CPU-ms per request by process, {top['callers']} callers:", ""]
        out += [f"- {n}: " + ", ".join(f"{p} {c:.2f}" for p, c in
                                      f["cpu_ms_per_request_by_process"].items())
                for n, f in top["targets"].items() if f["cpu_ms_per_request_by_process"]]
    gen = max((f["loadgen_cores"] for lv in levels for f in lv["targets"].values()), default=0)
    out += ["", f"Load generator: at most {gen} of a core in any measurement."]
    idle = result.get("idle", {})
    if idle:
        out += ["", "| idle, no traffic | cores busy | by process |", "|---|---|---|"]
        out += [f"| {n} | {i['cores']:.3f} | "
                + ", ".join(f"{p} {c:.3f}" for p, c in i["by_process"].items()) + " |"
                for n, i in idle.items()]
    return "\n".join(out)
