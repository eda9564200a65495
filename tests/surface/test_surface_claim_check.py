"""Large payloads by claim check, end to end: a 5 MB multi-image call through the gateway
is answered (the images are stored once, the events carry hashed references the worker
resolves), and the audit's retention deletes the blobs with the lineage's text."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys

import pytest
from openai import OpenAI

from tests.surface.surface_cases import png

pytestmark = pytest.mark.e2e


def blob_count(surface_stack) -> int:
    path = surface_stack.stack.database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM modelbus_blobs WHERE tenant = ?",
                          (surface_stack.tenant,)).fetchone()[0]


def test_a_5_mb_multi_image_call_is_answered_and_retention_deletes_its_blobs(surface_stack):
    images = [base64.b64encode(png(filler=bytes([65 + i]) * 1_000_000)).decode()
              for i in range(5)]  # five distinct images of about 1 MB each
    parts = [{"type": "text", "text": "How many images?"}] + [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        for data in images]
    assert sum(len(d) for d in images) > 5_000_000
    client = OpenAI(base_url=surface_stack.gateway_url + "/v1",
                    api_key=surface_stack.api_key, timeout=90, max_retries=0)
    completion = client.chat.completions.create(
        model="chat-anthropic", messages=[{"role": "user", "content": parts}])
    assert "5 image" in completion.choices[0].message.content
    assert blob_count(surface_stack) >= 5, "the images travelled by claim check"

    env = {"DATABASE_URL": surface_stack.stack.database_url, "PATH": ""}
    purge = subprocess.run(
        [sys.executable, "-m", "modelbus_cli.main", "audit", "purge", "--older-than-days", "0"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert "blob" in purge.stdout
    assert blob_count(surface_stack) == 0, "retention deleted the blobs with the text"
