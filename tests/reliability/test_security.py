"""Hostile input and careless output: nothing is injected, nothing leaks.

What it proves:

- plain `http://` to a host that is not loopback is refused at construction (base_url and
  token_url), naming the scheme, unless `allow_insecure_http=True`; loopback is allowed;
- CR or LF in an idempotency key, a static token, a provided token, a token from the token
  endpoint or an extra header raises ValueError before anything reaches the API server;
- ids cannot change the request path ("/", "..", "%2F", "?", "#" stay one quoted segment;
  "", "." and ".." are refused) and filter values cannot add query parameters;
- TLS is verified: a self-signed certificate is refused with APIConnectionError after a single
  attempt (a certificate error is never retried), while the same server trusted works;
- the client secret, bearer tokens and national identity numbers never appear in DEBUG logs
  of a whole session (retries, refreshes and errors included), in repr() of clients, models,
  ItemResult, RawResponse or exceptions, in str() of exceptions, nor anywhere in the formatted
  traceback of a decode error whose offending value is the identity number.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import ssl
import subprocess
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from amili_async import (
    AmiliClient,
    AmiliError,
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    ResponseDecodeError,
    UnprocessableEntityError,
    models,
)
from amili_async.sandbox import FaultConfig, SandboxServer

from .conftest import connect, local_server, new_invoice

ORG = "org-1"
IDENTITY = "01017012345"  # a national identity number (fødselsnummer) of the docs' shape


# --------------------------------------------------------------------------- plain http

REFUSED = [
    {"base_url": "http://api.example.com/collection/v1"},
    {"base_url": "HTTP://api.example.com/collection/v1"},
    {"base_url": "http://0.0.0.0:8080/collection/v1"},
    {"base_url": "http://127.0.0.1.example.com/collection/v1"},
    {"base_url": "http://localhost.example.com/collection/v1"},
    {"base_url": "https://api.example.com/collection/v1", "token_url": "http://auth.example.com/t"},
    {"base_url": "http://127.0.0.1:9/collection/v1", "token_url": "http://auth.example.com/t"},
]


@pytest.mark.parametrize("urls", REFUSED, ids=[str(sorted(u.items())) for u in REFUSED])
def test_plain_http_to_a_remote_host_is_refused_at_construction(urls: dict[str, str]) -> None:
    refused = "token_url" if urls.get("token_url", "").startswith("http:") else "base_url"
    with pytest.raises(ValueError, match="scheme 'http'") as caught:
        AmiliClient(client_id="id", client_secret="secret", **urls)
    assert refused in str(caught.value)
    assert "secret" not in str(caught.value)

    client = AmiliClient(client_id="id", client_secret="secret", allow_insecure_http=True, **urls)
    assert client.base_url == urls["base_url"]


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/collection/v1",
        "http://127.8.9.10/collection/v1",
        "http://localhost:8080/collection/v1",
        "http://LOCALHOST/collection/v1",
        "http://[::1]:8080/collection/v1",
        "https://api.example.com/collection/v1",
    ],
)
def test_http_to_loopback_and_https_anywhere_are_allowed(base_url: str) -> None:
    client = AmiliClient(client_id="id", client_secret="secret", base_url=base_url)
    assert client.base_url == base_url


# --------------------------------------------------------------------------- CR / LF


def _counting_app(counts: dict[str, int], token_answer: dict[str, Any] | None = None) -> Any:
    app = web.Application()

    async def api(request: web.Request) -> web.Response:
        counts["api"] += 1
        return web.json_response({"data": {"batchId": "b1", "id": "inv-1"}}, status=200)

    async def token(request: web.Request) -> web.Response:
        counts["token"] += 1
        return web.json_response(token_answer or {})

    app.router.add_route("*", "/collection/v1/{tail:.*}", api)
    app.router.add_post("/token", token)
    return app


INJECTIONS = ["evil\r\nX-Injected: 1", "evil\nX-Injected: 1", "evil\rX-Injected: 1"]


@pytest.mark.parametrize("value", INJECTIONS, ids=["crlf", "lf", "cr"])
async def test_cr_or_lf_in_any_header_value_is_refused_before_sending(value: str) -> None:
    counts = {"api": 0, "token": 0}
    async with local_server(_counting_app(counts)) as server:
        with pytest.raises(ValueError, match="CR or LF"):
            server.client(token=value)

        async with server.client() as client:
            with pytest.raises(ValueError, match="CR or LF") as caught:
                await client.invoices.create(ORG, [new_invoice(1)], idempotency_key=value)
            assert value not in str(caught.value)
            with pytest.raises(ValueError, match="CR or LF"):
                await client.with_options(extra_headers={"X-Trace": value}).invoices.get(ORG, "i")
            # In a header's name: refused too (by aiohttp's own check, in its own words).
            with pytest.raises(ValueError, match=r"CR or LF|control character"):
                await client.with_options(extra_headers={value: "v"}).invoices.get(ORG, "i")

        async def provide() -> str:
            return value

        providers: list[Callable[[], Any]] = [lambda: value, provide]
        for provider in providers:
            async with server.client(token=None, token_provider=provider) as client:
                with pytest.raises(ValueError, match="CR or LF") as caught:
                    await client.invoices.get(ORG, "i")
                assert value not in str(caught.value)

        assert counts == {"api": 0, "token": 0}  # nothing reached the server


async def test_cr_or_lf_in_a_token_from_the_token_endpoint_is_refused() -> None:
    counts = {"api": 0, "token": 0}
    answer = {"access_token": "tok\r\nX-Injected: 1", "token_type": "Bearer", "expires_in": 3600}
    async with (
        local_server(_counting_app(counts, answer)) as server,
        AmiliClient(client_id="id", client_secret="secret", base_url=server.base_url) as client,
    ):
        with pytest.raises(ValueError, match="CR or LF") as caught:
            await client.invoices.get(ORG, "i")
    assert "X-Injected" not in str(caught.value)
    assert counts == {"api": 0, "token": 1}


# --------------------------------------------------------------------------- paths


def _recording_app(seen: list[tuple[str, str, dict[str, str]]]) -> web.Application:
    app = web.Application()

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path.partition("?")[0], dict(request.query)))
        if request.method == "POST":
            return web.Response(status=204)
        if request.path.endswith("/invoices"):
            return web.json_response({"data": [{"id": "x"}]})
        body = {"data": {"id": "x", "batchId": "b", "status": "SUCCESS", "settlementId": "s"}}
        return web.json_response(body)

    app.router.add_route("*", r"/{tail:[\s\S]*}", record)  # any path, CR and LF included
    return app


HOSTILE_IDS = [
    "a/b",
    "../../token",
    "..%2F..%2Ftoken",
    "%2F",
    "x?PageSize=1",
    "x#fragment",
    "x/../../../orgs/other",
    "./.",
    "a b\r\nc",
    "ünïcode",
]


@pytest.mark.parametrize("value", HOSTILE_IDS)
async def test_an_id_stays_one_quoted_path_segment(value: str) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    async with local_server(_recording_app(seen)) as server, server.client() as client:
        await client.invoices.get(ORG, value)
        await client.batches.get(value, value)
        await client.settlements.get(ORG, value)
        await client.collections.pause_case(value, value)

    segment = quote(value, safe="")
    assert seen == [
        ("GET", f"/collection/v1/orgs/{ORG}/invoices/{segment}", {}),
        ("GET", f"/collection/v1/orgs/{segment}/batches/{segment}", {}),
        ("GET", f"/collection/v1/orgs/{ORG}/settlements/{segment}", {}),
        ("POST", f"/collection/v1/orgs/{segment}/cases/{segment}/pause", {}),
    ]


@pytest.mark.parametrize("value", ["", ".", ".."])
async def test_an_id_that_would_leave_its_segment_is_refused(value: str) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    async with local_server(_recording_app(seen)) as server, server.client() as client:
        with pytest.raises(ValueError, match="ids must be"):
            await client.invoices.get(ORG, value)
        with pytest.raises(ValueError, match="ids must be"):
            await client.invoices.get(value, "inv-1")
        with pytest.raises(ValueError, match="ids must be"):
            await client.collections.withdraw_case(ORG, value)
    assert seen == []


async def test_filter_values_cannot_add_query_parameters() -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []
    async with local_server(_recording_app(seen)) as server, server.client() as client:
        await client.invoices.list(
            ORG, invoice_number="x&PageToken=evil", customer_number="a=b#c?d", prefetch=0
        ).collect(limit=1)

    ((_, _, query),) = seen
    assert query == {"InvoiceNumber": "x&PageToken=evil", "CustomerNumber": "a=b#c?d"}


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: with `cryptography` if installed, else openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _generate_with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor openssl is available")
        subprocess.run(
            [
                openssl, "req", "-x509", "-nodes", "-days", "2",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", str(key), "-out", str(cert),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
    return cert, key


def _generate_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def test_a_self_signed_certificate_is_refused_and_never_retried(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    served: list[str] = []
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.json_response({"data": {"id": "inv-1"}})

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    attempts: list[int] = []
    async with local_server(app, ssl_context=server_context) as server:
        async with server.client(
            max_retries=5, on_request=lambda info: attempts.append(info.attempt)
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.invoices.get(ORG, "inv-1")
        assert attempts == [1]  # a certificate will not change in a second: no retry
        assert isinstance(caught.value.__cause__, aiohttp.ClientSSLError)
        assert served == []

        # The same server, trusted: the refusal above was the certificate and nothing else.
        trusting = ssl.create_default_context(cafile=str(cert))
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session,
            server.client(session=session) as client,
        ):
            assert (await client.invoices.get(ORG, "inv-1")).id == "inv-1"
        assert served == ["/collection/v1/orgs/org-1/invoices/inv-1"]


# --------------------------------------------------------------------------- secrets


def _debtor() -> models.Debtor:
    return models.Debtor(
        type=models.DebtorType.PRIVATE,
        firstname="Kari-Hemmelig",
        lastname="Nordmann-Hemmelig",
        customer_number="C-777",
        identification_number=IDENTITY,
        date_of_birth=dt.date(1970, 1, 1),
        emails=[models.Email(value="kari.hemmelig@example.no")],
        addresses=[models.Address(street="Hemmeligveien 7", city="Oslo")],
    )


PERSONAL = [IDENTITY, "Kari-Hemmelig", "Nordmann-Hemmelig", "kari.hemmelig@", "Hemmeligveien"]


def _personal_invoice(n: int, amount: str = "1200.50") -> models.NewInvoice:
    invoice = new_invoice(n, amount=amount, customer_number="C-777")
    invoice.debtors = [_debtor()]
    return invoice


class _Tokens:
    """Records every bearer token actually sent, from aiohttp's own request trace."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._record)

    async def _record(self, session: Any, context: Any, params: Any) -> None:
        auth = params.headers.get("Authorization")
        if auth:
            self.seen.add(auth.removeprefix("Bearer "))


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), repr(record.exc_info)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


def _shown(*objects: object) -> str:
    """Everything a log line, a print or a traceback could show of `objects`."""
    parts: list[str] = []
    for obj in objects:
        parts += [repr(obj), str(obj)]
        if isinstance(obj, BaseException):
            parts.append("".join(traceback.format_exception(obj)))
    return "\n".join(parts)


async def test_a_whole_session_logs_and_shows_no_secret_token_or_personal_data(
    amili_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="amili_async")
    org = amili_sandbox.default_org_id
    tokens = _Tokens()
    shown: list[object] = []
    # Most API requests fail once or twice (503/429, then retried), so retries are logged too.
    amili_sandbox.set_faults(FaultConfig(rate_503=0.3, rate_429=0.1, retry_after=0, seed=12))

    async with connect(amili_sandbox, trace_configs=[tokens.config], max_retries=10) as client:
        shown.append(client)
        draft = _personal_invoice(1)
        shown += [draft, draft.debtors]
        results = [r async for r in client.invoices.create_many(org, [draft], poll_interval=0.01)]
        shown += results
        assert results[0].ok, results[0].reason
        assert results[0].succeeded is not None
        invoice_id = results[0].succeeded.invoice_id
        assert invoice_id is not None
        raw = await client.with_raw_response(client.invoices.get(org, invoice_id))
        invoice = raw.data
        assert invoice.debtors is not None
        assert invoice.debtors[0].identification_number == IDENTITY  # readable as attributes
        shown += [raw, invoice, invoice.debtors[0]]
        listed = await client.invoices.list(
            org, customer_number="C-777", unique_source_invoice_id="e2e-src-000001"
        ).collect()
        assert [i.id for i in listed] == [invoice_id]
        cases = await client.collections.list_cases(org, customer_number="C-777").collect()
        shown += cases
        with pytest.raises(NotFoundError) as missing:
            await client.invoices.get(org, "00000000-0000-4000-8000-000000000000")
        with pytest.raises(UnprocessableEntityError) as refused:  # 3 decimals: refused
            await client.invoices.create(org, [_personal_invoice(2, amount="10.001")])
        shown += [missing.value, refused.value]

    amili_sandbox.set_faults(None)
    # A rejected token is refreshed (the expired one is logged about, never shown).
    expired, fresh = amili_sandbox.issue_token(lifetime=-10), amili_sandbox.issue_token()
    provided = [expired, fresh]
    async with AmiliClient(
        token_provider=lambda: provided.pop(0),
        base_url=amili_sandbox.base_url,
        trace_configs=[tokens.config],
    ) as client:
        shown.append(client)
        await client.invoices.get(org, invoice_id)
    wrong_secret = "wrong-secret-1f2e3d4c"
    async with connect(amili_sandbox, client_secret=wrong_secret) as client:
        shown.append(client)
        with pytest.raises(AuthenticationError) as rejected:
            await client.invoices.get(org, invoice_id)
    shown.append(rejected.value)

    assert {expired, fresh} <= tokens.seen
    assert len(tokens.seen) >= 3
    logged = _everything_logged(caplog)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert "retrying" in logged  # retries happened and were logged
    assert "fresh token" in logged
    text = _shown(*shown)
    secrets = [amili_sandbox.client_secret, wrong_secret, *tokens.seen]
    for secret in secrets:
        assert secret not in logged
        assert secret not in text
    for value in PERSONAL:
        assert value not in logged
        assert value not in text, value
    assert "C-777" not in logged  # query values (customer numbers) stay out of log lines


def test_model_reprs_hide_personal_data() -> None:
    invoice = models.Invoice(id="inv-1", debtors=[_debtor()])
    case_debtor = models.CaseDebtor(first_name="Kari-Hemmelig", last_name="Nordmann-Hemmelig")
    text = _shown(_debtor(), _personal_invoice(1), invoice, case_debtor)
    for value in PERSONAL:
        assert value not in text, value
    assert "C-777" in text  # not personal data: the reprs still show what they may


DECODE_BODIES = {
    "date-of-birth": b'{"data": {"id": "x", "debtors": [{"dateOfBirth": "01017012345"}]}}',
    "created-at": b'{"data": {"id": "x", "createdAt": "01017012345"}}',
    "amount": b'{"data": {"id": "x", "paidAmount": "01017012345 NOK"}}',
    "leading-zero": b'{"data": {"id": "x", "debtors": [{"identificationNumber": 01017012345}]}}',
    "unbalanced": b'{"data": {"id": "x", "debtors": [{"identificationNumber": "01017012345"]}}',
    "wrong-type": b'{"data": {"id": "x", "debtors": {"identificationNumber": "01017012345"}}}',
}


@pytest.fixture
def serve_body() -> Callable[[bytes], web.Application]:
    def make(body: bytes) -> web.Application:
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            listing = body.replace(b'{"data": {', b'{"data": [{').replace(b"}}", b"}]}", 1)
            payload = listing if request.path.endswith("/invoices") else body
            return web.Response(body=payload, content_type="application/json")

        app.router.add_get("/collection/v1/orgs/{org}/invoices", handler)
        app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
        return app

    return make


@pytest.mark.parametrize("body", DECODE_BODIES.values(), ids=DECODE_BODIES.keys())
async def test_a_decode_error_shows_no_identity_number_anywhere_in_its_traceback(
    body: bytes,
    serve_body: Callable[[bytes], web.Application],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="amili_async")
    async with local_server(serve_body(body)) as server, server.client(max_retries=0) as client:
        with pytest.raises(ResponseDecodeError) as single:
            await client.invoices.get(ORG, "x")
        with pytest.raises(AmiliError) as listing:
            await client.invoices.list(ORG).collect()

    assert IDENTITY in body.decode()
    for error in (single.value, listing.value):
        assert isinstance(error, ResponseDecodeError)
        assert IDENTITY not in _shown(error)
        chained = error.__cause__ or error.__context__
        while chained is not None and not error.__suppress_context__:
            assert IDENTITY not in _shown(chained)
            chained = chained.__cause__ or chained.__context__
    assert IDENTITY not in _everything_logged(caplog)


async def test_a_token_endpoint_that_echoes_the_secret_does_not_leak_it() -> None:
    secret = "s3cr3t-echoed-by-a-broken-server"
    app = web.Application()
    answers = [
        web.json_response(
            {"error": "invalid_client", "error_description": f"bad secret {secret}"}, status=401
        ),
        web.Response(body=f'{{"access_token": "{secret}'.encode(), content_type="application/json"),
    ]

    async def token(request: web.Request) -> web.Response:
        return answers.pop(0)

    app.router.add_post("/token", token)
    async with local_server(app) as server:
        errors: list[AmiliError] = []
        for _ in range(2):
            async with AmiliClient(
                client_id="id", client_secret=secret, base_url=server.base_url, max_retries=0
            ) as client:
                with pytest.raises(AmiliError) as caught:
                    await client.invoices.get(ORG, "x")
                errors.append(caught.value)

    rejected, garbled = errors
    assert isinstance(rejected, AuthenticationError)
    assert isinstance(garbled, ResponseDecodeError)
    assert secret not in rejected.text
    assert secret not in repr(rejected.body)
    assert secret not in garbled.body_snippet
    assert secret not in _shown(rejected, garbled)


def test_decimal_amounts_are_kept_in_reprs() -> None:
    """The reprs hide what is personal, not what a developer debugs: amounts and ids stay."""
    text = repr(models.Invoice(id="inv-42", paid_amount=Decimal("98765432109876.54")))
    assert "inv-42" in text
    assert "98765432109876.54" in text
