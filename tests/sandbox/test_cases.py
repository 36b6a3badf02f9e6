from __future__ import annotations

import uuid
from typing import Any

import pytest

from ._support import Api

CASE_BASE = 5_000_001
# Seeded sub-statuses by index (mod 20): 3 list-manual, 7 eviction requested,
# 11 eviction confirmation requested, 15 debt collection.


async def _case(api: Api, index: int) -> dict[str, Any]:
    status, page = await api.get(f"{api.org}/cases", {"CaseNumber": str(CASE_BASE + index)})
    assert status == 200
    (case,) = page["data"]
    return case  # type: ignore[no-any-return]


async def _open_case(api: Api) -> dict[str, Any]:
    page = await api.ok(f"{api.org}/cases", {"Status": "OPEN", "PageSize": "50"})
    return next(c for c in page["data"] if c["subStatus"] is None)  # type: ignore[no-any-return]


async def _act(api: Api, case: dict[str, Any], action: str, body: Any = None) -> tuple[int, Any]:
    return await api.post(f"{api.org}/cases/{case['caseId']}/{action}", body)


async def test_pause_resume_withdraw(api: Api) -> None:
    case = await _open_case(api)
    invoice_id = case["invoices"][0]["invoiceId"]
    status, body = await _act(api, case, "pause", {"reason": "Debtor called"})
    assert (status, body) == (202, None)
    case = await _case(api, int(case["caseNumber"]) - CASE_BASE)
    assert case["status"] == "PAUSED"
    status, inv = await api.get(f"{api.org}/invoices/{invoice_id}")
    assert inv["data"]["status"] == "PAUSED"
    status, problem = await _act(api, case, "pause")
    assert status == 409
    assert problem["status"] == 409
    assert (await _act(api, case, "resume"))[0] == 202
    assert (await _act(api, case, "resume"))[0] == 409
    assert (await _act(api, case, "withdraw"))[0] == 202
    case = await _case(api, int(case["caseNumber"]) - CASE_BASE)
    assert case["status"] == "WITHDRAWN"
    assert case["closedAt"] is not None
    for action in ("pause", "resume", "withdraw"):
        assert (await _act(api, case, action))[0] == 409


async def test_withdraw_from_paused(api: Api) -> None:
    case = await _open_case(api)
    assert (await _act(api, case, "pause"))[0] == 202
    assert (await _act(api, case, "withdraw"))[0] == 202


@pytest.mark.parametrize(
    ("index", "action", "after"),
    [
        (7, "eviction-request/accept", "EVICTION_CONFIRMATION_REQUESTED"),
        (27, "eviction-request/reject", None),
        (11, "eviction-confirmation/accept", "EVICTION_CONFIRMED"),
        (31, "eviction-confirmation/reject", None),
    ],
)
async def test_eviction_transitions(api: Api, index: int, action: str, after: str | None) -> None:
    case = await _case(api, index)
    status, _ = await _act(api, case, action)
    assert status == 202
    case = await _case(api, index)
    assert case["subStatus"] == after
    assert case["status"] == "OPEN"
    assert (await _act(api, case, action))[0] == 409


async def test_eviction_request_then_confirmation(api: Api) -> None:
    case = await _case(api, 7)
    assert (await _act(api, case, "eviction-confirmation/accept"))[0] == 409
    assert (await _act(api, case, "eviction-request/accept"))[0] == 202
    assert (await _act(api, case, "eviction-confirmation/accept"))[0] == 202
    assert (await _case(api, 7))["subStatus"] == "EVICTION_CONFIRMED"


@pytest.mark.parametrize(
    "action",
    [
        "eviction-request/accept",
        "eviction-request/reject",
        "eviction-confirmation/accept",
        "eviction-confirmation/reject",
    ],
)
async def test_eviction_actions_on_a_plain_case_are_409(api: Api, action: str) -> None:
    case = await _open_case(api)
    status, problem = await _act(api, case, action)
    assert status == 409
    assert problem["title"] == "Illegal case transition"


async def test_debt_collection_list(api: Api) -> None:
    a, b = await _case(api, 3), await _case(api, 23)
    url = f"{api.org}/debt-collection-list"
    status, _ = await api.post(f"{url}/accept", {"caseIds": [a["caseId"]]})
    assert status == 202
    assert (await _case(api, 3))["subStatus"] == "DEBT_COLLECTION"
    status, _ = await api.post(f"{url}/accept", {"caseIds": [a["caseId"]]})
    assert status == 409
    # All or nothing: one illegal case blocks the others.
    status, _ = await api.post(f"{url}/reject", {"caseIds": [b["caseId"], a["caseId"]]})
    assert status == 409
    assert (await _case(api, 23))["subStatus"] == "DEBT_COLLECTION_LIST_MANUAL"
    status, _ = await api.post(f"{url}/reject", {"caseIds": [b["caseId"], str(uuid.uuid4())]})
    assert status == 404
    status, _ = await api.post(f"{url}/reject", {"caseIds": [b["caseId"]]})
    assert status == 202
    assert (await _case(api, 23))["subStatus"] is None
    status, problem = await api.post(f"{url}/accept", {"caseIds": []})
    assert status == 422
    status, problem = await api.post(f"{url}/accept", {"caseIds": ["x"]})
    assert status == 422
    assert "caseIds[0]" in problem["errors"]


async def test_case_action_errors(api: Api) -> None:
    status, problem = await api.post(f"{api.org}/cases/{uuid.uuid4()}/pause")
    assert status == 404
    assert problem["status"] == 404
    case = await _open_case(api)
    status, problem = await _act(api, case, "pause", {"reason": 5})
    assert status == 422
    assert "reason" in problem["errors"]
    async with api.session.post(
        f"{api.org}/cases/{case['caseId']}/pause",
        data=b"{oops",
        headers=api.headers({"Content-Type": "application/json"}),
    ) as resp:
        assert resp.status == 400
    status, _ = await api.post(f"{api.org}/cases/{case['caseId']}/explode")
    assert status == 404


async def test_payment_settlement_on_debt_collection_case(api: Api) -> None:
    case = await _case(api, 15)
    assert case["subStatus"] == "DEBT_COLLECTION"
    invoice_id = case["invoices"][0]["invoiceId"]
    await api.submit(
        "payments",
        {
            "payments": [
                {"invoiceId": invoice_id, "type": "DIRECT_PAYMENT", "amount": 1, "currency": "NOK"}
            ]
        },
    )
    page = await api.ok(f"{api.org}/settlements")
    assert page["data"][0]["collectionType"] == "DEBT_COLLECTION"
