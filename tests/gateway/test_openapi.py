"""The gateway's OpenAPI document (``GET /api/v1alpha/openapi.json``) is generated from its router
and the wire types: every route is in it, and it is a valid OpenAPI 3 document."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from agola.services.gateway.actions import Services
from agola.services.gateway.api import build_app
from agola.services.gateway.auth import Authenticator
from agola.services.gateway.openapi import OPENAPI_PATH


def _app() -> Any:
    # The document needs no service: nothing here calls one.
    return build_app(Services.__new__(Services), Authenticator.__new__(Authenticator))


@pytest.fixture
async def document() -> dict[str, Any]:
    async with TestClient(TestServer(_app())) as client:
        resp = await client.get(OPENAPI_PATH)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        doc: dict[str, Any] = await resp.json()
        return doc


async def test_every_route_of_the_gateway_is_documented(document: dict[str, Any]) -> None:
    app = _app()
    missing = []
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method.lower() not in document["paths"].get(path, {}):
            missing.append(f"{route.method} {path}")
    assert missing == []
    assert "post" in document["paths"]["/api/v1alpha/orgs"]
    assert "get" in document["paths"]["/api/v1alpha/openapi.json"]


def test_the_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    validate(document)  # raises on any error
    assert document["openapi"].startswith("3.")


def test_operations_carry_parameters_bodies_responses_and_security(document: dict[str, Any]) -> None:
    paths, schemas = document["paths"], document["components"]["schemas"]
    create_org = paths["/api/v1alpha/orgs"]["post"]
    assert create_org["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateOrgRequest"}
    assert schemas["CreateOrgRequest"]["required"] == ["name"]
    assert schemas["CreateOrgRequest"]["properties"]["visibility"] == {"type": "string"}
    assert "201" in create_org["responses"]
    assert create_org["security"] == [{"token": []}]

    secrets = paths["/api/v1alpha/{collection}/{ref}/secrets"]["get"]
    params = {p["name"]: p for p in secrets["parameters"]}
    assert params["collection"]["schema"]["enum"] == ["projects", "projectgroups"]
    assert params["ref"]["in"] == "path"
    assert params["tree"] == {"name": "tree", "in": "query", "required": False, "schema": {"type": "boolean"}}

    runs = paths["/api/v1alpha/runs"]["get"]
    phase = next(p for p in runs["parameters"] if p["name"] == "phase")
    assert phase["schema"] == {"type": "array", "items": {"type": "string"}}
    assert runs["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/RunsResponse"}
    # A nested wire type and a map of them, from the attrs annotations.
    assert schemas["RunResponse"]["properties"]["tasks"] == {
        "type": "object", "additionalProperties": {"$ref": "#/components/schemas/RunResponseTask"}}
    assert schemas["RunResponse"]["properties"]["end_time"] == {"type": "string", "nullable": True}
    # The codec's wire types too (jfield JSON names, enums, datetimes).
    delivery = schemas["DeliveryResponse"]["properties"]
    assert delivery["delivery_status"]["type"] == "string" and delivery["delivery_status"]["enum"]
    assert delivery["delivered_at"] == {"type": "string", "format": "date-time", "nullable": True}

    assert paths["/api/v1alpha/login"]["post"]["security"] == []
    assert document["components"]["securitySchemes"]["token"]["in"] == "header"
