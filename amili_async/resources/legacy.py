"""The AutoCollect Legacy API (`/webapi/api/*`), served from the API host's origin."""

from __future__ import annotations

from .. import models
from .._request import encode_multipart
from ._base import Resource, operation

# The docs show this unusual media type on POST /webapi/api/Batch (ASP.NET's default).
JSON_PATCH = "application/json-patch+json"


class Legacy(Resource):
    """`client.legacy`: Ping, Batch GET/POST and Attachment of the legacy API."""

    @operation("LegacyPing")
    async def ping(self, *, timeout: float | None = None) -> models.LegacyPingResponse:
        """Check that the legacy API answers (and that the token is accepted)."""
        return await self._get(
            "/webapi/api/Ping", models.LegacyPingResponse, timeout=timeout, root=True
        )

    @operation("LegacyGetBatch")
    async def get_batch(
        self,
        *,
        sender_id: str | None = None,
        creditor_id: str | None = None,
        customer_ref: str | None = None,
        ledger_ref: str | None = None,
        include_closed: bool | None = None,
        last_settlement_id: str | None = None,
        remittance_date: str | None = None,
        language_code: str | None = None,
        timeout: float | None = None,
    ) -> models.LegacyBatch:
        """Creditors, cases and settlements in the legacy batch shape."""
        params = {
            "senderid": sender_id,
            "creditorid": creditor_id,
            "customerref": customer_ref,
            "ledgerref": ledger_ref,
            "includeclosed": include_closed,
            "lastsettlementid": last_settlement_id,
            "remittancedate": remittance_date,
            "languagecode": language_code,
        }
        return await self._get(
            "/webapi/api/Batch", models.LegacyBatch, params=params, timeout=timeout, root=True
        )

    @operation("LegacyPostBatch")
    async def post_batch(
        self,
        batch: models.LegacyBatch,
        *,
        sender_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.LegacyBatch:
        """Submit a legacy batch (sent as application/json-patch+json, as the docs show)."""
        return await self._post(
            "/webapi/api/Batch",
            batch,
            models.LegacyBatch,
            params={"senderid": sender_id},
            content_type=JSON_PATCH,
            idempotency_key=idempotency_key,
            timeout=timeout,
            root=True,
        )

    @operation("LegacyUploadAttachment")
    async def upload_attachment(
        self,
        content: bytes,
        *,
        filename: str,
        content_type: str = "application/octet-stream",
        sender_id: str | None = None,
        case_id: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.LegacyAttachmentResponse:
        """Upload a document as multipart/form-data (part `file`; inferred)."""
        body, multipart_type = encode_multipart({}, {"file": (filename, content, content_type)})
        return await self._post(
            "/webapi/api/Attachment",
            body,
            models.LegacyAttachmentResponse,
            params={"senderid": sender_id, "caseid": case_id},
            content_type=multipart_type,
            idempotency_key=idempotency_key,
            timeout=timeout,
            root=True,
        )
