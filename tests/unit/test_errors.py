"""errors.py (the classes, the status table) and _response.py's error building: ProblemDetails
parsing, messages without personal data."""

from __future__ import annotations

import pickle

import orjson
import pytest

import amili_async
from amili_async import errors
from amili_async._response import EXPLANATION_CHARS, Response, error_for_response, parse_json
from amili_async.errors import (
    AmiliError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadGatewayError,
    ErrorResponse,
    InternalServerError,
    RateLimitError,
    RateLimitWaitTimeoutError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServiceUnavailableError,
)
from amili_async.export import ExportFailedError

from ._statuses import STATUS_CLASSES

URL = "https://api.amili.no/collection/v1/orgs/o1/invoices/i1"
PROBLEM = {
    "type": "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    "title": "Invoice not found",
    "status": 404,
    "detail": "No invoice for customer Ola Nordmann",
    "traceId": "00-abc-01",
}
PROBLEM_HEADERS = {"Content-Type": "application/problem+json", "X-Amili-Request-Id": "req-1"}


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_status_picks_class_and_keeps_attributes(status: int, cls: type[APIStatusError]) -> None:
    body = orjson.dumps({**PROBLEM, "status": status})
    error = error_for_response(status, PROBLEM_HEADERS, body, "GET", URL + "?CustomerNumber=42")
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert isinstance(error, AmiliError)
    assert error.status_code == status
    assert error.request_id == "req-1"
    assert error.body == {**PROBLEM, "status": status}
    assert error.text == body.decode()
    assert error.method == "GET"
    assert error.url == URL
    assert error.headers["x-amili-request-id"] == "req-1"
    assert error.resume_token is None


def test_message_names_status_method_path_request_id_and_the_servers_explanation() -> None:
    problem = {**PROBLEM, "detail": "No invoice for the debtor with national id 01017012345"}
    error = error_for_response(
        404, PROBLEM_HEADERS, orjson.dumps(problem), "GET", URL + "?CustomerNumber=42"
    )
    assert str(error) == (
        "404 Not Found: GET /collection/v1/orgs/o1/invoices/i1 (request id req-1): "
        "Invoice not found - No invoice for the debtor with national id ***"
    )
    # The query may carry a customer number; identity numbers are masked.
    assert "42" not in str(error)
    assert "01017012345" not in str(error) + repr(error)


def test_validation_problem_names_each_failing_field() -> None:
    problem = {
        "title": "One or more validation errors occurred.",
        "status": 422,
        "errors": {
            "invoices[0].type": ["'BOGUS' is not one of NOTICE, PAYMENT_REMINDER."],
            "invoices[3].dueDate": ["The dueDate field is required."],
        },
    }
    error = error_for_response(422, PROBLEM_HEADERS, orjson.dumps(problem), "POST", URL)
    assert str(error).endswith(
        "One or more validation errors occurred. - "
        "invoices[0].type: 'BOGUS' is not one of NOTICE, PAYMENT_REMINDER.; "
        "invoices[3].dueDate: The dueDate field is required."
    )


def test_page_size_detail_is_in_the_message() -> None:
    detail = "PageSize must be between 1 and 1000."
    problem = {"title": "Bad Request", "status": 400, "detail": detail}
    error = error_for_response(400, PROBLEM_HEADERS, orjson.dumps(problem), "GET", URL)
    assert str(error).endswith("Bad Request - PageSize must be between 1 and 1000.")


def test_explanation_is_bounded_and_masks_tokens() -> None:
    fields = {f"invoices[{i}].currency": ["x" * 50] for i in range(100)}
    problem = {"title": "Invalid", "detail": "token Bearer eyJhbGciOi.abc.def", "errors": fields}
    error = error_for_response(422, PROBLEM_HEADERS, orjson.dumps(problem), "POST", URL)
    summary = str(error).split("(request id req-1): ", 1)[1]
    assert len(summary) <= EXPLANATION_CHARS
    assert "eyJhbGciOi" not in str(error)
    assert "invoices[0].currency" in summary
    assert "invoices[99]" not in summary
    assert error.body == problem  # everything stays readable on the exception


def test_json_media_type_with_charset_is_parsed() -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    error = error_for_response(422, headers, b'{"title": "Invalid"}', "POST", URL)
    assert error.body == {"title": "Invalid"}
    assert str(error).endswith(": Invalid")
    assert error.request_id is None
    assert "request id" not in str(error)


def test_html_gateway_page_keeps_text_without_body() -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    error = error_for_response(502, {"Content-Type": "text/html"}, page, "GET", URL)
    assert type(error) is BadGatewayError
    assert error.body is None
    assert error.text == page.decode()
    assert str(error) == "502 Bad Gateway: GET /collection/v1/orgs/o1/invoices/i1"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe garbage"],
)
def test_garbage_claiming_json_is_tolerated(body: bytes) -> None:
    error = error_for_response(500, {"Content-Type": "application/json"}, body, "GET", URL)
    assert type(error) is InternalServerError
    assert error.body is None
    assert error.text == body.decode("utf-8", "replace")


@pytest.mark.parametrize("status", [402, 405, 410, 418, 504, 599])
def test_status_outside_the_table_is_plain_api_status_error(status: int) -> None:
    error = error_for_response(status, {}, b"", "GET", URL)
    assert type(error) is APIStatusError
    assert error.status_code == status


def test_unknown_status_code_gets_a_phrase() -> None:
    assert str(error_for_response(599, {}, b"", "GET", URL)).startswith("599 Unknown Status:")


def test_error_class_override() -> None:
    body = b'{"error": "invalid_client"}'
    headers = {"Content-Type": "application/json"}
    error = error_for_response(
        400, headers, body, "POST", "https://auth/token", error_class=AuthenticationError
    )
    assert type(error) is AuthenticationError
    assert error.status_code == 400
    assert str(error) == "400 Bad Request: POST /token: invalid_client"


@pytest.mark.parametrize(("status", "cls"), [(429, RateLimitError), (503, ServiceUnavailableError)])
def test_retry_after_is_parsed(status: int, cls: type[RateLimitError]) -> None:
    error = error_for_response(status, {"Retry-After": "7"}, b"", "GET", URL)
    assert isinstance(error, cls)
    assert error.retry_after == 7.0
    without = error_for_response(status, {}, b"", "GET", URL)
    assert isinstance(without, cls)
    assert without.retry_after is None


def _response(content: bytes) -> Response:
    return Response(
        status_code=200,
        headers={},
        content=content,
        method="GET",
        url=URL,
        request_id="req-9",
        elapsed=0.01,
        attempts=1,
    )


def test_response_decode_error_keeps_snippet_out_of_str() -> None:
    content = b"<html>" + b"Ola Nordmann " * 50
    with pytest.raises(ResponseDecodeError) as caught:
        parse_json(_response(content))
    error = caught.value
    assert error.status_code == 200
    assert error.request_id == "req-9"
    assert error.body_snippet == content[:200].decode()
    assert len(error.body_snippet) == 200
    assert error.__cause__ is None  # a JSON error's `doc` is the whole body: never chained
    assert "Nordmann" not in str(error)
    assert "Nordmann" not in repr(error)
    assert str(error) == (
        "cannot decode 200 response to GET /collection/v1/orgs/o1/invoices/i1 "
        "(request id req-9): body is not valid JSON (at byte 0)"
    )


def test_response_helpers() -> None:
    response = _response(b'{"a": 1}')
    assert parse_json(response) == {"a": 1}
    assert response.text() == '{"a": 1}'
    assert "content" not in repr(response)


def test_connection_errors_drop_the_query() -> None:
    error = APITimeoutError("GET /x timed out", method="GET", url=URL + "?SearchTerm=Ola")
    assert isinstance(error, APIConnectionError)
    assert error.url == URL


@pytest.mark.parametrize(
    "error",
    [
        error_for_response(429, {"Retry-After": "3", "X-Amili-Request-Id": "r"}, b"{}", "GET", URL),
        error_for_response(404, PROBLEM_HEADERS, orjson.dumps(PROBLEM), "GET", URL),
        APIConnectionError("boom", method="GET", url=URL),
        ResponseDecodeError(
            "bad", status_code=200, request_id=None, body_snippet="x", method="GET", url=URL
        ),
    ],
    ids=["rate-limit", "not-found", "connection", "decode"],
)
def test_errors_survive_pickling(error: AmiliError) -> None:
    error.resume_token = "page-7"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__.keys() == error.__dict__.keys()
    assert copy.resume_token == "page-7"


def test_a_status_error_has_a_read_only_response_view_without_secrets() -> None:
    headers = {**PROBLEM_HEADERS, "WWW-Authenticate": 'Bearer error="invalid_token"'}
    error = error_for_response(404, headers, orjson.dumps(PROBLEM), "GET", URL + "?SearchTerm=Ola")
    response = error.response
    assert isinstance(response, ErrorResponse)
    assert response.status_code == 404
    assert response.method == "GET"
    assert response.path == "/collection/v1/orgs/o1/invoices/i1"
    assert response.url == URL
    assert response.request_id == "req-1"
    assert response.headers["content-type"] == "application/problem+json"
    with pytest.raises(TypeError):
        response.headers["X-Other"] = "1"  # type: ignore[index]
    with pytest.raises(AttributeError):
        response.status_code = 200  # type: ignore[misc]
    assert not hasattr(response, "content")
    assert not hasattr(response, "body")
    assert repr(response) == (
        "ErrorResponse(status_code=404, method='GET', "
        "path='/collection/v1/orgs/o1/invoices/i1', request_id='req-1')"
    )
    assert "invalid_token" not in repr(response)
    assert "Ola" not in repr(response)
    assert pickle.loads(pickle.dumps(error)).response.status_code == 404


def test_a_body_too_large_is_its_own_error_not_a_connection_error() -> None:
    error = ResponseTooLargeError("too large", method="GET", url=URL + "?q=1", limit=10)
    assert isinstance(error, AmiliError)
    assert not isinstance(error, APIConnectionError)
    assert (error.method, error.url, error.limit) == ("GET", URL, 10)


def test_the_public_classes_live_in_errors_and_only_classes_are_exported() -> None:
    assert AmiliError.__module__ == "amili_async.errors"
    assert amili_async.AmiliError is AmiliError
    for name in errors.__all__:
        value = getattr(errors, name)
        assert isinstance(value, type) or name == "STATUS_CLASSES", name
        if isinstance(value, type):
            assert value.__module__ == "amili_async.errors", name
    assert issubclass(ExportFailedError, AmiliError)
    assert issubclass(RateLimitWaitTimeoutError, APITimeoutError)
