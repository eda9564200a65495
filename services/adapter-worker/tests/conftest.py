"""The worker's unit tests share builders in ``worker_wire_helpers``; this directory's name
(``adapter-worker``) is no Python package name, so the directory itself goes on the path."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
