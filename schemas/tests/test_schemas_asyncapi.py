"""The AsyncAPI document is the event contract for any-language consumers: it must match the
models and topics, and the official AsyncAPI parser must accept it.

``asyncapi_validate.mjs`` parses a document with the pinned ``@asyncapi/parser`` (Node) and
exits non-zero on any error diagnostic; the parser is installed with npm into
``.cache/asyncapi-parser/`` the first time (about 30 s)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from modelbus_schemas import asyncapi
from modelbus_schemas.topics import DECISIONS_SHADOW, PROVIDERS, source_topics

ROOT = Path(__file__).resolve().parents[2]
PARSER_VERSION = "3.6.6"
PARSER_DIR = ROOT / ".cache" / "asyncapi-parser"
VALIDATE = Path(__file__).with_name("asyncapi_validate.mjs")


@pytest.fixture(scope="module")
def parser_dir() -> Path:
    """The pinned @asyncapi/parser, installed once with npm (the machine has Node)."""
    installed = PARSER_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    if not installed.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install @asyncapi/parser for the contract test"
        PARSER_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(PARSER_DIR), "--no-audit", "--no-fund",
                        "--silent", f"@asyncapi/parser@{PARSER_VERSION}"], check=True,
                       timeout=600)
    shutil.copy(VALIDATE, PARSER_DIR / "validate.mjs")
    return PARSER_DIR


def parse(parser_dir: Path, document: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(parser_dir / "validate.mjs"), str(document)],
                          check=False, capture_output=True, text=True, timeout=120)


def test_the_committed_document_matches_the_models():
    assert asyncapi.DOCUMENT.read_text() == asyncapi.render(), "run `make schemas`"


def test_every_topic_is_a_channel_keyed_by_the_request_id():
    doc = json.loads(asyncapi.DOCUMENT.read_text())
    patterns = [re.compile("^" + re.sub(r"\\\{[a-z]+\\\}", ".+", re.escape(c["address"])) + "$")
                for c in doc["channels"].values()]
    for topic in [*source_topics(), DECISIONS_SHADOW, "replies.acme.billing",
                  "modelbus.results.v1.dlq"]:
        assert any(p.match(topic) for p in patterns), topic
    assert doc["channels"]["tasks"]["parameters"]["provider"]["enum"] == list(PROVIDERS)
    for name, message in doc["components"]["messages"].items():
        assert "key" in message["bindings"]["kafka"], name
        if name not in ("request", "deadLetter"):
            assert "modelbus_sig" in message["headers"]["required"], name


def test_the_asyncapi_parser_accepts_the_document(parser_dir):
    run = parse(parser_dir, asyncapi.DOCUMENT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_parser_check_catches_a_broken_document(parser_dir, tmp_path):
    doc = json.loads(asyncapi.DOCUMENT.read_text())
    doc["channels"]["requests"]["messages"]["request"] = {"$ref": "#/components/messages/nope"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    assert parse(parser_dir, broken).returncode != 0
