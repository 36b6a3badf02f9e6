"""Sandbox configuration: organisations, API clients and server knobs."""

from __future__ import annotations

import attrs

from ._faults import FaultConfig
from ._norway import org_number

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORGS",
    "DEFAULT_ORG_ID",
    "DEFAULT_WEBHOOK_SECRET",
    "RESTRICTED_CLIENT_ID",
    "RESTRICTED_CLIENT_SECRET",
    "SECOND_ORG_ID",
    "ClientConfig",
    "OrgConfig",
    "SandboxConfig",
    "make_orgs",
]

#: The organisation id of the docs' examples; the sandbox's default (seeded) organisation.
DEFAULT_ORG_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
#: A second, initially empty organisation (the organizationId of the docs' batch list example).
SECOND_ORG_ID = "7bc05553-4b68-44e8-b7bc-37be63c6d9e9"

#: The default client's credentials: public on purpose (a local sandbox), easy to type.
DEFAULT_CLIENT_ID = "sandbox"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
#: The secret webhook deliveries are signed with unless configured: public on purpose, like
#: the default client's.
DEFAULT_WEBHOOK_SECRET = "sandbox-webhook-secret"
#: A client whose tokens are valid but grant access to no organisation (403 everywhere).
RESTRICTED_CLIENT_ID = "sandbox-restricted"
#: Its secret, as public as the default client's.
RESTRICTED_CLIENT_SECRET = "sandbox-restricted-secret"


@attrs.frozen
class OrgConfig:
    """An organisation (creditor) the sandbox serves, with its Norwegian identifiers."""

    id: str
    organization_number: str
    name: str
    creditor_number: str


@attrs.frozen
class ClientConfig:
    """An API client's credentials and the organisations its tokens grant."""

    client_id: str
    client_secret: str
    #: Organisation ids this client may use; None means every organisation.
    org_ids: frozenset[str] | None = None

    def may_access(self, org_id: str) -> bool:
        """Whether this client may use organisation ``org_id``."""
        return self.org_ids is None or org_id in self.org_ids


#: Two organisations (valid MOD11 organisation numbers) so access rules can be exercised.
DEFAULT_ORGS: tuple[OrgConfig, ...] = (
    OrgConfig(DEFAULT_ORG_ID, "912345688", "Nordlys Eiendom AS", "10001"),
    OrgConfig(SECOND_ORG_ID, "987654325", "Fjellheim Utleie AS", "10002"),
)
#: A client that may use every organisation and one that may use none.
DEFAULT_CLIENTS: tuple[ClientConfig, ...] = (
    ClientConfig(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, None),
    ClientConfig(RESTRICTED_CLIENT_ID, RESTRICTED_CLIENT_SECRET, frozenset()),
)


def make_orgs(n: int) -> tuple[OrgConfig, ...]:
    """``n`` organisations: the two default ones first, then generated ones (deterministic
    uuid-shaped ids, valid MOD11 organisation numbers), for multi-organisation exports."""
    if n < 1:
        raise ValueError("the sandbox needs at least one organisation")
    extra = tuple(
        OrgConfig(
            f"0a0a0a0a-0000-4000-8000-{k:012d}",
            org_number(k * 7919),
            f"Testkreditor {k} AS",
            f"{10000 + k + 1}",
        )
        for k in range(len(DEFAULT_ORGS), n)
    )
    return (*DEFAULT_ORGS, *extra)[:n]


@attrs.define(kw_only=True)
class SandboxConfig:
    """How one sandbox server runs. Every field has a usable default."""

    host: str = "127.0.0.1"
    port: int = 0
    #: Number of seeded invoices (and cases) in the first organisation (and in each of the
    #: first ``seeded_orgs``).
    invoices: int = 50
    #: Seed of the generated data (same seed, same invoices).
    seed: int = 1
    #: Fault injection; None disables it. Can be swapped at runtime (SandboxServer.set_faults).
    faults: FaultConfig | None = None
    #: Requests per second each API client may send (a token bucket; over it: 429 with
    #: Retry-After); None means unlimited. Can be swapped at runtime (set_rate_limit).
    rate_limit: float | None = None
    #: Print one line per request (method, path, status, injected fault) on stderr.
    log_requests: bool = False
    #: Seconds a write batch stays QUEUED; 0 means "on the next loop iteration".
    batch_delay: float = 0.05
    #: Access token lifetime in seconds.
    token_lifetime: int = 3600
    orgs: tuple[OrgConfig, ...] = DEFAULT_ORGS
    #: How many organisations (the first ones of ``orgs``) are seeded with ``invoices`` invoices
    #: each, every one with its own; the others start empty.
    seeded_orgs: int = 1
    clients: tuple[ClientConfig, ...] = DEFAULT_CLIENTS
    #: HMAC key for access tokens and page tokens; None draws a random key per app.
    secret: bytes | None = None
    #: The ``resource`` value of token responses.
    token_resource: str = "04468334-ec11-4ef8-9e7c-e124bacbd5c1"
    #: Most cases returned by the legacy ``GET /webapi/api/Batch``.
    legacy_batch_limit: int = 100
    #: Receiver URLs every webhook event is POSTed to (more: ``SandboxServer.webhooks``).
    webhook_urls: tuple[str, ...] = ()
    #: The shared secret deliveries are signed with (the SDK's inferred HMAC-SHA256 scheme).
    webhook_secret: str = attrs.field(default=DEFAULT_WEBHOOK_SECRET, repr=False)
    #: Send the delivery time (Unix seconds) in this header and sign ``<time>.<body>``: the
    #: SDK's inferred replay protection (``HmacSha256Verifier(timestamp_header=...)``).
    webhook_timestamp_header: str | None = None
    #: Fault injection for receivers: the probability that a delivery is sent twice at once.
    webhook_duplicates: float = 0.0

    @property
    def default_org_id(self) -> str:
        """The first organisation's id (the seeded one)."""
        return self.orgs[0].id

    @property
    def default_client(self) -> ClientConfig:
        """The first client (SandboxServer's credentials)."""
        return self.clients[0]
