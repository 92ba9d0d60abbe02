"""The OpenAPI document and Swagger UI, built from the same msgspec types the routes use.

A route declares its contract with `@operation(...)`; the document's schemas come from
`msgspec.json.schema_components` over those very types, so what Swagger shows is what the
route decodes and encodes. Swagger UI's assets are served from the `swagger-ui-bundle`
package: the docs work offline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.schemas import BaseSchemaGenerator
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

REF = "#/components/schemas/{name}"
ADMIN_SCHEME = "adminToken"  # Authorization: Bearer <COUPONAPI_ADMIN_TOKEN or an admin key>
BEARER_SCHEME = "bearer"  # Authorization: Bearer <a user token, a server key or the admin's>
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


class Operation(msgspec.Struct, frozen=True):
    """What one route promises: summary, body type, and a type per response status."""

    summary: str
    tags: tuple[str, ...]
    body: type | None = None
    responses: dict[int, tuple[type | None, str]] = {}
    description: str = ""
    # (name, JSON Schema, text): the request headers it reads, and those its 2xx answer sets.
    headers: tuple[tuple[str, dict[str, Any], str], ...] = ()
    answer_headers: tuple[tuple[str, dict[str, Any], str], ...] = ()
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()
    body_required: bool = True
    path_formats: dict[str, str] = {}
    deprecated: bool = False
    admin: bool = False
    signed: bool = False  # any valid credential (docs/identity.md says which may do what)


def operation(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach an Operation to an endpoint; the generator reads it from `__openapi__`."""

    def attach(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__openapi__ = Operation(**kwargs)  # type: ignore[attr-defined]
        return endpoint

    return attach


def as_openapi_30(schema: Any) -> Any:
    """msgspec writes JSON Schema 2020-12 (`anyOf: [X, {type: null}]`); OpenAPI 3.0, which the
    bundled Swagger UI 4 renders, spells an optional value `nullable: true`."""
    if isinstance(schema, list):
        return [as_openapi_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: as_openapi_30(value) for key, value in schema.items()}
    options = converted.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del converted["anyOf"]
        only = rest[0] if len(rest) == 1 else {"anyOf": rest}
        converted |= ({"allOf": [only]} if "$ref" in only else only) | {"nullable": True}
    return converted


def _schema_ref(model: type) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([model], ref_template=REF)
    return schema


class DocumentGenerator(BaseSchemaGenerator):
    """Builds the OpenAPI 3.0 document from the app's routes and their Operations."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        models: list[type] = []
        for endpoint in self.get_endpoints(routes):
            spec: Operation | None = getattr(endpoint.func, "__openapi__", None)
            if spec is None:
                continue
            paths.setdefault(endpoint.path, {})[endpoint.http_method] = self._operation(
                endpoint.path, spec, models
            )
        _, components = msgspec.json.schema_components(models, ref_template=REF)
        return {
            "openapi": "3.0.3",
            "info": self.info,
            "paths": paths,
            "components": {
                "schemas": as_openapi_30(components),
                "securitySchemes": {
                    ADMIN_SCHEME: {"type": "http", "scheme": "bearer"},
                    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                },
            },
        }

    def _operation(self, path: str, spec: Operation, models: list[type]) -> dict[str, Any]:
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    **({"format": f} if (f := spec.path_formats.get(name, "uuid")) else {}),
                },
            }
            for name in _PATH_PARAM.findall(path)
        ]
        parameters += [
            {"name": name, "in": "header", "required": False, "schema": schema,
             "description": text}
            for name, schema, text in spec.headers
        ]  # fmt: skip
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
            for name, schema, text in spec.query
        ]
        result: dict[str, Any] = {
            "summary": spec.summary,
            "tags": list(spec.tags),
            "parameters": parameters,
            "responses": {},
        }
        if spec.description:
            result["description"] = spec.description
        if spec.deprecated:
            result["deprecated"] = True
        if spec.admin:
            result["security"] = [{ADMIN_SCHEME: []}]
        elif spec.signed:
            result["security"] = [{BEARER_SCHEME: []}]
        if spec.body is not None:
            models.append(spec.body)
            result["requestBody"] = {
                "required": spec.body_required,
                "content": {"application/json": {"schema": _schema_ref(spec.body)}},
            }
        for status, (model, text) in spec.responses.items():
            response: dict[str, Any] = {"description": text}
            if 200 <= status < 300 and spec.answer_headers:
                response["headers"] = {
                    name: {"schema": schema, "description": about}
                    for name, schema, about in spec.answer_headers
                }
            if model is not None:
                models.append(model)
                # A type answered with another media type says so (Problem: problem+json).
                media_type = getattr(model, "__media_type__", "application/json")
                response["content"] = {media_type: {"schema": _schema_ref(model)}}
            result["responses"][str(status)] = response
        return result


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>couponapi - Swagger UI</title>
<link rel="stylesheet" href="/swagger/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/swagger/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/swagger/doc.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


def docs_routes(document: Callable[[], dict[str, Any]]) -> list[BaseRoute]:
    """Swagger UI at /swagger/index.html, the document at /swagger/doc.json and /openapi.json."""

    async def swagger_page(request: Request) -> Response:
        return HTMLResponse(SWAGGER_PAGE)

    async def openapi_document(request: Request) -> Response:
        return Response(msgspec.json.encode(document()), media_type="application/json")

    return [
        Route("/swagger/index.html", swagger_page, include_in_schema=False),
        Route("/swagger/doc.json", openapi_document, include_in_schema=False),
        Route("/openapi.json", openapi_document, include_in_schema=False),
        Mount("/swagger/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger"),
    ]
