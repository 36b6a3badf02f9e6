"""The aiohttp.web application: routes, thin handlers, middlewares."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .. import models
from .._config import IDEMPOTENCY_KEY_HEADER
from ._cases import CASE_ACTIONS
from ._config import SandboxConfig
from ._faults import FAULTS_KEY, FaultInjector, fault_middleware
from ._http import JSON, REQUEST_ID_KEY, json_response, problem_response
from ._pages import PageCodec, paginate, parse_page_size
from ._query import BATCH_FILTERS, CASE_FILTERS, INVOICE_FILTERS, QUERY_PARAMS, query_middleware
from ._records import BATCH_STATUSES, BATCH_TYPES, INVOICE_STATUSES, INVOICE_TYPES
from ._requestlog import request_log_middleware
from ._shape import validate_shape
from ._state import SandboxState
from ._store import CaseFilters, InvoiceFilters, OrgState
from ._throttle import THROTTLE_KEY, Throttle, throttle_middleware
from ._tokens import TokenClaims, TokenIssuer
from ._validate import (
    parse_json_object,
    query_datetime,
    query_enum,
    validate_case_action,
    validate_corrections,
    validate_debt_collection_list,
    validate_invoices,
    validate_payments,
)
from ._webhooks import add_webhook_routes
from ._wire import ApiError, dumps, parse_date

__all__ = [
    "PAGES_KEY",
    "QUERY_PARAMS",
    "REQUEST_ID_HEADER",
    "STATE_KEY",
    "TOKENS_KEY",
    "create_app",
]

_log = logging.getLogger(__name__)

# The response header carrying the request id (DESIGN.md: documented for webhook deliveries).
REQUEST_ID_HEADER = "X-Amili-Request-Id"
# The API's path prefix and an organisation's, as in the docs' URLs.
API = "/collection/v1"
ORG = API + "/orgs/{org}"
# Actions under this prefix take a list of case ids in the body, at the organisation's URL;
# every other case action names its one case in the URL.
_LIST_ACTION_PREFIX = "debt-collection-list/"

# Typed keys of the app's own state, token issuer and page codec (one per app).
STATE_KEY = web.AppKey("amili_state", SandboxState)
TOKENS_KEY = web.AppKey("amili_tokens", TokenIssuer)
PAGES_KEY = web.AppKey("amili_pages", PageCodec)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The summary of a single-object answer: nothing follows it.
_SUMMARY_LAST = {"status": "SUCCESS", "nextPageToken": None}


# --------------------------------------------------------------------------- middlewares
@web.middleware
async def _request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID_KEY] = str(uuid.uuid4())
    return await handler(request)


async def _add_request_id(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # on_response_prepare: runs for every response, including the fault middleware's.
    response.headers[REQUEST_ID_HEADER] = request.get(REQUEST_ID_KEY) or str(uuid.uuid4())


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return problem_response(
            request, exc.status, exc.detail, title=exc.title, errors=exc.errors, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return problem_response(request, exc.status, exc.reason, headers=headers)
    except Exception:
        _log.exception("sandbox handler failed: %s %s", request.method, request.path)
        return problem_response(request, 500, "Internal sandbox error.")


# --------------------------------------------------------------------------- helpers
def _state(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]


def _claims(request: web.Request) -> TokenClaims:
    return request.app[TOKENS_KEY].verify_header(request.headers.get("Authorization"))


def _auth_org(request: web.Request) -> tuple[TokenClaims, OrgState]:
    """Bearer check (401), then the organisation: unknown 404, not granted 403."""
    claims = _claims(request)
    raw = request.match_info["org"]
    try:
        org_id = str(uuid.UUID(raw))
    except ValueError:
        org_id = raw
    org = _state(request).orgs.get(org_id)
    if org is None:
        raise ApiError(404, f"Organization {raw} was not found.")
    if not claims.may_access(org.org.id):
        raise ApiError(403, f"The client has no access to organization {org.org.id}.")
    return claims, org


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _envelope(data: Any) -> web.Response:
    return json_response({"summary": _SUMMARY_LAST, "data": data})


def _list_response(items_json: str, next_token: str | None) -> web.Response:
    summary = dumps({"status": "SUCCESS", "nextPageToken": next_token}).decode()
    body = '{"data":[' + items_json + '],"summary":' + summary + "}"
    return web.Response(body=body.encode(), content_type=JSON)


def _raw_filters(request: web.Request, names: tuple[str, ...]) -> dict[str, object]:
    q = request.query
    return {n: sorted(q.getall(n)) for n in names if n in q}


def _one(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


def _idempotency_key(request: web.Request) -> str | None:
    return request.headers.get(IDEMPOTENCY_KEY_HEADER) or None


async def _json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any] | None:
    raw = await request.read()
    if (
        raw.strip()
        and request.content_type not in ("application/json", "text/json")
        and not (request.content_type.endswith("+json"))
    ):
        raise ApiError(415, f"Unsupported content type {request.content_type!r}; send JSON.")
    return parse_json_object(raw, optional=optional)


def _page(
    request: web.Request,
    org: OrgState,
    listing: str,
    filter_names: tuple[str, ...],
    token_name: str,
    size_name: str,
) -> tuple[dict[str, object], Any, int]:
    filters = _raw_filters(request, filter_names)
    size = parse_page_size(request.query.get(size_name), size_name)
    token = request.query.get(token_name)
    after = (
        request.app[PAGES_KEY].decode(token, org.org.id, listing, filters, token_name)
        if token
        else None
    )
    return filters, after, size


def _next_token(
    request: web.Request, org: OrgState, listing: str, filters: dict[str, object], last: Any
) -> str | None:
    return (
        None if last is None else request.app[PAGES_KEY].encode(org.org.id, listing, filters, last)
    )


# --------------------------------------------------------------------------- /token
async def token(request: web.Request) -> web.Response:
    """``POST /token``: a client-credentials grant (401 ``invalid_client`` otherwise)."""
    form = await request.post()
    issuer = request.app[TOKENS_KEY]
    grant = form.get("grant_type")
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    client = None
    if (
        grant == "client_credentials"
        and isinstance(client_id, str)
        and isinstance(client_secret, str)
    ):
        client = issuer.authenticate(client_id, client_secret)
    if client is None:
        return web.Response(
            status=401,
            body=dumps({"error": "invalid_client"}),
            content_type=JSON,
            headers={"WWW-Authenticate": 'Basic realm="identiverse"'},
        )
    resp = json_response(issuer.issue(client))
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --------------------------------------------------------------------------- invoices
async def list_invoices(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/invoices``: one filtered keyset page of invoices."""
    _, org = _auth_org(request)
    q = request.query
    f = InvoiceFilters(
        status=query_enum(q.getall("Status", []), "Status", INVOICE_STATUSES),
        type=query_enum(q.getall("Type", []), "Type", INVOICE_TYPES),
        invoice_number=_one(request, "InvoiceNumber"),
        usid=_one(request, "UniqueSourceInvoiceId"),
        customer_number=_one(request, "CustomerNumber"),
        from_ms=query_datetime(q.get("From"), "From"),
        to_ms=query_datetime(q.get("To"), "To"),
    )
    filters, after, size = _page(request, org, "invoices", INVOICE_FILTERS, "PageToken", "PageSize")
    items, last = paginate(org.iter_invoices(f, after), size)
    parts = [org.invoice_json(x) for x in items]
    return _list_response(",".join(parts), _next_token(request, org, "invoices", filters, last))


async def get_invoice(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/invoices/{invoice}``: one invoice (404 if unknown)."""
    _, org = _auth_org(request)
    invoice_id = request.match_info["invoice"]
    record = org.get_invoice(invoice_id)
    if record is None:
        raise ApiError(404, f"Invoice {invoice_id} was not found.")
    return _envelope(record.invoice_dict())


async def _write(
    request: web.Request,
    batch_type: str,
    validate: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> web.Response:
    claims, org = _auth_org(request)
    body = await _json_body(request)
    assert body is not None
    items = validate(body)
    key = _idempotency_key(request)
    base = f"{_origin(request)}{API}/orgs/{org.org.id}/batches"
    answer = _state(request).submit_batch(org, batch_type, claims.client_id, key, items, base)
    return web.Response(status=202, body=answer, content_type=JSON)


async def create_invoices(request: web.Request) -> web.Response:
    """``POST /orgs/{org}/invoices``: queue an invoice batch (202)."""
    return await _write(request, "INVOICE", validate_invoices)


async def create_payments(request: web.Request) -> web.Response:
    """``POST /orgs/{org}/payments``: queue a payment batch (202)."""
    return await _write(request, "PAYMENT", validate_payments)


async def create_corrections(request: web.Request) -> web.Response:
    """``POST /orgs/{org}/corrections``: queue a correction batch (202)."""
    return await _write(request, "CORRECTION", validate_corrections)


# --------------------------------------------------------------------------- batches
async def list_batches(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/batches``: one filtered keyset page, ascending or descending."""
    _, org = _auth_org(request)
    q = request.query
    direction = q.get("SortDirection", "ASC")
    if direction not in tuple(member.value for member in models.SortDirection):
        raise ApiError(400, "Invalid SortDirection.", errors={"SortDirection": ["ASC or DESC."]})
    states = query_enum(q.getall("State", []), "State", BATCH_STATUSES)
    types = query_enum(q.getall("Type", []), "Type", BATCH_TYPES)
    filters, after, size = _page(request, org, "batches", BATCH_FILTERS, "PageToken", "PageSize")
    items, last = paginate(
        org.iter_batches(
            states=states,
            types=types,
            subject_id=_one(request, "SubjectId"),
            idempotency_key=_one(request, "IdempotencyKey"),
            descending=direction == "DESC",
            after=after,
        ),
        size,
    )
    data = dumps([b.to_dict() for b in items]).decode()[1:-1]
    return _list_response(data, _next_token(request, org, "batches", filters, last))


async def get_batch(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/batches/{batch}``: one batch of this organisation."""
    _, org = _auth_org(request)
    batch_id = request.match_info["batch"]
    batch = _state(request).batches_by_id.get(batch_id.lower())
    if batch is None or batch.org_id != org.org.id:
        raise ApiError(404, f"Batch {batch_id} was not found.")
    return _envelope(batch.to_dict())


async def get_batch_legacy(request: web.Request) -> web.Response:
    """``GET /batches/{batch}`` (no organisation in the path): any batch the client may see."""
    claims = _claims(request)
    batch_id = request.match_info["batch"]
    batch = _state(request).batches_by_id.get(batch_id.lower())
    if batch is None:
        raise ApiError(404, f"Batch {batch_id} was not found.")
    if not claims.may_access(batch.org_id):
        raise ApiError(403, f"The client has no access to organization {batch.org_id}.")
    return _envelope(batch.to_dict())


# --------------------------------------------------------------------------- settlements
async def list_settlements(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/settlements``: one keyset page, filtered by settlement date."""
    _, org = _auth_org(request)
    dates: dict[str, str | None] = {}
    for name in ("fromDate", "toDate"):
        value = request.query.get(name)
        try:
            dates[name] = None if value is None else parse_date(value)
        except ValueError:
            raise ApiError(
                400, f"Invalid {name}.", errors={name: ["Not an ISO 8601 date."]}
            ) from None
    filters, after, size = _page(
        request, org, "settlements", ("fromDate", "toDate"), "pageToken", "pageSize"
    )
    items, last = paginate(org.iter_settlements(dates["fromDate"], dates["toDate"], after), size)
    data = dumps([s.to_dict() for s in items]).decode()[1:-1]
    return _list_response(data, _next_token(request, org, "settlements", filters, last))


async def get_settlement(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/settlements/{settlement}``: one settlement."""
    _, org = _auth_org(request)
    settlement_id = request.match_info["settlement"]
    s = org.settlements_by_id.get(settlement_id.lower())
    if s is None:
        raise ApiError(404, f"Settlement {settlement_id} was not found.")
    return _envelope(s.to_dict())


# --------------------------------------------------------------------------- cases
async def list_cases(request: web.Request) -> web.Response:
    """``GET /orgs/{org}/cases``: one filtered keyset page of cases."""
    _, org = _auth_org(request)
    q = request.query
    f = CaseFilters(
        status=query_enum(q.getall("Status", []), "Status", INVOICE_STATUSES),
        type=query_enum(q.getall("Type", []), "Type", INVOICE_TYPES),
        case_number=_one(request, "CaseNumber"),
        customer_number=_one(request, "CustomerNumber"),
        usid=_one(request, "UniqueSourceInvoiceId"),
        search=_one(request, "SearchTerm"),
        from_ms=query_datetime(q.get("FromCreatedAt"), "FromCreatedAt"),
        to_ms=query_datetime(q.get("ToCreatedAt"), "ToCreatedAt"),
    )
    filters, after, size = _page(request, org, "cases", CASE_FILTERS, "PageToken", "PageSize")
    items, last = paginate(org.iter_cases(f, after), size)
    data = dumps([r.case_dict() for r in items]).decode()[1:-1]
    return _list_response(data, _next_token(request, org, "cases", filters, last))


def _case_action(action: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        _, org = _auth_org(request)
        reason = validate_case_action(await _json_body(request, optional=True))
        case_id = request.match_info["case"]
        state = _state(request)
        state.run_idempotent(
            org.org.id,
            action,
            _idempotency_key(request),
            [case_id, reason],
            lambda: state.case_action(org, [case_id], action),
        )
        return web.Response(status=202)

    return handler


def _debt_collection_list(action: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        _, org = _auth_org(request)
        body = await _json_body(request)
        assert body is not None
        ids = validate_debt_collection_list(body)
        state = _state(request)
        state.run_idempotent(
            org.org.id,
            action,
            _idempotency_key(request),
            ids,
            lambda: state.case_action(org, ids, action),
        )
        return web.Response(status=202)

    return handler


# --------------------------------------------------------------------------- legacy
async def legacy_ping(request: web.Request) -> web.Response:
    """``GET /webapi/api/Ping``: liveness, for a valid Bearer token (as the spec's Ping)."""
    _claims(request)
    return json_response({"message": "pong"})


def _legacy_orgs(request: web.Request) -> list[OrgState]:
    claims = _claims(request)
    orgs = [o for o in _state(request).orgs.values() if claims.may_access(o.org.id)]
    if not orgs:
        raise ApiError(403, "The client has no access to any creditor.")
    return orgs


def _bool_query(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, f"Invalid {name}.", errors={name: ["true or false."]})
    return value == "true"


def _as_bad_request(exc: ApiError) -> ApiError:
    """A body refusal of the legacy API: 400, as ASP.NET Core's [ApiController] answers a body
    that does not fit its model (the spec lists no 422 for the legacy POSTs)."""
    return (
        ApiError(400, exc.detail, title=exc.title, errors=exc.errors) if exc.status == 422 else exc
    )


async def legacy_get_batch(request: web.Request) -> web.Response:
    """``GET /webapi/api/Batch``: the legacy export of the client's creditors."""
    orgs = _legacy_orgs(request)
    batch = _state(request).legacy_batch(
        orgs,
        creditor_id=_one(request, "creditorid"),
        customer_ref=_one(request, "customerref"),
        include_closed=_bool_query(request, "includeclosed"),
        last_settlement_id=_one(request, "lastsettlementid"),
    )
    return json_response(batch)


async def legacy_post_batch(request: web.Request) -> web.Response:
    """``POST /webapi/api/Batch``: store a legacy batch and echo it with its batchid."""
    _legacy_orgs(request)
    if request.content_type not in ("application/json-patch+json", "application/json"):
        raise ApiError(415, "Send the batch as application/json-patch+json (or application/json).")
    raw = await request.read()
    try:
        body = parse_json_object(raw)
        assert body is not None
        validate_shape(body, models.LegacyBatch)
    except ApiError as exc:
        raise _as_bad_request(exc) from None
    state = _state(request)
    stored = state.run_idempotent(
        _claims(request).client_id,
        "legacy-batch",
        _idempotency_key(request),
        [hashlib.sha256(raw).hexdigest(), request.query.get("senderid")],
        lambda: state.store_legacy_batch(body),
    )
    return json_response(stored)


async def legacy_attachment(request: web.Request) -> web.Response:
    """``POST /webapi/api/Attachment``: store the multipart ``file`` part; answer its id."""
    orgs = _legacy_orgs(request)
    case_id = _one(request, "caseid")
    state = _state(request)
    if case_id is not None and state.find_case_any(orgs, case_id) is None:
        raise ApiError(404, f"Case {case_id} was not found.")
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "Send the attachment as multipart/form-data with a 'file' part.")
    found = await _file_part(request)
    if found is not None:
        data, filename, content_type = found
        attachment_id = state.run_idempotent(
            _claims(request).client_id,
            "legacy-attachment",
            _idempotency_key(request),
            [filename, content_type, hashlib.sha256(data).hexdigest(), case_id],
            functools.partial(state.store_attachment, filename, content_type, data, case_id),
        )
        return json_response({"attachmentid": attachment_id})
    raise ApiError(
        400,
        "One or more validation errors occurred.",
        errors={"file": ["The multipart body has no 'file' part."]},
    )


async def _file_part(request: web.Request) -> tuple[bytes, str | None, str | None] | None:
    """(data, filename, content type) of the multipart ``file`` part, None without one; 400
    for another part (the spec's body has the one part) or a body aiohttp cannot read as
    multipart (a malformed part header, a bad boundary)."""
    found = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file" or found:
                raise ApiError(
                    400,
                    "One or more validation errors occurred.",
                    errors={"file": ["The multipart body has parts other than one 'file'."]},
                )
            data = bytes(await part.read(decode=True))
            found = data, part.filename, part.headers.get("Content-Type")
        return found
    except (HttpProcessingError, ValueError, LookupError, AssertionError) as exc:
        raise ApiError(400, f"The multipart body cannot be read: {type(exc).__name__}.") from None


# --------------------------------------------------------------------------- app
async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[STATE_KEY].run_worker(), name="amili-sandbox-batches")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """A fresh sandbox application (its own state, seeded from ``config``)."""
    config = config or SandboxConfig()
    secret = config.secret or secrets.token_bytes(32)
    app = web.Application(
        middlewares=[
            _request_id_middleware,
            throttle_middleware,
            fault_middleware,
            _error_middleware,
            query_middleware,
        ],
        client_max_size=64 * 1024 * 1024,
    )
    if config.log_requests:  # outermost: it sees throttled and faulted answers too
        app.middlewares.insert(0, request_log_middleware())
    app[STATE_KEY] = SandboxState(config)
    app[TOKENS_KEY] = TokenIssuer(
        secret, config.clients, config.token_lifetime, config.token_resource
    )
    app[PAGES_KEY] = PageCodec(secret)
    app[FAULTS_KEY] = [FaultInjector(config.faults) if config.faults else None]
    app[THROTTLE_KEY] = [Throttle(config.rate_limit) if config.rate_limit else None]
    app.on_response_prepare.append(_add_request_id)
    app.cleanup_ctx.append(_worker_ctx)

    r = app.router
    r.add_post("/token", token)
    r.add_get(ORG + "/invoices", list_invoices)
    r.add_post(ORG + "/invoices", create_invoices)
    r.add_get(ORG + "/invoices/{invoice}", get_invoice)
    r.add_post(ORG + "/payments", create_payments)
    r.add_post(ORG + "/corrections", create_corrections)
    r.add_get(ORG + "/batches", list_batches)
    r.add_get(ORG + "/batches/{batch}", get_batch)
    r.add_get(API + "/batches/{batch}", get_batch_legacy)
    r.add_get(ORG + "/settlements", list_settlements)
    r.add_get(ORG + "/settlements/{settlement}", get_settlement)
    r.add_get(ORG + "/cases", list_cases)
    for action in CASE_ACTIONS:
        if action.startswith(_LIST_ACTION_PREFIX):
            r.add_post(f"{ORG}/{action}", _debt_collection_list(action))
        else:
            r.add_post(f"{ORG}/cases/{{case}}/{action}", _case_action(action))
    r.add_get("/webapi/api/Ping", legacy_ping)
    r.add_get("/webapi/api/Batch", legacy_get_batch)
    r.add_post("/webapi/api/Batch", legacy_post_batch)
    r.add_post("/webapi/api/Attachment", legacy_attachment)
    add_webhook_routes(app, config, app[STATE_KEY].events)
    return app
