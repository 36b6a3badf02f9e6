"""The spec as a request/response checker: find the operation of a request, check the request
against its parameters, security and body schema, and an answer against the schema the spec
gives for that status. Driven by openapi/amili-autocollect.yaml alone (nothing per operation
is written here), so a change of the spec changes what is checked.

Used by the conformance run (tests/conformance) and by the validation middleware that the
end-to-end tests install in every sandbox (``install``)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import attrs
import jsonschema
import jsonschema_rs
import orjson
import yaml
from aiohttp import web
from multidict import CIMultiDict

from amili_async.sandbox._faults import fault_middleware
from tests.conftest import SPEC_PATH

__all__ = [
    "SANDBOX_ONLY",
    "Exchange",
    "Log",
    "Operation",
    "SandboxRule",
    "Spec",
    "documented_refusal",
    "install",
    "load",
]

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
MULTIPART_UNREAD = b"(multipart body, not read)"


@attrs.frozen
class Operation:
    """One operation of the spec, with its path as a regex on the request's URL path."""

    op_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    node: dict[str, Any] = attrs.field(repr=False)
    params: dict[tuple[str, str], dict[str, Any]] = attrs.field(repr=False)  # (in, name) -> it
    bearer: bool


@attrs.frozen
class Exchange:
    """A request and its answer as seen on the wire."""

    method: str
    path: str
    query: Any  # a MultiDict: every value of a repeated name is checked
    headers: Mapping[str, str]
    body: bytes
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes


class Spec:
    """Checks requests and answers against the spec's operations."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.components = doc["components"]
        prefix = urlsplit(doc["servers"][0]["url"]).path.rstrip("/")
        self.operations: list[Operation] = []
        for template, item in doc["paths"].items():
            for method in HTTP_METHODS:
                if method in item:
                    self.operations.append(self._operation(prefix, template, method, item))
        # Literal segments win over parameters (none overlap today; the order keeps it so).
        self.operations.sort(key=lambda o: o.template.count("{"))
        self._validators: dict[int, jsonschema_rs.Draft202012Validator] = {}
        # The second reading (python-jsonschema) runs on the first answer of each (operation,
        # status) and the first body of each operation: a sample, as it is ~20x slower.
        self._second_seen: set[tuple[str, str, int]] = set()

    def _operation(
        self, prefix: str, template: str, method: str, item: dict[str, Any]
    ) -> Operation:
        node = item[method]
        # An operation with its own servers (the legacy /webapi API) is addressed from the origin.
        root = "" if "servers" in node else prefix
        regex = re.sub(r"\\\{[^}]+\\\}", lambda _m: "([^/]+)", re.escape(root + template))
        params = {}
        for p in [*item.get("parameters", []), *node.get("parameters", [])]:
            p = self.resolve(p)
            params[(p["in"], p["name"])] = p
        security = node.get("security", self.doc.get("security", []))
        bearer = any("bearerAuth" in s for s in security)
        return Operation(
            node["operationId"],
            method.upper(),
            template,
            re.compile(regex + "$"),
            node,
            params,
            bearer,
        )

    # ------------------------------------------------------------------ lookups
    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation answering ``method path`` and its path parameters, or None."""
        for op in self.operations:
            if op.method != method:
                continue
            match = op.pattern.match(path)
            if match:
                names = re.findall(r"\{([^}]+)\}", op.template)
                return op, dict(zip(names, match.groups(), strict=True))
        return None

    def validator(self, schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
        """A compiled validator of ``schema`` (OpenAPI 3.1 schemas are JSON Schema 2020-12),
        formats checked (uuid, date, date-time, uri); jsonschema-rs, as a 1,000-item page takes
        the pure-Python jsonschema about 70 ms."""
        key = id(schema)
        found = self._validators.get(key)
        if found is None:
            found = jsonschema_rs.Draft202012Validator(
                {**schema, "components": self.components}, validate_formats=True
            )
            self._validators[key] = found
        return found

    def schema_errors(self, schema: dict[str, Any], instance: Any, where: str) -> list[str]:
        return [
            f"{where} at /{'/'.join(map(str, e.instance_path))}: {e.message[:200]}"
            for e in self.validator(schema).iter_errors(instance)
        ]

    def second_errors(self, schema: dict[str, Any], instance: Any, where: str) -> list[str]:
        """The same check by python-jsonschema (another implementation of 2020-12, formats
        included), so a construct jsonschema-rs reads differently (a float multipleOf) shows."""
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": self.components},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        return [
            f"{where} (python-jsonschema) at /{'/'.join(map(str, e.absolute_path))}: "
            f"{e.message[:200]}"
            for e in validator.iter_errors(instance)
        ]

    def sampled_errors(
        self, kind: str, op: Operation, status: int, schema: dict[str, Any], instance: Any,
        where: str,
    ) -> list[str]:  # fmt: skip
        """jsonschema-rs on every instance, python-jsonschema on the first of its kind."""
        found = self.schema_errors(schema, instance, where)
        key = (kind, op.op_id, status)
        if key not in self._second_seen:
            self._second_seen.add(key)
            found += self.second_errors(schema, instance, where)
        return found

    def documented_fields(self, op: Operation, status: int) -> list[tuple[str, ...]]:
        """The field paths the docs' examples show for this answer ("[]" for every item of an
        array), from the spec's embedded examples (tests/test_spec_docs.py ties them to the
        docs); the examples of older page versions are left out, as the sandbox serves the
        newest shape."""
        response = self.response(op, status)
        media = (response or {}).get("content", {}).get("application/json", {})
        paths: set[tuple[str, ...]] = set()
        for name, example in media.get("examples", {}).items():
            if not name.startswith("older"):
                paths |= set(field_paths(example["value"]))
        return sorted(paths)

    def response(self, op: Operation, status: int) -> dict[str, Any] | None:
        responses = op.node["responses"]
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return self.resolve(responses[key])
        return None

    # ------------------------------------------------------------------ requests
    def request_problems(
        self, op: Operation, path_params: Mapping[str, str], ex: Exchange
    ) -> list[str]:
        """Why the spec refuses this request ([] when it accepts it)."""
        where = f"{op.op_id} request"
        found: list[str] = []
        if op.bearer and not ex.headers.get("Authorization", "").startswith("Bearer "):
            found.append(f"{where}: no Bearer Authorization header")
        for name, value in path_params.items():
            param = op.params[("path", name)]
            found += self.schema_errors(param["schema"], value, f"{where} path {name}")
        names = list(ex.query.keys())
        for name in dict.fromkeys(names):
            param = op.params.get(("query", name))
            if param is None:
                found.append(f"{where}: query parameter {name} is not defined")
                continue
            for value in ex.query.getall(name):
                found += self._query_value(param, value, f"{where} query {name}")
        for (kind, name), param in op.params.items():
            if param.get("required") and kind == "query" and name not in names:
                found.append(f"{where}: required query parameter {name} is missing")
            if kind == "header" and name in ex.headers:
                found += self.schema_errors(
                    param["schema"], ex.headers[name], f"{where} header {name}"
                )
        return found + self._body_problems(op, ex, where)

    def _query_value(self, param: dict[str, Any], raw: str, where: str) -> list[str]:
        schema = self.resolve(param["schema"])
        kind = schema.get("type")
        value: Any = raw
        if kind == "integer":
            try:
                value = int(raw)
            except ValueError:
                return [f"{where}: {raw!r} is not an integer"]
        elif kind == "boolean":
            if raw not in ("true", "false"):
                return [f"{where}: {raw!r} is not true or false"]
            value = raw == "true"
        return self.schema_errors(param["schema"], value, where)

    def _body_problems(self, op: Operation, ex: Exchange, where: str) -> list[str]:
        spec_body = op.node.get("requestBody")
        if spec_body is None:
            return [f"{where}: a body where none is defined"] if ex.body else []
        spec_body = self.resolve(spec_body)
        if not ex.body:
            return [f"{where}: the body is required"] if spec_body.get("required") else []
        media = ex.headers.get("Content-Type", "").split(";")[0].strip().lower()
        content = spec_body["content"]
        if media not in content:
            return [f"{where}: media type {media!r} is not one of {sorted(content)}"]
        if media == "multipart/form-data":
            return []  # the part names are checked by the sandbox's own tests
        try:
            instance = json.loads(ex.body, parse_float=Decimal)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return self.sampled_errors("request", op, 0, content[media]["schema"], instance,
                                   f"{where} body")  # fmt: skip

    # ------------------------------------------------------------------ answers
    def response_problems(self, op: Operation, ex: Exchange) -> list[str]:
        """Why this answer disagrees with the spec ([] when it agrees)."""
        where = f"{op.op_id} {ex.status}"
        response = self.response(op, ex.status)
        if response is None:
            return [f"{where}: status not declared for the operation"]
        found = [
            f"{where}: header {name} missing"
            for name in response.get("headers", {})
            if name not in ex.response_headers
        ]
        content = response.get("content")
        if not content:
            if ex.response_body:
                found.append(f"{where}: a body where the spec declares none")
            return found
        media = ex.response_headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media not in content:
            return [*found, f"{where}: media type {media!r} is not one of {sorted(content)}"]
        try:
            body = orjson.loads(ex.response_body)  # a 1,000-item page in milliseconds
        except orjson.JSONDecodeError:
            return [*found, f"{where}: the body is not JSON"]
        found += self.sampled_errors("response", op, ex.status, content[media]["schema"], body,
                                     where)  # fmt: skip
        return found + [
            f"{where}: the documented field {'.'.join(path)} is missing"
            for path in self.documented_fields(op, ex.status)
            if not has_path(body, path)
        ]


def field_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON value, an array's items under "[]"."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found.append((*prefix, key))
            found += field_paths(item, (*prefix, key))
        return found
    if isinstance(value, list):
        return [p for item in value for p in field_paths(item, (*prefix, "[]"))]
    return []


def has_path(value: Any, path: tuple[str, ...]) -> bool:
    """Whether ``path`` is in ``value``: every item of an array along it must have it (an
    empty array, or a null on the way, has nothing to show)."""
    if not path or value is None:
        return True
    head, rest = path[0], path[1:]
    if head == "[]":
        return isinstance(value, list) and all(has_path(item, rest) for item in value)
    return isinstance(value, dict) and head in value and has_path(value[head], rest)


@cache
def load() -> Spec:
    """The project's spec, parsed once per test session."""
    return Spec(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- middleware
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Answers a status of which the sandbox says "the request is wrong", per the spec's schemas.
SCHEMA_REFUSALS = frozenset({400, 422})
DESIGN_PATH = SPEC_PATH.parent.parent / "docs" / "DESIGN.md"
SANDBOX_ONLY_HEADING = "## Sandbox-only behaviour"


@attrs.frozen
class SandboxRule:
    """A refusal by the sandbox of a request the spec accepts: the sandbox's own rule, named
    (in bold) in docs/DESIGN.md's Sandbox-only behaviour section, recognised by the status
    and the ``errors`` member of its ProblemDetails (every field named must match)."""

    name: str
    status: int
    field: re.Pattern[str]
    message: re.Pattern[str]


# The only refusals of spec-valid requests the conformance checks accept (test_checker ties
# each name to docs/DESIGN.md).
SANDBOX_ONLY = (
    SandboxRule(
        "Amounts have at most two decimals and stay below 10^12",
        422,
        re.compile(r"(invoices|payments|corrections)\[\d+\]\.(originalInvoiceAmount|amount)"),
        re.compile(r"at most 2 decimal places|too large"),
    ),
    SandboxRule(
        "Page sizes are at most 1000",
        400,
        re.compile(r"PageSize|pageSize"),
        re.compile(r"between 1 and 1000"),
    ),
    SandboxRule(
        "Writes take at most 1000 items",
        422,
        re.compile(r"invoices|payments|corrections|caseIds"),
        re.compile(r"between 1 and 1000 items|At most 1000"),
    ),
    SandboxRule(
        "Page tokens are valid only as issued",
        400,
        re.compile(r"PageToken|pageToken"),
        re.compile(r"Invalid, tampered"),
    ),
    SandboxRule(
        "Strings are at most 500 characters",
        422,
        re.compile(r".+"),
        re.compile(r"at most 500 characters"),
    ),
    SandboxRule(
        "Required strings are not blank",
        422,
        re.compile(r".+"),
        re.compile(r"field must not be blank"),
    ),
)


def documented_refusal(status: int, body: bytes) -> list[str]:
    """The Sandbox-only rules that explain this refusal ([] when none does)."""
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    errors = problem.get("errors") if isinstance(problem, dict) else None
    if not isinstance(errors, dict) or not errors:
        return []
    names = []
    for field, messages in errors.items():
        rule = next(
            (
                r
                for r in SANDBOX_ONLY
                if r.status == status
                and r.field.fullmatch(field)
                and all(r.message.search(m) for m in messages)
            ),
            None,
        )
        if rule is None:
            return []
        names.append(rule.name)
    return sorted(set(names))


@attrs.define
class Log:
    """What the validation middleware saw: every checked exchange and every disagreement."""

    seen: list[tuple[str, int, bool]] = attrs.Factory(list)  # (operationId, status, spec-valid)
    problems: list[str] = attrs.Factory(list)


def agreement(
    op: Operation, request_problems: list[str], status: int, answer: bytes = b""
) -> list[str]:
    """Where the sandbox's verdict on a request disagrees with the spec's (a refusal that a
    documented Sandbox-only rule explains agrees)."""
    if request_problems and status < 400:
        return [f"{op.op_id}: answered {status} to a request the spec refuses: {request_problems}"]
    documented = documented_refusal(status, answer)
    if not request_problems and status in SCHEMA_REFUSALS and not documented:
        return [f"{op.op_id}: answered {status} to a request the spec accepts"]
    return []


def install(app: web.Application, log: Log, spec: Spec | None = None) -> None:
    """Check every request and answer of ``app`` against the spec (the project's, or another
    one: the mutation tests pass a loosened copy), recording into ``log``.

    Placed just inside the fault injector, so deliberate faults (HTML pages, dropped
    connections) are not checked, but every answer of the API itself is, errors included."""
    spec = spec or load()

    @web.middleware
    async def validate(request: web.Request, handler: Handler) -> web.StreamResponse:
        found = spec.find(request.method, request.path)
        if found is None:
            return await handler(request)
        op, path_params = found
        # A multipart body stays unread (its reader needs the stream): its media type is checked.
        multipart = request.content_type.startswith("multipart/")
        body = MULTIPART_UNREAD if multipart else await request.read()
        response = await handler(request)
        if not isinstance(response, web.Response):
            log.problems.append(f"{op.op_id}: a streamed answer the middleware cannot check")
            return response
        # The request id is added when the answer is prepared (sandbox _app._add_request_id,
        # for every answer), after this middleware: only the other declared headers are checked.
        headers = CIMultiDict(response.headers)
        headers.setdefault("X-Amili-Request-Id", "added on prepare")
        ex = Exchange(
            request.method,
            request.path,
            request.query,
            request.headers,
            body,
            response.status,
            headers,
            bytes(response.body) if isinstance(response.body, bytes | bytearray) else b"",
        )
        request_problems = spec.request_problems(op, path_params, ex)
        log.seen.append((op.op_id, response.status, not request_problems))
        log.problems += agreement(op, request_problems, response.status, ex.response_body)
        log.problems += spec.response_problems(op, ex)
        return response

    middlewares = list(app.middlewares)
    at = middlewares.index(fault_middleware) + 1 if fault_middleware in middlewares else 0
    app.middlewares.insert(at, validate)
