"""``modelbus policy check`` and ``diff`` on real policy files (the router's own loader)."""

from __future__ import annotations

import argparse

import pytest
from modelbus_cli.commands_policy import register
from modelbus_router.policy import content_version

from tests.replay.test_replay_policy import V1, V2


def run(capsys, *argv: str) -> str:
    root = argparse.ArgumentParser()
    register(root.add_subparsers(dest="command"))
    args = root.parse_args(["policy", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_check_prints_the_version_hash_and_every_route(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(V1)
    out = run(capsys, "check", str(path))
    assert f"version  {content_version(V1)}" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert ["chat", "default", "single", "openai/gpt-4.1"] in lines
    assert ["summarize", "default", "single", "openai/gpt-4o"] in lines


def test_check_refuses_what_a_router_would_refuse(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(V1.replace("{model: regional}", "{model: nowhere}"))
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "check", str(path))
    assert exit_.value.code == 2
    assert "unknown catalog model 'nowhere'" in capsys.readouterr().err


def test_diff_names_each_changed_field(tmp_path, capsys):
    old, new = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    old.write_text(V1)
    new.write_text(V2)
    out = run(capsys, "diff", str(old), str(new)).splitlines()
    assert out[0] == f"{content_version(V1)} -> {content_version(V2)}"
    assert sorted(out[1:]) == [
        '~ catalog.regional.regions: ["eu", "us"] -> ["us"]',
        '~ routes.summarize.targets[0].model: "big" -> "small"',
    ]
    assert run(capsys, "diff", str(old), str(old)).splitlines()[1] == "no change in effect"
