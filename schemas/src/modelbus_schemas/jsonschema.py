"""JSON Schema files generated from the event models; the committed copies are the contract.

``python -m modelbus_schemas.jsonschema [--check]`` writes (or checks) ``schemas/json/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from modelbus_schemas.deadletter import DeadLetterInfo
from modelbus_schemas.events import (
    ApprovalDecisionEvent,
    ApprovalRequestEvent,
    RequestEvent,
    ResponseEvent,
    ResultEvent,
    TaskEvent,
)
from modelbus_schemas.shadow import ShadowDecisionEvent
from modelbus_schemas.stream import StreamEvent

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "json"
BASE_ID = "https://modelbus.dev/schemas/"

CONTRACT: dict[str, type[BaseModel]] = {
    "request.v1": RequestEvent,
    "task.v1": TaskEvent,
    "result.v1": ResultEvent,
    "response.v1": ResponseEvent,
    "deadletter.v1": DeadLetterInfo,
    "approval-request.v1": ApprovalRequestEvent,
    "approval-decision.v1": ApprovalDecisionEvent,
    "decision-shadow.v1": ShadowDecisionEvent,
    "stream.v1": StreamEvent,
}


def render(name: str, model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}{name}.schema.json",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def drifted(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    out = []
    for name, model in CONTRACT.items():
        path = directory / f"{name}.schema.json"
        if not path.exists() or path.read_text() != render(name, model):
            out.append(path.name)
    return out


def write(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, model in CONTRACT.items():
        (directory / f"{name}.schema.json").write_text(render(name, model))


def main() -> None:
    if "--check" in sys.argv:
        bad = drifted()
        if bad:
            sys.exit(f"schemas drifted from models: {bad}; run `make schemas`")
        print("schemas up to date")
    else:
        write()
        print(f"wrote {len(CONTRACT)} schemas to {SCHEMA_DIR}")


if __name__ == "__main__":
    main()
