"""The LiteLLM proxy under test: its own virtual environment, its config, its processes.

The proxy is pinned (:data:`PIN`) and installed into ``.cache/peers/litellm-venv`` with
``uv venv`` + ``uv pip install``, never into the workspace's environment. It runs offline
(``LITELLM_LOCAL_MODEL_COST_MAP=True``, telemetry off), with a master key, no database and
no Redis, one model routed to the mock, and ``--num_workers`` worker processes.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
from modelbus_cli.processes import Managed, ProcessGroup, free_port, wait_for

PIN = "litellm[proxy]==1.106.2"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "peers" / "litellm-venv"
CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: bench
litellm_settings:
  telemetry: false
  turn_off_message_logging: true
general_settings:
  disable_spend_logs: true
"""


def ensure_installed(venv: Path = VENV) -> Path:
    """The proxy's ``litellm`` script, installing :data:`PIN` first when missing."""
    script = venv / "bin" / "litellm"
    marker = venv / ".pinned"
    if script.exists() and marker.exists() and marker.read_text() == PIN:
        return script
    uv = shlex.split(os.environ.get("PEERS_UV", "python3 -m uv"))  # the Makefile's $(UV)
    print(f"installing {PIN} into {venv} (once; a few minutes)", flush=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([*uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run([*uv, "pip", "install", "--quiet", "--compile-bytecode",
                    "--python", str(venv / "bin" / "python"),
                    PIN], check=True)
    marker.write_text(PIN)
    return script


@dataclass
class Proxy:
    """One running proxy: its URL, key and process tree."""

    name: str
    url: str
    key: str
    child: Managed

    def wait_live(self, timeout: float = 900.0) -> None:
        """Until every worker imported the proxy: minutes on a busy machine."""
        wait_for(lambda: _live(self.url), f"LiteLLM proxy {self.name}", timeout,
                 self.child.proc)

    def pids(self) -> dict[str, int]:
        """The proxy's processes by name (the master, then each worker it forked)."""
        try:
            root = psutil.Process(self.child.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        return {(self.name if n == 0 else f"{self.name}/w{n}"): p.pid
                for n, p in enumerate(tree)}


def start(group: ProcessGroup, name: str, api_base: str, model: str, workers: int,
          timeout: float = 900.0) -> Proxy:
    """A proxy in ``group`` with ``workers`` worker processes, routing ``model`` to the mock;
    started, not yet live (:meth:`Proxy.wait_live`)."""
    script = ensure_installed()
    config = group.workdir / f"{name}.yaml"
    config.write_text(CONFIG.format(model=model, api_base=api_base))
    key = "sk-peers-" + secrets.token_hex(12)
    port = free_port()
    env = {
        "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "True",
        # uvicorn kills a worker not ready within 5 s: on a busy machine importing the proxy
        # takes longer, and --num_workers > 1 would restart its workers for ever
        "TIMEOUT_WORKER_HEALTHCHECK": str(int(timeout)),
        "VIRTUAL_ENV": str(script.parent.parent),
        "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # no database, no Redis: the proxy takes either from the environment when set at all
    unset = [a for v in ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL")
             for a in ("-u", v)]
    child = group.spawn(name, ["env", *unset, str(script), "--config", str(config), "--host", "127.0.0.1",
                               "--port", str(port), "--num_workers", str(workers)], env)
    return Proxy(name, f"http://127.0.0.1:{port}", key, child)


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/liveliness", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
