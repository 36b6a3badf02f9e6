"""The conformance run: every operation of the spec against the real sandbox over loopback.

For each operation the requests are derived from the spec itself: one the spec accepts (real
ids from the sandbox so it can succeed), and one per constraint the spec states, broken (no
Bearer token, an undefined query parameter, each typed query parameter with a value outside
its schema, each path id malformed, the body missing, not JSON, in another media type, and
each required field, type and enum of the body violated). The sandbox runs with the spec
checker as middleware, so every answer, errors included, is validated against the spec's
schema for its status, and the sandbox's verdict on each request (accepted, or refused with
400/422) must equal the spec's. Derivation instead of random generation: each constraint is
exercised exactly once, the run is deterministic and takes a few seconds."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
import pytest

from amili_async.sandbox import (
    RESTRICTED_CLIENT_ID,
    RESTRICTED_CLIENT_SECRET,
    SandboxConfig,
    SandboxServer,
)
from tests.sandbox._support import Api

from . import _spec

SPEC = _spec.load()
CASE_BASE = 5_000_001  # the seeded case numbers start here
# Seeded sub-statuses by case index (mod 20, see sandbox/_seed.py): these indexes hold a case
# on the debt-collection list, with an eviction request, with an eviction confirmation request.
LIST_CASES = (3, 23)
EVICTION_REQUEST_CASES = (7, 27)
EVICTION_CONFIRMATION_CASES = (11, 31)
WRONG_TYPE = {"string": 12345, "number": "a lot", "integer": "many", "boolean": "yes",
              "array": {}, "object": []}  # fmt: skip


@attrs.define
class Call:
    """One request of the run: what to send and whether the spec accepts it."""

    label: str
    method: str
    path: str
    query: dict[str, str] = attrs.Factory(dict)
    body: bytes | None = None
    media: str | None = None
    auth: bool = True
    token: str | None = None  # another client's token instead of the default one
    valid: bool = True


@pytest.fixture
async def run() -> AsyncIterator[tuple[Api, _spec.Log]]:
    log = _spec.Log()
    server = SandboxServer(SandboxConfig(invoices=120, batch_delay=0.01))
    _spec.install(server.app, log)
    async with server, aiohttp.ClientSession() as session:
        api = Api(server, session)
        await api.login()
        yield api, log


# --------------------------------------------------------------------------- values
def sample_value(schema: dict[str, Any]) -> Any:
    """A value the schema accepts (its example, first enum value, default or a typed stand-in)."""
    schema = SPEC.resolve(schema)
    if "anyOf" in schema:
        return sample_value(schema["anyOf"][0])
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("default", "example", "const"):
        if key in schema:
            return schema[key]
    kind = schema.get("type")
    kind = next(t for t in kind if t != "null") if isinstance(kind, list) else kind
    fmt = schema.get("format")
    if kind == "string":
        return {"uuid": str(uuid.UUID(int=1)), "date-time": "2024-01-15T00:00:00Z",
                "date": "2024-01-15"}.get(fmt, "x")  # fmt: skip
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return [sample_value(schema["items"])] * schema.get("minItems", 1)
    props = schema.get("properties", {})
    # The required fields; an object with none (an optional reason) gets all of them.
    return {name: sample_value(props[name]) for name in schema.get("required") or props}


def query_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def bad_query_values(schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, value) for each query value the parameter's schema refuses."""
    schema = SPEC.resolve(schema)
    kind, fmt = schema.get("type"), schema.get("format")
    if "enum" in schema:
        yield "outside its enum", "NOT_A_DOCUMENTED_VALUE"
    elif kind == "integer":
        yield "not an integer", "many"
        if "minimum" in schema:
            yield "below its minimum", str(schema["minimum"] - 1)
        if "maximum" in schema:
            yield "above its maximum", str(schema["maximum"] + 1)
    elif kind == "boolean":
        yield "not a boolean", "maybe"
    elif fmt in ("date", "date-time"):
        yield f"not a {fmt}", "yesterday"


def body_violations(schema: dict[str, Any], body: Any) -> Iterator[tuple[str, Any]]:
    """(what, body) for each violation of the body's required fields, types and enums, one
    level into the first item of each array (where the request bodies keep their fields)."""
    schema = SPEC.resolve(schema)
    for name in schema.get("required", []):
        broken = copy.deepcopy(body)
        del broken[name]
        yield f"{name} missing", broken
    for name, prop in schema.get("properties", {}).items():
        if name not in body:
            continue
        target = SPEC.resolve(prop)
        broken = copy.deepcopy(body)
        if "enum" in target:
            broken[name] = "NOT_A_DOCUMENTED_VALUE"
            yield f"{name} outside its enum", broken
        elif isinstance(target.get("type"), str):
            broken[name] = WRONG_TYPE[target["type"]]
            yield f"{name} of the wrong type", broken
        if target.get("type") == "array" and body[name]:
            if target.get("minItems"):
                yield f"{name} empty", {**body, name: []}
            item = SPEC.resolve(target["items"])
            if item.get("type") == "object" or "properties" in item:
                for what, bad in body_violations(item, body[name][0]):
                    yield f"{name}[0] {what}", {**body, name: [bad]}


# --------------------------------------------------------------------------- the state
@attrs.define
class Ids:
    """Real ids of the sandbox, so that the accepted request of each operation can succeed."""

    org: str
    invoice: str
    batch: str
    settlement: str
    open_cases: list[str]
    cases_by_index: dict[int, str]

    def case_for(self, op_id: str) -> str:
        index = {
            "AcceptEvictionRequest": EVICTION_REQUEST_CASES[0],
            "RejectEvictionRequest": EVICTION_REQUEST_CASES[1],
            "AcceptEvictionConfirmation": EVICTION_CONFIRMATION_CASES[0],
            "RejectEvictionConfirmation": EVICTION_CONFIRMATION_CASES[1],
        }.get(op_id)
        if index is not None:
            return self.cases_by_index[index]
        # Pause and withdraw take an open case each; resume the one pause paused (it runs later).
        return self.open_cases[{"PauseCase": 0, "ResumeCase": 0, "WithdrawCase": 1}[op_id]]


async def real_ids(api: Api) -> Ids:
    org = api.server.default_org_id
    invoice = (await api.ok(f"{api.org}/invoices", {"PageSize": "1"}))["data"][0]["id"]
    batch = (await api.post(f"{api.org}/invoices", {"invoices": [sample_body("invoices")]}))[1]
    await api.wait_batch(batch["data"]["batchId"])
    # Payments make settlements (two, so that the settlement listing has a second page).
    payment = {
        "invoiceId": invoice,
        "amount": Decimal("10.05"),
        "currency": "NOK",
        "type": "DIRECT_PAYMENT",
    }
    await api.submit("payments", {"payments": [payment, payment]})
    settlement = (await api.ok(f"{api.org}/settlements", {"pageSize": "1"}))["data"][0]
    cases = (await api.ok(f"{api.org}/cases", {"Status": "OPEN", "PageSize": "100"}))["data"]
    by_index = {}
    for index in (*LIST_CASES, *EVICTION_REQUEST_CASES, *EVICTION_CONFIRMATION_CASES):
        page = await api.ok(f"{api.org}/cases", {"CaseNumber": str(CASE_BASE + index)})
        by_index[index] = page["data"][0]["caseId"]
    return Ids(
        org,
        invoice,
        batch["data"]["batchId"],
        settlement["settlementId"],
        [c["caseId"] for c in cases if c["subStatus"] is None],
        by_index,
    )


def sample_body(key: str) -> dict[str, Any]:
    """The first item of the spec's own request example for a write."""
    op = next(o for o in SPEC.operations if o.op_id == f"Create{key.title()}")
    content = SPEC.resolve(op.node["requestBody"])["content"]["application/json"]
    example = next(iter(content["examples"].values()))["value"]
    return copy.deepcopy(example[key][0])  # type: ignore[no-any-return]


def valid_body(op: _spec.Operation, ids: Ids) -> tuple[str, Any] | None:
    """(media type, body) of the accepted request, from the spec's examples where it has one."""
    if "requestBody" not in op.node:
        return None
    content = SPEC.resolve(op.node["requestBody"])["content"]
    media = next(iter(content))
    if op.op_id == "LegacyUploadAttachment":
        return media, None  # sent as multipart below
    if op.op_id in ("AcceptDebtCollectionList", "RejectDebtCollectionList"):
        index = LIST_CASES[op.op_id.startswith("Reject")]
        return media, {"caseIds": [ids.cases_by_index[index]]}
    if op.op_id == "LegacyPostBatch":
        # No body example: the GET's answer, the model the POST body is assumed to share.
        get = next(o for o in SPEC.operations if o.op_id == "LegacyGetBatch")
        ok = get.node["responses"]["200"]["content"]["application/json"]
        return media, copy.deepcopy(ok["examples"]["example1"]["value"])
    examples = content[media].get("examples")
    body = copy.deepcopy(next(iter(examples.values()))["value"]) if examples else None
    if body is None:
        body = sample_value(content[media]["schema"])
    for item in next(iter(body.values()), []) if isinstance(body, dict) else []:
        if isinstance(item, dict) and "invoiceId" in item:
            item["invoiceId"] = ids.invoice
    return media, body


def calls_for(
    op: _spec.Operation, ids: Ids, page_tokens: dict[str, str], restricted_token: str
) -> list[Call]:
    """The requests of one operation: every broken one first, the accepted one last."""
    path_values = {
        "organizationId": ids.org,
        "orgId": ids.org,
        "invoiceId": ids.invoice,
        "batchId": ids.batch,
        "settlementId": ids.settlement,
    }
    if ("path", "caseId") in op.params:
        path_values["caseId"] = ids.case_for(op.op_id)

    def path(**over: str) -> str:
        values = {**path_values, **over}
        prefix = "" if "servers" in op.node else "/collection/v1"
        return prefix + op.template.format(**values)

    query: dict[str, str] = {}
    for (kind, name), param in op.params.items():
        if kind == "query" and name == "caseid":
            query[name] = ids.open_cases[2]  # an attachment needs a case that exists
        elif kind == "query" and name.lower() != "pagetoken":
            query[name] = query_text(sample_value(param["schema"]))
    body = valid_body(op, ids)
    media, payload = body if body else (None, None)
    raw = json.dumps(payload).encode() if payload is not None else None

    def call(label: str, **over: Any) -> Call:
        fields = {"method": op.method, "path": path(), "query": dict(query), "body": raw,
                  "media": media} | over  # fmt: skip
        return Call(f"{op.op_id} {label}", **fields)

    calls: list[Call] = []
    if op.bearer:
        calls.append(call("without a Bearer token", auth=False, valid=False))
        if ("path", "organizationId") in op.params or ("path", "orgId") in op.params:
            calls.append(call("by a client without access", token=restricted_token))
    calls.append(call("with an undefined query parameter",
                      query={**query, "NotAParameter": "1"}, valid=False))  # fmt: skip
    for (kind, name), param in op.params.items():
        if kind == "query":
            for what, value in bad_query_values(param["schema"]):
                calls.append(call(f"{name} {what}", query={**query, name: value}, valid=False))
        if kind == "path":
            calls.append(call(f"{name} malformed", path=path(**{name: "not-an-id"}), valid=False))
            if name not in ("organizationId", "orgId"):
                unknown = str(uuid.UUID(int=7))
                calls.append(call(f"{name} unknown", path=path(**{name: unknown})))
    if media and media != "multipart/form-data":
        spec_body = SPEC.resolve(op.node["requestBody"])
        if spec_body.get("required"):
            calls.append(call("without its body", body=None, media=None, valid=False))
        calls.append(call("with a body that is not JSON", body=b"{not json", valid=False))
        calls.append(call("in an undefined media type", media="text/plain", valid=False))
        schema = spec_body["content"][media]["schema"]
        if payload is not None:
            for what, bad in body_violations(schema, payload):
                calls.append(call(what, body=json.dumps(bad).encode(), valid=False))
    if op.op_id in page_tokens:
        # A token is valid with the filters it came with: the first page's (a page size only).
        (size,) = (n for k, n in op.params if k == "query" and n.lower() == "pagesize")
        (token,) = (n for k, n in op.params if k == "query" and n.lower() == "pagetoken")
        calls.append(call("next page", query={size: "1", token: page_tokens[op.op_id]}))
    calls.append(call("accepted"))
    return calls


async def send(api: Api, call: Call) -> int:
    headers = {"Authorization": f"Bearer {call.token or api.token}"} if call.auth else {}
    kwargs: dict[str, Any] = {"params": call.query, "headers": headers}
    if call.media == "multipart/form-data":
        form = aiohttp.FormData()
        form.add_field("file", b"%PDF-1.4 conformance", filename="a.pdf")
        kwargs["data"] = form
    elif call.body is not None:
        kwargs["data"] = call.body
        headers["Content-Type"] = call.media or "application/json"
    url = api.server.origin + call.path
    async with api.session.request(call.method, url, **kwargs) as resp:
        await resp.read()
        return resp.status


async def first_page_tokens(api: Api) -> dict[str, str]:
    """A real next-page token per listing (an opaque token is valid only as the server made it)."""
    tokens = {}
    for op in SPEC.operations:
        names = [n for k, n in op.params if k == "query" and n.lower() == "pagetoken"]
        if not names:
            continue
        size = next(n for k, n in op.params if k == "query" and n.lower() == "pagesize")
        page = await api.ok(api.server.origin + "/collection/v1" + op.template.format(
            organizationId=api.server.default_org_id), {size: "1"})  # fmt: skip
        tokens[op.op_id] = page["summary"]["nextPageToken"]
    return tokens


async def test_every_operation_conforms_to_the_spec(run: tuple[Api, _spec.Log]) -> None:
    api, log = run
    ids = await real_ids(api)
    tokens = await first_page_tokens(api)
    restricted = Api(api.server, api.session)
    await restricted.login(RESTRICTED_CLIENT_ID, RESTRICTED_CLIENT_SECRET)
    sent: list[tuple[Call, int]] = []
    # Resume after pause: the accepted PauseCase leaves the case ResumeCase needs.
    order = sorted(SPEC.operations, key=lambda o: o.op_id == "ResumeCase")
    for op in order:
        for call in calls_for(op, ids, tokens, restricted.token):
            sent.append((call, await send(api, call)))
    assert not log.problems, "\n".join(sorted(set(log.problems))[:40])

    by_op: dict[str, list[tuple[Call, int]]] = {}
    for call, status in sent:
        by_op.setdefault(call.label.split()[0], []).append((call, status))
    assert set(by_op) == {o.op_id for o in SPEC.operations}
    for op_id, results in by_op.items():
        accepted = [s for c, s in results if c.label.endswith("accepted")]
        assert accepted, op_id
        assert accepted[0] < 300, (op_id, accepted)
        for call, status in results:
            if not call.valid:
                assert 400 <= status < 500, (call.label, status)
            if call.token is not None:
                assert status == 403, (call.label, status)
    # Every request reached the checker (none bypassed the middleware).
    assert len(log.seen) >= len(sent)
