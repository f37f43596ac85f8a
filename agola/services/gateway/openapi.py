"""The OpenAPI 3 document of the gateway, generated from its router and the wire types.

Nothing here is kept by hand: every route registered on the gateway's application (method and path,
path parameters with their patterns) is an operation; what the router cannot tell (query
parameters, the request body's and the response's wire type, the success status, who may call it)
is declared next to each handler with ``@api_op(...)``. Body and response schemas are derived from
the attrs fields and type annotations of the wire types (``agola.client.types``, or the codec's
``agola.types`` classes). A route without ``@api_op`` still appears, with what the router knows.

``GET /api/v1alpha/openapi.json`` serves it (``serve``).
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
from aiohttp import web

from agola import __version__
from agola.util.http import json_response

OPENAPI_PATH = "/api/v1alpha/openapi.json"
_OP_ATTR = "__agola_openapi__"
# The codec's field metadata keys (agola/types/_json.py) and the public client's (agola/client/types.py).
_CODEC_JSON_KEY = "agola_json"
_CODEC_EMBEDDED_KEY = "agola_embedded"
_CLIENT_JSON_KEY = "json"

Auth = Literal["token", "optional", "none"]
F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class Query:
    """A query parameter: ``kind`` is its JSON schema type; ``many``: it may repeat."""

    name: str
    kind: Literal["string", "integer", "boolean"] = "string"
    many: bool = False
    enum: tuple[str, ...] = ()
    required: bool = False


PAGING = (Query("start"), Query("limit", "integer"), Query("asc", "boolean"))


@attrs.frozen
class Op:
    """What the router does not say about an operation."""

    summary: str = ""
    body: type | None = None  # a wire type: the JSON object the handler reads
    body_media: str = ""  # a non-JSON body (streamed archives, git traffic)
    response: type | None = None  # a wire type: the JSON object answered
    many: bool = False  # the response is a list of ``response``
    response_media: str = ""  # a non-JSON response (logs, event streams, badges)
    status: int = 200
    query: tuple[Query, ...] = ()
    auth: Auth = "token"  # "optional": anonymous callers see public objects; "none": no credentials read


def api_op(summary: str = "", *, body: type | None = None, body_media: str = "", response: type | None = None,
           many: bool = False, response_media: str = "", status: int = 200, query: Sequence[Query] = (),
           auth: Auth = "token") -> Callable[[F], F]:
    """Record a handler's operation details for the OpenAPI document (the handler is unchanged)."""
    op = Op(summary, body, body_media, response, many, response_media, status, tuple(query), auth)

    def mark(handler: F) -> F:
        setattr(handler, _OP_ATTR, op)
        return handler

    return mark


def op_of(handler: Any) -> Op:
    return getattr(handler, _OP_ATTR, None) or Op()


# -- schemas of wire types -----------------------------------------------------------------------


class _Schemas:
    """``components/schemas``: one entry per wire type met, referenced by ``$ref``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, cls: type, *, request: bool) -> dict[str, Any]:
        name = cls.__name__ + ("" if not request or cls.__name__.endswith("Request") else "Request")
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive types end here
            self.components[name] = self.object_schema(cls, request=request)
        return {"$ref": f"#/components/schemas/{name}"}

    def object_schema(self, cls: type, *, request: bool) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        props: dict[str, Any] = {}
        required: list[str] = []
        all_of: list[dict[str, Any]] = []
        for f in attrs.fields(cls):
            if f.metadata.get(_CODEC_EMBEDDED_KEY):
                all_of.append(self.type_schema(hints[f.name], request=request))
                continue
            key = f.metadata.get(_CODEC_JSON_KEY) or f.metadata.get(_CLIENT_JSON_KEY) or f.name
            props[key] = self.type_schema(hints[f.name], request=request)
            if request and f.default is attrs.NOTHING:
                required.append(key)
        schema: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            schema["required"] = required
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(cls.__name__ + "("):  # attrs' generated signature is no description
            schema["description"] = " ".join(doc.split())
        return {"allOf": [schema, *all_of]} if all_of else schema

    def type_schema(self, tp: Any, *, request: bool) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            return self.type_schema(typing.get_args(tp)[0], request=request)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            inner = self.type_schema(args[0], request=request) if len(args) == 1 else {
                "anyOf": [self.type_schema(a, request=request) for a in args]}
            if len(args) < len(typing.get_args(tp)):
                return {"allOf": [inner], "nullable": True} if "$ref" in inner else {**inner, "nullable": True}
            return inner
        if origin in (list, tuple, set, frozenset, Sequence):
            items = typing.get_args(tp)
            return {"type": "array", "items": self.type_schema(items[0], request=request) if items else {}}
        if origin is dict:
            args = list(typing.get_args(tp))
            return {"type": "object",
                    "additionalProperties": self.type_schema(args[1], request=request) if args else {}}
        if tp is Any or tp is object:
            return {}
        if isinstance(tp, type):
            if issubclass(tp, bool):
                return {"type": "boolean"}
            if issubclass(tp, enum.Enum):
                return {"type": "string", "enum": [str(m.value) for m in tp]}
            if issubclass(tp, str):
                return {"type": "string"}
            if issubclass(tp, int):
                return {"type": "integer"}
            if issubclass(tp, float):
                return {"type": "number"}
            if attrs.has(tp):
                return self.ref(tp, request=request)
            if tp.__name__ in ("datetime",):
                return {"type": "string", "format": "date-time"}
            if tp.__name__ == "timedelta":
                return {"type": "integer", "description": "nanoseconds"}
        return {}


# -- operations ------------------------------------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")
_LITERALS = re.compile(r"^[\w-]+(\|[\w-]+)*$")


def _path_params(info: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if "path" in info:
        return str(info["path"]), []
    if "pattern" not in info:  # a static directory: no API
        return "", []
    params = []
    for name, regex in _GROUP.findall(info["pattern"].pattern):
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if _LITERALS.match(regex):
            schema = {"type": "string", "enum": regex.split("|")}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return str(info["formatter"]), params


def _query_param(q: Query) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": q.kind}
    if q.enum:
        schema["enum"] = list(q.enum)
    if q.many:
        return {"name": q.name, "in": "query", "required": q.required, "style": "form", "explode": True,
                "schema": {"type": "array", "items": schema}}
    return {"name": q.name, "in": "query", "required": q.required, "schema": schema}


def _operation(method: str, handler: Any, path_params: list[dict[str, Any]], schemas: _Schemas) -> dict[str, Any]:
    op = op_of(handler)
    name = getattr(handler, "__name__", "handler")
    module = getattr(handler, "__module__", "").rsplit(".", 1)[-1]
    out: dict[str, Any] = {
        "operationId": f"{module}.{name}.{method.lower()}",
        "tags": [module],
        "parameters": path_params + [_query_param(q) for q in op.query],
    }
    if op.summary:
        out["summary"] = op.summary
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.ref(op.body, request=True)}}}
    elif op.body_media:
        out["requestBody"] = {"required": False, "content": {
            op.body_media: {"schema": {"type": "string", "format": "binary"}}}}
    ok: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        one = schemas.ref(op.response, request=False)
        ok["content"] = {"application/json": {"schema": {"type": "array", "items": one} if op.many else one}}
    elif op.response_media:
        ok["content"] = {op.response_media: {"schema": {"type": "string"}}}
    out["responses"] = {str(op.status): ok, "default": {
        "description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
    if op.auth == "token":
        out["security"] = [{"token": []}]
    elif op.auth == "optional":
        out["security"] = [{"token": []}, {}]
    else:
        out["security"] = []
    return out


def build_document(routes: Iterable[web.AbstractRoute]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``routes`` (HEAD, added by aiohttp next to each GET, and CORS
    preflights are left out)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for route in routes:
        method = route.method.upper()
        if method in ("HEAD", "OPTIONS", "*"):
            continue
        path, params = _path_params(route.resource.get_info()) if route.resource is not None else ("", [])
        if not path:
            continue
        operation = _operation(method, route.handler, params, schemas)
        seen[operation["operationId"]] = n = seen.get(operation["operationId"], 0) + 1
        if n > 1:  # one handler on several paths (the /api and /api/v1alpha aliases)
            operation["operationId"] += f".{n}"
        paths.setdefault(path, {})[method.lower()] = operation
    schemas.components["Error"] = {"type": "object", "properties": {
        "message": {"type": "string"}, "code": {"type": "string"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Agola gateway API", "version": __version__,
                 "description": "Generated from the gateway's routes and wire types (agola/services/gateway/openapi.py)."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {"token": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "'token <user or admin token>' or 'bearer <login JWT>' "
                               "(the access_token query parameter is accepted too)"}},
        },
    }


@attrs.define
class _State:
    routes: list[web.AbstractRoute]
    document: dict[str, Any] = attrs.field(factory=dict)


_STATE_KEY: web.AppKey[_State] = web.AppKey("gateway_openapi", _State)


def register(app: web.Application) -> None:
    """Route ``GET /api/v1alpha/openapi.json``, documenting every route added so far (the API's;
    the web UI's pages, added later, are not part of it)."""
    app.router.add_get(OPENAPI_PATH, serve)
    app[_STATE_KEY] = _State(list(app.router.routes()))


@api_op("This document", response_media="application/json", auth="none")
async def serve(request: web.Request) -> web.Response:
    state = request.app[_STATE_KEY]
    if not state.document:
        state.document = build_document(state.routes)
    return json_response(state.document)
