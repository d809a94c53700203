"""Types to the wire: every operation's 2xx JSON answer has a schema in OpenAPI (a response
model), so that clients and docs know its shape."""

from __future__ import annotations

from typing import Any

from clickstats.app import create_app
from clickstats.settings import Settings


def untyped(schema: dict[str, Any]) -> list[str]:
    """Every operation whose 2xx application/json answer has no schema or an empty one."""
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                content = answer.get("content", {})
                if "application/json" not in content:
                    continue
                typed = content["application/json"].get("schema") or {}
                if not typed or typed == {"type": "object"}:
                    missing.append(f"{method.upper()} {path} {status}")
    return missing


def test_every_2xx_json_answer_has_a_schema(tmp_path: Any) -> None:
    app = create_app(Settings(store=f"duckdb://{tmp_path}/events.duckdb"))
    assert untyped(app.openapi()) == []


def test_an_operation_without_a_response_model_is_found() -> None:
    schema = {
        "paths": {
            "/a": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {}}}}}}},
            "/b": {"get": {"responses": {"200": {"content": {"text/html": {}}}}}},
            "/c": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/C"}}}}}}},
        }
    }  # fmt: skip
    assert untyped(schema) == ["GET /a 200"]
