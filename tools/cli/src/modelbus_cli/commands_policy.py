"""``modelbus policy``: check a routing policy, compare two, see what each router runs.

  modelbus policy check FILE         validate; print the version hash and every route
  modelbus policy diff OLD NEW       what changes between two policies, field by field
  modelbus policy show [--url URL]   the policy version each router runs (its ``/policy``
                                     endpoint on the health port; ``MODELBUS_ROUTER_URLS``)

``check`` and ``diff`` exit 2 on a policy the router would refuse to load, with its message.
Wire into ``main.py`` with ``commands_policy.register(sub)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _load(path: str):
    from modelbus_router.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        print(f"invalid policy: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(policy) -> list[str]:
    lines = [f"version  {policy.version}", f"catalog  {len(policy.catalog)} models",
             f"routes   {len(policy.routes)}"]
    for name, route in sorted(policy.routes.items()):
        for label, spec in route.bodies():
            models = ", ".join(policy.catalog[m].ref for m in spec.model_ids())
            lines.append(f"  {name:<20} {label:<18} {spec.strategy:<9} {models}")
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    print("\n".join(describe(policy)) if not args.json else json.dumps(
        {"version": policy.version, "routes": sorted(policy.routes)}))
    return 0


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """``+ path: value`` / ``- path: value`` / ``~ path: old -> new`` for every difference."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"+ {where}: {json.dumps(new[key], sort_keys=True)}")
            elif key not in new:
                out.append(f"- {where}: {json.dumps(old[key], sort_keys=True)}")
            else:
                out += diff(old[key], new[key], where)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True))
                for line in diff(a, b, f"{path}[{i}]")]
    if old != new:
        return [f"~ {path}: {json.dumps(old, sort_keys=True)} -> {json.dumps(new, sort_keys=True)}"]
    return []


def _dump(policy) -> dict:
    return policy.model_dump(mode="json", exclude={"version"}, exclude_defaults=True)


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = _load(args.old), _load(args.new)
    changes = diff(_dump(old), _dump(new))
    print(f"{old.version} -> {new.version}")
    print("\n".join(changes) if changes else "no change in effect")
    return 0


def router_urls(given: list[str] | None) -> list[str]:
    urls = given or [u for u in os.environ.get("MODELBUS_ROUTER_URLS", "").split(",") if u]
    return [u.rstrip("/") for u in urls]


def cmd_show(args: argparse.Namespace) -> int:
    import httpx

    urls = router_urls(args.url)
    if not urls:
        print("policy show: name the routers' health URLs (--url, MODELBUS_ROUTER_URLS)",
              file=sys.stderr)
        return 2
    failed = 0
    rows = []
    for url in urls:
        try:
            info = httpx.get(url + "/policy", timeout=5).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            failed += 1
            rows.append({"url": url, "error": str(exc)})
            continue
        rows.append({"url": url, "version": info["version"],
                     "last_reload_error": info.get("last_reload_error"),
                     "shadow": (info.get("shadow") or {}).get("version")})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if "error" in row:
                print(f"{row['url']}  unreachable: {row['error']}")
                continue
            shadow = f"  shadow {row['shadow']}" if row["shadow"] else ""
            refused = (f"  (last reload refused: {row['last_reload_error']})"
                       if row["last_reload_error"] else "")
            print(f"{row['url']}  {row['version']}{shadow}{refused}")
        versions = {r["version"] for r in rows if "version" in r}
        if len(versions) > 1:
            print(f"routers disagree: {len(versions)} versions in force")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    policy = sub.add_parser("policy", help="check, compare and show routing policies")
    commands = policy.add_subparsers(dest="policy_command", required=True)
    check = commands.add_parser("check", help="validate a policy; print version and routes")
    check.add_argument("file")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)
    compare = commands.add_parser("diff", help="what changes between two policies")
    compare.add_argument("old")
    compare.add_argument("new")
    compare.set_defaults(func=cmd_diff)
    show = commands.add_parser("show", help="the policy version each router runs")
    show.add_argument("--url", action="append", help="a router's health URL (repeatable)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
