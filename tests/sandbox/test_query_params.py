"""A query parameter the spec does not define for an operation answers 400 (issue 11)."""

from __future__ import annotations

import re

import yaml

from amili_async.sandbox._app import API, QUERY_PARAMS, create_app
from tests.conftest import SPEC_PATH

from ._support import Api

SPEC = yaml.safe_load(SPEC_PATH.read_text())


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def spec_query_params() -> dict[tuple[str, str], frozenset[str]]:
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            names = set()
            for p in op.get("parameters", []) + item.get("parameters", []):
                if "$ref" in p:
                    p = SPEC["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
                if p["in"] == "query":
                    names.add(p["name"])
            out[(method.upper(), _shape(path))] = frozenset(names)
    return out


def test_the_table_equals_the_specs_parameters_per_operation() -> None:
    spec = spec_query_params()
    routes = set()
    for route in create_app().router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        spec_path = path[len(API) :] if path.startswith(API + "/") else path
        key = (route.method, _shape(spec_path))
        if key not in spec:
            continue  # /token is not part of the spec
        routes.add(key)
        assert QUERY_PARAMS.get((route.method, path), frozenset()) == spec[key], key
    assert routes == set(spec)


async def test_wrong_casing_is_400_naming_the_parameter(api: Api) -> None:
    status, problem = await api.get(f"{api.org}/invoices", {"pageToken": "x"})
    assert status == 400, problem
    assert "pageToken" in problem["detail"]
    assert "pageToken" in problem["errors"]
    status, problem = await api.get(f"{api.org}/settlements", {"PageSize": "5"})
    assert status == 400
    assert "PageSize" in problem["errors"]
    status, problem = await api.get(f"{api.org}/batches/{'0' * 8}", {"x": "1"})
    assert status == 400


async def test_every_documented_parameter_is_accepted(api: Api) -> None:
    values = {"PageSize": "5", "pageSize": "5", "SortDirection": "ASC", "includeclosed": "true"}
    for url, op in (
        (f"{api.org}/invoices", ("GET", "/orgs/{}/invoices")),
        (f"{api.org}/batches", ("GET", "/orgs/{}/batches")),
        (f"{api.org}/cases", ("GET", "/orgs/{}/cases")),
        (f"{api.org}/settlements", ("GET", "/orgs/{}/settlements")),
        (f"{api.server.origin}/webapi/api/Batch", ("GET", "/webapi/api/Batch")),
    ):
        for name in spec_query_params()[op]:
            status, body = await api.get(url, {name: values.get(name, "")})
            # A documented parameter may be refused for its value, never as unknown.
            assert status == 200 or "Unknown query parameter" not in body["detail"], (name, body)
