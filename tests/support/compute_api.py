"""Calling the compute API at a chosen microversion and checking answers against
tempest's response schemas (tempest/lib/api_schema/response/compute), the contract
tempest itself enforces."""

from __future__ import annotations

import importlib
from typing import Any

import jsonschema
import requests
from tempest.lib.common.jsonschema_validator import FORMAT_CHECKER, JSONSCHEMA_VALIDATOR

from tests.support.cloud import Cloud

V21 = "/compute/v2.1"


def served_maximum(cloud: Cloud) -> str:
    return cloud.request("GET", V21).json()["version"]["version"]


def _key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def needs(cloud: Cloud, version: str) -> None:
    """The cloud must serve `version`: a test written for it fails, never skips,
    if the advertised maximum ever drops below."""
    maximum = served_maximum(cloud)
    assert _key(maximum) >= _key(version), f"compute {version} not served (maximum {maximum})"


def call(
    cloud: Cloud,
    method: str,
    path: str,
    token: str,
    mv: str | None = None,
    **kwargs: Any,
) -> requests.Response:
    """`path` is relative to /compute/v2.1; `mv` the microversion asked for."""
    headers = dict(kwargs.pop("headers", {}) or {})
    if mv is not None:
        headers["OpenStack-API-Version"] = f"compute {mv}"
    return cloud.request(method, f"{V21}{path}", token, headers=headers, **kwargs)


def schema(version: str, module: str, name: str) -> dict[str, Any]:
    """Tempest's schema `name` from api_schema/response/compute/v<version>/<module>.py."""
    package = f"tempest.lib.api_schema.response.compute.v{version.replace('.', '_')}"
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def conforms(resp: requests.Response, version: str, module: str, name: str) -> Any:
    """Assert the status and body match tempest's schema; returns the body."""
    expected = schema(version, module, name)
    assert resp.status_code in expected["status_code"], f"{resp.status_code}: {resp.text}"
    body_schema = expected.get("response_body")
    body = resp.json() if resp.content else None
    if body_schema:
        jsonschema.validate(
            body, body_schema, cls=JSONSCHEMA_VALIDATOR, format_checker=FORMAT_CHECKER
        )
    else:
        assert not body, body
    return body


def fault(resp: requests.Response, status: int) -> str:
    """Assert a Nova fault of this status; returns its message."""
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    [(name, detail)] = resp.json().items()
    assert detail["code"] == status, resp.text
    return detail["message"]
